//! The fragment table: where each fragment block (packed file tails) is stored.

use crate::error::{corrupt, Result};
use crate::reader::{BlockReader, DataBlock};
use crate::table::{Bounds, Chained, IndexEnd, Layout, LookupTable};

/// A fragment's `frag_index` meaning "this file has no fragment".
pub const NO_FRAGMENT: u32 = u32::MAX;

/// Bytes of a fragment table entry: start, size word, and an unused word.
pub(crate) const ENTRY_SIZE: u64 = 16;

#[derive(Debug)]
pub struct FragmentTable(LookupTable);

#[derive(Debug, Clone, Copy)]
pub struct Fragment {
    pub start: u64,
    pub block: DataBlock,
}

impl Chained for FragmentTable {
    fn first_block(&self) -> u64 {
        self.0.first_block()
    }
}

impl FragmentTable {
    /// The table of `count` fragment blocks at `start`.
    pub fn read(reader: &BlockReader, start: u64, count: u32, bounds: Bounds) -> Result<Self> {
        let layout = Layout {
            name: "fragment",
            entry_size: ENTRY_SIZE,
            count: u64::from(count),
            start,
            index_start: start,
            index_end: IndexEnd::ByNext,
        };
        LookupTable::read(reader, &layout, bounds).map(FragmentTable)
    }

    /// Appends a fragment table entry: where the block is and its size word.
    pub(crate) fn encode_entry(out: &mut Vec<u8>, fragment: Fragment) {
        out.extend(fragment.start.to_le_bytes());
        out.extend(fragment.block.word().to_le_bytes());
        out.extend(0u32.to_le_bytes());
    }

    pub fn get(&self, reader: &BlockReader, index: u32) -> Result<Fragment> {
        let mut c = self.0.entry(reader, u64::from(index))?;
        let start = c.u64()?;
        let block = DataBlock::from_word(c.u32()?, reader.block_size())?;
        if block.is_hole() {
            return Err(corrupt!("fragment {index} has size 0"));
        }
        if start
            .checked_add(u64::from(block.stored))
            .is_none_or(|end| end > reader.source().len())
        {
            return Err(corrupt!("fragment {index} lies past the image end"));
        }
        Ok(Fragment { start, block })
    }
}

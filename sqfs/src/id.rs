//! The id table: the uids and gids inodes refer to by index.

use crate::error::Result;
use crate::reader::BlockReader;
use crate::table::{Bounds, Chained, IndexEnd, Layout, LookupTable};

#[derive(Debug)]
pub struct IdTable(LookupTable);

impl Chained for IdTable {
    fn first_block(&self) -> u64 {
        self.0.first_block()
    }
}

impl IdTable {
    /// The table of `count` ids at `start`.
    pub fn read(reader: &BlockReader, start: u64, count: u16, bounds: Bounds) -> Result<Self> {
        let layout = Layout {
            name: "id",
            entry_size: 4,
            count: u64::from(count),
            start,
            index_start: start,
            index_end: IndexEnd::AtNext,
        };
        LookupTable::read(reader, &layout, bounds).map(IdTable)
    }

    /// Appends an id table entry.
    pub(crate) fn encode_entry(out: &mut Vec<u8>, id: u32) {
        out.extend(id.to_le_bytes());
    }

    /// A table of no ids.
    pub fn empty() -> Self {
        IdTable(LookupTable::empty(4))
    }

    /// The id at `index`; an index past the table is corruption.
    pub fn get(&self, reader: &BlockReader, index: u16) -> Result<u32> {
        self.0.entry(reader, u64::from(index))?.u32()
    }
}

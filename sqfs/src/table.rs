//! Lookup tables: arrays of fixed-size entries (ids, fragments, export refs, xattr ids)
//! stored in metadata blocks, found through an index of block positions.

use crate::error::{corrupt, Result};
use crate::metadata::{MetaCursor, MetaRef, Table};
use crate::reader::{BlockReader, METADATA_SIZE};

/// A metadata block plus its header can be no longer than this on disk.
const MAX_STORED_BLOCK: u64 = METADATA_SIZE as u64 + 2;

/// Where a table's index must end.
#[derive(Debug, Clone, Copy)]
pub enum IndexEnd {
    /// Right where the next table starts: the kernel refuses an id, export or xattr id
    /// index whose size differs from the distance to the next table (in
    /// squashfs_read_id_index_table(), squashfs_read_inode_lookup_table(),
    /// squashfs_read_xattr_id_table()).
    Exactly(u64),
    /// Anywhere up to the next table's start: all the kernel requires of the fragment
    /// table (squashfs_read_fragment_index_table()).
    AtMost(u64),
}

#[derive(Debug)]
pub struct LookupTable {
    /// Image position of each metadata block holding entries.
    blocks: Vec<u64>,
    entry_size: u64,
    count: u64,
    table: Table,
}

impl LookupTable {
    /// Reads the index of a table of `count` entries of `entry_size` bytes. The index sits at
    /// `index_start` and must end as `index_end` says; the entry blocks must start at or
    /// after `lowest` and run contiguously up to `blocks_end` (the index, or a header before
    /// it).
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        reader: &BlockReader,
        name: &str,
        blocks_end: u64,
        index_start: u64,
        index_end: IndexEnd,
        lowest: u64,
        count: u64,
        entry_size: u64,
    ) -> Result<Self> {
        let bytes = count * entry_size;
        let nblocks = bytes.div_ceil(METADATA_SIZE as u64);
        let fits = |end: u64| match index_end {
            IndexEnd::Exactly(next) => end == next,
            IndexEnd::AtMost(next) => end <= next,
        };
        let index_end = index_start
            .checked_add(nblocks * 8)
            .filter(|&end| fits(end))
            .ok_or_else(|| {
                let (how, next) = match index_end {
                    IndexEnd::Exactly(next) => ("end at", next),
                    IndexEnd::AtMost(next) => ("end by", next),
                };
                corrupt!(
                    "{name} table index at {index_start} for {count} entries does not {how} \
                     {next}, where the next table starts"
                )
            })?;
        let mut raw = vec![0u8; (index_end - index_start) as usize];
        reader.source().read_exact_at(index_start, &mut raw)?;
        let blocks: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        // Blocks must be in order, each no longer than a metadata block can be, the last
        // ending right where the index begins.
        let mut prev = None;
        for &b in blocks.iter().chain(std::iter::once(&blocks_end)) {
            if let Some(p) = prev {
                if b <= p || b - p > MAX_STORED_BLOCK {
                    return Err(corrupt!(
                        "{name} table block positions out of order or too far apart"
                    ));
                }
            } else if b < lowest {
                return Err(corrupt!(
                    "{name} table starts at {b}, before the table ahead of it"
                ));
            }
            prev = Some(b);
        }
        let start = blocks.first().copied().unwrap_or(blocks_end);
        Ok(LookupTable {
            blocks,
            entry_size,
            count,
            table: Table {
                start,
                end: blocks_end,
            },
        })
    }

    /// Image position of the first entry block: where the table ahead of it must end.
    pub fn first_block(&self) -> u64 {
        self.table.start
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// A cursor at entry `i`.
    pub fn entry<'a>(&self, reader: &'a BlockReader, i: u64) -> Result<MetaCursor<'a>> {
        if i >= self.count {
            return Err(corrupt!(
                "table index {i} out of range (count {})",
                self.count
            ));
        }
        let byte = i * self.entry_size;
        let block = self.blocks[(byte / METADATA_SIZE as u64) as usize];
        let offset = (byte % METADATA_SIZE as u64) as u16;
        self.table.cursor(
            reader,
            MetaRef {
                block: block - self.table.start,
                offset,
            },
        )
    }
}

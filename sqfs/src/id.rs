//! The id table: the uids and gids inodes refer to by index.

use crate::error::Result;
use crate::reader::BlockReader;
use crate::table::{IndexEnd, LookupTable};

#[derive(Debug)]
pub struct IdTable(LookupTable);

impl IdTable {
    pub fn read(
        reader: &BlockReader,
        start: u64,
        next_table: u64,
        lowest: u64,
        count: u16,
    ) -> Result<Self> {
        LookupTable::read(
            reader,
            "id",
            start,
            start,
            IndexEnd::Exactly(next_table),
            lowest,
            u64::from(count),
            4,
        )
        .map(IdTable)
    }

    pub fn first_block(&self) -> u64 {
        self.0.first_block()
    }

    /// The id at `index`; an index past the table is corruption.
    pub fn get(&self, reader: &BlockReader, index: u16) -> Result<u32> {
        self.0.entry(reader, u64::from(index))?.u32()
    }
}

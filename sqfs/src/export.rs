//! The export table: inode number to inode reference (NFS export, `inode_by_number`).

use crate::error::{corrupt, Result};
use crate::metadata::MetaRef;
use crate::reader::BlockReader;
use crate::table::{IndexEnd, LookupTable};

#[derive(Debug)]
pub struct ExportTable(LookupTable);

impl ExportTable {
    pub fn read(
        reader: &BlockReader,
        start: u64,
        next_table: u64,
        lowest: u64,
        inodes: u32,
    ) -> Result<Self> {
        LookupTable::read(
            reader,
            "export",
            start,
            start,
            IndexEnd::Exactly(next_table),
            lowest,
            u64::from(inodes),
            8,
        )
        .map(ExportTable)
    }

    pub fn first_block(&self) -> u64 {
        self.0.first_block()
    }

    /// The reference of inode `number` (1-based, as squashfs numbers inodes).
    pub fn get(&self, reader: &BlockReader, number: u32) -> Result<MetaRef> {
        if number == 0 {
            return Err(corrupt!("inode number 0"));
        }
        let packed = self.0.entry(reader, u64::from(number - 1))?.u64()?;
        Ok(MetaRef::from_packed(packed))
    }
}

//! The export table: inode number to inode reference (NFS export, `inode_by_number`).

use crate::error::{corrupt, Result};
use crate::metadata::MetaRef;
use crate::reader::BlockReader;
use crate::table::{Bounds, Chained, IndexEnd, Layout, LookupTable};

#[derive(Debug)]
pub struct ExportTable(LookupTable);

impl Chained for ExportTable {
    fn first_block(&self) -> u64 {
        self.0.first_block()
    }
}

impl ExportTable {
    /// The table of the references of `inodes` inodes at `start`.
    pub fn read(reader: &BlockReader, start: u64, inodes: u32, bounds: Bounds) -> Result<Self> {
        let layout = Layout {
            name: "export",
            entry_size: 8,
            count: u64::from(inodes),
            start,
            index_start: start,
            index_end: IndexEnd::AtNext,
        };
        LookupTable::read(reader, &layout, bounds).map(ExportTable)
    }

    /// Appends an export table entry: an inode's reference, packed.
    pub(crate) fn encode_entry(out: &mut Vec<u8>, inode: MetaRef) {
        out.extend(inode.packed().to_le_bytes());
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

//! What reading an open image's structures needs, in one place: its block reader, where its
//! inode and directory tables lie, what inode fields are checked against, and its lookup
//! tables. The kernel keeps the same in `struct squashfs_sb_info` and reaches it from every
//! function; here the inode, directory and file code borrow it.

use crate::export::ExportTable;
use crate::fragment::FragmentTable;
use crate::id::IdTable;
use crate::metadata::Table;
use crate::reader::BlockReader;
use crate::xattr::XattrTable;

/// What an inode's fields are checked against (from the superblock).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub inode_count: u32,
    pub id_count: u16,
    pub block_size: u32,
    /// Fragment blocks the fragment table holds (a file's fragment index must be below).
    pub fragment_count: u32,
}

/// An open image, as its structures are read.
pub struct Context {
    pub reader: BlockReader,
    /// The inode table: from its start to the directory table's.
    pub inodes: Table,
    /// The directory table: from its start to the first lookup table's.
    pub dirs: Table,
    pub limits: Limits,
    pub ids: IdTable,
    pub fragments: Option<FragmentTable>,
    pub export: Option<ExportTable>,
    pub xattrs: Option<XattrTable>,
}

impl Context {
    /// A context of the inode and directory tables alone (no ids, fragments, export or
    /// xattr table), for reading them apart from an image: the fuzz targets do.
    pub fn of_tables(reader: BlockReader, inodes: Table, dirs: Table, limits: Limits) -> Self {
        Context {
            reader,
            inodes,
            dirs,
            limits,
            ids: IdTable::empty(),
            fragments: None,
            export: None,
            xattrs: None,
        }
    }
}

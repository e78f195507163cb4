//! **Not API.** The reader's insides, for this repository's fuzz targets (which drive the
//! metadata, directory and file code on raw bytes, without a superblock) and for the tests
//! that patch an image's bytes where an inode says its fields are. Nothing here follows
//! semantic versioning: it may change or go in any release. Use the crate root instead.

pub use crate::compress::{new_decompressor, Decompressor};
pub use crate::context::{Context, Limits};
pub use crate::dir::{Index, IndexEntry, MAX_NAME};
pub use crate::inode::{DirInfo, FileInfo, InodeBody};
pub use crate::metadata::{MetaCursor, Table};
pub use crate::reader::{BlockReader, DataBlock, METADATA_SIZE};
pub use crate::source::Source;

use crate::{DirEntry, FileData, Inode, ReadDir, Result};

/// What `inode` holds beyond the common fields: where a directory's listing and index are,
/// where a file's blocks and tail are.
pub fn body(inode: &Inode) -> &InodeBody {
    &inode.body
}

/// Whether `inode` is stored in its type's extended form (its fields lie elsewhere).
pub fn is_extended(inode: &Inode) -> bool {
    inode.extended
}

/// The inode at `reference` in `ctx`'s inode table.
pub fn read_inode(ctx: &Context, reference: crate::MetaRef) -> Result<Inode> {
    Inode::read(ctx, reference)
}

/// The listing of `dir`, resumed after `cookie` (0: from the start).
pub fn read_dir<'a>(ctx: &'a Context, dir: &DirInfo, cookie: u64) -> Result<ReadDir<'a>> {
    ReadDir::new(ctx, dir, cookie)
}

/// The entry called `name` in `dir`.
pub fn lookup(ctx: &Context, dir: &DirInfo, name: &[u8]) -> Result<Option<DirEntry>> {
    crate::dir::lookup(ctx, dir, name)
}

/// The checked block list of the file `info` describes.
pub fn file_data(ctx: &Context, info: &FileInfo) -> Result<FileData> {
    FileData::load(ctx, info)
}

/// Where block `index` of `data` is stored in the image, and its size word.
pub fn data_block_at(data: &FileData, index: usize) -> (u64, DataBlock) {
    data.block(index)
}

/// Bytes of `data` at `offset`, as [`crate::Archive::read_data`] reads them.
pub fn read_data(ctx: &Context, data: &FileData, offset: u64, buf: &mut [u8]) -> Result<usize> {
    data.read_at(ctx, offset, buf)
}

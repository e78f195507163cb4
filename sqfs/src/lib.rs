//! A read-only, hardened, concurrent reader of SquashFS 4.0 images (the format of
//! `mksquashfs`, `gensquashfs` and the kernel's squashfs driver), also found inside SIF
//! containers.
//!
//! Open an image with [`Archive::open`] (or [`Archive::open_file`] with [`OpenOptions`]),
//! then find inodes by path or name, list directories, and read files, links, attributes and
//! extended attributes, all through the [`Archive`]:
//!
//! ```
//! # fn main() -> sqfs::Result<()> {
//! # let image = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/tiny/tiny-gzip.sqfs");
//! let archive = sqfs::Archive::open(image)?;
//!
//! let file = archive.lookup_path("/hello.txt")?;
//! assert_eq!(archive.read_file(&file, 1 << 20)?, b"Hello, SquashFS!\n");
//!
//! let root = archive.root()?;
//! for entry in archive.read_dir(&root)? {
//!     let entry = entry?;
//!     let inode = archive.entry_inode(&entry)?;
//!     let attr = archive.attr(&inode)?;
//!     println!("{:o} {} {}", attr.mode, attr.size, String::from_utf8_lossy(&entry.name));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! An image is untrusted input: every offset, size and count it holds is checked before use,
//! and a damaged image gives an [`Error`] (never a panic, a hang, or an allocation sized by
//! what the image says). An [`Archive`] is `Send + Sync`: share it between threads behind an
//! `Arc`; decompressed blocks are cached once for all of them.
//!
//! Inside, there is one module per on-disk structure, like the kernel's `fs/squashfs/`.

mod archive;
mod cache;
mod compress;
mod context;
mod dir;
mod error;
mod export;
mod file;
mod fragment;
mod id;
mod inode;
mod metadata;
mod reader;
pub mod sif;
mod source;
mod superblock;
mod table;
mod write;
mod xattr;

#[doc(hidden)]
pub mod internals;

pub use archive::{Archive, Attr, OpenOptions};
pub use cache::Block;
pub use compress::Compression;
pub use dir::{DirEntry, ReadDir};
pub use error::{Error, Result};
pub use file::FileData;
pub use inode::{FileType, Inode};
pub use metadata::MetaRef;
pub use sif::Sif;
pub use superblock::{flags, Superblock};
pub use write::{
    Content, Fragments, Meta, NodeId, Special, WriteError, WriteOptions, WriteResult, WriteSummary,
    Writer, XattrProblem,
};
pub use xattr::Xattr;

/// `Archive` is shared between FUSE worker threads: keep it `Send + Sync`.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Archive>();
};

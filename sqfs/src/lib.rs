//! A read-only, hardened, concurrent SquashFS 4.0 reader.
//!
//! One module per on-disk structure, like the kernel's `fs/squashfs/`. Start at
//! [`Archive`]: open an image, look names up, list directories, read files.

pub mod archive;
pub mod cache;
pub mod compress;
pub mod context;
pub mod dir;
pub mod error;
pub mod export;
pub mod file;
pub mod fragment;
pub mod id;
pub mod inode;
pub mod metadata;
pub mod reader;
pub mod sif;
pub mod source;
pub mod superblock;
pub mod table;
pub mod xattr;

pub use archive::{Archive, Attr, OpenOptions};
pub use dir::DirEntry;
pub use error::{Error, Result};
pub use file::FileData;
pub use inode::{FileType, Inode};
pub use metadata::MetaRef;
pub use sif::Sif;
pub use superblock::Superblock;
pub use xattr::Xattr;

/// `Archive` is shared between FUSE worker threads: keep it `Send + Sync`.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Archive>();
};

//! `squashfuse-rs`: a read-only, multi-threaded FUSE filesystem over the `sqfs` library, with
//! squashfuse_ll's calling convention. The library half is also what `ch-run` mounts
//! in-process.

pub mod attr;
pub mod auto_unmount;
pub mod daemon;
pub mod dirplus;
pub mod fs;
pub mod fuse_mount;
pub mod fusermount;
pub mod handles;
pub mod mount;
pub mod mountinfo;
pub mod nodes;
pub mod option_docs;
pub mod options;
pub mod prefetch;
pub mod readahead;
pub mod streams;
pub mod usage;

pub use fs::SquashFs;
pub use options::MountConfig;

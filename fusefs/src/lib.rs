//! `squashfuse-rs`: a read-only, multi-threaded FUSE filesystem over the `sqfs` library, with
//! squashfuse_ll's calling convention. The library half is also what `ch-run` mounts
//! in-process.

// What the programs use: the server (`ch-run`), the mounter and its options
// (`squashfuse-rs`, and `docgen` for the man page), daemon helpers.
pub mod attr;
pub mod daemon;
pub mod mount;
pub mod option_docs;
pub mod options;
pub mod server;
pub mod usage;

// The filesystem itself, behind the server.
mod auto_unmount;
mod dirplus;
#[cfg(feature = "floor")]
pub mod floor;
mod fs;
mod fuse_mount;
mod fusermount;
mod handles;
mod mates;
mod mountinfo;
mod nodes;
mod prefetch;
mod push_ahead;
mod read_reply;
mod readahead;
mod streams;
mod walk;

pub use options::MountConfig;
pub use server::{one_heap, Server};

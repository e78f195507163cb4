//! Helpers shared by the end-to-end tests: the test image corpus, loop mounts of it, and a
//! snapshot of a file tree (what `lstat`, `readlink`, xattrs and the bytes say) that can be
//! taken from a directory on disk or from an `sqfs::Archive`, so the two can be compared.

pub mod container;
pub mod corpus;
pub mod fuse_daemon;
pub mod fuzzing;
pub mod hostile;
pub mod mpi;
pub mod packing;
pub mod reachable;
pub mod skip;
pub mod snapshot;
pub mod sys;

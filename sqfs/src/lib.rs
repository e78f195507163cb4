//! A read-only, hardened, concurrent SquashFS 4.0 reader.
//!
//! One module per on-disk structure, like the kernel's `fs/squashfs/`.

pub mod compress;
pub mod error;

pub use error::{Error, Result};

//! Typed errors for everything the reader can refuse.

use std::io;

/// Every way reading an image can fail. Corruption is never a panic: it is one of these.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("not a SquashFS image (bad magic)")]
    BadMagic,
    #[error("unsupported SquashFS version {0}.{1} (only 4.0 is supported)")]
    UnsupportedVersion(u16, u16),
    #[error("unknown compressor id {0}")]
    UnknownCompressor(u16),
    #[error("unsupported compressor options: {0}")]
    CompressorOptions(String),
    #[error("{codec} decompression failed: {reason}")]
    Decompress { codec: &'static str, reason: String },
    #[error("corrupt image: {0}")]
    Corrupt(String),
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotADirectory,
    #[error("not a symbolic link")]
    NotASymlink,
    #[error("not a regular file")]
    NotAFile,
    #[error("no such extended attribute")]
    NoXattr,
    #[error("the image has no export table (built with -no-exports)")]
    NoExportTable,
    /// A name longer than any entry can have (the kernel's SQUASHFS_NAME_LEN, 256 bytes).
    #[error("file name too long")]
    NameTooLong,
    /// A bounded read ([`crate::Archive::read_file`]) met a file larger than its limit.
    #[error("file of {size} bytes is larger than the {limit}-byte limit")]
    TooBig { size: u64, limit: u64 },
    /// A SIF container that is damaged or has no SquashFS root to open.
    #[error(transparent)]
    Sif(#[from] crate::sif::SifError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error::Corrupt`] from a format string.
macro_rules! corrupt {
    ($($arg:tt)*) => { $crate::error::Error::Corrupt(format!($($arg)*)) };
}
pub(crate) use corrupt;

impl Error {
    /// The errno a filesystem should answer for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound => libc::ENOENT,
            Error::NotADirectory => libc::ENOTDIR,
            Error::NotASymlink => libc::EINVAL,
            Error::NotAFile => libc::EISDIR,
            Error::NoXattr => libc::ENODATA,
            Error::NoExportTable => libc::ESTALE,
            Error::NameTooLong => libc::ENAMETOOLONG,
            Error::TooBig { .. } => libc::EFBIG,
            _ => libc::EIO,
        }
    }
}

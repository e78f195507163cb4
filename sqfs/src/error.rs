//! Typed errors for everything the reader can refuse.

use std::io;

/// Every way reading an image can fail. Corruption is never a panic: it is one of these.
///
/// `Clone`, so that every thread that waited on one failed read gets the same error (see
/// [`Error::clone`] for what a copy of an [`Error::Io`] keeps).
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
    /// A compressor failed on a block (the writer's side of a codec).
    #[error("{codec} compression failed: {reason}")]
    Compress { codec: &'static str, reason: String },
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

impl Clone for Error {
    /// A copy of the error. An `io::Error` cannot be cloned: its copy has the same errno
    /// (or, without one, the same kind and text) and loses only its source chain.
    fn clone(&self) -> Self {
        match self {
            Error::Io(e) => Error::Io(copy_io(e)),
            Error::BadMagic => Error::BadMagic,
            Error::UnsupportedVersion(major, minor) => Error::UnsupportedVersion(*major, *minor),
            Error::UnknownCompressor(id) => Error::UnknownCompressor(*id),
            Error::CompressorOptions(why) => Error::CompressorOptions(why.clone()),
            Error::Decompress { codec, reason } => Error::Decompress {
                codec,
                reason: reason.clone(),
            },
            Error::Compress { codec, reason } => Error::Compress {
                codec,
                reason: reason.clone(),
            },
            Error::Corrupt(what) => Error::Corrupt(what.clone()),
            Error::NotFound => Error::NotFound,
            Error::NotADirectory => Error::NotADirectory,
            Error::NotASymlink => Error::NotASymlink,
            Error::NotAFile => Error::NotAFile,
            Error::NoXattr => Error::NoXattr,
            Error::NoExportTable => Error::NoExportTable,
            Error::NameTooLong => Error::NameTooLong,
            Error::TooBig { size, limit } => Error::TooBig {
                size: *size,
                limit: *limit,
            },
            Error::Sif(e) => Error::Sif(e.clone()),
        }
    }
}

fn copy_io(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_io_error_keeps_its_errno_kind_and_text() {
        let by_errno = Error::Io(io::Error::from_raw_os_error(libc::EIO));
        let by_kind = Error::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "cut short"));
        for e in [by_errno, by_kind] {
            let copy = e.clone();
            let (Error::Io(a), Error::Io(b)) = (&e, &copy) else {
                panic!("{copy:?} is not an I/O error");
            };
            assert_eq!((a.raw_os_error(), a.kind()), (b.raw_os_error(), b.kind()));
            assert_eq!(e.to_string(), copy.to_string());
        }
    }
}

//! What writing an image can fail with.

use std::io;

/// Every way [`crate::Writer`] can fail. The caller knows which source file or entry it
/// was adding and names it; these say what went wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The settings cannot be written (a level out of range, a codec the kernel can't
    /// read, a block size that is not a power of two in 4 KiB..=1 MiB...).
    #[error("{0}")]
    Options(String),
    /// Writing the image failed.
    #[error("can't write the image: {0}")]
    Output(io::Error),
    /// Reading a file's content failed.
    #[error("can't read: {0}")]
    Input(io::Error),
    /// A file held fewer or more bytes than its size said while it was read.
    #[error("changed size while being packed ({expected} bytes when listed, {found} when read)")]
    SizeChanged { expected: u64, found: u64 },
    /// A name no directory entry can have (empty, `.`, `..`, a `/` or NUL, more than 256
    /// bytes).
    #[error("{0:?} is not a name a SquashFS entry can have")]
    BadName(String),
    /// Two entries of one directory have the same name.
    #[error("{0:?} is in its directory twice")]
    Duplicate(String),
    /// No entry of that name in the directory ([`crate::Writer::remove`]).
    #[error("{0:?} is not in its directory")]
    NotFound(String),
    /// The parent given is not a directory of this writer, or a hard link's target is a
    /// directory.
    #[error("not a directory, or a hard link to one")]
    NotADirectory,
    /// More owners (uids and gids together) than the id table can index.
    #[error("more than 65535 distinct uids and gids")]
    TooManyIds,
    /// More inodes than 32-bit inode numbers allow.
    #[error("more than 4294967294 inodes")]
    TooManyInodes,
    /// An extended attribute SquashFS cannot store, or one that would make its file's set
    /// one that Linux (and [`crate::Archive::xattrs`]) cannot list back.
    #[error("extended attribute {name:?} cannot be stored: {problem}")]
    Xattr { name: String, problem: XattrProblem },
    /// A device number the inode's 32-bit encoding cannot hold (major past 4095, minor
    /// past 2^20 - 1).
    #[error("device number {major}:{minor} does not fit in a SquashFS inode")]
    Device { major: u32, minor: u32 },
    /// A symlink target that is empty or longer than 4096 bytes.
    #[error("symlink target of {0} bytes (1..=4096 can be stored)")]
    SymlinkTarget(usize),
    /// A compressor failed.
    #[error(transparent)]
    Compress(#[from] crate::Error),
    /// A thread of the pipeline stopped before its work was done (a panic).
    #[error("the writer's threads stopped")]
    Stopped,
}

/// What is wrong with an extended attribute ([`WriteError::Xattr`]). The limits are
/// Linux's (`include/uapi/linux/limits.h`: XATTR_NAME_MAX, XATTR_SIZE_MAX, XATTR_LIST_MAX)
/// and the reader's, which refuses a list past them as corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum XattrProblem {
    /// Not `user.`, `trusted.` or `security.`: the only three SquashFS has a type for.
    #[error("only user., trusted. and security. names are stored")]
    Prefix,
    /// Nothing after the prefix.
    #[error("no name after the prefix")]
    EmptyName,
    /// A NUL would end the name in the list listxattr(2) returns.
    #[error("a NUL in the name")]
    Nul,
    /// Over 255 bytes with its prefix.
    #[error("a name over 255 bytes")]
    LongName,
    /// A value over 64 KiB.
    #[error("a value over 64 KiB")]
    LongValue,
    /// With this one, the file's names (each with its prefix and a NUL) take more than
    /// 64 KiB: listxattr(2) cannot return them.
    #[error("the file's names would take more than 64 KiB to list")]
    ListTooLong,
    /// With this one, the file's values take more than 16 MiB, which the reader refuses
    /// (out-of-line values cost 17 stored bytes each, whatever their length).
    #[error("the file's values would take more than 16 MiB")]
    ValuesTooBig,
}

impl WriteError {
    /// Whether the writer can go on after this error: a file that could not be read is
    /// left out, and nothing else is lost.
    pub fn leaves_writer_usable(&self) -> bool {
        matches!(self, WriteError::Input(_) | WriteError::SizeChanged { .. })
    }
}

pub type WriteResult<T> = std::result::Result<T, WriteError>;

/// Shows bytes from a name in an error.
pub(crate) fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

//! The system calls extraction makes. Everything below the destination directory is
//! reached relative to the descriptor of its parent directory, by one name that the walk
//! has checked is a single path component, and never through a symlink: directories are
//! opened with `O_NOFOLLOW | O_DIRECTORY`, files created with `O_CREAT | O_EXCL` (which
//! never follows a symlink either), nodes made with the `*at` calls that fail on any
//! existing name, and attributes set on an open descriptor or with `AT_SYMLINK_NOFOLLOW`.
//!
//! Two things Linux only offers by path, extended attributes and the mode of a node that
//! cannot be opened (a device must not be: opening one runs its driver), go through
//! `/proc/self/fd/N`: that path resolves to exactly the directory or node the descriptor
//! holds, whatever its name has become, so no symlink can be crossed on the way.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::process::{Gid, Uid};

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Clears the process umask, so files and nodes are created with the image's modes.
pub fn clear_umask() {
    rustix::process::umask(Mode::empty());
}

/// The destination directory the user named, followed as any path a user gives is.
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The directory `name` in `parent`, opened to read its attributes' descriptor; fails on a
/// symlink (ELOOP) and on anything but a directory (ENOTDIR).
pub fn open_dir_at(parent: BorrowedFd, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Like [`open_dir_at`], for a descriptor that only serves as the parent of `*at` calls
/// (O_PATH: needs no read permission on the directory).
pub fn open_path_dir_at(parent: BorrowedFd, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        parent,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

pub fn mkdir_at(parent: BorrowedFd, name: &[u8], mode: u32) -> io::Result<()> {
    Ok(rfs::mkdirat(parent, name, Mode::from_raw_mode(mode))?)
}

/// A new regular file `name` in `parent`; fails if the name exists in any form.
pub fn create_at(parent: BorrowedFd, name: &[u8], mode: u32) -> io::Result<File> {
    let fd = rfs::openat(
        parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    Ok(File::from(fd))
}

pub fn symlink_at(target: &[u8], parent: BorrowedFd, name: &[u8]) -> io::Result<()> {
    Ok(rfs::symlinkat(target, parent, name)?)
}

/// A device, fifo or socket node with permission bits `mode`.
pub fn mknod_at(
    parent: BorrowedFd,
    name: &[u8],
    kind: sqfs::FileType,
    mode: u32,
    rdev: u64,
) -> io::Result<()> {
    let kind = match kind {
        sqfs::FileType::BlockDevice => rfs::FileType::BlockDevice,
        sqfs::FileType::CharDevice => rfs::FileType::CharacterDevice,
        sqfs::FileType::Fifo => rfs::FileType::Fifo,
        sqfs::FileType::Socket => rfs::FileType::Socket,
        _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
    };
    Ok(rfs::mknodat(
        parent,
        name,
        kind,
        Mode::from_raw_mode(mode & 0o7777),
        rdev,
    )?)
}

/// A hard link `parent/name` to `old_parent/old_name` (a symlink there is linked, not
/// followed).
pub fn link_at(
    old_parent: BorrowedFd,
    old_name: &[u8],
    parent: BorrowedFd,
    name: &[u8],
) -> io::Result<()> {
    Ok(rfs::linkat(
        old_parent,
        old_name,
        parent,
        name,
        AtFlags::empty(),
    )?)
}

/// Removes a non-directory (a symlink itself, never its target); EISDIR on a directory.
pub fn unlink_at(parent: BorrowedFd, name: &[u8]) -> io::Result<()> {
    Ok(rfs::unlinkat(parent, name, AtFlags::empty())?)
}

/// An owner of -1 means "unchanged" to chown: an image cannot ask for it (and rustix
/// refuses to build one), so it is passed as None, which is the same call.
fn ids(uid: u32, gid: u32) -> (Option<Uid>, Option<Gid>) {
    (
        (uid != u32::MAX).then(|| Uid::from_raw(uid)),
        (gid != u32::MAX).then(|| Gid::from_raw(gid)),
    )
}

pub fn lchown_at(parent: BorrowedFd, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    let (u, g) = ids(uid, gid);
    Ok(rfs::chownat(parent, name, u, g, AtFlags::SYMLINK_NOFOLLOW)?)
}

pub fn fchown(fd: impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    let (u, g) = ids(uid, gid);
    Ok(rfs::fchown(fd, u, g)?)
}

pub fn fchmod(fd: impl AsFd, mode: u32) -> io::Result<()> {
    Ok(rfs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777))?)
}

/// Sets the mode of the node `parent/name`, which must not be a symlink (whose mode
/// cannot be set): opened O_PATH without following, so a device's driver is not run.
pub fn chmod_node_at(parent: BorrowedFd, name: &[u8], mode: u32) -> io::Result<()> {
    let fd = rfs::openat(
        parent,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if rfs::FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) == rfs::FileType::Symlink {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    Ok(rfs::chmod(
        proc_fd_path(fd.as_fd(), None),
        Mode::from_raw_mode(mode & 0o7777),
    )?)
}

fn times(mtime: u32) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::from(mtime),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Sets atime and mtime of `parent/name` to `mtime`, without following a symlink.
pub fn lset_mtime_at(parent: BorrowedFd, name: &[u8], mtime: u32) -> io::Result<()> {
    Ok(rfs::utimensat(
        parent,
        name,
        &times(mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Sets atime and mtime of an open file or directory to `mtime`.
pub fn fset_mtime(fd: impl AsFd, mtime: u32) -> io::Result<()> {
    Ok(rfs::futimens(fd, &times(mtime))?)
}

pub fn fsetxattr(fd: impl AsFd, name: &[u8], value: &[u8]) -> io::Result<()> {
    Ok(rfs::fsetxattr(fd, name, value, XattrFlags::empty())?)
}

/// Sets an xattr on `parent/name` itself (a symlink's own, never its target's).
pub fn lsetxattr_at(parent: BorrowedFd, name: &[u8], xattr: &[u8], value: &[u8]) -> io::Result<()> {
    Ok(rfs::lsetxattr(
        proc_fd_path(parent, Some(name)),
        xattr,
        value,
        XattrFlags::empty(),
    )?)
}

/// `/proc/self/fd/N` (the open file itself) or `/proc/self/fd/N/name` (the entry `name` of
/// the open directory). The magic link jumps to the descriptor's own file: no path is
/// looked up on the way but `name`, one component.
pub(crate) fn proc_fd_path(fd: BorrowedFd, name: Option<&[u8]>) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let mut path = format!("/proc/self/fd/{}", fd.as_raw_fd()).into_bytes();
    if let Some(name) = name {
        path.push(b'/');
        path.extend_from_slice(name);
    }
    path
}

/// Raises the soft limit on open descriptors to the hard one: extraction holds one per
/// directory level (twice: the walker's and the writer's).
pub fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

//! The calls `pack` makes on the source tree. Every entry below the root is reached from
//! its parent directory's descriptor by one name, never through a symlink: it is looked at
//! with `fstatat(AT_SYMLINK_NOFOLLOW)`, directories and files are opened with
//! `O_NOFOLLOW` (a symlink swapped in fails with ELOOP) and checked with `fstat` to be the
//! entry that was looked at; devices, FIFOs and sockets are never opened (opening a device
//! runs its driver, a FIFO blocks), their extended attributes read through
//! `/proc/self/fd/N/name` with the calls that do not follow the last component.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    BlockDevice,
    CharDevice,
    Fifo,
    Socket,
}

/// What `stat` says of an entry, as packing uses it.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub kind: Kind,
    /// `st_mode & 07777`.
    pub permissions: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub rdev: u64,
}

impl Stat {
    fn from(st: &rfs::Stat) -> Stat {
        let kind = match rfs::FileType::from_raw_mode(st.st_mode) {
            rfs::FileType::Directory => Kind::Dir,
            rfs::FileType::Symlink => Kind::Symlink,
            rfs::FileType::BlockDevice => Kind::BlockDevice,
            rfs::FileType::CharacterDevice => Kind::CharDevice,
            rfs::FileType::Fifo => Kind::Fifo,
            rfs::FileType::Socket => Kind::Socket,
            _ => Kind::File,
        };
        Stat {
            kind,
            permissions: (st.st_mode & 0o7777) as u16,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            mtime: st.st_mtime,
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
            rdev: st.st_rdev,
        }
    }

    /// Whether `other` is the same entry (same file, same type).
    pub fn same_entry(&self, other: &Stat) -> bool {
        (self.dev, self.ino, self.kind) == (other.dev, other.ino, other.kind)
    }
}

/// The directory the user named (a path they give is followed, as any path a user gives).
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The entry `name` in `dir`, not followed if it is a symlink.
pub fn stat_at(dir: BorrowedFd, name: &[u8]) -> io::Result<Stat> {
    Ok(Stat::from(&rfs::statat(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
    )?))
}

pub fn fstat(fd: impl AsFd) -> io::Result<Stat> {
    Ok(Stat::from(&rfs::fstat(fd)?))
}

/// The directory `name` in `dir`; ELOOP on a symlink, ENOTDIR on anything else.
pub fn open_dir_at(dir: BorrowedFd, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The file `name` in `dir`, for reading. `O_NONBLOCK`: a FIFO swapped in does not block
/// the open (and `fstat` then tells it from the file that was listed).
pub fn open_file_at(dir: BorrowedFd, name: &[u8]) -> io::Result<File> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

pub fn read_link_at(dir: BorrowedFd, name: &[u8]) -> io::Result<Vec<u8>> {
    Ok(rfs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

/// The names in the directory `dir` (without `.` and `..`), sorted bytewise.
pub fn list(dir: BorrowedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// An extended attribute: full name and value.
pub type Xattr = (Vec<u8>, Vec<u8>);

/// Every xattr of the open file or directory `fd`.
pub fn xattrs_of(fd: BorrowedFd) -> io::Result<Vec<Xattr>> {
    read_xattrs(
        |buf| rfs::flistxattr(fd, buf),
        |name, buf| rfs::fgetxattr(fd, name, buf),
    )
}

/// Every xattr of the entry `name` in `dir` itself (a symlink's own).
pub fn xattrs_at(dir: BorrowedFd, name: &[u8]) -> io::Result<Vec<Xattr>> {
    let path = crate::sys::proc_fd_path(dir, Some(name));
    read_xattrs(
        |buf| rfs::llistxattr(path.as_slice(), buf),
        |name, buf| rfs::lgetxattr(path.as_slice(), name, buf),
    )
}

/// Lists names with `list` and reads each value with `get`.
fn read_xattrs(
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&[u8], &mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Vec<Xattr>> {
    let unsupported = |e: rustix::io::Errno| e == rustix::io::Errno::NOTSUP;
    let names = match grow(|buf| list(buf)) {
        Err(e) if unsupported(e) => return Ok(Vec::new()),
        r => r?,
    };
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        match grow(|buf| get(name, buf)) {
            Ok(value) => out.push((name.to_vec(), value)),
            // Removed since it was listed.
            Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Calls `f` with a buffer big enough for what it returns: doubles the buffer while the
/// answer does not fit (ERANGE). Linux lists at most 64 KiB of names and values are at
/// most 64 KiB, so this ends.
fn grow(f: impl Fn(&mut [u8]) -> rustix::io::Result<usize>) -> rustix::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            Err(e) => return Err(e),
        }
    }
}

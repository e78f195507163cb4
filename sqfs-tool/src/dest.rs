//! The destination tree of an extraction, reached only through descriptors: the
//! destination directory is opened once, and every entry below it is made relative to its
//! parent directory's descriptor by one checked name (see `sys`). Whatever the image lists,
//! nothing outside the destination is created, written, truncated, linked to or has its
//! attributes changed.
//!
//! Without `-f`, every name is created new: one that exists already (an image that lists
//! a name twice, a race) is an error. With `-f` (extraction into a directory that has
//! contents), an existing entry the image also has is dealt with without ever following
//! or writing through it: a directory where the image has a directory is kept and filled;
//! anything else that is not a directory (a file, a symlink, a node) is removed and made
//! anew, so that a symlink or a hard link already in the destination cannot redirect a
//! write out of it; a directory where the image has something else is an error (its
//! contents are not removed).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use sqfs::{Archive, Inode};

use crate::error::{show, Error, Result};
use crate::sys;

/// Directories are made owner-only until their attributes are set at the end: nobody
/// else can add entries while the extraction runs, and the extracting user can write.
const DIR_MODE_WHILE_EXTRACTING: u32 = 0o700;

/// The open destination directory.
pub struct Dest {
    dir: PathBuf,
    root_fd: OwnedFd,
    pub force: bool,
    /// Root sets owners and every xattr; others skip what needs root, as unsquashfs does.
    pub root: bool,
}

impl Dest {
    /// Opens `dir` for extraction: made if missing; otherwise it must be empty, unless
    /// `force`.
    pub fn open(dir: &Path, force: bool) -> Result<Dest> {
        let io_err = |source| Error::Io {
            path: dir.display().to_string(),
            source,
        };
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if !force && entries.next().is_some() {
                    return Err(Error::NotEmpty {
                        dir: dir.display().to_string(),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(io_err)?
            }
            Err(e) => return Err(io_err(e)),
        }
        Ok(Dest {
            dir: dir.to_path_buf(),
            root_fd: sys::open_root(dir).map_err(io_err)?,
            force,
            root: sys::is_root(),
        })
    }

    pub fn root_fd(&self) -> BorrowedFd<'_> {
        self.root_fd.as_fd()
    }

    /// `path` (relative to the destination) as the user knows it, for messages.
    pub fn show(&self, path: &[u8]) -> String {
        if path.is_empty() {
            self.dir.display().to_string()
        } else {
            format!("{}/{}", self.dir.display(), show(path))
        }
    }

    pub fn io_error(&self, path: &[u8], source: io::Error) -> Error {
        Error::Io {
            path: self.show(path),
            source,
        }
    }

    pub fn image_error(&self, path: &[u8], source: sqfs::Error) -> Error {
        Error::Image {
            path: self.show(path),
            source,
        }
    }

    /// Runs `make` (which creates `parent/name`, failing if the name exists); with `-f`,
    /// an existing non-directory there is removed first and `make` run again.
    pub fn make<T>(
        &self,
        parent: BorrowedFd,
        name: &[u8],
        path: &[u8],
        what: &'static str,
        make: impl Fn() -> io::Result<T>,
    ) -> Result<T> {
        match make() {
            Err(e) if self.force && e.raw_os_error() == Some(libc::EEXIST) => {
                match sys::unlink_at(parent, name) {
                    Ok(()) => make().map_err(|e| self.io_error(path, e)),
                    Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                        Err(Error::DirectoryInTheWay {
                            path: self.show(path),
                            what,
                        })
                    }
                    Err(e) => Err(self.io_error(path, e)),
                }
            }
            r => r.map_err(|e| self.io_error(path, e)),
        }
    }

    /// Makes the directory `parent/name` and opens it (O_PATH, for `*at` calls); with
    /// `-f`, an existing directory is opened instead and any other entry replaced.
    pub fn make_dir(&self, parent: BorrowedFd, name: &[u8], path: &[u8]) -> Result<OwnedFd> {
        let fail = |e| self.io_error(path, e);
        match sys::mkdir_at(parent, name, DIR_MODE_WHILE_EXTRACTING) {
            Ok(()) => {}
            Err(e) if self.force && e.raw_os_error() == Some(libc::EEXIST) => {
                match sys::open_path_dir_at(parent, name) {
                    Ok(fd) => return Ok(fd),
                    // A symlink (ELOOP) or another non-directory: replaced.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                        sys::unlink_at(parent, name).map_err(fail)?;
                        sys::mkdir_at(parent, name, DIR_MODE_WHILE_EXTRACTING).map_err(fail)?;
                    }
                    Err(e) => return Err(fail(e)),
                }
            }
            Err(e) => return Err(fail(e)),
        }
        sys::open_path_dir_at(parent, name).map_err(fail)
    }

    /// The directory at `dir` (a `/`-joined path below the destination, made by this
    /// extraction), opened one component at a time without following a symlink.
    pub fn open_below(&self, dir: &[u8]) -> Result<Option<OwnedFd>> {
        let mut fd: Option<OwnedFd> = None;
        let mut end = 0;
        for name in dir.split(|&b| b == b'/') {
            end += name.len();
            if !name.is_empty() {
                let parent = fd.as_ref().map_or(self.root_fd(), |f| f.as_fd());
                let next = sys::open_path_dir_at(parent, name)
                    .map_err(|e| self.io_error(&dir[..end], e))?;
                fd = Some(next);
            }
            end += 1;
        }
        Ok(fd)
    }

    /// A hard link `parent/name` (at `path`) to `first`, a non-directory this extraction
    /// made earlier at that path below the destination.
    pub fn link(&self, first: &[u8], parent: BorrowedFd, name: &[u8], path: &[u8]) -> Result<()> {
        let (first_dir, first_name) = split_last(first);
        let first_parent = self.open_below(first_dir)?;
        let first_parent = first_parent.as_ref().map_or(self.root_fd(), |f| f.as_fd());
        self.make(parent, name, path, "hard link", || {
            sys::link_at(first_parent, first_name, parent, name)
        })
    }

    /// Owner (as root), xattrs, mode (after chown, which clears set-id bits), then mtime
    /// last (each of the others changes ctime), on a symlink, device, fifo or socket made
    /// with its mode at `parent/name`.
    pub fn node_attrs(
        &self,
        archive: &Archive,
        parent: BorrowedFd,
        name: &[u8],
        path: &[u8],
        inode: &Inode,
    ) -> Result<()> {
        let fail = |e| self.io_error(path, e);
        let attr = archive.attr(inode).map_err(|e| self.image_error(path, e))?;
        if self.root {
            sys::lchown_at(parent, name, attr.uid, attr.gid).map_err(fail)?;
        }
        let xattrs = archive
            .xattrs(inode)
            .map_err(|e| self.image_error(path, e))?;
        for x in &xattrs {
            let r = sys::lsetxattr_at(parent, name, &x.name, &x.value);
            self.xattr_result(r, path, &x.name)?;
        }
        if self.root && attr.mode & 0o7000 != 0 && inode.kind() != sqfs::FileType::Symlink {
            sys::chmod_node_at(parent, name, attr.mode).map_err(fail)?;
        }
        sys::lset_mtime_at(parent, name, attr.mtime).map_err(fail)
    }

    /// The same on an open regular file or directory.
    pub fn fd_attrs(
        &self,
        fd: BorrowedFd,
        path: &[u8],
        attr: &sqfs::Attr,
        xattrs: &[sqfs::Xattr],
    ) -> Result<()> {
        let fail = |e| self.io_error(path, e);
        if self.root {
            sys::fchown(fd, attr.uid, attr.gid).map_err(fail)?;
        }
        for x in xattrs {
            let r = sys::fsetxattr(fd, &x.name, &x.value);
            self.xattr_result(r, path, &x.name)?;
        }
        sys::fchmod(fd, attr.mode).map_err(fail)?;
        sys::fset_mtime(fd, attr.mtime).map_err(fail)
    }

    pub fn xattr_result(&self, r: io::Result<()>, path: &[u8], name: &[u8]) -> Result<()> {
        match r {
            Ok(()) => Ok(()),
            // Without root, trusted.* and security.* cannot be set: unsquashfs skips them too.
            Err(_) if !self.root && !name.starts_with(b"user.") => Ok(()),
            Err(e) => Err(Error::Io {
                path: format!("{}: xattr {}", self.show(path), show(name)),
                source: e,
            }),
        }
    }
}

/// `a/b/c` as (`a/b`, `c`); `c` as (``, `c`).
pub fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// A directory the extraction made (or, with `-f`, filled), whose attributes are set at
/// the end; `parent` is the index of its parent's record (the destination is record 0).
pub struct DirRecord {
    pub parent: usize,
    pub name: Box<[u8]>,
    pub inode: Inode,
}

/// Sets every directory's attributes, each after everything inside it (post-order), so
/// that a read-only or mode-000 directory does not stop what goes in it. Each is re-opened
/// from its parent's descriptor, without following a symlink.
pub fn set_dir_attrs(dest: &Dest, archive: &Archive, dirs: &[DirRecord]) -> Result<()> {
    let apply = |i: usize, fd: BorrowedFd| -> Result<()> {
        let path = record_path(dirs, i);
        let inode = &dirs[i].inode;
        let attr = archive
            .attr(inode)
            .map_err(|e| dest.image_error(&path, e))?;
        let xattrs = archive
            .xattrs(inode)
            .map_err(|e| dest.image_error(&path, e))?;
        dest.fd_attrs(fd, &path, &attr, &xattrs)
    };
    let mut open: Vec<(usize, OwnedFd)> = Vec::new();
    for (i, rec) in dirs.iter().enumerate().skip(1) {
        while let Some((j, fd)) = open.pop_if(|(j, _)| *j != rec.parent) {
            apply(j, fd.as_fd())?;
        }
        let parent = open.last().map_or(dest.root_fd(), |(_, fd)| fd.as_fd());
        let fd = sys::open_dir_at(parent, &rec.name)
            .map_err(|e| dest.io_error(&record_path(dirs, i), e))?;
        open.push((i, fd));
    }
    while let Some((j, fd)) = open.pop() {
        apply(j, fd.as_fd())?;
    }
    if !dirs.is_empty() {
        apply(0, dest.root_fd())?;
    }
    Ok(())
}

/// The path of record `i` below the destination.
pub fn record_path(dirs: &[DirRecord], mut i: usize) -> Vec<u8> {
    let mut names = Vec::new();
    while i != 0 {
        names.push(&*dirs[i].name);
        i = dirs[i].parent;
    }
    names.reverse();
    names.join(&b'/')
}

#[cfg(test)]
mod tests {
    //! The destination layer alone, without the walk's name checks in front of it: an
    //! entry already in the destination (a symlink above all) is never followed.

    use std::os::unix::fs::{symlink, MetadataExt};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A scratch directory holding `dest/` and `outside/` (with `outside/victim`).
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "sqfs-dest-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("dest")).unwrap();
            std::fs::create_dir_all(dir.join("outside")).unwrap();
            std::fs::write(dir.join("outside/victim"), "original").unwrap();
            Scratch(dir)
        }

        /// The destination, with or without `-f` (opened as with it: it has contents).
        fn dest(&self, force: bool) -> Dest {
            let mut dest = Dest::open(&self.0.join("dest"), true).unwrap();
            dest.force = force;
            dest
        }

        /// `dest/name` made a symlink to `outside/target`.
        fn plant(&self, name: &str, target: &str) {
            symlink(
                self.0.join("outside").join(target),
                self.0.join("dest").join(name),
            )
            .unwrap();
        }

        /// What a change outside would show: names, contents, ctimes.
        fn outside(&self) -> Vec<(String, Vec<u8>, i64, i64)> {
            let mut v: Vec<_> = std::fs::read_dir(self.0.join("outside"))
                .unwrap()
                .map(|e| {
                    let p = e.unwrap().path();
                    let m = std::fs::symlink_metadata(&p).unwrap();
                    let bytes = if m.is_file() {
                        std::fs::read(&p).unwrap()
                    } else {
                        Vec::new()
                    };
                    (p.display().to_string(), bytes, m.ctime(), m.ctime_nsec())
                })
                .collect();
            let m = std::fs::metadata(self.0.join("outside")).unwrap();
            v.push((String::new(), Vec::new(), m.mtime(), m.mtime_nsec()));
            v.sort();
            v
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_file_over_a_symlink_is_refused_or_replaced_never_written_through() {
        let s = Scratch::new();
        s.plant("f", "victim");
        let before = s.outside();
        for force in [false, true] {
            let dest = s.dest(force);
            let r = dest.make(dest.root_fd(), b"f", b"f", "file", || {
                sys::create_at(dest.root_fd(), b"f", 0o644)
            });
            assert_eq!(r.is_ok(), force);
            assert_eq!(s.outside(), before);
        }
        let m = std::fs::symlink_metadata(s.0.join("dest/f")).unwrap();
        assert!(m.is_file(), "-f replaces the symlink with a file");
    }

    #[test]
    fn a_directory_over_a_symlink_is_refused_or_replaced() {
        let s = Scratch::new();
        s.plant("d", "");
        let before = s.outside();
        assert!(s
            .dest(false)
            .make_dir(s.dest(false).root_fd(), b"d", b"d")
            .is_err());
        let dest = s.dest(true);
        let fd = dest.make_dir(dest.root_fd(), b"d", b"d").unwrap();
        sys::create_at(fd.as_fd(), b"new", 0o644).unwrap();
        assert_eq!(s.outside(), before);
        assert!(s.0.join("dest/d/new").is_file());
        // An existing directory is merged into with -f, not replaced.
        let again = dest.make_dir(dest.root_fd(), b"d", b"d").unwrap();
        sys::create_at(again.as_fd(), b"other", 0o644).unwrap();
        assert!(s.0.join("dest/d/new").is_file() && s.0.join("dest/d/other").is_file());
    }

    #[test]
    fn a_directory_in_the_way_of_a_file_is_kept() {
        let s = Scratch::new();
        std::fs::create_dir_all(s.0.join("dest/d/keep")).unwrap();
        let dest = s.dest(true);
        let r = dest.make(dest.root_fd(), b"d", b"d", "file", || {
            sys::create_at(dest.root_fd(), b"d", 0o644)
        });
        assert!(matches!(r, Err(Error::DirectoryInTheWay { .. })), "{r:?}");
        assert!(s.0.join("dest/d/keep").is_dir());
    }

    #[test]
    fn paths_below_the_destination_never_cross_a_symlink() {
        let s = Scratch::new();
        s.plant("link", "");
        let dest = s.dest(false);
        assert!(dest.open_below(b"link").is_err());
        let before = s.outside();
        // A hard link whose first name would be reached through the symlink.
        assert!(dest
            .link(b"link/victim", dest.root_fd(), b"l", b"l")
            .is_err());
        assert!(!s.0.join("dest/l").exists());
        assert_eq!(s.outside(), before);
    }

    #[test]
    fn a_hard_link_over_a_symlink_replaces_it_with_force() {
        let s = Scratch::new();
        std::fs::write(s.0.join("dest/first"), "mine").unwrap();
        s.plant("second", "victim");
        let before = s.outside();
        assert!(s
            .dest(false)
            .link(b"first", s.dest(false).root_fd(), b"second", b"second")
            .is_err());
        let dest = s.dest(true);
        dest.link(b"first", dest.root_fd(), b"second", b"second")
            .unwrap();
        assert_eq!(std::fs::read(s.0.join("dest/second")).unwrap(), b"mine");
        assert_eq!(
            std::fs::metadata(s.0.join("dest/first")).unwrap().nlink(),
            2
        );
        assert_eq!(s.outside(), before);
    }

    #[test]
    fn attributes_of_a_symlink_stay_on_the_symlink() {
        let s = Scratch::new();
        s.plant("l", "victim");
        let before = s.outside();
        let dest = s.dest(false);
        sys::lset_mtime_at(dest.root_fd(), b"l", 1_000_000).unwrap();
        sys::lchown_at(dest.root_fd(), b"l", u32::MAX, u32::MAX).unwrap();
        assert_eq!(s.outside(), before);
        let m = std::fs::symlink_metadata(s.0.join("dest/l")).unwrap();
        assert_eq!(m.mtime(), 1_000_000);
    }

    #[test]
    fn xattrs_of_a_symlink_stay_on_the_symlink() {
        if !sys::is_root() {
            eprintln!("not root: trusted.* xattrs (the only ones a symlink takes) need root");
            return;
        }
        let s = Scratch::new();
        s.plant("l", "victim");
        let before = s.outside();
        let dest = s.dest(false);
        sys::lsetxattr_at(dest.root_fd(), b"l", b"trusted.sqfs", b"v").unwrap();
        assert_eq!(s.outside(), before);
        let names = |p: &Path, follow: bool| {
            let mut buf = vec![0u8; 4096];
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: c is NUL-terminated and buf has buf.len() writable bytes.
            let n = unsafe {
                if follow {
                    libc::listxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                } else {
                    libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                }
            };
            buf.truncate(n.max(0) as usize);
            buf
        };
        assert_eq!(names(&s.0.join("dest/l"), false), b"trusted.sqfs\0");
        assert!(names(&s.0.join("outside/victim"), true).is_empty());
    }

    #[test]
    fn directory_attributes_are_not_set_through_a_symlink() {
        // A record whose directory was swapped for a symlink (by a race, or an image that
        // got a name past the walk's checks): the attribute pass stops there.
        let s = Scratch::new();
        s.plant("d", "");
        let archive = Archive::open(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/tiny/tiny-gzip.sqfs"),
        )
        .unwrap();
        let root = archive.root().unwrap();
        let dirs = [
            DirRecord {
                parent: 0,
                name: Box::default(),
                inode: root.clone(),
            },
            DirRecord {
                parent: 0,
                name: b"d"[..].into(),
                inode: root,
            },
        ];
        let before = s.outside();
        let r = set_dir_attrs(&s.dest(false), &archive, &dirs);
        assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
        assert_eq!(s.outside(), before);
    }
}

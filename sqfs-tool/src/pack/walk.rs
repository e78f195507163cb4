//! The walk of the source tree: each directory's entries in name order, depth first,
//! every entry reached from its parent's descriptor (see `source.rs`) and added to the
//! writer as it is found. The walk keeps its place on a stack of its own (one open
//! directory per level), not in recursion.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use indicatif::ProgressBar;
use sqfs::{Content, Meta, NodeId, Special, WriteError, Writer};

use super::error::{Error, Result};
use super::source::{self, Kind, Stat};
use super::Options;
use crate::error::show;

/// A directory being walked: its descriptor, its node, the names left (last first) and
/// its path below the root.
struct Level {
    fd: OwnedFd,
    node: NodeId,
    names: Vec<Vec<u8>>,
    rel: Vec<u8>,
}

pub(super) struct Walk<'a> {
    pub writer: &'a mut Writer,
    pub options: &'a Options,
    /// Paths below the root to leave out.
    pub excludes: &'a HashSet<Vec<u8>>,
    /// Files to leave out by device and inode (the image being written).
    pub own_files: &'a [(u64, u64)],
    /// The source as the user named it, for messages.
    pub display_root: String,
    pub progress: &'a ProgressBar,
    /// Files with more than one link seen so far, by device and inode.
    pub links: HashMap<(u64, u64), NodeId>,
    /// Entries left out with a warning.
    pub warnings: u64,
}

fn is(e: &io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

/// Errors that mean "this user may not read it": mksquashfs warns and goes on.
fn denied(e: &io::Error) -> bool {
    is(e, libc::EACCES) || is(e, libc::EPERM)
}

impl Walk<'_> {
    /// Walks the tree under `root` (the writer's root directory).
    pub fn run(&mut self, root: OwnedFd) -> Result<()> {
        let names = source::list(root.as_fd()).map_err(|e| self.source_error(b"", e))?;
        let mut stack = vec![Level {
            fd: root,
            node: self.writer.root(),
            names: names.into_iter().rev().collect(),
            rel: Vec::new(),
        }];
        while let Some(level) = stack.last_mut() {
            let Some(name) = level.names.pop() else {
                stack.pop();
                continue;
            };
            let mut rel = level.rel.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&name);
            if self.excludes.contains(&rel) {
                continue;
            }
            let (dir, parent) = (level.fd.as_fd(), level.node);
            if let Some(sub) = self.entry(dir, parent, &name, rel)? {
                stack.push(sub);
            }
        }
        Ok(())
    }

    /// The path of `rel` as the user would write it, escaped for one line.
    fn path(&self, rel: &[u8]) -> String {
        if rel.is_empty() {
            return self.display_root.clone();
        }
        format!("{}/{}", self.display_root.trim_end_matches('/'), show(rel))
    }

    fn source_error(&self, rel: &[u8], source: io::Error) -> Error {
        Error::Source {
            path: self.path(rel),
            source,
        }
    }

    fn write_error(&self, rel: &[u8], source: WriteError) -> Error {
        Error::Write {
            path: self.path(rel),
            source,
        }
    }

    fn warn(&mut self, message: String) {
        self.warnings += 1;
        self.progress
            .suspend(|| eprintln!("sqfs: warning: {message}"));
    }

    fn meta(&self, st: &Stat, xattrs: Vec<source::Xattr>) -> Meta {
        self.options.meta(st, xattrs)
    }

    /// The xattrs to store (none with -no-xattrs); names SquashFS cannot store are left
    /// out with a warning.
    fn xattrs(
        &mut self,
        rel: &[u8],
        read: impl FnOnce() -> io::Result<Vec<source::Xattr>>,
    ) -> Result<Vec<source::Xattr>> {
        if !self.options.xattrs {
            return Ok(Vec::new());
        }
        let mut all = read().map_err(|e| self.source_error(rel, e))?;
        let storable = |name: &[u8]| {
            [&b"user."[..], b"trusted.", b"security."]
                .iter()
                .any(|p| name.starts_with(p) && name.len() > p.len())
        };
        for (name, _) in all.iter().filter(|(n, _)| !storable(n)) {
            let message = format!(
                "{}: extended attribute {} not stored (SquashFS stores user., trusted. and \
                 security. ones)",
                self.path(rel),
                show(name)
            );
            self.warnings += 1;
            self.progress
                .suspend(|| eprintln!("sqfs: warning: {message}"));
        }
        all.retain(|(n, _)| storable(n));
        Ok(all)
    }

    /// Adds the entry `name` of `dir` (whose node is `parent`); a directory to walk next.
    fn entry(
        &mut self,
        dir: BorrowedFd,
        parent: NodeId,
        name: &[u8],
        rel: Vec<u8>,
    ) -> Result<Option<Level>> {
        let st = match source::stat_at(dir, name) {
            Ok(st) => st,
            Err(e) if is(&e, libc::ENOENT) => {
                self.warn(format!(
                    "{}: removed while being packed, left out",
                    self.path(&rel)
                ));
                return Ok(None);
            }
            Err(e) => return Err(self.source_error(&rel, e)),
        };
        if self.own_files.contains(&(st.dev, st.ino)) {
            return Ok(None);
        }
        if st.kind != Kind::Dir && st.nlink > 1 {
            if let Some(&node) = self.links.get(&(st.dev, st.ino)) {
                return self
                    .writer
                    .link(parent, name, node)
                    .map(|()| None)
                    .map_err(|e| self.write_error(&rel, e));
            }
        }
        let node = match st.kind {
            Kind::Dir => return self.dir(dir, parent, name, rel, &st),
            Kind::File => self.file(dir, parent, name, &rel, &st)?,
            Kind::Symlink => {
                let target =
                    source::read_link_at(dir, name).map_err(|e| self.source_error(&rel, e))?;
                let xattrs = self.xattrs(&rel, || source::xattrs_at(dir, name))?;
                let meta = self.meta(&st, xattrs);
                self.writer.symlink(parent, name, meta, &target)
            }
            Kind::BlockDevice | Kind::CharDevice | Kind::Fifo | Kind::Socket => {
                let (major, minor) = (libc::major(st.rdev), libc::minor(st.rdev));
                let special = match st.kind {
                    Kind::BlockDevice => Special::BlockDevice { major, minor },
                    Kind::CharDevice => Special::CharDevice { major, minor },
                    Kind::Fifo => Special::Fifo,
                    _ => Special::Socket,
                };
                let xattrs = self.xattrs(&rel, || source::xattrs_at(dir, name))?;
                let meta = self.meta(&st, xattrs);
                self.writer.special(parent, name, meta, special)
            }
        };
        let node = node.map_err(|e| self.write_error(&rel, e))?;
        if st.nlink > 1 {
            self.links.insert((st.dev, st.ino), node);
        }
        Ok(None)
    }

    fn dir(
        &mut self,
        dir: BorrowedFd,
        parent: NodeId,
        name: &[u8],
        rel: Vec<u8>,
        st: &Stat,
    ) -> Result<Option<Level>> {
        let fd = match source::open_dir_at(dir, name) {
            Ok(fd) => fd,
            Err(e) if denied(&e) => {
                // As mksquashfs: the directory is left out.
                self.warn(format!(
                    "could not open {} ({e}), skipping",
                    self.path(&rel)
                ));
                return Ok(None);
            }
            Err(e) => return Err(self.changed_or(&rel, e)),
        };
        self.check_same(&rel, &fd, st)?;
        let xattrs = self.xattrs(&rel, || source::xattrs_of(fd.as_fd()))?;
        let names = source::list(fd.as_fd()).map_err(|e| self.source_error(&rel, e))?;
        let meta = self.meta(st, xattrs);
        let node = self
            .writer
            .dir(parent, name, meta)
            .map_err(|e| self.write_error(&rel, e))?;
        Ok(Some(Level {
            fd,
            node,
            names: names.into_iter().rev().collect(),
            rel,
        }))
    }

    fn file(
        &mut self,
        dir: BorrowedFd,
        parent: NodeId,
        name: &[u8],
        rel: &[u8],
        st: &Stat,
    ) -> Result<std::result::Result<NodeId, WriteError>> {
        let file = match source::open_file_at(dir, name) {
            Ok(f) => f,
            Err(e) if denied(&e) => return self.empty_file(dir, parent, name, rel, st, e),
            Err(e) => return Err(self.changed_or(rel, e)),
        };
        let opened = self.check_same(rel, &file, st)?;
        let xattrs = self.xattrs(rel, || source::xattrs_of(file.as_fd()))?;
        let meta = self.meta(&opened, xattrs);
        let added = self
            .writer
            .file(parent, name, meta, opened.size, Content::File(&file));
        self.progress.set_position(self.writer.bytes_read());
        match added {
            Err(WriteError::Input(e)) => self.empty_file(dir, parent, name, rel, st, e),
            added => Ok(added),
        }
    }

    /// mksquashfs's answer to a file it cannot read: a warning, and an empty file in its
    /// place.
    fn empty_file(
        &mut self,
        dir: BorrowedFd,
        parent: NodeId,
        name: &[u8],
        rel: &[u8],
        st: &Stat,
        why: io::Error,
    ) -> Result<std::result::Result<NodeId, WriteError>> {
        self.warn(format!(
            "failed to read file {} ({why}), creating empty file",
            self.path(rel)
        ));
        let xattrs = self.xattrs(rel, || source::xattrs_at(dir, name))?;
        let meta = self.meta(st, xattrs);
        let mut nothing: &[u8] = &[];
        Ok(self
            .writer
            .file(parent, name, meta, 0, Content::Stream(&mut nothing)))
    }

    /// The opened entry's stat, checked to be the entry that was listed.
    fn check_same(&self, rel: &[u8], fd: impl AsFd, listed: &Stat) -> Result<Stat> {
        let opened = source::fstat(fd).map_err(|e| self.source_error(rel, e))?;
        if !opened.same_entry(listed) {
            return Err(Error::Changed {
                path: self.path(rel),
                what: "another file took its name",
            });
        }
        Ok(opened)
    }

    /// An open that failed: a symlink or another type of entry that took the name after
    /// it was listed (ELOOP, ENOTDIR), or another error.
    fn changed_or(&self, rel: &[u8], e: io::Error) -> Error {
        if is(&e, libc::ELOOP) || is(&e, libc::ENOTDIR) || is(&e, libc::ENOENT) {
            return Error::Changed {
                path: self.path(rel),
                what: "another entry took its name",
            };
        }
        self.source_error(rel, e)
    }
}

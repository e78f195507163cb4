//! A depth-first walk of the image tree that cannot loop and that only hands out names a
//! directory can hold: a directory met twice (a hostile image pointing an entry at its own
//! ancestor) is an error, so is a depth past any real tree, and so is an entry whose name
//! is empty, `.`, `..`, holds `/` or NUL, or repeats (or comes before) the one listed
//! before it. The walk builds paths by joining names with `/`, so a name holding `/` would
//! make one path stand for another; no consumer ever sees one.
//!
//! The walk keeps the directories it is in on a stack of its own, not the thread's: at the
//! deepest it allows, a recursive walk needed 2 to 4 MiB of stack, and a 12 KB image made
//! `sqfs extract` and `sqfs ls -R` abort under `ulimit -s 2048` or in a thread of Rust's
//! default 2 MiB.

use std::collections::HashSet;

use sqfs::ReadDir;
use sqfs::{Archive, Inode};

use crate::error::{show, Error, Result};

/// Deeper than any tree mksquashfs can write from a real filesystem (PATH_MAX / 2).
pub const MAX_DEPTH: usize = 2048;

/// What a walk calls, in order: `node` for each node (a directory before its children),
/// `leave` for a directory once its children are done.
pub trait Visitor {
    /// `path` is the node's path (names joined with `/`, relative to where the walk
    /// started), `name` its last component.
    fn node(&mut self, path: &[u8], name: &[u8], inode: &Inode) -> Result<()>;
    fn leave(&mut self, path: &[u8], inode: &Inode) -> Result<()>;
}

/// One walk's state: the directories met so far and the current path.
pub struct Walk<'a> {
    archive: &'a Archive,
    seen: HashSet<u32>,
    path: Vec<u8>,
    depth: usize,
}

impl<'a> Walk<'a> {
    /// A walk whose paths start with `prefix` (no leading or trailing `/`; empty: none).
    pub fn new(archive: &'a Archive, prefix: &[u8]) -> Self {
        Walk {
            archive,
            seen: HashSet::new(),
            path: prefix.to_vec(),
            depth: 0,
        }
    }

    /// Counts `dir` as met (a directory the caller itself stands in), so that a loop back
    /// to it is caught, and one level deeper.
    pub fn enter(&mut self, dir: &Inode, name: &[u8]) -> Result<()> {
        self.push(name);
        self.claim(dir)
    }

    /// Undoes [`Walk::enter`].
    pub fn exit(&mut self, name: &[u8]) {
        self.pop(name);
        self.depth -= 1;
    }

    /// Visits `inode`, called `name`, and for a directory everything below it.
    pub fn node(&mut self, inode: &Inode, name: &[u8], v: &mut dyn Visitor) -> Result<()> {
        self.push(name);
        let r = self.node_here(inode, name, v);
        self.pop(name);
        r
    }

    /// Visits the children of directory `dir` (not `dir` itself).
    pub fn children(&mut self, dir: &Inode, v: &mut dyn Visitor) -> Result<()> {
        self.claim(dir)?;
        let r = self.children_here(dir, v);
        self.depth -= 1;
        r
    }

    fn node_here(&mut self, inode: &Inode, name: &[u8], v: &mut dyn Visitor) -> Result<()> {
        v.node(&self.path, name, inode)?;
        if inode.is_dir() {
            self.children(inode, v)?;
            v.leave(&self.path, inode)?;
        }
        Ok(())
    }

    /// Visits what is below `top` (claimed by the caller), depth first, with the
    /// directories on the way on `stack`: each one's listing where the walk left it, the
    /// name it was entered by (None for `top`) and its last name, which the next must
    /// follow. On success the path and depth are back where they were.
    fn children_here(&mut self, top: &Inode, v: &mut dyn Visitor) -> Result<()> {
        struct Open<'a> {
            dir: Inode,
            entries: ReadDir<'a>,
            name: Option<Vec<u8>>,
            last: Vec<u8>,
        }
        let archive = self.archive;
        let listing =
            |walk: &Self, dir: &Inode| archive.read_dir(dir).map_err(|e| walk.image_error(e));
        let mut stack = vec![Open {
            dir: top.clone(),
            entries: listing(self, top)?,
            name: None,
            last: Vec::new(),
        }];
        while let Some(open) = stack.last_mut() {
            let Some(entry) = open.entries.next() else {
                let done = stack.pop().expect("the top was just seen");
                if let Some(name) = done.name {
                    v.leave(&self.path, &done.dir)?;
                    self.pop(&name);
                    self.depth -= 1;
                }
                continue;
            };
            let entry = entry.map_err(|e| self.image_error(e))?;
            let name = entry.name.as_slice();
            check_name(&self.path, name)?;
            if !open.last.is_empty() && name <= open.last.as_slice() {
                return Err(Error::Duplicate {
                    dir: dir_name(&self.path),
                    name: show(name).into_owned(),
                });
            }
            open.last.clear();
            open.last.extend_from_slice(name);
            self.push(name);
            let child = archive
                .entry_inode(&entry)
                .map_err(|e| self.image_error(e))?;
            v.node(&self.path, name, &child)?;
            if child.is_dir() {
                self.claim(&child)?;
                let entries = listing(self, &child)?;
                stack.push(Open {
                    dir: child,
                    entries,
                    name: Some(entry.name),
                    last: Vec::new(),
                });
            } else {
                self.pop(name);
            }
        }
        Ok(())
    }

    fn claim(&mut self, dir: &Inode) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(Error::TooDeep {
                path: dir_name(&self.path),
                max: MAX_DEPTH,
            });
        }
        if !self.seen.insert(dir.number()) {
            return Err(Error::Loop {
                path: dir_name(&self.path),
            });
        }
        self.depth += 1;
        Ok(())
    }

    fn push(&mut self, name: &[u8]) {
        if !self.path.is_empty() && !name.is_empty() {
            self.path.push(b'/');
        }
        self.path.extend_from_slice(name);
    }

    fn pop(&mut self, name: &[u8]) {
        let len = self.path.len() - name.len();
        // The separator `push` added, if any.
        self.path
            .truncate(len.saturating_sub(usize::from(len > 0 && !name.is_empty())));
    }

    fn image_error(&self, e: sqfs::Error) -> Error {
        Error::Image {
            path: dir_name(&self.path),
            source: e,
        }
    }
}

/// A path of the walk as text, `/` for the start.
fn dir_name(path: &[u8]) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        show(path).into_owned()
    }
}

/// Refuses a name that is not exactly one path component.
pub fn check_name(dir: &[u8], name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Error::BadName {
            dir: dir_name(dir),
            name: show(name).into_owned(),
        });
    }
    Ok(())
}

/// Called for each node with its path relative to the start and its inode.
pub type Visit<'v> = dyn FnMut(&[u8], &Inode) -> std::result::Result<(), String> + 'v;

/// Calls `visit(path, inode)` for `start` and everything below it, parents first. Paths
/// are relative to `start` ("" for `start` itself) and joined with `/`.
pub fn walk(archive: &Archive, start: Inode, visit: &mut Visit) -> std::result::Result<(), String> {
    /// The callback, and its error once it failed (the walk then stops).
    struct Each<'f> {
        visit: &'f mut Visit<'f>,
        failed: Option<String>,
    }
    impl Visitor for Each<'_> {
        fn node(&mut self, path: &[u8], _: &[u8], inode: &Inode) -> Result<()> {
            (self.visit)(path, inode).map_err(|e| {
                self.failed = Some(e);
                Error::Stopped
            })
        }
        fn leave(&mut self, _: &[u8], _: &Inode) -> Result<()> {
            Ok(())
        }
    }
    let mut each = Each {
        visit,
        failed: None,
    };
    let r = Walk::new(archive, b"").node(&start, b"", &mut each);
    match (each.failed, r) {
        (Some(e), _) => Err(e),
        (None, r) => r.map_err(|e| e.to_string()),
    }
}

pub fn describe(path: &[u8], e: sqfs::Error) -> String {
    format!("{}: {e}", dir_name(path))
}

/// Looks a user-given path up, with the path in the error; symlinks are not followed.
pub fn lookup(archive: &Archive, path: &str) -> std::result::Result<Inode, String> {
    archive
        .lookup_path(path)
        .map_err(|e| format!("{path}: {e}"))
}

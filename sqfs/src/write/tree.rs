//! The entries added so far, in memory until the metadata is written: one node per inode
//! (a hard link is another entry naming the same node), each directory's entries.

use std::collections::HashMap;

use super::data::Stored;
use super::error::{show, WriteError, WriteResult};
use crate::inode::FileType;

/// An inode's common fields, as stored: owners by id table index, xattrs by set.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attrs {
    pub permissions: u16,
    pub uid: u16,
    pub gid: u16,
    pub mtime: u32,
    /// The xattr id, or NO_XATTR.
    pub xattr: u32,
}

/// A name in a directory, and the node it names.
pub(super) struct Entry {
    pub name: Box<[u8]>,
    pub node: u32,
    /// When it was added, on the tree's clock: a removal takes only an entry added before
    /// it.
    added: u64,
}

pub(super) enum Body {
    Dir(Vec<Entry>),
    File(Stored),
    Symlink(Box<[u8]>),
    /// The device number, encoded.
    Device(FileType, u32),
    Ipc(FileType),
}

impl Body {
    pub(super) fn kind(&self) -> FileType {
        match self {
            Body::Dir(_) => FileType::Directory,
            Body::File(_) => FileType::File,
            Body::Symlink(_) => FileType::Symlink,
            Body::Device(kind, _) | Body::Ipc(kind) => *kind,
        }
    }
}

pub(super) struct Node {
    pub attrs: Attrs,
    /// Entries naming it (for a directory, 1: its own).
    pub names: u32,
    pub body: Body,
}

/// Inode numbers are 32 bits, and the root's parent is stored as the count + 1.
const MAX_NODES: usize = u32::MAX as usize - 1;

/// Node 0 is the root.
#[derive(Default)]
pub(super) struct Tree {
    pub nodes: Vec<Node>,
    /// Counts additions and removals: their order, which removals are applied in.
    clock: u64,
    /// Entries taken out (`remove`), applied in order when the tree is sorted, so that
    /// taking one out costs no search of a big directory.
    removed: Vec<Removal>,
}

/// Where a name is in a directory, in the order added, and how many of those removals
/// have passed over.
type Positions = (Vec<usize>, usize);

/// `name` taken out of `dir` at `at` on the tree's clock.
struct Removal {
    dir: u32,
    name: Box<[u8]>,
    at: u64,
}

impl Tree {
    pub(super) fn add_root(&mut self, attrs: Attrs) {
        self.nodes.push(Node {
            attrs,
            names: 1,
            body: Body::Dir(Vec::new()),
        });
    }

    pub(super) fn set_attrs(&mut self, node: u32, attrs: Attrs) -> WriteResult<()> {
        let node = self
            .nodes
            .get_mut(node as usize)
            .ok_or(WriteError::NotADirectory)?;
        node.attrs = attrs;
        Ok(())
    }

    /// Checks that `parent` is a directory of this tree.
    pub(super) fn check_parent(&self, parent: u32) -> WriteResult<()> {
        match self.nodes.get(parent as usize).map(|n| &n.body) {
            Some(Body::Dir(_)) => Ok(()),
            _ => Err(WriteError::NotADirectory),
        }
    }

    fn entries(&mut self, parent: u32) -> WriteResult<&mut Vec<Entry>> {
        match self.nodes.get_mut(parent as usize).map(|n| &mut n.body) {
            Some(Body::Dir(entries)) => Ok(entries),
            _ => Err(WriteError::NotADirectory),
        }
    }

    /// Adds a node called `name` in `parent`; its number in the tree.
    pub(super) fn add(
        &mut self,
        parent: u32,
        name: &[u8],
        attrs: Attrs,
        body: Body,
    ) -> WriteResult<u32> {
        if self.nodes.len() >= MAX_NODES {
            return Err(WriteError::TooManyInodes);
        }
        let node = self.nodes.len() as u32;
        let added = self.tick();
        self.entries(parent)?.push(Entry {
            name: name.into(),
            node,
            added,
        });
        self.nodes.push(Node {
            attrs,
            names: 1,
            body,
        });
        Ok(node)
    }

    /// Adds `name` in `parent` as another name of `target`, which is not a directory.
    pub(super) fn link(&mut self, parent: u32, name: &[u8], target: u32) -> WriteResult<()> {
        match self.nodes.get(target as usize).map(|n| &n.body) {
            Some(Body::Dir(_)) | None => return Err(WriteError::NotADirectory),
            Some(_) => {}
        }
        let added = self.tick();
        self.entries(parent)?.push(Entry {
            name: name.into(),
            node: target,
            added,
        });
        let target = &mut self.nodes[target as usize];
        target.names = target.names.saturating_add(1);
        Ok(())
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Takes the entry `name` out of `parent` (the caller replaces it, as a later tar
    /// member replaces an earlier one of the same path). Recorded now, applied when the
    /// tree is sorted (see `apply_removals`).
    pub(super) fn remove(&mut self, parent: u32, name: &[u8]) -> WriteResult<()> {
        self.check_parent(parent)?;
        let at = self.tick();
        self.removed.push(Removal {
            dir: parent,
            name: name.into(),
            at,
        });
        Ok(())
    }

    /// Applies the removals as if each had been made when it was recorded: it takes the
    /// earliest entry of its name in its directory that was added before it and is still
    /// there, or fails with NotFound. What that entry named is left unreachable and is not
    /// written; every node loses the names it had there (a directory's whole subtree as it
    /// was then: a hard link from inside it to a file elsewhere is one name fewer for that
    /// file).
    fn apply_removals(&mut self) -> WriteResult<()> {
        if self.removed.is_empty() {
            return Ok(());
        }
        // Where each name taken out is in its directory, in the order added (entries are
        // only appended until now), and how many of those the earlier removals have
        // passed over.
        let mut wanted: HashMap<(u32, &[u8]), Positions> = HashMap::new();
        for r in &self.removed {
            wanted.entry((r.dir, &r.name)).or_default();
        }
        let dirs: std::collections::HashSet<u32> = self.removed.iter().map(|r| r.dir).collect();
        for &dir in &dirs {
            if let Some(Body::Dir(entries)) = self.nodes.get(dir as usize).map(|n| &n.body) {
                for (i, e) in entries.iter().enumerate() {
                    if let Some((at, _)) = wanted.get_mut(&(dir, &*e.name)) {
                        at.push(i);
                    }
                }
            }
        }
        // Taken out: (directory, position), resolved against `wanted` before anything is
        // changed in the tree.
        let mut gone: std::collections::HashSet<(u32, usize)> = std::collections::HashSet::new();
        let mut dropped = Vec::new();
        for r in &self.removed {
            let Some((at, passed)) = wanted.get_mut(&(r.dir, &*r.name)) else {
                unreachable!("every removal is in `wanted`")
            };
            let Body::Dir(entries) = &self.nodes[r.dir as usize].body else {
                unreachable!("checked by remove")
            };
            // Entries already gone (taken out, or under a directory taken out) are passed
            // over for good: none of them comes back.
            while at.get(*passed).is_some_and(|&i| gone.contains(&(r.dir, i))) {
                *passed += 1;
            }
            let found = at
                .get(*passed)
                .map(|&i| (i, &entries[i]))
                .filter(|(_, e)| e.added < r.at);
            let Some((i, entry)) = found else {
                return Err(WriteError::NotFound(show(&r.name)));
            };
            *passed += 1;
            gone.insert((r.dir, i));
            // The entry's node, and everything under it that was there at `r.at`.
            let mut under = vec![entry.node];
            while let Some(node) = under.pop() {
                match &self.nodes[node as usize].body {
                    Body::Dir(entries) => {
                        for (i, e) in entries.iter().enumerate() {
                            if e.added < r.at && gone.insert((node, i)) {
                                under.push(e.node);
                            }
                        }
                    }
                    _ => dropped.push(node),
                }
            }
        }
        for node in dropped {
            let node = &mut self.nodes[node as usize];
            node.names = node.names.saturating_sub(1);
        }
        let mut by_dir: HashMap<u32, Vec<usize>> = HashMap::new();
        for (dir, i) in gone {
            by_dir.entry(dir).or_default().push(i);
        }
        for (dir, mut positions) in by_dir {
            positions.sort_unstable();
            let Body::Dir(entries) = &mut self.nodes[dir as usize].body else {
                unreachable!("only directories have entries")
            };
            let mut i = 0;
            let mut next = positions.iter().peekable();
            entries.retain(|_| {
                let keep = next.next_if_eq(&&i).is_none();
                i += 1;
                keep
            });
        }
        self.removed.clear();
        Ok(())
    }

    /// Sorts every directory's entries by name (bytewise, as listings must be), refusing a
    /// name that is there twice.
    pub(super) fn sort(&mut self) -> WriteResult<()> {
        self.apply_removals()?;
        for node in &mut self.nodes {
            if let Body::Dir(entries) = &mut node.body {
                entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
                if let Some(w) = entries.windows(2).find(|w| w[0].name == w[1].name) {
                    return Err(WriteError::Duplicate(show(&w[0].name)));
                }
            }
        }
        Ok(())
    }
}

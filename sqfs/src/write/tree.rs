//! The entries added so far, in memory until the metadata is written: one node per inode
//! (a hard link is another entry naming the same node), each directory's entries.

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
        self.entries(parent)?.push(Entry {
            name: name.into(),
            node,
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
        self.entries(parent)?.push(Entry {
            name: name.into(),
            node: target,
        });
        let target = &mut self.nodes[target as usize];
        target.names = target.names.saturating_add(1);
        Ok(())
    }

    /// Takes the entry `name` out of `parent` (the caller replaces it, as a later tar
    /// member replaces an earlier one of the same path). Its node stays unreachable and
    /// is not written; every node it named loses that name (a directory's whole subtree:
    /// a hard link from inside it to a file elsewhere is one name fewer for that file).
    pub(super) fn remove(&mut self, parent: u32, name: &[u8]) -> WriteResult<()> {
        let entries = self.entries(parent)?;
        let at = entries
            .iter()
            .position(|e| &*e.name == name)
            .ok_or_else(|| WriteError::NotFound(show(name)))?;
        let mut gone = vec![entries.swap_remove(at).node];
        while let Some(node) = gone.pop() {
            let node = &mut self.nodes[node as usize];
            match &mut node.body {
                Body::Dir(entries) => gone.extend(std::mem::take(entries).iter().map(|e| e.node)),
                _ => node.names = node.names.saturating_sub(1),
            }
        }
        Ok(())
    }

    /// Sorts every directory's entries by name (bytewise, as listings must be), refusing a
    /// name that is there twice.
    pub(super) fn sort(&mut self) -> WriteResult<()> {
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

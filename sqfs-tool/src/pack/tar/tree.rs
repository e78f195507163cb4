//! The paths packed so far and the writer's node for each, so that members can be added
//! in any order and named again: a member whose parents were not seen gets them made
//! (implied directories), a hard link finds its target by path, and a member of a path
//! already packed replaces what was there, as extracting the archive would (a directory
//! over a directory only takes the newer one's owners, mode, time and xattrs).

use std::collections::HashMap;

use sqfs::{Meta, NodeId, WriteError, Writer};

/// Why a path could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{0} is not a directory in the archive")]
    NotADirectory(String),
    #[error("hard link to {0}, which is not earlier in the archive")]
    NoTarget(String),
    #[error("hard link to {0}, a directory")]
    LinkToDirectory(String),
    #[error("the archive's root is not a directory")]
    RootNotADirectory,
    #[error(transparent)]
    Write(#[from] WriteError),
}

struct Dir {
    node: NodeId,
    children: HashMap<Box<[u8]>, Child>,
}

enum Child {
    Dir(Dir),
    /// Anything but a directory: the target a hard link names.
    Leaf(NodeId),
}

impl Dir {
    fn new(node: NodeId) -> Dir {
        Dir {
            node,
            children: HashMap::new(),
        }
    }
}

/// Adds a file, symlink or special node to the writer, under the parent and name given.
pub type AddLeaf<'a> = &'a mut dyn FnMut(&mut Writer, NodeId, &[u8]) -> Result<NodeId, WriteError>;

/// What to add at a path.
pub enum Add<'a> {
    Dir(Meta),
    /// A file, symlink or special node.
    Leaf(AddLeaf<'a>),
    /// Another name of the leaf at this path.
    HardLink(&'a [&'a [u8]]),
}

pub struct Tree {
    root: Dir,
    /// The meta of a directory made because a member lies below it.
    implied: Meta,
}

fn shown(parts: &[&[u8]]) -> String {
    crate::error::show(&super::names::join(parts)).into_owned()
}

impl Tree {
    pub fn new(root: NodeId, implied: Meta) -> Tree {
        Tree {
            root: Dir::new(root),
            implied,
        }
    }

    /// The directory at `parts`, made (with the implied meta) where missing.
    fn dir(&mut self, writer: &mut Writer, parts: &[&[u8]]) -> Result<&mut Dir, TreeError> {
        let mut dir = &mut self.root;
        for (i, &part) in parts.iter().enumerate() {
            if !dir.children.contains_key(part) {
                let node = writer.dir(dir.node, part, self.implied.clone())?;
                dir.children.insert(part.into(), Child::Dir(Dir::new(node)));
            }
            dir = match dir.children.get_mut(part) {
                Some(Child::Dir(d)) => d,
                _ => return Err(TreeError::NotADirectory(shown(&parts[..=i]))),
            };
        }
        Ok(dir)
    }

    /// The leaf at `parts`, for a hard link.
    fn leaf(&self, parts: &[&[u8]]) -> Result<NodeId, TreeError> {
        let Some((last, above)) = parts.split_last() else {
            return Err(TreeError::LinkToDirectory(shown(parts)));
        };
        let mut dir = &self.root;
        for &part in above {
            dir = match dir.children.get(part) {
                Some(Child::Dir(d)) => d,
                _ => return Err(TreeError::NoTarget(shown(parts))),
            };
        }
        match dir.children.get(*last) {
            Some(Child::Leaf(node)) => Ok(*node),
            Some(Child::Dir(_)) => Err(TreeError::LinkToDirectory(shown(parts))),
            None => Err(TreeError::NoTarget(shown(parts))),
        }
    }

    /// Adds `what` at `parts` (empty: the root, which only a directory may name).
    pub fn add(
        &mut self,
        writer: &mut Writer,
        parts: &[&[u8]],
        what: Add,
    ) -> Result<(), TreeError> {
        let Some((name, above)) = parts.split_last() else {
            return match what {
                Add::Dir(meta) => Ok(writer.set_meta(self.root.node, meta)?),
                _ => Err(TreeError::RootNotADirectory),
            };
        };
        let target = match &what {
            Add::HardLink(target) => Some(self.leaf(target)?),
            _ => None,
        };
        let parent = self.dir(writer, above)?;
        let existing = parent.children.get(*name);
        match (&what, existing) {
            (Add::Dir(meta), Some(Child::Dir(d))) => {
                return Ok(writer.set_meta(d.node, meta.clone())?)
            }
            // The same inode under the same name again: nothing changes.
            (Add::HardLink(_), Some(Child::Leaf(node))) if Some(*node) == target => return Ok(()),
            (_, Some(_)) => {
                writer.remove(parent.node, name)?;
                parent.children.remove(*name);
            }
            (_, None) => {}
        }
        let child = match what {
            Add::Dir(meta) => Child::Dir(Dir::new(writer.dir(parent.node, name, meta)?)),
            Add::Leaf(add) => Child::Leaf(add(writer, parent.node, name)?),
            Add::HardLink(_) => {
                let target = target.expect("looked up above");
                writer.link(parent.node, name, target)?;
                Child::Leaf(target)
            }
        };
        parent.children.insert((*name).into(), child);
        Ok(())
    }
}

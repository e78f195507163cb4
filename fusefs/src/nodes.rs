//! FUSE node ids and the inodes behind them.
//!
//! fuser sends an entry's `attr.ino` as its node id, and the kernel shows `attr.ino` as
//! `st_ino`; users expect `st_ino` to be the squashfs inode number, as the kernel's own
//! driver reports. So node id = inode number, with one exception: FUSE's root is node 1.
//! The mount root's number and 1 swap places (the inode numbered 1 takes the root's number
//! as its node id, which no entry can otherwise name); that inode's attributes are never
//! cached by the kernel, so every `stat` asks us and gets `st_ino` 1.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqfs::{Inode, MetaRef};

pub const ROOT_NODE: u64 = 1;
const SHARDS: usize = 32;

/// Node id -> (inode, lookup count).
type Shard = Mutex<HashMap<u64, (Arc<Inode>, u64)>>;

/// Maps node ids to the inodes the kernel knows, counted as FUSE's lookup counts are.
pub struct Nodes {
    root_number: u32,
    shards: Vec<Shard>,
}

impl Nodes {
    pub fn new(root: Inode) -> Self {
        let nodes = Nodes {
            root_number: root.number(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        };
        // The root is never forgotten: one lookup count that no FORGET takes away.
        nodes.remember(Arc::new(root), 1);
        nodes
    }

    fn shard(&self, node: u64) -> &Shard {
        &self.shards[node as usize % SHARDS]
    }

    /// The node id for inode `number`.
    pub fn node_of(&self, number: u32) -> u64 {
        match number {
            n if n == self.root_number => ROOT_NODE,
            1 => u64::from(self.root_number),
            n => u64::from(n),
        }
    }

    /// Whether the kernel may cache this inode's attributes (see the module comment).
    pub fn attrs_cacheable(&self, number: u32) -> bool {
        number != 1 || self.root_number == 1
    }

    /// Records that the kernel now holds `count` more references to `inode`.
    pub fn remember(&self, inode: Arc<Inode>, count: u64) -> u64 {
        self.remember_then(inode, count, |_, _| {}).0
    }

    /// As `remember`, and calls `first(node, inode)` if the kernel held no reference to it
    /// before, under the lock that orders it with `forget_then`'s `last`. Returns the node
    /// id and the inode the node stands for: the one linked first while the kernel keeps
    /// the node. A damaged image can give two inodes one number, hence one node id; the
    /// kernel's driver then shows whichever it loaded first under both names (it finds
    /// inodes by number, squashfs_iget() through iget_locked()), and so must we: the
    /// attributes the kernel is told and the bytes pushed to it are that inode's.
    pub fn remember_then(
        &self,
        inode: Arc<Inode>,
        count: u64,
        first: impl FnOnce(u64, &Inode),
    ) -> (u64, Arc<Inode>) {
        let node = self.node_of(inode.number());
        let mut shard = self.shard(node).lock().unwrap_or_else(|e| e.into_inner());
        let held = match shard.entry(node) {
            Entry::Occupied(mut e) => {
                e.get_mut().1 += count;
                e.get().0.clone()
            }
            Entry::Vacant(e) => {
                first(node, &inode);
                e.insert((inode.clone(), count));
                inode
            }
        };
        (node, held)
    }

    /// Whether the kernel knows `node` as the inode stored at `reference` (a page-cache
    /// push made for one inode must not reach another that took its node id since).
    pub fn holds(&self, node: u64, reference: MetaRef) -> bool {
        let shard = self.shard(node).lock().unwrap_or_else(|e| e.into_inner());
        shard
            .get(&node)
            .is_some_and(|e| e.0.reference() == reference)
    }

    pub fn get(&self, node: u64) -> Option<Arc<Inode>> {
        let shard = self.shard(node).lock().unwrap_or_else(|e| e.into_inner());
        shard.get(&node).map(|e| e.0.clone())
    }

    /// FUSE FORGET: the kernel dropped `count` references. Calls `last(node, inode)` if
    /// that was its last reference to the node.
    pub fn forget(&self, node: u64, count: u64, last: impl FnOnce(u64, &Inode)) {
        let mut shard = self.shard(node).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = shard.get_mut(&node) {
            entry.1 = entry.1.saturating_sub(count);
            if entry.1 == 0 && node != ROOT_NODE {
                if let Some((inode, _)) = shard.remove(&node) {
                    last(node, &inode);
                }
            }
        }
    }
}

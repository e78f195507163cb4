//! Small files that share a fragment block, by fragment.
//!
//! mksquashfs packs the files shorter than a block into shared fragment blocks, one after
//! the other in the order it writes them (a directory's files together). A program that
//! reads a directory's small files (tar, cp -r, an interpreter importing its modules) would
//! ask for each with a READ of its own, a round trip each, although the first of them
//! already had the whole fragment block decompressed. So when one is read, the others the
//! kernel knows (linked by a lookup or a listing: a page-cache push reaches nothing else)
//! are pushed into their page caches from that block, and the kernel serves them without
//! asking. Each is pushed once while the kernel keeps it linked: pages the kernel drops
//! later come back by READ, as they would without the push. A fragment block often holds
//! the last files of one directory and the first of the next, which the kernel learns of
//! only when that directory is listed: files linked to a fragment block already read from
//! are pushed as soon as the listing has reached the kernel (`add` says which).

use std::collections::HashMap;
use std::sync::Mutex;

use sqfs::MetaRef;

const SHARDS: usize = 16;

/// A file stored wholly in a fragment block: its node id, where its inode is stored, and
/// where its bytes lie in the decompressed block (as the inode says: checked against the
/// block before use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mate {
    pub node: u64,
    pub inode: MetaRef,
    pub start: u32,
    pub len: u32,
}

struct Entry {
    mate: Mate,
    pushed: bool,
}

/// The linked files of one fragment block, in the order they were linked (a listing's
/// order, which is the order they are stored and usually read in).
#[derive(Default)]
struct Fragment {
    entries: Vec<Entry>,
    /// One of its files was read: the block was decompressed, and its files are wanted.
    read: bool,
}

/// The linked files of each fragment block.
pub struct Mates {
    shards: Vec<Mutex<HashMap<u32, Fragment>>>,
}

impl Default for Mates {
    fn default() -> Self {
        Mates {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Mates {
    fn shard(&self, fragment: u32) -> std::sync::MutexGuard<'_, HashMap<u32, Fragment>> {
        self.shards[fragment as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The kernel linked `mate`, stored in `fragment` (called once per link: see
    /// `Nodes::remember_then`). True if a file of that fragment block was read already and
    /// the caller said it `will_push` this one: it counts as pushed.
    pub fn add(&self, fragment: u32, mate: Mate, will_push: bool) -> bool {
        let mut shard = self.shard(fragment);
        let f = shard.entry(fragment).or_default();
        let pushed = f.read && will_push;
        f.entries.push(Entry { mate, pushed });
        pushed
    }

    /// The kernel forgot `node`, stored in `fragment`.
    pub fn remove(&self, fragment: u32, node: u64) {
        let mut shard = self.shard(fragment);
        if let Some(f) = shard.get_mut(&fragment) {
            f.entries.retain(|e| e.mate.node != node);
            if f.entries.is_empty() {
                shard.remove(&fragment);
            }
        }
    }

    /// A file of `fragment` is being read: the files of it not pushed yet, in link order;
    /// they count as pushed from now on.
    pub fn take(&self, fragment: u32) -> Vec<Mate> {
        let mut shard = self.shard(fragment);
        let Some(f) = shard.get_mut(&fragment) else {
            return Vec::new();
        };
        f.read = true;
        f.entries
            .iter_mut()
            .filter(|e| !e.pushed)
            .map(|e| {
                e.pushed = true;
                e.mate
            })
            .collect()
    }

    /// Files known, over all fragments (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap()
                    .values()
                    .map(|f| f.entries.len())
                    .sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mate(node: u64) -> Mate {
        Mate {
            node,
            inode: MetaRef {
                block: 0,
                offset: node as u16,
            },
            start: node as u32 * 10,
            len: 10,
        }
    }

    #[test]
    fn each_linked_file_is_taken_once_in_link_order() {
        let mates = Mates::default();
        for node in [7, 3, 9] {
            mates.add(5, mate(node), true);
        }
        mates.add(21, mate(4), true); // same shard, other fragment
        assert_eq!(mates.take(5), vec![mate(7), mate(3), mate(9)]);
        assert_eq!(mates.take(5), vec![], "pushed once");
        mates.add(5, mate(8), false);
        assert_eq!(
            mates.take(5),
            vec![mate(8)],
            "linked later, not pushed by its linker"
        );
        assert_eq!(mates.take(21), vec![mate(4)]);
        assert_eq!(mates.take(6), vec![]);
    }

    #[test]
    fn a_file_linked_after_its_fragment_was_read_is_pushed_by_whoever_linked_it() {
        let mates = Mates::default();
        assert!(
            !mates.add(3, mate(1), true),
            "nothing of fragment 3 read yet"
        );
        assert_eq!(mates.take(3), vec![mate(1)]);
        assert!(mates.add(3, mate(2), true), "read: the linker pushes it");
        assert_eq!(mates.take(3), vec![], "and it is not pushed again");
    }

    #[test]
    fn forgotten_files_are_dropped_and_take_no_memory() {
        let mates = Mates::default();
        for node in 0..100 {
            mates.add(node as u32 % 3, mate(node), true);
        }
        for node in 0..100 {
            mates.remove(node as u32 % 3, node);
        }
        assert_eq!(mates.len(), 0);
        assert!(mates.shards.iter().all(|s| s.lock().unwrap().is_empty()));
        // Linked again after a forget: pushed again.
        mates.add(1, mate(1), true);
        assert_eq!(mates.take(1), vec![mate(1)]);
    }
}

//! The files a walk reads next, so that their blocks are decompressed on another core
//! while the walker is still busy with the file before.
//!
//! A walk of a tree (`tar c`, `cp -r`, `rsync`) reads each directory's files one after the
//! other in the order the directory lists them, each in full. squashfs lists entries in
//! name order, and mksquashfs stores the files' data in that order too. Without this, each
//! file's first block (or the fragment block its tail is in) was decompressed on the
//! request path while the walker waited: measured with perf during a cold `tar c` of a
//! Debian rootfs image, 91% of the daemon's zstd time was on request threads, and the
//! walk's wall time was about its CPU time, nothing overlapping. So when a READ reaches the
//! end of a file, the next files listed after it are handed to a prefetch thread, which
//! decompresses the next `AHEAD_BLOCKS` distinct blocks of theirs.
//!
//! Only a read that reaches a file's end counts as a walk: a program start reads an ELF
//! header and then faults in pages of a mapped library here and there, and blocks
//! decompressed ahead of that are work nobody wanted (see `streams`).

use std::collections::HashMap;
use std::sync::Mutex;

/// The most files remembered with a successor (a node id pair each): a listing beyond it
/// links no more, so memory stays bounded however many files the kernel keeps.
const MOST_LINKS: usize = 1 << 16;
/// Files looked at after the one read, at most, for blocks to decompress.
pub const AHEAD_FILES: usize = 32;
/// Distinct blocks decompressed ahead of a walk: as many as a sequential reader must read
/// before its own blocks are decompressed ahead (`streams::EVIDENCE`), so that a big file
/// the walk comes to is decompressed ahead from its start.
pub const AHEAD_BLOCKS: usize = 4;

/// Walk evidence at most (see `NextFiles::read_to_end`).
const MOST_EVIDENCE: u32 = 4;

/// Listing replies whose first files are decompressed ahead (see `NextFiles::listing`)
/// per file a walk reads to its end: a walk lists a directory and then reads it, so one
/// is enough for it; a listing-only walk after it (`find`, `ls -lR`) costs at most this
/// many listings' blocks.
const LISTINGS_PER_FILE: u32 = 2;

/// For each regular file listed, the regular file listed after it in the same reply; and
/// whether reads are going from file to file in that order.
#[derive(Default)]
pub struct NextFiles {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: HashMap<u64, u64>,
    /// The last file read to its end.
    last: u64,
    /// Up by one for each file read to its end that was listed shortly after the one read
    /// to its end before, down by one for any other.
    evidence: u32,
    /// Listing replies still to have their first files decompressed ahead.
    listings: u32,
}

impl Inner {
    fn after(&self, node: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut at = node;
        while let Some(&n) = self.next.get(&at) {
            if out.len() >= AHEAD_FILES || n == node || out.contains(&n) {
                break;
            }
            out.push(n);
            at = n;
        }
        out
    }
}

impl NextFiles {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the order of the regular files `files` (node ids) as one listing gave them.
    pub fn listed(&self, files: &[u64]) {
        if files.len() < 2 {
            return;
        }
        let mut inner = self.lock();
        for pair in files.windows(2) {
            if inner.next.len() >= MOST_LINKS && !inner.next.contains_key(&pair[0]) {
                break;
            }
            inner.next.insert(pair[0], pair[1]);
        }
    }

    /// A read reached the end of file `node`: the files listed after it (at most
    /// `AHEAD_FILES`), if the files read to their ends lately came in listing order (a
    /// walk); none otherwise. A walk does not READ every file (the kernel has many from
    /// page-cache pushes, see `mates`), so "in order" is: among the files listed shortly
    /// after the last one read to its end.
    pub fn read_to_end(&self, node: u64) -> Vec<u64> {
        let mut inner = self.lock();
        if node != inner.last {
            let followed = inner.last != 0 && inner.after(inner.last).contains(&node);
            inner.evidence = if followed {
                (inner.evidence + 1).min(MOST_EVIDENCE)
            } else {
                inner.evidence.saturating_sub(1)
            };
            inner.last = node;
        }
        if inner.evidence > 0 {
            inner.listings = LISTINGS_PER_FILE;
            inner.after(node)
        } else {
            Vec::new()
        }
    }

    /// A listing reply went out: whether its first files are to be decompressed ahead. A
    /// walk reads a directory's first file the moment it has listed it, before any file of
    /// the directory is read to its end, and so before `read_to_end` hands on any of them:
    /// every directory's first file was decompressed on the request path while the walk
    /// waited. Only while a walk reads files to their ends (see `LISTINGS_PER_FILE`).
    pub fn listing(&self) -> bool {
        let mut inner = self.lock();
        let go = inner.listings > 0;
        inner.listings = inner.listings.saturating_sub(1);
        go
    }

    /// The kernel forgot `node`: its place in the order goes (its predecessor's link to it
    /// stays, and leads nowhere once the node is gone or stands for another inode).
    pub fn forget(&self, node: u64) {
        self.lock().next.remove(&node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_read_to_their_ends_in_listing_order_get_the_next_ones_decompressed() {
        let walk = NextFiles::default();
        walk.listed(&[10, 11, 12, 13, 14]);
        walk.listed(&[20, 21, 22]);
        // One file alone is no walk.
        assert_eq!(walk.read_to_end(10), Vec::<u64>::new());
        // The next, or one a little further (the ones between came by page-cache push).
        assert_eq!(walk.read_to_end(12), vec![13, 14]);
        assert_eq!(walk.read_to_end(14), Vec::<u64>::new(), "the listing's end");
        // Into the next directory: one step off the order, the walk goes on.
        assert_eq!(walk.read_to_end(20), vec![21, 22]);
        // A read out of order ends it; reads in order start it again.
        assert_eq!(walk.read_to_end(12), Vec::<u64>::new());
        assert_eq!(walk.read_to_end(10), Vec::<u64>::new());
        assert_eq!(walk.read_to_end(11), vec![12, 13, 14]);
    }

    #[test]
    fn listings_get_their_first_files_decompressed_only_while_a_walk_reads() {
        let walk = NextFiles::default();
        walk.listed(&[10, 11, 12]);
        // Listing alone (`find`, `ls -lR`): nothing decompressed.
        assert!(!walk.listing());
        walk.read_to_end(10);
        assert!(!walk.listing(), "one file read is no walk");
        walk.read_to_end(11);
        // A walk: the next listings, a bounded number per file it reads to its end.
        for _ in 0..LISTINGS_PER_FILE {
            assert!(walk.listing());
        }
        assert!(
            !walk.listing(),
            "a listing-only walk after it costs a bounded number"
        );
        walk.read_to_end(12);
        assert!(walk.listing(), "reading on gives more");
        // Reads out of order end the walk (the evidence runs out): no more.
        for node in 90..95 {
            walk.read_to_end(node);
        }
        while walk.listing() {}
        walk.read_to_end(95);
        assert!(!walk.listing());
    }

    #[test]
    fn a_loop_or_a_long_chain_ends_and_forgotten_files_leave_the_order() {
        let walk = NextFiles::default();
        walk.listed(&[1, 2, 3, 1]);
        assert_eq!(walk.lock().after(1), vec![2, 3]);
        let long: Vec<u64> = (100..200).collect();
        walk.listed(&long);
        assert_eq!(walk.lock().after(100).len(), AHEAD_FILES);
        walk.forget(101);
        assert_eq!(walk.lock().after(100), vec![101]);
    }
}

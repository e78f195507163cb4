//! Open regular files: the checked block list, loaded once at open, and what readahead
//! and the page-cache pushes need to know about the reader.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sqfs::FileData;

pub struct OpenFile {
    pub node: u64,
    pub data: FileData,
    /// Where the last read ended: a read starting here is sequential.
    pub last_end: AtomicU64,
    /// Blocks the readahead keeps decompressed ahead of a sequential reader: it starts at
    /// one and doubles with every sequential read (as the kernel's readahead window grows),
    /// so a program reading a little of many files (python's start-up) doesn't pay for
    /// megabytes it never reads.
    pub window: AtomicU64,
    /// Blocks whose push into the kernel's page cache is queued or under way, one bit each.
    /// Only in-flight pushes are remembered: the kernel may drop pushed pages at any time
    /// (memory pressure, `POSIX_FADV_DONTNEED`), and a READ for a block means some of its
    /// pages are missing, so once a push is done the block may be pushed again.
    pushing: Vec<AtomicU64>,
}

impl OpenFile {
    pub fn new(node: u64, data: FileData) -> Self {
        let words = data.block_count().div_ceil(64) + 1;
        OpenFile {
            node,
            data,
            last_end: AtomicU64::new(u64::MAX),
            window: AtomicU64::new(0),
            pushing: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Marks a push of block `index` in flight; false if one already is.
    pub fn start_push(&self, index: usize) -> bool {
        let Some(word) = self.pushing.get(index / 64) else {
            return false;
        };
        let bit = 1u64 << (index % 64);
        word.fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    /// The push of block `index` is over (done, failed or dropped).
    pub fn end_push(&self, index: usize) {
        if let Some(word) = self.pushing.get(index / 64) {
            word.fetch_and(!(1u64 << (index % 64)), Ordering::AcqRel);
        }
    }
}

/// File handles given out by `open`.
#[derive(Default)]
pub struct Handles {
    next: AtomicU64,
    /// Read on every FUSE read, written only at open and release.
    open: RwLock<HashMap<u64, Arc<OpenFile>>>,
}

impl Handles {
    pub fn insert(&self, file: OpenFile) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.open
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, Arc::new(file));
        fh
    }

    pub fn get(&self, fh: u64) -> Option<Arc<OpenFile>> {
        self.open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh)
            .cloned()
    }

    pub fn remove(&self, fh: u64) {
        self.open
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh);
    }

    pub fn count(&self) -> usize {
        self.open.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

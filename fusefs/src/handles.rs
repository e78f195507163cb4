//! Open regular files: the checked block list, loaded once at open, and what readahead
//! and the page-cache pushes need to know about the reader.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

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

/// Files read without an open (FUSE_NO_OPEN_SUPPORT) whose state is kept; past this many,
/// one is dropped for each new one (its state is rebuilt from cached metadata if read again).
const FILES_BY_INODE: usize = 1024;

/// File handles given out by `open`, and the state of files read without one.
#[derive(Default)]
pub struct Handles {
    next: AtomicU64,
    /// Read on every FUSE read, written only at open and release.
    open: RwLock<HashMap<u64, Arc<OpenFile>>>,
    /// When the kernel opens files without asking us, READs come with handle 0 and the
    /// file's state lives here, by inode, shared by every reader of the file.
    by_inode: Mutex<HashMap<u64, Arc<OpenFile>>>,
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

    /// The state of file `node` for a READ without an open, made by `load` the first time.
    pub fn by_inode<E>(
        &self,
        node: u64,
        load: impl FnOnce() -> Result<FileData, E>,
    ) -> Result<Arc<OpenFile>, E> {
        let files = || self.by_inode.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = files().get(&node) {
            return Ok(file.clone());
        }
        // Loaded outside the lock: a block list can take metadata reads.
        let file = Arc::new(OpenFile::new(node, load()?));
        let mut files = files();
        if files.len() >= FILES_BY_INODE && !files.contains_key(&node) {
            if let Some(&old) = files.keys().next() {
                files.remove(&old);
            }
        }
        Ok(files.entry(node).or_insert(file).clone())
    }

    pub fn count(&self) -> usize {
        self.open.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks_bin() -> FileData {
        let image = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/tiny/tiny-gzip.sqfs"
        );
        let archive = sqfs::Archive::open(image).unwrap();
        let inode = archive.lookup_path("blocks.bin").unwrap();
        archive.file_data(&inode).unwrap()
    }

    #[test]
    fn files_by_inode_are_loaded_once_and_bounded() {
        let handles = Handles::default();
        let data = blocks_bin();
        let loads = AtomicU64::new(0);
        let load = || -> Result<FileData, ()> {
            loads.fetch_add(1, Ordering::Relaxed);
            Ok(data.clone())
        };
        let a = handles.by_inode(5, load).unwrap();
        let again = handles.by_inode(5, load).unwrap();
        assert!(Arc::ptr_eq(&a, &again), "a second read shares the state");
        assert_eq!(loads.load(Ordering::Relaxed), 1);
        assert_eq!(a.data.size(), 12388);
        for node in 100..100 + 2 * FILES_BY_INODE as u64 {
            handles.by_inode(node, load).unwrap();
        }
        let kept = handles.by_inode.lock().unwrap().len();
        assert_eq!(kept, FILES_BY_INODE, "at most {FILES_BY_INODE} kept");
        // A failed load is reported and remembers nothing.
        assert!(handles.by_inode(7, || Err::<FileData, _>("bad")).is_err());
        assert!(!handles.by_inode.lock().unwrap().contains_key(&7));
    }
}

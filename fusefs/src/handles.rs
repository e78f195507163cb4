//! Open regular files: the checked block list, loaded once at open, and what readahead
//! and the page-cache pushes need to know about the reader.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sqfs::{FileData, MetaRef};

use crate::streams::Streams;

pub struct OpenFile {
    pub node: u64,
    /// Where the inode it was opened as is stored: the node may stand for another inode
    /// later (see `Nodes::remember_then`), and what is pushed for this file must not go
    /// to that one.
    pub inode: MetaRef,
    pub data: FileData,
    /// Its sequential readers, for the prefetch.
    pub streams: Streams,
    /// Blocks whose push into the kernel's page cache is queued or under way.
    /// Only in-flight pushes are remembered: the kernel may drop pushed pages at any time
    /// (memory pressure, `POSIX_FADV_DONTNEED`), and a READ for a block means some of its
    /// pages are missing, so once a push is done the block may be pushed again.
    pushing: BlockBits,
    /// Blocks a READ's answer held whole since their prefetch was queued: the prefetch
    /// threads skip them (decoding one would only put it back in the block cache, which
    /// let it go: see `Fs::answered_whole`).
    answered: BlockBits,
}

impl OpenFile {
    pub fn new(node: u64, inode: MetaRef, data: FileData) -> Self {
        let blocks = data.block_count();
        OpenFile {
            node,
            inode,
            data,
            streams: Streams::default(),
            pushing: BlockBits::new(blocks),
            answered: BlockBits::new(blocks),
        }
    }

    /// Block `index` is queued for the prefetch: it has not been answered since.
    pub fn prefetch_queued(&self, index: usize) {
        self.answered.clear(index);
    }

    /// A READ's answer held block `index` whole.
    pub fn answered(&self, index: usize) {
        self.answered.set(index);
    }

    /// Whether a READ's answer held block `index` whole since its prefetch was queued.
    pub fn answered_since_queued(&self, index: usize) -> bool {
        self.answered.get(index)
    }

    /// Marks a push of block `index` in flight; false if one already is.
    pub fn start_push(&self, index: usize) -> bool {
        self.pushing.set(index)
    }

    /// The push of block `index` is over (done, failed or dropped).
    pub fn end_push(&self, index: usize) {
        self.pushing.clear(index);
    }
}

/// One bit per block of a file, shared by threads. Blocks past the file's have no bit:
/// they read as clear and cannot be set.
struct BlockBits(Vec<AtomicU64>);

impl BlockBits {
    fn new(blocks: usize) -> Self {
        BlockBits(
            (0..blocks.div_ceil(64) + 1)
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }

    /// Sets block `index`'s bit; true if it was clear.
    fn set(&self, index: usize) -> bool {
        let bit = 1u64 << (index % 64);
        self.0
            .get(index / 64)
            .is_some_and(|word| word.fetch_or(bit, Ordering::AcqRel) & bit == 0)
    }

    fn clear(&self, index: usize) {
        if let Some(word) = self.0.get(index / 64) {
            word.fetch_and(!(1u64 << (index % 64)), Ordering::AcqRel);
        }
    }

    fn get(&self, index: usize) -> bool {
        let bit = 1u64 << (index % 64);
        self.0
            .get(index / 64)
            .is_some_and(|word| word.load(Ordering::Acquire) & bit != 0)
    }
}

/// Files read without an open (FUSE_NO_OPEN_SUPPORT) whose state is kept: at most this
/// many, and at most this many blocks in their block lists together (about 8 bytes each,
/// and a hostile image can give one small file millions of hole blocks). Past either, the
/// state of files no READ is using is dropped first; it is rebuilt from cached metadata if
/// the file is read again.
const FILES_BY_INODE: usize = 1024;
const BLOCKS_BY_INODE: usize = 1 << 20;

/// File handles given out by `open`, and the state of files read without one.
#[derive(Default)]
pub struct Handles {
    next: AtomicU64,
    /// Read on every FUSE read, written only at open and release.
    open: RwLock<HashMap<u64, Arc<OpenFile>>>,
    /// When the kernel opens files without asking us, READs come with handle 0 and the
    /// file's state lives here, by inode, shared by every reader of the file.
    by_inode: RwLock<ByInode>,
}

/// The files read without an open, and the blocks their lists hold together.
#[derive(Default)]
struct ByInode {
    files: HashMap<u64, Arc<OpenFile>>,
    blocks: usize,
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

    /// The state of file `node`, the inode stored at `inode`, for a READ without an open,
    /// made by `load` the first time. Kept by node id, and remade when the node stands for
    /// another inode now (a damaged image can number two inodes alike).
    pub fn by_inode<E>(
        &self,
        node: u64,
        inode: MetaRef,
        load: impl FnOnce() -> Result<FileData, E>,
    ) -> Result<Arc<OpenFile>, E> {
        if let Some(file) = self
            .by_inode
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .files
            .get(&node)
            .filter(|f| f.inode == inode)
        {
            return Ok(file.clone());
        }
        // Loaded outside the lock: a block list can take metadata reads.
        let file = Arc::new(OpenFile::new(node, inode, load()?));
        let mut kept = self.by_inode.write().unwrap_or_else(|e| e.into_inner());
        let ByInode { files, blocks } = &mut *kept;
        match files.get(&node) {
            Some(present) if present.inode == inode => return Ok(present.clone()),
            Some(_) => {
                if let Some(gone) = files.remove(&node) {
                    *blocks -= gone.data.block_count();
                }
            }
            None => {}
        }
        *blocks += file.data.block_count();
        while !files.is_empty() && (files.len() >= FILES_BY_INODE || *blocks > BLOCKS_BY_INODE) {
            // A file no READ holds right now, else any.
            let victim = files
                .iter()
                .find(|(_, f)| Arc::strong_count(f) == 1)
                .or_else(|| files.iter().next())
                .map(|(&n, _)| n)
                .expect("not empty");
            if let Some(gone) = files.remove(&victim) {
                *blocks -= gone.data.block_count();
            }
        }
        files.insert(node, file.clone());
        Ok(file)
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
    fn a_block_answered_since_its_prefetch_was_queued_is_skipped_only_until_queued_again() {
        let at = MetaRef {
            block: 0,
            offset: 8,
        };
        let file = OpenFile::new(1, at, blocks_bin());
        assert!(!file.answered_since_queued(2));
        file.prefetch_queued(2);
        file.answered(2);
        assert!(
            file.answered_since_queued(2),
            "answered after it was queued"
        );
        assert!(!file.answered_since_queued(1) && !file.answered_since_queued(3));
        // Read again later (the page cache let it go): queued again, decoded again.
        file.prefetch_queued(2);
        assert!(!file.answered_since_queued(2));
        // Past the file's blocks: nothing, no panic.
        file.answered(1 << 20);
        assert!(!file.answered_since_queued(1 << 20));
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
        let at = MetaRef {
            block: 0,
            offset: 8,
        };
        let a = handles.by_inode(5, at, load).unwrap();
        let again = handles.by_inode(5, at, load).unwrap();
        assert!(Arc::ptr_eq(&a, &again), "a second read shares the state");
        assert_eq!(loads.load(Ordering::Relaxed), 1);
        assert_eq!(a.data.size(), 12388);
        for node in 100..100 + 2 * FILES_BY_INODE as u64 {
            handles.by_inode(node, at, load).unwrap();
        }
        let kept = handles.by_inode.read().unwrap();
        assert_eq!(
            kept.files.len(),
            FILES_BY_INODE,
            "at most {FILES_BY_INODE} kept"
        );
        let counted: usize = kept.files.values().map(|f| f.data.block_count()).sum();
        assert_eq!(kept.blocks, counted, "the running block count stays exact");
        drop(kept);
        // A failed load is reported and remembers nothing.
        assert!(handles
            .by_inode(7, at, || Err::<FileData, _>("bad"))
            .is_err());
        assert!(!handles.by_inode.read().unwrap().files.contains_key(&7));
    }

    #[test]
    fn a_node_that_stands_for_another_inode_now_is_loaded_again() {
        let handles = Handles::default();
        let data = blocks_bin();
        let loads = AtomicU64::new(0);
        let load = || -> Result<FileData, ()> {
            loads.fetch_add(1, Ordering::Relaxed);
            Ok(data.clone())
        };
        let (first, second) = (
            MetaRef {
                block: 0,
                offset: 8,
            },
            MetaRef {
                block: 0,
                offset: 40,
            },
        );
        let a = handles.by_inode(5, first, load).unwrap();
        let b = handles.by_inode(5, second, load).unwrap();
        assert_eq!(
            loads.load(Ordering::Relaxed),
            2,
            "not the first inode's state"
        );
        assert_eq!((a.inode, b.inode), (first, second));
        let kept = handles.by_inode.read().unwrap();
        assert_eq!(kept.files.len(), 1, "one state per node");
        assert_eq!(
            kept.blocks,
            data.block_count(),
            "the block count stays exact"
        );
    }
}

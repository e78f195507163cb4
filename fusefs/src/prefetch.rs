//! Work done off the request path, on other cores, and the page-cache pushes.
//!
//! The prefetch threads decompress the blocks a sequential reader will want next (so one
//! reader is not bound to one core's codec speed). The pushes (FUSE notify-store) put into
//! the kernel's page cache what it would otherwise ask for, READ by READ: the rest of a
//! block a read took part of, so a block is decompressed once however it is read, as the
//! kernel's own driver does; and the other small files of a fragment block one of them was
//! read from (`mates`).

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crossbeam_channel::{bounded, Receiver, Sender};
use fuser::{INodeNo, Notifier};
use sqfs::{Archive, Block, Inode, MetaRef};

use crate::handles::OpenFile;
use crate::nodes::Nodes;
use crate::walk::AHEAD_BLOCKS;

/// Blocks to decompress into the block cache.
enum Prefetch {
    /// Block `.1` of file `.0`.
    Block(Arc<OpenFile>, usize),
    /// The blocks of the files `.0`, in order (each file's blocks, then the fragment block
    /// its tail is in), up to `walk::AHEAD_BLOCKS` distinct ones, leaving out fragment
    /// block `.1` (the one the walk is reading).
    Ahead(Vec<Arc<Inode>>, Option<u32>),
}

/// Bytes of a decompressed block that belong at `at` in the file with node id `node`, the
/// inode stored at `inode` (pushed only while the node stands for that inode).
/// `bytes` may come from the image unchecked (a fragment's files are placed by their
/// inodes): it is checked against the block before use, and a piece that does not fit is
/// left to its own READ (which fails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub node: u64,
    pub inode: MetaRef,
    pub at: u64,
    pub bytes: Range<usize>,
}

/// What the page-store thread pushes into the page cache.
enum Push {
    /// Block `.1` of file `.0` (decompressed: `.3`) at offset `.2`.
    Block(Arc<OpenFile>, usize, u64, Block),
    /// Pieces of one block.
    Pieces(Block, Vec<Piece>),
}

/// Bytes a request thread pushes itself before it answers a read; the rest go to the
/// page-store thread.
const PUSHED_BEFORE_ANSWER: usize = 128 << 10;

/// Bytes of blocks the page-store thread may have waiting. A queued push keeps its whole
/// block alive after the cache has let it go: with 1 MiB blocks read at random, a queue
/// bounded only by its length (64) held 64 MiB beside the 32 MiB cache (daemon peak RSS
/// 104 MiB under fio). As much as that queue held of 128 KiB blocks.
const MOST_QUEUED_BYTES: usize = 8 << 20;

pub struct Background {
    archive: Arc<Archive>,
    /// Prefetch workers to start.
    threads: usize,
    /// The prefetch workers' queue, made with them at the first prefetch (None if they
    /// could not be started: prefetching is then skipped).
    jobs: OnceLock<Option<Sender<Prefetch>>>,
    /// The page-store thread's queue, made with it at the first push (None as for `jobs`).
    stores: OnceLock<Option<Sender<Push>>>,
    /// Bytes of the blocks of the pushes queued (see `MOST_QUEUED_BYTES`).
    queued: Arc<AtomicUsize>,
    notifier: Arc<OnceLock<Notifier>>,
    nodes: Arc<Nodes>,
    /// Held by the one request thread at a time that pushes pieces itself (see
    /// `store_pieces`); None while the session has a single request thread.
    pusher: Option<Mutex<()>>,
}

impl Background {
    /// Up to `threads` prefetch workers and one page-cache writer, each started when it is
    /// first given work, not before: a mount that is only stat-ed or listed never starts
    /// them. Started at once, they were five threads created, and then spinning in their
    /// queues' receive (sched_yield) before parking, on the two cores that the mount's
    /// first requests wait for. Request threads never wait on them: a full queue drops
    /// the job (it is only ever an optimisation).
    pub fn start(
        archive: Arc<Archive>,
        notifier: Arc<OnceLock<Notifier>>,
        nodes: Arc<Nodes>,
        threads: usize,
    ) -> Self {
        Background {
            archive,
            threads: threads.max(1),
            jobs: OnceLock::new(),
            stores: OnceLock::new(),
            queued: Arc::new(AtomicUsize::new(0)),
            notifier,
            nodes,
            pusher: None,
        }
    }

    /// The prefetch workers' queue, starting them the first time.
    fn jobs(&self) -> Option<&Sender<Prefetch>> {
        self.jobs
            .get_or_init(|| {
                let (jobs, rx) = bounded::<Prefetch>(256);
                let mut started = 0;
                for i in 0..self.threads {
                    let rx = rx.clone();
                    let archive = self.archive.clone();
                    let spawned = std::thread::Builder::new()
                        .name(format!("prefetch-{i}"))
                        .spawn(move || {
                            for job in rx {
                                match job {
                                    Prefetch::Block(file, index) => {
                                        if !file.answered_since_queued(index) {
                                            let _ = archive.data_block(&file.data, index);
                                        }
                                    }
                                    Prefetch::Ahead(files, skip) => ahead(&archive, &files, skip),
                                }
                            }
                        });
                    started += usize::from(spawned.is_ok());
                }
                (started > 0).then_some(jobs)
            })
            .as_ref()
    }

    /// The page-store thread's queue, starting it the first time.
    fn stores(&self) -> Option<&Sender<Push>> {
        self.stores
            .get_or_init(|| {
                // One writer: a store waits for pages that a pending read holds locked, and
                // that read is served by a request thread, which never waits here.
                let (stores, rx) = bounded::<Push>(64);
                let notifier = self.notifier.clone();
                let nodes = self.nodes.clone();
                let queued = self.queued.clone();
                std::thread::Builder::new()
                    .name("page-store".into())
                    .spawn(move || store_all(rx, &notifier, &nodes, &queued))
                    .ok()
                    .map(|_| stores)
            })
            .as_ref()
    }

    /// Lets request threads push pieces themselves; only safe with two or more of them
    /// (see `store_pieces`).
    pub fn push_in_requests(&mut self) {
        self.pusher = Some(Mutex::new(()));
    }

    pub fn prefetch(&self, file: &Arc<OpenFile>, index: usize) {
        file.prefetch_queued(index);
        if let Some(jobs) = self.jobs() {
            let _ = jobs.try_send(Prefetch::Block(file.clone(), index));
        }
    }

    /// Decompresses the blocks that `files`, listed after a file a walk has just read
    /// (see `walk`), start in, other than fragment block `skip`.
    pub fn prefetch_ahead(&self, files: Vec<Arc<Inode>>, skip: Option<u32>) {
        if files.is_empty() {
            return;
        }
        if let Some(jobs) = self.jobs() {
            let _ = jobs.try_send(Prefetch::Ahead(files, skip));
        }
    }

    /// Pushes `block`, block `index` of `file`, into the page cache at `offset`, unless a
    /// push of it is already in flight. By the page-store thread: the pages a read being
    /// answered holds locked may be among them.
    pub fn store(&self, file: &Arc<OpenFile>, index: usize, offset: u64, block: Block) {
        if file.start_push(index) && !self.queue(Push::Block(file.clone(), index, offset, block)) {
            file.end_push(index);
        }
    }

    /// Hands `push` to the page-store thread, unless its queue is full or holds
    /// `MOST_QUEUED_BYTES` already (the push is then dropped: it is only ever an
    /// optimisation). Whether it was queued.
    fn queue(&self, push: Push) -> bool {
        let size = match &push {
            Push::Block(.., block) | Push::Pieces(block, _) => block.len(),
        };
        let before = self.queued.fetch_add(size, Ordering::AcqRel);
        if before + size > MOST_QUEUED_BYTES && before > 0 {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return false;
        }
        if self
            .stores()
            .is_none_or(|stores| stores.try_send(push).is_err())
        {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Pushes `pieces` of `block` into their page caches, in order, before a read about
    /// to be answered; none of them may hold a page that read holds locked.
    ///
    /// A reader asks for the next piece as soon as it has its answer, before the
    /// page-store thread, woken on another core, has pushed it: so the first pieces are
    /// pushed here, before the answer goes, by one request thread at a time. A push waits
    /// while a read of the same pages is in flight, and that read is answered by another
    /// request thread: with one pushing at a time, the others are free to.
    pub fn store_pieces(&self, block: Block, mut pieces: Vec<Piece>) {
        if let (Some(lock), Some(n)) = (&self.pusher, self.notifier.get()) {
            if let Ok(_one_at_a_time) = lock.try_lock() {
                let mut bytes = 0;
                let mut done = 0;
                for piece in &pieces {
                    if bytes >= PUSHED_BEFORE_ANSWER {
                        break;
                    }
                    bytes += piece.bytes.len();
                    push_piece(n, &self.nodes, &block, piece);
                    done += 1;
                }
                pieces.drain(..done);
            }
        }
        if !pieces.is_empty() {
            self.queue(Push::Pieces(block, pieces));
        }
    }
}

/// The `Prefetch::Ahead` job: errors are left to the reads that will meet them.
fn ahead(archive: &Archive, files: &[Arc<Inode>], skip: Option<u32>) {
    let mut seen: Vec<u32> = skip.into_iter().collect();
    let mut blocks = 0;
    for inode in files {
        if blocks >= AHEAD_BLOCKS {
            break;
        }
        let Ok(data) = archive.file_data(inode) else {
            continue;
        };
        for index in 0..data.block_count() {
            if blocks >= AHEAD_BLOCKS {
                return;
            }
            let _ = archive.data_block(&data, index);
            blocks += 1;
        }
        if blocks >= AHEAD_BLOCKS {
            break;
        }
        if let Some(fragment) = data.fragment() {
            if !seen.contains(&fragment) {
                seen.push(fragment);
                let _ = archive.tail_block(&data);
                blocks += 1;
            }
        }
    }
}

/// The page-store thread: does every push it is given until the session ends.
fn store_all(
    pushes: Receiver<Push>,
    notifier: &OnceLock<Notifier>,
    nodes: &Nodes,
    queued: &AtomicUsize,
) {
    for push in pushes {
        let size = match &push {
            Push::Block(.., block) | Push::Pieces(block, _) => block.len(),
        };
        let _done = Release(queued, size);
        let Some(n) = notifier.get() else {
            if let Push::Block(file, index, ..) = push {
                file.end_push(index);
            }
            continue;
        };
        match push {
            Push::Block(file, index, offset, block) => {
                if nodes.holds(file.node, file.inode) {
                    let _ = n.store(INodeNo(file.node), offset, &block);
                }
                file.end_push(index);
            }
            Push::Pieces(block, pieces) => {
                for piece in &pieces {
                    push_piece(n, nodes, &block, piece);
                }
            }
        }
    }
}

/// Takes a handled push's bytes off the queue's count when dropped.
struct Release<'a>(&'a AtomicUsize, usize);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

/// Pushes `piece` of `block` into its file's page cache, if the node still stands for the
/// inode the piece was cut for: the kernel's size for the node is then that inode's, and
/// a push past it would make the file longer (fuse_notify_store() extends i_size).
fn push_piece(notifier: &Notifier, nodes: &Nodes, block: &[u8], piece: &Piece) {
    if let Some(bytes) = block.get(piece.bytes.clone()) {
        if nodes.holds(piece.node, piece.inode) {
            let _ = notifier.store(INodeNo(piece.node), piece.at, bytes);
        }
    }
}

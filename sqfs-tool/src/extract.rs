//! `sqfs extract`: the tree written out like `unsquashfs -d DIR` does it, by a pipeline of
//! the shape unsquashfs uses (its `-processors N` sets its decompressor threads; a reader
//! thread and a writer thread run besides them, even with `-processors 1`):
//!
//! - this thread walks the image, creates directories, symlinks and special files (with
//!   their attributes), and queues regular files in batches of about 1 MiB of blocks and
//!   fragment tails, so that small files do not cost a thread handoff each;
//! - `-p N` workers read and decompress the batches, each block into a buffer of its own;
//! - one writer thread takes the batches in walk order: creates each file, writes its
//!   blocks (holes are skipped and stay holes), sets owner, xattrs, mode and mtime through
//!   the open descriptor, closes it, and makes hard links to it;
//! - once all is written, directory attributes, deepest first, so a mode-000 directory does
//!   not block its children.
//!
//! The writer's queue is bounded: a few MiB of decompressed blocks wait at most.
//!
//! Nothing is reached by a path from the current directory: the walker and the writer
//! each keep the descriptors of the directories they are in (the walker's queue tells the
//! writer when it enters and leaves one), and `dest` makes every entry relative to one of
//! them (see `dest.rs` for what that guarantees, and what `-f` does).
//!
//! A subtree keeps its path, as with unsquashfs: extracting `/usr/bin` writes `DIR/usr/bin`,
//! with `/usr`'s attributes on `DIR/usr` (and the root's on `DIR`, always).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use sqfs::{Archive, Attr, FileData, FileType, Inode, Xattr};

use crate::dest::{self, split_last, Dest, DirRecord};
use crate::error::{Error, Result};
use crate::sys;
use crate::walk::{check_name, Visitor, Walk};

/// Decompressed bytes per batch of work, about: 8 blocks of 128 KiB.
const BATCH_BYTES: u64 = 1 << 20;
/// Writer entries per batch at most (small files, links).
const BATCH_ITEMS: usize = 256;
/// Batches queued for the writer at most: with `BATCH_BYTES`, about 8 MiB waiting.
const QUEUE_BATCHES: usize = 8;

/// How to extract.
#[derive(Debug, Clone)]
pub struct Options {
    /// Extract into a destination that has contents (see `dest.rs` for what happens to
    /// entries the image also has).
    pub force: bool,
    /// Decompressor threads, at least 1.
    pub processors: usize,
    /// Draw a progress bar on standard error, if it is a terminal.
    pub progress: bool,
}

/// What an extraction created, as unsquashfs counts it (the destination is a directory).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub devices: u64,
    pub fifos: u64,
    pub sockets: u64,
    pub hard_links: u64,
    /// Device nodes not made: that needs root.
    pub skipped_devices: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "created {} files, {} directories, {} symlinks, {} devices, {} fifos, {} sockets, \
             {} hard links",
            self.files,
            self.dirs,
            self.symlinks,
            self.devices,
            self.fifos,
            self.sockets,
            self.hard_links
        )
    }
}

/// A batch's decompressed pieces, one per part (a buffer and how many of its bytes count),
/// up to the first part that failed, and that failure.
type Made = (Vec<(Vec<u8>, usize)>, Option<sqfs::Error>);

/// Where one batch's bytes go: filled once by a worker, taken once by the writer.
#[derive(Default)]
struct Slot {
    result: Mutex<Option<Made>>,
    ready: Condvar,
}

impl Slot {
    fn fill(&self, result: Made) {
        let mut r = self.result.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(result);
            self.ready.notify_one();
        }
    }

    fn take(&self) -> Made {
        let mut r = self.result.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(result) = r.take() {
                return result;
            }
            r = self.ready.wait(r).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A part of a file a worker makes: stored block `Some(i)`, or the fragment tail (`None`).
type Part = (Arc<FileData>, Option<usize>);

/// The parts of one batch, for one worker.
struct Task {
    parts: Vec<Part>,
    slot: Arc<Slot>,
}

impl Drop for Task {
    /// A task dropped unfilled (a worker that stopped) must not leave the writer waiting.
    fn drop(&mut self) {
        self.slot.fill((Vec::new(), None));
    }
}

/// A regular file, as the writer needs it.
struct NewFile {
    /// Below the destination; its last component is the name.
    path: Box<[u8]>,
    attr: Attr,
    xattrs: Vec<Xattr>,
    size: u64,
}

/// What the writer does, in walk order.
enum Item {
    /// The walker made this directory (in the current one); what follows is in it.
    Enter(Box<[u8]>),
    /// Back to the directory the matching `Enter` was in.
    Leave,
    Open(Box<NewFile>),
    /// The batch's next piece belongs at this offset of the open file.
    Data(u64),
    Close,
    /// A hard link at this path to the regular file queued earlier at the first, made
    /// once that file exists.
    Link(Box<[u8]>, Box<[u8]>),
}

impl Item {
    /// The bytes the item holds (names, xattrs), counted like a batch's data: a queue of
    /// files with long paths or big xattrs (an image may give each of thousands of files
    /// the same 16 MiB of them) stays as small as a queue of data blocks.
    fn held_bytes(&self) -> u64 {
        let bytes = match self {
            Item::Enter(name) => name.len(),
            Item::Open(new) => {
                new.path.len()
                    + new
                        .xattrs
                        .iter()
                        .map(|x| x.name.len() + x.value.len())
                        .sum::<usize>()
            }
            Item::Link(first, path) => first.len() + path.len(),
            Item::Leave | Item::Data(_) | Item::Close => 0,
        };
        bytes as u64
    }
}

/// The writer's unit: items, and the slot their data comes from.
#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    slot: Option<Arc<Slot>>,
}

/// State shared by the walker, the workers and the writer.
struct Shared<'a> {
    archive: &'a Archive,
    dest: Dest,
    progress: ProgressBar,
    /// Block-sized buffers, back from the writer to the workers.
    buffers: Mutex<Vec<Vec<u8>>>,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl Shared<'_> {
    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::Relaxed);
        let mut first = self.error.lock().unwrap_or_else(|e| e.into_inner());
        // Another thread's "stopped" is only the echo of the first real failure.
        if first.is_none() || matches!(*first, Some(Error::Stopped)) {
            *first = Some(e);
        }
    }
}

/// The walker's side of the queues: the batch being built and where it goes.
struct Queue {
    to_workers: Sender<Task>,
    to_writer: SyncSender<Batch>,
    items: Vec<Item>,
    parts: Vec<Part>,
    bytes: u64,
}

impl Queue {
    fn item(&mut self, item: Item) -> Result<()> {
        self.bytes += item.held_bytes();
        self.items.push(item);
        self.maybe_flush()
    }

    fn data(&mut self, data: &Arc<FileData>, block: Option<usize>, at: u64, len: u64) {
        self.parts.push((data.clone(), block));
        self.items.push(Item::Data(at));
        self.bytes += len;
    }

    /// Ends a batch once it is big enough (never in the middle of a file's blocks: a batch
    /// may end anywhere, the writer keeps its open file across batches).
    fn maybe_flush(&mut self) -> Result<()> {
        if self.bytes >= BATCH_BYTES || self.items.len() >= BATCH_ITEMS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        let slot = if self.parts.is_empty() {
            None
        } else {
            let slot = Arc::new(Slot::default());
            let task = Task {
                parts: std::mem::take(&mut self.parts),
                slot: slot.clone(),
            };
            self.to_workers.send(task).map_err(|_| Error::Stopped)?;
            Some(slot)
        };
        let items = std::mem::take(&mut self.items);
        self.bytes = 0;
        self.to_writer
            .send(Batch { items, slot })
            .map_err(|_| Error::Stopped)
    }
}

/// Extracts `from` (a path in the image; `/` for all of it) into `dir`.
pub fn extract(archive: &Archive, from: &str, dir: &Path, options: &Options) -> Result<Summary> {
    let root = archive.root().map_err(|e| Error::Image {
        path: "/".into(),
        source: e,
    })?;
    let chain = resolve_chain(archive, &root, from)?;
    let dest = Dest::open(dir, options.force)?;
    // Everything is created with the image's mode (or gets it later): no umask in the way.
    sys::clear_umask();
    sys::raise_fd_limit();
    let progress = if options.progress && std::io::stderr().is_terminal() {
        progress_bar(total_bytes(archive, &root, &chain)?)
    } else {
        ProgressBar::hidden()
    };
    let shared = Shared {
        archive,
        dest,
        progress,
        buffers: Mutex::new(Vec::new()),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
    };
    let (to_workers, tasks) = channel::<Task>();
    let tasks = Mutex::new(tasks);
    let (to_writer, batches) = sync_channel::<Batch>(QUEUE_BATCHES);
    let walked = std::thread::scope(|s| {
        for _ in 0..options.processors.max(1) {
            s.spawn(|| work(&shared, &tasks));
        }
        s.spawn(|| write(&shared, batches));
        // Moved in, so that both queues close when the walk ends.
        let queue = Queue {
            to_workers,
            to_writer,
            items: Vec::new(),
            parts: Vec::new(),
            bytes: 0,
        };
        let mut walker = Walker::new(&shared, queue)?;
        let r = walker
            .run(&root, &chain)
            .and_then(|()| walker.queue.flush());
        if let Err(e) = r {
            shared.fail(e);
        }
        Ok::<_, Error>((walker.dirs, walker.summary))
    });
    shared.progress.finish_and_clear();
    let (dirs, summary) = walked?;
    if let Some(e) = shared.error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    dest::set_dir_attrs(&shared.dest, archive, &dirs)?;
    Ok(summary)
}

/// The inodes on the way to `from`, without following symlinks (as unsquashfs).
fn resolve_chain(archive: &Archive, root: &Inode, from: &str) -> Result<Vec<(Vec<u8>, Inode)>> {
    let mut chain: Vec<(Vec<u8>, Inode)> = Vec::new();
    for part in from.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let dir = chain.last().map_or(root, |(_, i)| i);
        let fail = |source| Error::Image {
            path: from.to_string(),
            source,
        };
        check_name(b"", part.as_bytes()).map_err(|_| fail(sqfs::Error::NotFound))?;
        let inode = archive.lookup(dir, part.as_bytes()).map_err(fail)?;
        chain.push((part.as_bytes().to_vec(), inode));
    }
    Ok(chain)
}

/// The bytes of regular files to write (each inode once), for the progress bar's length.
fn total_bytes(archive: &Archive, root: &Inode, chain: &[(Vec<u8>, Inode)]) -> Result<u64> {
    #[derive(Default)]
    struct Sizes {
        total: u64,
        linked: HashSet<u32>,
    }
    impl Visitor for Sizes {
        fn node(&mut self, _: &[u8], _: &[u8], inode: &Inode) -> Result<()> {
            if inode.kind() == FileType::File
                && (inode.nlink() <= 1 || self.linked.insert(inode.number()))
            {
                self.total = self.total.saturating_add(inode.size());
            }
            Ok(())
        }
        fn leave(&mut self, _: &[u8], _: &Inode) -> Result<()> {
            Ok(())
        }
    }
    let mut sizes = Sizes::default();
    let mut walk = Walk::new(archive, b"");
    match chain.last() {
        None => walk.children(root, &mut sizes)?,
        Some((name, start)) => walk.node(start, name, &mut sizes)?,
    }
    Ok(sizes.total)
}

/// Where a non-directory inode was first written: its directory's record and its name (not
/// its path: that would cost the depth of the tree for every entry, and a hostile image of a
/// few kilobytes, thousands of entries under a chain of long names, asked for gigabytes).
struct First {
    dir: usize,
    name: Box<[u8]>,
    is_file: bool,
}

/// The walking thread: creates what needs no data at once, queues regular files.
struct Walker<'s, 'a> {
    shared: &'s Shared<'a>,
    queue: Queue,
    /// Every directory made, in walk order, for the attributes at the end.
    dirs: Vec<DirRecord>,
    /// The directories the walk is in: record index and descriptor (the destination first).
    stack: Vec<(usize, OwnedFd)>,
    /// Where each non-directory inode was first written, for hard links to it.
    links: HashMap<u32, First>,
    summary: Summary,
}

impl<'s, 'a> Walker<'s, 'a> {
    fn new(shared: &'s Shared<'a>, queue: Queue) -> Result<Self> {
        let root_fd = shared
            .dest
            .root_fd()
            .try_clone_to_owned()
            .map_err(|e| shared.dest.io_error(b"", e))?;
        Ok(Walker {
            shared,
            queue,
            dirs: Vec::new(),
            stack: vec![(0, root_fd)],
            links: HashMap::new(),
            summary: Summary::default(),
        })
    }

    /// The destination stands for the image's root; then the directories on the way to
    /// the subtree, then the subtree.
    fn run(&mut self, root: &Inode, chain: &[(Vec<u8>, Inode)]) -> Result<()> {
        let archive = self.shared.archive;
        self.dirs.push(DirRecord {
            parent: 0,
            name: Box::default(),
            inode: root.clone(),
        });
        self.summary.dirs += 1;
        let mut walk = Walk::new(archive, b"");
        let Some(((name, start), above)) = chain.split_last() else {
            return walk.children(root, self);
        };
        walk.enter(root, b"")?;
        let mut path = Vec::new();
        for (name, dir) in above {
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name);
            walk.enter(dir, name)?;
            self.node(&path, name, dir)?;
        }
        walk.node(start, name, self)?;
        for (name, dir) in above.iter().rev() {
            self.leave(&path, dir)?;
            walk.exit(name);
            path.truncate(split_last(&path).0.len());
        }
        Ok(())
    }

    fn parent(&self) -> BorrowedFd<'_> {
        self.stack
            .last()
            .map_or(self.shared.dest.root_fd(), |(_, fd)| fd.as_fd())
    }

    /// Remembers that inode `number` was first written as `name` in the current directory.
    fn remember(&mut self, number: u32, name: &[u8], is_file: bool) {
        let dir = self.stack.last().map_or(0, |(i, _)| *i);
        let name = name.into();
        self.links.insert(number, First { dir, name, is_file });
    }

    /// The path below the destination where `first` was written.
    fn path_of(&self, first: &First) -> Vec<u8> {
        let mut path = dest::record_path(&self.dirs, first.dir);
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&first.name);
        path
    }

    fn queue_file(&mut self, path: &[u8], inode: &Inode) -> Result<()> {
        let shared = self.shared;
        let archive = shared.archive;
        let dest = &shared.dest;
        let fail = |e| dest.image_error(path, e);
        let data = Arc::new(archive.file_data(inode).map_err(fail)?);
        let attr = archive.attr(inode).map_err(fail)?;
        let xattrs = archive.xattrs(inode).map_err(fail)?;
        self.remember(inode.number(), split_last(path).1, true);
        let size = data.size();
        self.queue.item(Item::Open(Box::new(NewFile {
            path: path.into(),
            attr,
            xattrs,
            size,
        })))?;
        let bs = u64::from(archive.superblock().block_size);
        let blocks = data.block_count();
        for i in 0..blocks {
            if !data.is_hole(i) {
                self.queue.data(&data, Some(i), i as u64 * bs, bs);
                self.queue.maybe_flush()?;
            }
        }
        let tail_at = blocks as u64 * bs;
        if tail_at < size {
            self.queue.data(&data, None, tail_at, size - tail_at);
        }
        self.queue.item(Item::Close)?;
        self.queue.maybe_flush()?;
        self.summary.files += 1;
        Ok(())
    }
}

impl Visitor for Walker<'_, '_> {
    fn node(&mut self, path: &[u8], name: &[u8], inode: &Inode) -> Result<()> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(Error::Stopped);
        }
        let shared = self.shared;
        let archive = shared.archive;
        let dest = &shared.dest;
        // Any non-directory inode met again is a hard link to where it was first written
        // (symlinks, fifos and devices can be hard-linked too).
        if !inode.is_dir() {
            if let Some(first) = self.links.get(&inode.number()) {
                let (first_path, is_file) = (self.path_of(first), first.is_file);
                self.summary.hard_links += 1;
                if is_file {
                    let item = Item::Link(first_path.into(), path.into());
                    return self.queue.item(item);
                }
                return dest.link(&first_path, self.parent(), name, path);
            }
        }
        match inode.kind() {
            FileType::Directory => {
                let fd = dest.make_dir(self.parent(), name, path)?;
                let parent = self.stack.last().map_or(0, |(i, _)| *i);
                self.dirs.push(DirRecord {
                    parent,
                    name: name.into(),
                    inode: inode.clone(),
                });
                self.stack.push((self.dirs.len() - 1, fd));
                self.summary.dirs += 1;
                self.queue.item(Item::Enter(name.into()))?;
            }
            FileType::File => self.queue_file(path, inode)?,
            FileType::Symlink => {
                let target = archive
                    .read_link(inode)
                    .map_err(|e| dest.image_error(path, e))?;
                let parent = self.parent();
                dest.make(parent, name, path, "symlink", || {
                    sys::symlink_at(target, parent, name)
                })?;
                dest.node_attrs(archive, parent, name, path, inode)?;
                self.remember(inode.number(), name, false);
                self.summary.symlinks += 1;
            }
            FileType::BlockDevice | FileType::CharDevice | FileType::Fifo | FileType::Socket => {
                let is_device =
                    matches!(inode.kind(), FileType::BlockDevice | FileType::CharDevice);
                if is_device && !dest.root {
                    self.summary.skipped_devices += 1;
                    return Ok(());
                }
                let parent = self.parent();
                dest.make(parent, name, path, "special file", || {
                    sys::mknod_at(parent, name, inode.kind(), inode.mode(), inode.rdev())
                })?;
                dest.node_attrs(archive, parent, name, path, inode)?;
                self.remember(inode.number(), name, false);
                match inode.kind() {
                    FileType::Fifo => self.summary.fifos += 1,
                    FileType::Socket => self.summary.sockets += 1,
                    _ => self.summary.devices += 1,
                }
            }
        }
        Ok(())
    }

    fn leave(&mut self, _: &[u8], _: &Inode) -> Result<()> {
        self.stack.pop();
        self.queue.item(Item::Leave)
    }
}

/// A worker: reads and decompresses batches until the queue closes.
fn work(shared: &Shared, tasks: &Mutex<Receiver<Task>>) {
    let archive = shared.archive;
    let bs = u64::from(archive.superblock().block_size);
    loop {
        let Ok(task) = tasks.lock().unwrap_or_else(|e| e.into_inner()).recv() else {
            return;
        };
        if shared.failed.load(Ordering::Relaxed) {
            continue; // dropping the task tells the writer
        }
        let blocks = task.parts.iter().filter(|(_, b)| b.is_some()).count();
        let mut free = {
            let mut pool = shared.buffers.lock().unwrap_or_else(|e| e.into_inner());
            let keep = pool.len().saturating_sub(blocks);
            pool.split_off(keep)
        };
        let mut pieces = Vec::with_capacity(task.parts.len());
        let mut error = None;
        for (data, block) in &task.parts {
            let piece = match *block {
                // Each block is written once: decompress into a buffer of our own, not the
                // cache. Buffers keep their full length: no zeroing per block.
                Some(i) => {
                    let mut buf = free.pop().unwrap_or_default();
                    match archive.data_block_into(data, i, &mut buf) {
                        Ok(Some(n)) => Ok((buf, n)),
                        Ok(None) => Err(sqfs::Error::Corrupt("a hole was queued as data".into())),
                        Err(e) => Err(e),
                    }
                }
                None => {
                    let at = data.block_count() as u64 * bs;
                    let mut buf = vec![0u8; (data.size() - at) as usize];
                    archive.read_data(data, at, &mut buf).map(|n| (buf, n))
                }
            };
            match piece {
                Ok(p) => pieces.push(p),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        task.slot.fill((pieces, error));
    }
}

/// The file the writer is filling.
struct OpenFile {
    file: File,
    new: Box<NewFile>,
    /// Where the last piece written ends (short of the size: a trailing hole).
    end: u64,
    /// Bytes counted on the progress bar so far.
    counted: u64,
}

/// The writing thread's state: the directories it is in, lazily opened.
struct Writer<'s, 'a> {
    shared: &'s Shared<'a>,
    /// Names of the directories below the destination the walk is in, and their
    /// descriptors once the writer needed them.
    dirs: Vec<(Box<[u8]>, Option<OwnedFd>)>,
    open: Option<OpenFile>,
}

impl Writer<'_, '_> {
    /// The descriptor of the directory the walk is in, opening the ones not opened yet
    /// (without following symlinks, from their parent's descriptor).
    fn current_dir(&mut self) -> Result<BorrowedFd<'_>> {
        let dest = &self.shared.dest;
        if let Some(first) = self.dirs.iter().position(|(_, fd)| fd.is_none()) {
            for i in first..self.dirs.len() {
                let parent = match i {
                    0 => dest.root_fd(),
                    _ => self.dirs[i - 1]
                        .1
                        .as_ref()
                        .map_or(dest.root_fd(), |fd| fd.as_fd()),
                };
                let opened = sys::open_path_dir_at(parent, &self.dirs[i].0).map_err(|e| {
                    let names: Vec<&[u8]> = self.dirs[..=i].iter().map(|(n, _)| &**n).collect();
                    dest.io_error(&names.join(&b'/'), e)
                })?;
                self.dirs[i].1 = Some(opened);
            }
        }
        Ok(self
            .dirs
            .last()
            .and_then(|(_, fd)| fd.as_ref())
            .map_or(dest.root_fd(), |fd| fd.as_fd()))
    }

    fn item(
        &mut self,
        item: Item,
        pieces: &mut impl Iterator<Item = (Vec<u8>, usize)>,
        error: &mut Option<sqfs::Error>,
        done: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        let shared = self.shared;
        let dest = &shared.dest;
        match item {
            Item::Enter(name) => self.dirs.push((name, None)),
            Item::Leave => {
                self.dirs.pop();
            }
            Item::Open(new) => {
                let parent = self.current_dir()?;
                let file = create(dest, parent, &new)?;
                self.open = Some(OpenFile {
                    file,
                    new,
                    end: 0,
                    counted: 0,
                });
            }
            Item::Data(at) => {
                let Some(open) = &mut self.open else {
                    return Err(Error::Internal("data for no file"));
                };
                let Some((buf, n)) = pieces.next() else {
                    let e = error
                        .take()
                        .map_or(Error::Stopped, |e| dest.image_error(&open.new.path, e));
                    return Err(e);
                };
                open.file
                    .write_all_at(&buf[..n], at)
                    .map_err(|e| dest.io_error(&open.new.path, e))?;
                open.end = at + n as u64;
                open.counted += n as u64;
                shared.progress.inc(n as u64);
                if buf.len() == shared.archive.superblock().block_size as usize {
                    done.push(buf);
                }
            }
            Item::Close => {
                let Some(open) = self.open.take() else {
                    return Err(Error::Internal("close of no file"));
                };
                // Holes count as written.
                shared
                    .progress
                    .inc(open.new.size.saturating_sub(open.counted));
                finish(dest, &open)?;
            }
            Item::Link(first, path) => {
                let parent = self.current_dir()?;
                let name = split_last(&path).1;
                dest.link(&first, parent, name, &path)?;
            }
        }
        Ok(())
    }
}

/// The writer: creates, fills and finishes the queued files in order.
fn write(shared: &Shared, batches: Receiver<Batch>) {
    let mut writer = Writer {
        shared,
        dirs: Vec::new(),
        open: None,
    };
    let mut done = Vec::new();
    for batch in batches {
        let (pieces, mut error) = batch.slot.map(|slot| slot.take()).unwrap_or_default();
        let mut pieces = pieces.into_iter();
        for item in batch.items {
            if let Err(e) = writer.item(item, &mut pieces, &mut error, &mut done) {
                shared.fail(e);
                return; // the walker's next send fails, and the walk stops
            }
        }
        if !done.is_empty() {
            let mut pool = shared.buffers.lock().unwrap_or_else(|e| e.into_inner());
            pool.append(&mut done);
        }
    }
}

/// Creates a file with its final mode unless that has bits an owner change clears, or it
/// still needs xattrs (a read-only mode would refuse them to a plain user).
fn create(dest: &Dest, parent: BorrowedFd, new: &NewFile) -> Result<File> {
    let mode = new.attr.mode & 0o7777;
    let mode = if mode & 0o7000 != 0 || !new.xattrs.is_empty() {
        0o600
    } else {
        mode
    };
    let name = split_last(&new.path).1;
    dest.make(parent, name, &new.path, "file", || {
        sys::create_at(parent, name, mode)
    })
}

/// Length (for a trailing hole), owner, xattrs, mode, then mtime, on the open file.
fn finish(dest: &Dest, open: &OpenFile) -> Result<()> {
    let new = &open.new;
    let fail = |e| dest.io_error(&new.path, e);
    let file = &open.file;
    if open.end != new.size {
        file.set_len(new.size).map_err(fail)?;
    }
    let attr = &new.attr;
    if dest.root {
        sys::fchown(file, attr.uid, attr.gid).map_err(fail)?;
    }
    for x in &new.xattrs {
        let r = sys::fsetxattr(file, &x.name, &x.value);
        dest.xattr_result(r, &new.path, &x.name)?;
    }
    if attr.mode & 0o7000 != 0 || !new.xattrs.is_empty() {
        sys::fchmod(file, attr.mode).map_err(fail)?;
    }
    sys::fset_mtime(file, attr.mtime).map_err(fail)
}

/// A progress bar on a terminal, its length the bytes to write.
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "[{bar:50}] {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Archive {
        Archive::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/tiny/tiny-gzip.sqfs"))
            .unwrap()
    }

    #[test]
    fn the_progress_total_is_every_file_once() {
        let archive = tiny();
        let root = archive.root().unwrap();
        // The sizes `sqfs ls -lR` lists for the regular files, the two names of the hard
        // link counted once: 12388 + 7 + 7 + 0 + 21 + 17 + 7 + 300000.
        assert_eq!(total_bytes(&archive, &root, &[]).unwrap(), 312_447);
        let chain = resolve_chain(&archive, &root, "/dir").unwrap();
        assert_eq!(total_bytes(&archive, &root, &chain).unwrap(), 14);
    }

    /// Xattrs and paths count toward a batch's size: before, a batch ended only after 256
    /// items or 1 MiB of blocks, so 2,000 queued files sharing 16 MiB of xattrs (the most
    /// one inode may have) could hold 32 GiB.
    #[test]
    fn a_batch_ends_once_its_xattrs_and_names_are_big() {
        let (to_workers, _tasks) = channel();
        let (to_writer, batches) = sync_channel(QUEUE_BATCHES);
        let mut queue = Queue {
            to_workers,
            to_writer,
            items: Vec::new(),
            parts: Vec::new(),
            bytes: 0,
        };
        let archive = tiny();
        let attr = archive.attr(&archive.root().unwrap()).unwrap();
        let xattr = Xattr {
            name: b"user.big".to_vec(),
            value: vec![0; 64 << 10],
        };
        let file = |xattrs| {
            Item::Open(Box::new(NewFile {
                path: b"f"[..].into(),
                attr,
                xattrs,
                size: 0,
            }))
        };
        queue.item(file(vec![xattr.clone(); 15])).unwrap();
        assert!(batches.try_recv().is_err(), "less than 1 MiB waits");
        queue.item(file(vec![xattr; 2])).unwrap();
        let batch = batches
            .try_recv()
            .expect("a batch of more than 1 MiB is sent");
        assert_eq!(batch.items.len(), 2);
        // A long path alone does it too.
        let path = vec![b'n'; BATCH_BYTES as usize];
        queue
            .item(Item::Link(b"f"[..].into(), path.into()))
            .unwrap();
        assert_eq!(batches.try_recv().unwrap().items.len(), 1);
    }

    #[test]
    fn the_summary_reads_like_unsquashfs() {
        let s = Summary {
            files: 2,
            dirs: 3,
            hard_links: 1,
            ..Summary::default()
        };
        assert_eq!(
            s.to_string(),
            "created 2 files, 3 directories, 0 symlinks, 0 devices, 0 fifos, 0 sockets, 1 hard links"
        );
    }
}

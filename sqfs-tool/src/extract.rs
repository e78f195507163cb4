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

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use sqfs::{Archive, Attr, FileData, FileType, Inode, Xattr};

use crate::sys;
use crate::walk::{lookup, walk};

/// Decompressed bytes per batch of work, about: 8 blocks of 128 KiB.
const BATCH_BYTES: u64 = 1 << 20;
/// Writer entries per batch at most (small files, links).
const BATCH_ITEMS: usize = 256;
/// Batches queued for the writer at most: with `BATCH_BYTES`, about 8 MiB waiting.
const QUEUE_BATCHES: usize = 8;

/// An inode written out at `path`, whose attributes go on once its contents are in.
struct Job {
    path: PathBuf,
    inode: Inode,
}

/// A batch's decompressed pieces, one per part (a buffer and how many of its bytes count),
/// up to the first part that failed, and that failure.
type Made = (Vec<(Vec<u8>, usize)>, Option<String>);

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
        self.slot
            .fill((Vec::new(), Some("extraction stopped".into())));
    }
}

/// A regular file, as the writer needs it.
struct NewFile {
    path: PathBuf,
    attr: Attr,
    xattrs: Vec<Xattr>,
    size: u64,
}

/// What the writer does, in walk order.
enum Item {
    Open(Box<NewFile>),
    /// The batch's next piece belongs at this offset of the open file.
    Data(u64),
    Close,
    /// A hard link to a regular file queued earlier: made once the file exists.
    Link(PathBuf, PathBuf),
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
    root: bool,
    progress: ProgressBar,
    /// Block-sized buffers, back from the writer to the workers.
    buffers: Mutex<Vec<Vec<u8>>>,
    failed: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Shared<'_> {
    fn fail(&self, e: String) {
        self.failed.store(true, Ordering::Relaxed);
        self.error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
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
    fn item(&mut self, item: Item) -> Result<(), String> {
        self.items.push(item);
        if self.items.len() >= BATCH_ITEMS {
            self.flush()?;
        }
        Ok(())
    }

    fn data(&mut self, data: &Arc<FileData>, block: Option<usize>, at: u64, len: u64) {
        self.parts.push((data.clone(), block));
        self.items.push(Item::Data(at));
        self.bytes += len;
    }

    /// Ends a batch once it is big enough (never in the middle of a file's blocks: a batch
    /// may end anywhere, the writer keeps its open file across batches).
    fn maybe_flush(&mut self) -> Result<(), String> {
        if self.bytes >= BATCH_BYTES || self.items.len() >= BATCH_ITEMS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.items.is_empty() {
            return Ok(());
        }
        let stopped = || "extraction stopped".to_string();
        let slot = if self.parts.is_empty() {
            None
        } else {
            let slot = Arc::new(Slot::default());
            let task = Task {
                parts: std::mem::take(&mut self.parts),
                slot: slot.clone(),
            };
            self.to_workers.send(task).map_err(|_| stopped())?;
            Some(slot)
        };
        let items = std::mem::take(&mut self.items);
        self.bytes = 0;
        self.to_writer
            .send(Batch { items, slot })
            .map_err(|_| stopped())
    }
}

pub fn run(
    archive: &Archive,
    from: &str,
    dir: &Path,
    processors: Option<usize>,
) -> Result<(), String> {
    let start = lookup(archive, from)?;
    prepare_destination(dir)?;
    // Everything is created with the image's mode (or gets it later): no umask in the way.
    sys::clear_umask();
    let workers = processors
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let shared = Shared {
        archive,
        root: sys::is_root(),
        progress: progress_bar(),
        buffers: Mutex::new(Vec::new()),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
    };
    let mut later = Vec::new(); // directories, for attributes at the end
    let mut skipped_devices = 0usize;
    let (to_workers, tasks) = channel::<Task>();
    let tasks = Mutex::new(tasks);
    let (to_writer, batches) = sync_channel::<Batch>(QUEUE_BATCHES);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| work(&shared, &tasks));
        }
        s.spawn(|| write(&shared, batches));
        // Moved in, so that both queues close when the walk ends.
        let mut queue = Queue {
            to_workers,
            to_writer,
            items: Vec::new(),
            parts: Vec::new(),
            bytes: 0,
        };
        let walked = queue_tree(
            &shared,
            start,
            from,
            dir,
            &mut queue,
            &mut later,
            &mut skipped_devices,
        )
        .and_then(|()| queue.flush());
        if let Err(e) = walked {
            shared.fail(e);
        }
    });
    shared.progress.finish_and_clear();
    if let Some(e) = shared.error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    // Parents were pushed before children: reversed, every directory comes after its contents.
    for job in later.iter().rev() {
        apply_attrs(archive, job, shared.root)?;
    }
    if skipped_devices > 0 {
        eprintln!("sqfs: warning: {skipped_devices} device node(s) not created: that needs root");
    }
    Ok(())
}

/// Walks the image: creates what needs no data at once, queues regular files.
fn queue_tree(
    shared: &Shared,
    start: Inode,
    from: &str,
    dir: &Path,
    queue: &mut Queue,
    later: &mut Vec<Job>,
    skipped_devices: &mut usize,
) -> Result<(), String> {
    let archive = shared.archive;
    let start_is_dir = start.is_dir();
    // Where each non-directory inode was first written, and whether it is a regular file.
    let mut links: HashMap<u32, (PathBuf, bool)> = HashMap::new();
    let bs = u64::from(archive.superblock().block_size);
    walk(archive, start, &mut |rel, inode| {
        if shared.failed.load(Ordering::Relaxed) {
            return Err("extraction stopped".into());
        }
        let path = if rel.is_empty() {
            if start_is_dir {
                dir.to_path_buf()
            } else {
                dir.join(from.rsplit('/').find(|s| !s.is_empty()).unwrap_or("file"))
            }
        } else {
            dir.join(OsStr::from_bytes(rel))
        };
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        let fail_sqfs = |e: sqfs::Error| format!("{}: {e}", path.display());
        // Any non-directory inode met again is a hard link to where it was first written
        // (symlinks, fifos and devices can be hard-linked too).
        if !inode.is_dir() {
            if let Some((first, is_file)) = links.get(&inode.number) {
                if *is_file {
                    return queue.item(Item::Link(first.clone(), path));
                }
                return fs::hard_link(first, &path).map_err(fail);
            }
        }
        match inode.kind {
            FileType::Directory => {
                if !rel.is_empty() {
                    fs::create_dir(&path).map_err(fail)?;
                }
                later.push(Job {
                    path,
                    inode: inode.clone(),
                });
            }
            FileType::File => {
                let data = Arc::new(archive.file_data(inode).map_err(fail_sqfs)?);
                let attr = archive.attr(inode).map_err(fail_sqfs)?;
                let xattrs = archive.xattrs(inode).map_err(fail_sqfs)?;
                links.insert(inode.number, (path.clone(), true));
                let size = data.size();
                shared.progress.inc_length(size);
                queue.item(Item::Open(Box::new(NewFile {
                    path,
                    attr,
                    xattrs,
                    size,
                })))?;
                let blocks = data.block_count();
                for i in 0..blocks {
                    if !data.is_hole(i) {
                        queue.data(&data, Some(i), i as u64 * bs, bs);
                        queue.maybe_flush()?;
                    }
                }
                let tail_at = blocks as u64 * bs;
                if tail_at < size {
                    queue.data(&data, None, tail_at, size - tail_at);
                }
                queue.item(Item::Close)?;
                queue.maybe_flush()?;
            }
            FileType::Symlink => {
                let target = archive.read_link(inode).map_err(fail_sqfs)?;
                symlink(OsStr::from_bytes(target), &path).map_err(fail)?;
                links.insert(inode.number, (path.clone(), false));
                let job = Job {
                    path,
                    inode: inode.clone(),
                };
                apply_attrs(archive, &job, shared.root)?;
            }
            FileType::BlockDevice | FileType::CharDevice | FileType::Fifo | FileType::Socket => {
                let is_device = matches!(inode.kind, FileType::BlockDevice | FileType::CharDevice);
                if is_device && !shared.root {
                    *skipped_devices += 1;
                    return Ok(());
                }
                sys::mknod(&path, inode.mode(), inode.rdev()).map_err(fail)?;
                links.insert(inode.number, (path.clone(), false));
                let job = Job {
                    path,
                    inode: inode.clone(),
                };
                apply_attrs(archive, &job, shared.root)?;
            }
        }
        Ok(())
    })
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
                        Ok(None) => Err("a hole was queued as data".to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
                None => {
                    let at = data.block_count() as u64 * bs;
                    let mut buf = vec![0u8; (data.size() - at) as usize];
                    match archive.read_data(data, at, &mut buf) {
                        Ok(n) => Ok((buf, n)),
                        Err(e) => Err(e.to_string()),
                    }
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

/// The writer: creates, fills and finishes the queued files in order.
fn write(shared: &Shared, batches: Receiver<Batch>) {
    let block_size = shared.archive.superblock().block_size as usize;
    let mut open: Option<(File, Box<NewFile>, u64)> = None;
    let mut done = Vec::new();
    for batch in batches {
        let (pieces, mut error) = batch.slot.map(|slot| slot.take()).unwrap_or_default();
        let mut pieces = pieces.into_iter();
        for item in batch.items {
            let r = match item {
                Item::Open(new) => create(&new).map(|f| open = Some((f, new, 0))),
                Item::Data(at) => match (&mut open, pieces.next()) {
                    (Some((file, new, end)), Some((buf, n))) => {
                        let r = file
                            .write_all_at(&buf[..n], at)
                            .map_err(|e| format!("{}: {e}", new.path.display()));
                        *end = at + n as u64;
                        shared.progress.inc(n as u64);
                        if buf.len() == block_size {
                            done.push(buf);
                        }
                        r
                    }
                    (Some((_, new, _)), None) => Err(format!(
                        "{}: {}",
                        new.path.display(),
                        error.take().unwrap_or_else(|| "missing data".into())
                    )),
                    (None, _) => Err("internal error: data for no file".into()),
                },
                Item::Close => match open.take() {
                    Some((file, new, end)) => finish(shared, file, &new, end),
                    None => Err("internal error: close of no file".into()),
                },
                Item::Link(first, path) => {
                    fs::hard_link(first, &path).map_err(|e| format!("{}: {e}", path.display()))
                }
            };
            if let Err(e) = r {
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
fn create(new: &NewFile) -> Result<File, String> {
    let mode = new.attr.mode & 0o7777;
    let mode = if mode & 0o7000 != 0 || !new.xattrs.is_empty() {
        0o600
    } else {
        mode
    };
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&new.path)
        .map_err(|e| format!("{}: {e}", new.path.display()))
}

/// Length (for a trailing hole), owner, xattrs, mode, then mtime, on the open file.
fn finish(shared: &Shared, file: File, new: &NewFile, end: u64) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", new.path.display());
    if end != new.size {
        file.set_len(new.size).map_err(fail)?;
    }
    let attr = &new.attr;
    if shared.root {
        std::os::unix::fs::fchown(&file, Some(attr.uid), Some(attr.gid)).map_err(fail)?;
    }
    for x in &new.xattrs {
        match sys::fsetxattr(&file, &x.name, &x.value) {
            Ok(()) => {}
            // Without root, trusted.* and security.* cannot be set: unsquashfs skips them too.
            Err(_) if !shared.root && !x.name.starts_with(b"user.") => {}
            Err(e) => {
                return Err(format!(
                    "{}: xattr {}: {e}",
                    new.path.display(),
                    String::from_utf8_lossy(&x.name)
                ))
            }
        }
    }
    let mode = attr.mode & 0o7777;
    if mode & 0o7000 != 0 || !new.xattrs.is_empty() {
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(fail)?;
    }
    sys::fset_mtime(&file, attr.mtime).map_err(fail)
}

fn prepare_destination(dir: &Path) -> Result<(), String> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "{}: destination exists and is not empty",
                    dir.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
        }
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

/// A progress bar on a terminal; its length grows as the walk finds files.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "[{bar:50}] {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar
}

/// Owner (as root), mode, xattrs, then mtime last, since each of the others changes ctime
/// and chown clears setuid bits. By path: for directories, symlinks and special files.
fn apply_attrs(archive: &Archive, job: &Job, root: bool) -> Result<(), String> {
    let path = &job.path;
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let attr = archive
        .attr(&job.inode)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if root {
        sys::lchown(path, attr.uid, attr.gid).map_err(fail)?;
    }
    if job.inode.kind != FileType::Symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(attr.mode & 0o7777)).map_err(fail)?;
    }
    let xattrs = archive
        .xattrs(&job.inode)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    for x in xattrs {
        match sys::lsetxattr(path, &x.name, &x.value) {
            Ok(()) => {}
            // Without root, trusted.* and security.* cannot be set: unsquashfs skips them too.
            Err(_) if !root && !x.name.starts_with(b"user.") => {}
            Err(e) => {
                return Err(format!(
                    "{}: xattr {}: {e}",
                    path.display(),
                    String::from_utf8_lossy(&x.name)
                ))
            }
        }
    }
    sys::set_mtime(path, attr.mtime).map_err(fail)
}

//! The FUSE operations over an `sqfs::Archive`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, Notifier, OpenAccMode, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr,
    Request,
};
use sqfs::{Archive, DirEntry, Inode};

use crate::attr::{file_attr, fuse_type, Owners};
use crate::dirplus::{self, DirPlusReply};
use crate::handles::{Handles, OpenFile};
use crate::mates::{Mate, Mates};
use crate::nodes::Nodes;
use crate::prefetch::{Background, Piece};
use crate::push_ahead::{Listed, PushAhead};
use crate::read_reply::{self, Gathered};
use crate::walk::{NextFiles, AHEAD_FILES};

/// A read-only image never changes under us: cache entries and attributes for a century.
pub const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// Bytes a sequential reader is kept ahead by decompression on other cores.
const READ_AHEAD_BYTES: u64 = 4 << 20;
/// Distinct error messages logged; a corrupt image must not flood the log.
const MAX_LOGGED_ERRORS: usize = 1000;
/// Small files waiting, over all directories, for their listing to go on (see `push_late`).
const MOST_LATE: usize = 4096;

thread_local! {
    /// Each request thread's buffer for reads that span blocks (see `reply_range`).
    static REPLY_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

pub struct SquashFs {
    archive: Arc<Archive>,
    nodes: Arc<Nodes>,
    /// The linked small files of each fragment block, pushed together (see `mates`).
    mates: Mates,
    /// By directory: small files a listing linked to fragment blocks already read from,
    /// to push when the listing goes on (see `push_late`).
    late: Mutex<HashMap<u64, Vec<(u32, Mate)>>>,
    handles: Arc<Handles>,
    /// The order listings gave the files in, for decompressing ahead of a walk.
    walk: NextFiles,
    /// A walk's listed files, pushed into the page cache before it reads them.
    ahead: PushAhead,
    background: Background,
    owners: Owners,
    notifier: Arc<OnceLock<Notifier>>,
    /// The session's /dev/fuse descriptor, for the replies fuser cannot make (`dirplus`);
    /// see `configure`.
    device: Arc<OnceLock<OwnedFd>>,
    logged: Mutex<HashSet<String>>,
    /// Seconds since the epoch of the last request, for `-o timeout=N`.
    last_activity: Arc<AtomicU64>,
    /// The kernel accepted FUSE_NO_OPENDIR_SUPPORT: opendir may answer ENOSYS once, and the
    /// kernel then opens directories without asking, keeping their cached listings.
    no_opendir: bool,
    /// The same for files (FUSE_NO_OPEN_SUPPORT): no OPEN, FLUSH or RELEASE per file,
    /// which were most of the requests of a warm `tar c`. Off while opens must be counted
    /// (`-o timeout=N` waits for the last file to close).
    no_open: bool,
    /// Opens must be seen (and counted): never ask the kernel to skip them.
    count_opens: bool,
    /// Every access must reach the session (`-o allow_root`: the kernel lets every user
    /// through and the session turns away all but root and the owner), so nothing the
    /// kernel could answer from its caches for someone else: no cached entries or
    /// attributes, directories and files opened by request.
    uncached: bool,
    /// The image has no xattrs at all (no xattr ids), so no inode can have one.
    no_xattrs: bool,
}

/// The session's notifier and a duplicate of its /dev/fuse descriptor, for the filesystem.
pub struct SessionSlots {
    notifier: Arc<OnceLock<Notifier>>,
    device: Arc<OnceLock<OwnedFd>>,
}

impl SessionSlots {
    /// Fills the slots from `session`; before it serves a request.
    pub(crate) fn fill(&self, session: &fuser::Session<SquashFs>) -> io::Result<()> {
        let _ = self.notifier.set(session.notifier());
        let _ = self.device.set(session.as_fd().try_clone_to_owned()?);
        Ok(())
    }
}

/// The last request's time and the open files, seen from outside the session.
#[derive(Clone)]
pub struct Monitor {
    last_activity: Arc<AtomicU64>,
    handles: Arc<Handles>,
}

impl Monitor {
    /// Seconds without a request, or None while a file is open.
    pub fn idle_secs(&self) -> Option<u64> {
        (self.handles.count() == 0)
            .then(|| now_secs().saturating_sub(self.last_activity.load(Ordering::Relaxed)))
    }
}

/// The inode number a directory's ".." lists.
fn directory_parent(dir: &Inode) -> Result<u32, Errno> {
    dir.parent().ok_or(Errno::ENOTDIR)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl SquashFs {
    /// A filesystem whose root is `root` (the image root, or `-o subdir=`).
    pub fn new(
        archive: Arc<Archive>,
        root: Inode,
        owners: Owners,
        prefetch_threads: usize,
    ) -> Self {
        let notifier = Arc::new(OnceLock::new());
        let no_xattrs = archive.xattr_id_count() == 0;
        let nodes = Arc::new(Nodes::new(root));
        SquashFs {
            no_opendir: false,
            no_open: false,
            count_opens: false,
            uncached: false,
            no_xattrs,
            mates: Mates::default(),
            late: Mutex::new(HashMap::new()),
            walk: NextFiles::default(),
            ahead: PushAhead::new(archive.clone(), nodes.clone(), notifier.clone()),
            background: Background::start(
                archive.clone(),
                notifier.clone(),
                nodes.clone(),
                prefetch_threads,
            ),
            nodes,
            archive,
            handles: Arc::new(Handles::default()),
            owners,
            notifier,
            device: Arc::new(OnceLock::new()),
            logged: Mutex::new(HashSet::new()),
            last_activity: Arc::new(AtomicU64::new(now_secs())),
        }
    }

    /// Request threads may push page-cache data themselves: there are `workers` of them.
    pub fn workers(mut self, workers: usize) -> Self {
        if workers >= 2 {
            self.background.push_in_requests();
        }
        self
    }

    /// Keeps OPEN and RELEASE coming, so that the monitor's count of open files is right
    /// (for an idle timeout).
    pub fn counting_opens(mut self) -> Self {
        self.count_opens = true;
        self
    }

    /// Lets no access bypass the session's check of who asks (see `uncached`): for
    /// `-o allow_root`. Costs a request per lookup, stat and open.
    pub fn checking_every_access(mut self) -> Self {
        self.count_opens = true;
        self.uncached = true;
        self
    }

    /// How long the kernel may keep a name's entry (a positive or a negative one).
    fn entry_ttl(&self) -> Duration {
        if self.uncached {
            Duration::ZERO
        } else {
            FOREVER
        }
    }

    /// What this filesystem takes from its session once the session exists (it is made
    /// after the filesystem, and owns it).
    pub(crate) fn session_slots(&self) -> SessionSlots {
        SessionSlots {
            notifier: self.notifier.clone(),
            device: self.device.clone(),
        }
    }

    /// The fuser settings this filesystem needs: every worker thread reads the session's one
    /// /dev/fuse descriptor (no clone_fd), since the replies built here (`dirplus`) are
    /// written to it and the kernel takes a reply only on the descriptor its request came
    /// from: with clone_fd a listing would never be answered.
    pub(crate) fn configure(config: &mut fuser::Config) {
        config.clone_fd = false;
    }

    /// What the idle timeout watches, usable after the filesystem moved into the session.
    pub fn monitor(&self) -> Monitor {
        Monitor {
            last_activity: self.last_activity.clone(),
            handles: self.handles.clone(),
        }
    }

    fn touch(&self) {
        self.last_activity.store(now_secs(), Ordering::Relaxed);
    }

    /// Turns a library error into an errno, logging each distinct corruption once.
    fn errno(&self, what: &str, e: sqfs::Error) -> Errno {
        let code = e.errno();
        if code == libc::EIO {
            let msg = format!("{what}: {e}");
            let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
            if logged.len() < MAX_LOGGED_ERRORS && logged.insert(msg.clone()) {
                eprintln!("squashfuse-rs: {msg}");
            }
        }
        Errno::from_i32(code)
    }

    fn inode(&self, node: INodeNo) -> Result<Arc<Inode>, Errno> {
        self.nodes.get(node.0).ok_or(Errno::ESTALE)
    }

    /// The attributes an entry reply carries: the node id as `ino`.
    fn entry_attr(&self, inode: &Inode) -> Result<FileAttr, Errno> {
        let attr = self
            .archive
            .attr(inode)
            .map_err(|e| self.errno("attributes", e))?;
        Ok(file_attr(
            inode,
            &attr,
            self.nodes.node_of(inode.number()),
            self.owners,
        ))
    }

    fn ttl(&self, inode: &Inode) -> Duration {
        if !self.uncached && self.nodes.attrs_cacheable(inode.number()) {
            FOREVER
        } else {
            Duration::ZERO
        }
    }

    fn child(&self, entry: &DirEntry) -> Result<Arc<Inode>, Errno> {
        self.archive
            .entry_inode(entry)
            .map(Arc::new)
            .map_err(|e| self.errno("directory entry", e))
    }

    /// Records a reference the kernel takes to `inode` (a lookup or a listed entry) and
    /// returns its node id and the inode the node stands for, whose attributes the kernel
    /// is to be told (see `Nodes::remember_then`). A small file stored in a fragment block
    /// one of whose files was read goes to `late`, if given, to be pushed once the kernel
    /// knows it (see `mates`).
    fn link(&self, inode: Arc<Inode>, late: Option<&mut Vec<(u32, Mate)>>) -> (u64, Arc<Inode>) {
        let mut pushed = None;
        let will_push = late.is_some();
        let (node, held) = self.nodes.remember_then(inode, 1, |node, inode| {
            if let Some((fragment, start)) = self.archive.fragment_of(inode) {
                let len = u32::try_from(inode.size()).unwrap_or(u32::MAX);
                let mate = Mate {
                    node,
                    inode: inode.reference(),
                    start,
                    len,
                };
                if self.mates.add(fragment, mate, will_push) {
                    pushed = Some((fragment, mate));
                }
            }
        });
        if let (Some(late), Some(mate)) = (late, pushed) {
            late.push(mate);
        }
        (node, held)
    }

    /// Pushes the small files a listing of directory `dir` linked to fragment blocks already
    /// read from (see `link`), once a later request of the listing says the kernel has
    /// taken in the reply that linked them.
    fn push_late(&self, dir: u64) {
        let Some(late) = self
            .late
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&dir)
        else {
            return;
        };
        let mut by_fragment: HashMap<u32, Vec<Mate>> = HashMap::new();
        for (fragment, mate) in late {
            by_fragment.entry(fragment).or_default().push(mate);
        }
        for mates in by_fragment.into_values() {
            // The block, through any one of its files (cached: one of them was just read).
            let block = mates.iter().find_map(|m| {
                let inode = self.nodes.get(m.node)?;
                if inode.reference() != m.inode {
                    return None;
                }
                let data = self.archive.file_data(&inode).ok()?;
                self.archive
                    .tail_block(&data)
                    .ok()
                    .flatten()
                    .map(|(b, _)| b)
            });
            if let Some(block) = block {
                let pieces = mates
                    .iter()
                    .map(|m| Piece {
                        node: m.node,
                        inode: m.inode,
                        at: 0,
                        bytes: m.start as usize..(m.start as usize).saturating_add(m.len as usize),
                    })
                    .collect();
                self.background.store_pieces(block, pieces);
            }
        }
    }

    /// The kernel dropped `count` references to `node`.
    fn unlink(&self, node: u64, count: u64) {
        self.nodes.forget(node, count, |node, inode| {
            if let Some((fragment, _)) = self.archive.fragment_of(inode) {
                self.mates.remove(fragment, node);
            }
            self.walk.forget(node);
        });
    }

    /// Calls `add(offset_after, name, number, kind)` for ".", ".." and the entries of `dir`
    /// from FUSE offset `offset` on, until `add` says the reply is full.
    fn list(
        &self,
        dir: &Inode,
        offset: u64,
        mut add: impl FnMut(u64, &[u8], Option<&DirEntry>) -> Result<bool, Errno>,
    ) -> Result<(), Errno> {
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        // Offsets: 1 after ".", 2 after "..", then 2 + the listing cookie of each entry.
        if offset == 0 && add(1, b".", None)? {
            return Ok(());
        }
        if offset <= 1 && add(2, b"..", None)? {
            return Ok(());
        }
        let entries = self
            .archive
            .read_dir_from(dir, offset.saturating_sub(2))
            .map_err(|e| self.errno("readdir", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| self.errno("readdir", e))?;
            if add(entry.cookie + 2, &entry.name, Some(&entry))? {
                break;
            }
        }
        Ok(())
    }

    /// A READDIRPLUS reply from `offset` on, every entry with its attributes but "." and
    /// "..", as large as the kernel asked for (it asks for what the reader's getdents
    /// buffer holds, up to 32 KiB and more; four times fewer replies than 4 KiB ones for a
    /// big directory). fuser's reply holds the entries, except around the one whose node id
    /// is not its inode number (the inode numbered 1: see `nodes`): fuser sends the node
    /// id as `d_ino` too, which must be the inode number, as the kernel's driver lists it.
    /// So a reply ends before that entry, and the one that starts with it is built here
    /// (`dirplus`, as small as every kernel takes). Returns that reply, if it is one; the
    /// node ids of the entries linked (each counted as a lookup) go to `linked`.
    fn list_plus(
        &self,
        dir: &Inode,
        offset: u64,
        reply: &mut ReplyDirectoryPlus,
        linked: &mut Vec<u64>,
        late: &mut Vec<(u32, Mate)>,
    ) -> Result<Option<DirPlusReply>, Errno> {
        let parent = directory_parent(dir)?;
        let mut own: Option<DirPlusReply> = None;
        let mut added = 0usize;
        let listed = self.list(dir, offset, |next, name, entry| {
            let Some(entry) = entry else {
                // The kernel links neither "." nor "..", whatever their node id says.
                let number = u64::from(if name == b"." { dir.number() } else { parent });
                let full = match own.as_mut() {
                    Some(own) => own.add(&dirplus::Entry {
                        name,
                        ino: number,
                        kind: fuser::FileType::Directory,
                        next,
                        linked: None,
                    }),
                    None => reply.add(
                        INodeNo(number),
                        next,
                        OsStr::from_bytes(name),
                        &Duration::ZERO,
                        &listed_dir_attr(number),
                        Generation(0),
                    ),
                };
                added += usize::from(!full);
                return Ok(full);
            };
            // Counted before the kernel can see it (and FORGET it), and before its
            // attributes are taken: they are those of the inode the node stands for.
            let late_before = late.len();
            let (node, inode) = self.link(self.child(entry)?, Some(late));
            let undo = |late: &mut Vec<(u32, Mate)>| {
                late.truncate(late_before);
                self.unlink(node, 1);
            };
            let attr = match self.entry_attr(&inode) {
                Ok(attr) => attr,
                Err(e) => {
                    undo(late);
                    return Err(e);
                }
            };
            let ttl = self.ttl(&inode);
            let number = u64::from(entry.inode_number);
            if own.is_none() && attr.ino.0 != number {
                if added > 0 {
                    undo(late);
                    return Ok(true);
                }
                own = Some(DirPlusReply::new(dirplus::SAFE_SIZE));
            }
            let full = match own.as_mut() {
                Some(own) => own.add(&dirplus::Entry {
                    name,
                    ino: number,
                    kind: fuse_type(entry.kind),
                    next,
                    linked: Some((&attr, ttl)),
                }),
                None => reply.add(
                    attr.ino,
                    next,
                    OsStr::from_bytes(name),
                    &ttl,
                    &attr,
                    Generation(0),
                ),
            };
            if full {
                undo(late);
            } else {
                added += 1;
                linked.push(node);
            }
            Ok(full)
        });
        match listed {
            Ok(()) => Ok(own),
            Err(e) => {
                for node in linked.drain(..) {
                    self.unlink(node, 1);
                }
                Err(e)
            }
        }
    }

    /// A read reached the end of file `node` (whose tail is in fragment block `fragment`):
    /// the blocks of the files listed after it are decompressed ahead (see `walk`).
    fn walk_on(&self, node: u64, fragment: Option<u32>) {
        let files: Vec<Arc<Inode>> = self
            .walk
            .read_to_end(node)
            .into_iter()
            .filter_map(|n| self.nodes.get(n))
            .collect();
        self.background.prefetch_ahead(files, fragment);
        self.ahead.file_read(node);
    }

    /// Decompressed block `index` of `file` (None for a sparse hole), through the cache.
    fn block(&self, file: &Arc<OpenFile>, index: usize) -> Result<Option<sqfs::Block>, Errno> {
        self.archive
            .data_block(&file.data, index)
            .map_err(|e| self.errno("read", e))
    }

    /// Answers a read that spans blocks from the cached blocks themselves (see
    /// `read_reply`). What does not add up (a damaged image) is left to `reply_range`, which
    /// says what is wrong. The parts of its first and last blocks it does not take go into
    /// the page cache before the answer: the READs around the page faults of a mapped
    /// library straddle blocks, and the next faults fall in the same blocks (six READs of
    /// one libc block after the first, in a traced `ch-run IMG -- true`).
    fn reply_gathered(
        &self,
        req: &Request,
        file: &Arc<OpenFile>,
        offset: u64,
        end: u64,
        reply: ReplyData,
    ) {
        let data = &file.data;
        let bs = u64::from(self.archive.superblock().block_size);
        let (first, last) = (offset / bs, (end - 1) / bs);
        let Some(device) = self.device.get() else {
            return self.reply_range(file, offset, (end - offset) as u32, reply);
        };
        if last - first >= read_reply::MOST_PARTS as u64 {
            return self.reply_range(file, offset, (end - offset) as u32, reply);
        }
        let mut out = Gathered::with_capacity((last - first + 1) as usize);
        let mut edges = Vec::new();
        for index in first..=last {
            let base = index * bs;
            let (lo, hi) = (
                (offset.max(base) - base) as usize,
                (end.min(base + bs) - base) as usize,
            );
            // The block's bytes of the file, where they lie in `block`.
            let (block, within) = if index < data.block_count() as u64 {
                match self.block(file, index as usize) {
                    // The block holds exactly the file's bytes of it (checked as loaded).
                    Ok(Some(block)) if hi <= block.len() => {
                        let len = block.len();
                        (block, 0..len)
                    }
                    Ok(Some(_)) => {
                        return self.reply_range(file, offset, (end - offset) as u32, reply)
                    }
                    Ok(None) => {
                        out.zeros(hi - lo);
                        continue;
                    }
                    Err(e) => return reply.error(e),
                }
            } else {
                match self.archive.tail_block(data) {
                    Ok(Some((block, tail))) if tail.start + hi <= tail.end => (block, tail),
                    _ => return self.reply_range(file, offset, (end - offset) as u32, reply),
                }
            };
            // Pages before `offset` and from `end` on are not the ones this read holds
            // locked (a read of cached pages starts and, short of the file's end, ends on
            // page boundaries).
            let mut rest = Vec::new();
            if index == first && lo > 0 {
                rest.push(Piece {
                    node: file.node,
                    inode: file.inode,
                    at: base,
                    bytes: within.start..within.start + lo,
                });
            }
            if index == last && within.start + hi < within.end {
                rest.push(Piece {
                    node: file.node,
                    inode: file.inode,
                    at: end,
                    bytes: within.start + hi..within.end,
                });
            }
            if !rest.is_empty() {
                edges.push((block.clone(), rest));
            }
            out.bytes(block, within.start + lo..within.start + hi);
        }
        for (block, pieces) in edges {
            self.background.store_pieces(block, pieces);
        }
        let sent = out.send(device.as_fd(), req.unique().0);
        drop(out);
        match sent {
            Ok(()) => {
                // Answered; fuser's reply holds nothing (see `readdirplus`).
                std::mem::forget(reply);
                self.answered_whole(file, offset, end);
            }
            Err(e) => match e.raw_os_error() {
                // The request was interrupted, or the mount is gone: nobody waits.
                Some(libc::ENOENT | libc::ENODEV) => std::mem::forget(reply),
                _ => reply.error(Errno::EIO),
            },
        }
    }

    /// After an answer to a READ of `offset..end`: the blocks it held whole are in the page
    /// cache now, so the block cache need not keep them, and their buffers take the blocks
    /// decoded next (a sequential read no longer fills 32 MiB of fresh memory, a page fault
    /// per page, before the first buffer is reused). A block at either edge stays: the
    /// READ beside this one, often already on its way, takes the rest of it.
    fn answered_whole(&self, file: &OpenFile, offset: u64, end: u64) {
        let data = &file.data;
        let bs = u64::from(self.archive.superblock().block_size);
        let stored = data.block_count() as u64;
        for index in offset.div_ceil(bs)..stored {
            if ((index + 1) * bs).min(data.size()) > end {
                break;
            }
            file.answered(index as usize);
            self.archive.forget_block(data, index as usize);
        }
    }

    /// Answers a read with a copy of its bytes, gathered in this thread's reply buffer
    /// (kept between requests: READs of up to 1 MiB would otherwise each cost an allocation
    /// and a zero-fill).
    fn reply_range(&self, file: &Arc<OpenFile>, offset: u64, size: u32, reply: ReplyData) {
        let data = &file.data;
        let len = (u64::from(size)).min(data.size().saturating_sub(offset)) as usize;
        REPLY_BUF.with(|buf| {
            // Nothing in here re-enters, so the borrow always succeeds; should that ever
            // change, a fresh buffer beats a panic in a request thread.
            let mut fresh = Vec::new();
            let mut kept = buf.try_borrow_mut();
            let out = match kept.as_deref_mut() {
                Ok(kept) => kept,
                Err(_) => &mut fresh,
            };
            if out.len() < len {
                out.resize(len, 0);
            }
            match self.archive.read_data(data, offset, &mut out[..len]) {
                Ok(n) => reply.data(&out[..n]),
                Err(e) => reply.error(self.errno("read", e)),
            }
        })
    }
}

impl Filesystem for SquashFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // No FUSE_READDIRPLUS_AUTO: with it the kernel asks for a big directory's entries
        // after the first reply with plain READDIR, then LOOKUPs each of them that is
        // stat-ed or entered; without it every reply carries the entries' attributes.
        let wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_PARALLEL_DIROPS;
        // Older kernels lack some of these: take what is offered.
        for flag in wanted.iter() {
            let _ = config.add_capabilities(flag);
        }
        // Opening a directory needs nothing from us: without OPENDIR and RELEASEDIR a
        // warm `ls -R` costs no request at all (the kernel then keeps directory listings
        // cached, as FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE would).
        self.no_opendir = !self.uncached
            && config
                .add_capabilities(InitFlags::FUSE_NO_OPENDIR_SUPPORT)
                .is_ok();
        self.no_open = !self.count_opens
            && config
                .add_capabilities(InitFlags::FUSE_NO_OPEN_SUPPORT)
                .is_ok();
        // As much readahead as the kernel allows (it caps the value it offered).
        let _ = config
            .set_max_readahead(u32::MAX)
            .or_else(|max| config.set_max_readahead(max));
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.touch();
        let result = (|| {
            let dir = self.inode(parent)?;
            match self
                .archive
                .lookup_entry(&dir, name.as_bytes())
                .map_err(|e| self.errno("lookup", e))?
            {
                None => Ok(None),
                Some(entry) => {
                    let (node, inode) = self.link(self.child(&entry)?, None);
                    match self.entry_attr(&inode) {
                        Ok(attr) => Ok(Some((attr, self.ttl(&inode)))),
                        Err(e) => {
                            self.unlink(node, 1);
                            Err(e)
                        }
                    }
                }
            }
        })();
        match result {
            Ok(Some((attr, ttl))) => {
                reply.entry_with_ttls(&ttl, &self.entry_ttl(), &attr, Generation(0))
            }
            // A negative entry, cached as long as a positive one: the image cannot change.
            Ok(None) => reply.entry_with_ttls(
                &Duration::ZERO,
                &self.entry_ttl(),
                &empty_attr(),
                Generation(0),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.unlink(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.touch();
        let result = self.inode(ino).and_then(|inode| {
            let attr = self
                .archive
                .attr(&inode)
                .map_err(|e| self.errno("getattr", e))?;
            // A getattr reply may say the true inode number, which `stat` then shows.
            Ok((
                file_attr(&inode, &attr, u64::from(inode.number()), self.owners),
                self.ttl(&inode),
            ))
        });
        match result {
            Ok((attr, ttl)) => reply.attr(&ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.touch();
        match self.inode(ino) {
            Ok(inode) => match self.archive.read_link(&inode) {
                Ok(target) => reply.data(target),
                Err(_) => reply.error(Errno::EINVAL),
            },
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.touch();
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        if self.no_open {
            // The kernel takes this as success and stops asking (it keeps the page cache
            // across opens, as FOPEN_KEEP_CACHE): reads then come with handle 0.
            return reply.error(Errno::ENOSYS);
        }
        let result = self.inode(ino).and_then(|inode| {
            let data = self
                .archive
                .file_data(&inode)
                .map_err(|e| self.errno("open", e))?;
            Ok(self
                .handles
                .insert(OpenFile::new(ino.0, inode.reference(), data)))
        });
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.touch();
        let file = if fh.0 == 0 && self.no_open {
            let loaded = self.inode(ino).and_then(|inode| {
                self.handles.by_inode(ino.0, inode.reference(), || {
                    self.archive
                        .file_data(&inode)
                        .map_err(|e| self.errno("read", e))
                })
            });
            match loaded {
                Ok(file) => file,
                Err(e) => return reply.error(e),
            }
        } else {
            match self.handles.get(fh.0) {
                Some(file) => file,
                None => return reply.error(Errno::EBADF),
            }
        };
        let data = &file.data;
        let bs = u64::from(self.archive.superblock().block_size);
        let end = offset.saturating_add(u64::from(size)).min(data.size());
        if offset >= end {
            return reply.data(&[]);
        }
        let first = (offset / bs) as usize;
        let last = ((end - 1) / bs) as usize;
        // Read to its end: by this READ, or by it and the push of the rest of its one block
        // or tail that a READ at a small file's start brings (below).
        if end == data.size() || (offset == 0 && data.size() <= bs) {
            self.walk_on(ino.0, data.fragment());
        }
        let ahead = file.streams.on_read(offset, end, bs, READ_AHEAD_BYTES / bs);
        let stored = data.block_count() as u64;
        for index in ahead.start.min(stored)..ahead.end.min(stored) {
            self.background.prefetch(&file, index as usize);
        }
        // Within one stored block: answer straight from the cached block, no copy. When
        // the read takes only part of the block, the rest goes into the page cache: before
        // the answer for a reader at the file's start, who reads on (the kernel's first
        // readahead window is small); after it, whole, for one that reads at random.
        if first == last && first < data.block_count() {
            match self.block(&file, first) {
                Ok(Some(block)) => {
                    let base = first as u64 * bs;
                    let start = (offset - base) as usize;
                    let stop = (end - base) as usize;
                    if offset == 0 && stop < block.len() {
                        let rest = Piece {
                            node: ino.0,
                            inode: file.inode,
                            at: end,
                            bytes: stop..block.len(),
                        };
                        self.background.store_pieces(block.clone(), vec![rest]);
                    } else if stop - start < block.len() {
                        self.background.store(&file, first, base, block.clone());
                    }
                    reply.data(&block[start..stop]);
                    drop(block);
                    self.answered_whole(&file, offset, end);
                    return;
                }
                Ok(None) => {}
                Err(e) => return reply.error(e),
            }
        }
        // Within the tail, kept in a fragment block with other small files: straight from
        // the cached fragment block. Before the answer goes, the rest of the tail if the
        // read did not take it all, then the files that share the block (see `mates`), in
        // the order they are stored (the order a walk reads them) from this one on. What
        // does not add up is left to `reply_range`, which says what is wrong.
        if first == last && first >= data.block_count() {
            if let Ok(Some((block, tail))) = self.archive.tail_block(data) {
                let base = first as u64 * bs;
                let start = tail.start + (offset - base) as usize;
                let stop = tail.start + (end - base) as usize;
                if stop <= tail.end {
                    let mut pieces = Vec::new();
                    if stop < tail.end {
                        pieces.push(Piece {
                            node: ino.0,
                            inode: file.inode,
                            at: end,
                            bytes: stop..tail.end,
                        });
                    }
                    if let Some(fragment) = data.fragment() {
                        let mut mates = self.mates.take(fragment);
                        mates.retain(|m| m.node != ino.0);
                        let here = tail.start as u32;
                        mates.sort_unstable_by_key(|m| (m.start < here, m.start));
                        pieces.extend(mates.iter().map(|m| Piece {
                            node: m.node,
                            inode: m.inode,
                            at: 0,
                            bytes: m.start as usize
                                ..(m.start as usize).saturating_add(m.len as usize),
                        }));
                    }
                    if !pieces.is_empty() {
                        self.background.store_pieces(block.clone(), pieces);
                    }
                    reply.data(&block[start..stop]);
                    return;
                }
            }
        }
        self.reply_gathered(req, &file, offset, end, reply);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to write back: ENOSYS makes the kernel stop sending FLUSH on close.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.touch();
        self.handles.remove(fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.touch();
        if self.no_opendir {
            return reply.error(Errno::ENOSYS);
        }
        match self.inode(ino) {
            Ok(inode) if inode.is_dir() => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.touch();
        let result = self.inode(ino).and_then(|dir| {
            let parent = directory_parent(&dir)?;
            self.list(&dir, offset, |next, name, entry| {
                // d_ino as the kernel's driver gives it: the squashfs inode numbers.
                Ok(match entry {
                    Some(e) => reply.add(
                        INodeNo(u64::from(e.inode_number)),
                        next,
                        fuse_type(e.kind),
                        OsStr::from_bytes(name),
                    ),
                    None => {
                        let number = if name == b"." { dir.number() } else { parent };
                        reply.add(
                            INodeNo(u64::from(number)),
                            next,
                            fuser::FileType::Directory,
                            OsStr::from_bytes(name),
                        )
                    }
                })
            })
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        self.touch();
        if offset > 0 {
            // The reader asks for more: it has taken in the reply before.
            self.push_late(ino.0);
            self.ahead.taken_in(ino.0);
        } else {
            self.ahead.entered(ino.0);
        }
        let mut reply = reply;
        let (mut linked, mut late) = (Vec::new(), Vec::new());
        let own = match self
            .inode(ino)
            .and_then(|dir| self.list_plus(&dir, offset, &mut reply, &mut linked, &mut late))
        {
            Ok(own) => own,
            Err(e) => return reply.error(e),
        };
        if !late.is_empty() {
            let mut pending = self.late.lock().unwrap_or_else(|e| e.into_inner());
            let held: usize = pending.values().map(Vec::len).sum();
            // Bounded: a listing nobody reads on leaves its files here.
            if held + late.len() <= MOST_LATE {
                pending.entry(ino.0).or_default().extend(late);
            }
        }
        let entries: Vec<Listed> = linked
            .iter()
            .filter_map(|&node| {
                let inode = self.nodes.get(node)?;
                let file = (inode.kind() == sqfs::FileType::File).then_some(inode);
                Some(Listed { node, file })
            })
            .collect();
        let files: Vec<u64> = entries
            .iter()
            .filter(|e| e.file.is_some())
            .map(|e| e.node)
            .collect();
        self.walk.listed(&files);
        if !files.is_empty() && self.walk.listing() {
            let first = entries.iter().filter_map(|e| e.file.clone());
            self.background
                .prefetch_ahead(first.take(AHEAD_FILES).collect(), None);
        }
        self.ahead.listed(ino.0, entries);
        let Some(own) = own else {
            // fuser logs a reply the kernel refuses and says nothing: the entries' lookup
            // counts then stay. The kernel refuses a reply only once the request is gone
            // for good (the connection aborted): a request it has handed to us, it waits
            // for, even for a reader that was killed.
            return reply.ok();
        };
        let Some(device) = self.device.get() else {
            // Both mounters set it before serving; without it no reply could be sent.
            for node in linked {
                self.unlink(node, 1);
            }
            return reply.error(Errno::EIO);
        };
        match own.send(device.as_fd(), req.unique().0) {
            // Answered; fuser would answer again (EIO) when `reply` drops. It holds no
            // memory of its own (its entry buffer is empty and inline), only a count on the
            // session's Arc: that Arc and the session's /dev/fuse descriptor then stay
            // until the process exits.
            Ok(()) => std::mem::forget(reply),
            Err(e) => {
                // The kernel links none of the entries: take back their lookup counts.
                for node in linked {
                    self.unlink(node, 1);
                }
                match e.raw_os_error() {
                    // The request was interrupted, or the mount is gone: nobody waits.
                    Some(libc::ENOENT | libc::ENODEV) => std::mem::forget(reply),
                    _ => reply.error(Errno::EIO),
                }
            }
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.touch();
        // What the kernel's squashfs_statfs reports.
        let sb = self.archive.superblock();
        let blocks = ((sb.bytes_used - 1) >> sb.block_log) + 1;
        reply.statfs(
            blocks,
            0,
            0,
            u64::from(sb.inode_count),
            0,
            sb.block_size,
            256,
            sb.block_size,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.touch();
        if self.no_xattrs {
            // ENOSYS makes the kernel answer every later getxattr itself (EOPNOTSUPP,
            // where the kernel's driver says ENODATA): `ls -l` asks two per file, and an
            // image without a single xattr has nothing to tell. listxattr still answers
            // (an empty list, as the kernel's driver gives).
            return reply.error(Errno::ENOSYS);
        }
        let result = self.inode(ino).and_then(|inode| {
            self.archive
                .xattr(&inode, name.as_bytes())
                .map_err(|e| match e {
                    sqfs::Error::NoXattr => Errno::NO_XATTR,
                    e => self.errno("getxattr", e),
                })
        });
        match result {
            Ok(value) => reply_xattr(reply, size, &value),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.touch();
        let result = self.inode(ino).and_then(|inode| {
            let xattrs = self
                .archive
                .xattrs(&inode)
                .map_err(|e| self.errno("listxattr", e))?;
            let mut names = Vec::new();
            for x in xattrs {
                names.extend_from_slice(&x.name);
                names.push(0);
            }
            Ok(names)
        });
        match result {
            Ok(names) => reply_xattr(reply, size, &names),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        self.touch();
        match self.inode(ino) {
            Ok(_) if mask.contains(AccessFlags::W_OK) => reply.error(Errno::EROFS),
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

/// getxattr/listxattr protocol: size 0 asks for the length; too small a buffer is ERANGE.
fn reply_xattr(reply: ReplyXattr, size: u32, bytes: &[u8]) {
    if size == 0 {
        reply.size(bytes.len() as u32);
    } else if bytes.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(bytes);
    }
}

/// What "." and ".." carry in a READDIRPLUS reply made by fuser: only `ino` and the type
/// are read (as `d_ino` and `d_type`); the kernel links neither.
fn listed_dir_attr(number: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(number),
        kind: fuser::FileType::Directory,
        ..empty_attr()
    }
}

fn empty_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: fuser::FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

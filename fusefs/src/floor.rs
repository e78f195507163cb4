//! The FUSE floor, for bench/efficiency.sh only (built with `--features floor`): a server
//! that does nothing but answer, from memory, with squashfuse-rs's mount, its options, its
//! INIT flags (READDIRPLUS, no OPEN/OPENDIR, symlinks cached, readahead as large as the
//! kernel allows), its worker threads and its cache lifetimes. What it costs to read
//! through it is what FUSE itself costs on the machine: a row of the table whose floor is
//! already above the kernel's figure is bound by FUSE's interface, not by squashfuse-rs.
//!
//! It serves one of three trees, chosen by the environment (the command line is
//! squashfuse-rs's, so the benchmark mounts it the same way):
//! - `FLOOR_FILE=PATH`: a root holding `a`, PATH's bytes, read into memory before the
//!   mount (the sequential rows);
//! - `FLOOR_TREE=1`: IMAGE's tree (names, kinds, sizes, modes, link targets), walked before
//!   the mount; every file reads as a repeating pattern (the `tar c` row);
//! - neither: an empty root (mount -> first stat).
//!
//! No pushes into the page cache, no readahead of its own: one answer per request, each
//! written straight from memory (fuser's reply is one writev of the header and the slice).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEntry, ReplyOpen, Request, SessionACL,
};
use sqfs::{Archive, Inode};

use crate::attr::fuse_type;
use crate::daemon::detach_stdio;
use crate::fs::FOREVER;
use crate::options::{Args, MountConfig};
use crate::{fuse_mount, readahead, server};

/// What every file of a `FLOOR_TREE` reads as: bytes that do not compress to nothing.
static PATTERN: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..2 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
});

struct Node {
    attr: FileAttr,
    /// A directory's entries, in order: (name, node id).
    entries: Vec<(OsString, u64)>,
    by_name: HashMap<OsString, u64>,
    parent: u64,
    target: Vec<u8>,
}

/// The tree, indexed by node id - 1.
struct Floor {
    nodes: Vec<Node>,
    /// `FLOOR_FILE`'s bytes, if served.
    file: Option<Arc<Vec<u8>>>,
}

fn attr(ino: u64, kind: FileType, perm: u16, size: u64, mtime: u32) -> FileAttr {
    let time = UNIX_EPOCH + Duration::from_secs(u64::from(mtime));
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: UNIX_EPOCH,
        kind,
        perm,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl Floor {
    fn root() -> Node {
        Node {
            attr: attr(1, FileType::Directory, 0o755, 0, 0),
            entries: Vec::new(),
            by_name: HashMap::new(),
            parent: 1,
            target: Vec::new(),
        }
    }

    fn add(&mut self, dir: u64, name: OsString, mut node: Node) -> u64 {
        let ino = self.nodes.len() as u64 + 1;
        node.attr.ino = INodeNo(ino);
        node.parent = dir;
        self.nodes.push(node);
        let d = &mut self.nodes[dir as usize - 1];
        d.by_name.insert(name.clone(), ino);
        d.entries.push((name, ino));
        ino
    }

    fn empty() -> Self {
        Floor {
            nodes: vec![Self::root()],
            file: None,
        }
    }

    fn one_file(bytes: Vec<u8>) -> Self {
        let mut floor = Self::empty();
        let size = bytes.len() as u64;
        floor.add(
            1,
            "a".into(),
            Node {
                attr: attr(0, FileType::RegularFile, 0o644, size, 0),
                entries: Vec::new(),
                by_name: HashMap::new(),
                parent: 0,
                target: Vec::new(),
            },
        );
        floor.file = Some(Arc::new(bytes));
        floor
    }

    /// IMAGE's tree, metadata only.
    fn image_tree(image: &Path) -> Result<Self, String> {
        let archive = Archive::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
        let mut floor = Self::empty();
        let root = archive.root().map_err(|e| e.to_string())?;
        let mut stack: Vec<(Inode, u64)> = vec![(root, 1)];
        while let Some((dir, ino)) = stack.pop() {
            for entry in archive.read_dir(&dir).map_err(|e| e.to_string())? {
                let entry = entry.map_err(|e| e.to_string())?;
                let inode = archive.entry_inode(&entry).map_err(|e| e.to_string())?;
                let kind = fuse_type(inode.kind());
                let target = match kind {
                    FileType::Symlink => archive
                        .read_link(&inode)
                        .map_err(|e| e.to_string())?
                        .to_vec(),
                    _ => Vec::new(),
                };
                let size = match kind {
                    FileType::RegularFile => inode.size(),
                    FileType::Symlink => target.len() as u64,
                    _ => 0,
                };
                let node = Node {
                    attr: attr(0, kind, inode.permissions() & 0o7777, size, inode.mtime()),
                    entries: Vec::new(),
                    by_name: HashMap::new(),
                    parent: 0,
                    target,
                };
                let name = OsString::from_vec(entry.name.clone());
                let child = floor.add(ino, name, node);
                if inode.is_dir() {
                    stack.push((inode, child));
                }
            }
        }
        Ok(floor)
    }

    fn node(&self, ino: INodeNo) -> Result<&Node, Errno> {
        (ino.0 as usize)
            .checked_sub(1)
            .and_then(|i| self.nodes.get(i))
            .ok_or(Errno::ENOENT)
    }
}

impl Filesystem for Floor {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // squashfuse-rs's flags (SquashFs::init).
        let wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_NO_OPENDIR_SUPPORT
            | InitFlags::FUSE_NO_OPEN_SUPPORT;
        for flag in wanted.iter() {
            let _ = config.add_capabilities(flag);
        }
        let _ = config
            .set_max_readahead(u32::MAX)
            .or_else(|max| config.set_max_readahead(max));
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self
            .node(parent)
            .ok()
            .and_then(|d| d.by_name.get(name).copied());
        match found.and_then(|ino| self.node(INodeNo(ino)).ok()) {
            Some(n) => reply.entry_with_ttls(&FOREVER, &FOREVER, &n.attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Ok(n) => reply.attr(&FOREVER, &n.attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino) {
            Ok(n) => reply.data(&n.target),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // As squashfuse-rs with FUSE_NO_OPEN_SUPPORT: no OPEN after the first.
        reply.error(Errno::ENOSYS);
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let n = match self.node(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let end = offset.saturating_add(u64::from(size)).min(n.attr.size);
        if offset >= end {
            return reply.data(&[]);
        }
        let len = (end - offset) as usize;
        match &self.file {
            Some(bytes) => reply.data(&bytes[offset as usize..offset as usize + len]),
            None => {
                // A window of the pattern (READs are at most 1 MiB: max_pages 256).
                let from = (offset as usize) % (1 << 20);
                let len = len.min(PATTERN.len() - from);
                reply.data(&PATTERN[from..from + len]);
            }
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
        let d = match self.node(ino) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        for (i, (name, child)) in d.entries.iter().enumerate().skip(offset as usize) {
            let kind = self.nodes[*child as usize - 1].attr.kind;
            if reply.add(INodeNo(*child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let d = match self.node(ino) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        // "." and ".." first (offsets 1 and 2), then the entries.
        let dots = [(OsStr::new("."), ino.0), (OsStr::new(".."), d.parent)];
        for (i, (name, n)) in dots.iter().enumerate().skip(offset as usize) {
            let a = attr(*n, FileType::Directory, 0o755, 0, 0);
            if reply.add(
                INodeNo(*n),
                i as u64 + 1,
                name,
                &Duration::ZERO,
                &a,
                Generation(0),
            ) {
                return reply.ok();
            }
        }
        let skip = (offset as usize).saturating_sub(2);
        for (i, (name, child)) in d.entries.iter().enumerate().skip(skip) {
            let a = &self.nodes[*child as usize - 1].attr;
            if reply.add(
                INodeNo(*child),
                i as u64 + 3,
                name,
                &FOREVER,
                a,
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
    }
}

/// `squashfuse-rs-floor IMAGE MOUNTPOINT [-o ...]`: mounts the floor as squashfuse-rs
/// mounts (daemonized unless -f; the command returns once the mount is ready).
pub fn run(args: Args) -> Result<(), String> {
    let config = MountConfig::from_args(args).map_err(|e| e.to_string())?;
    let floor = if let Some(path) = std::env::var_os("FLOOR_FILE") {
        Floor::one_file(std::fs::read(&path).map_err(|e| format!("FLOOR_FILE: {e}"))?)
    } else if std::env::var_os("FLOOR_TREE").is_some() {
        Floor::image_tree(&config.image)?
    } else {
        Floor::empty()
    };
    let mut parent = if config.foreground {
        None
    } else {
        Some(crate::mount::daemonize().map_err(|e| e.to_string())?)
    };
    let result = (|| {
        let mountpoint = config
            .mountpoint
            .canonicalize()
            .map_err(|e| e.to_string())?;
        let (device, mounted) = fuse_mount::mount(&config, &mountpoint)?;
        let mut fuse = fuser::Config::default();
        fuse.n_threads = Some(if config.single_thread {
            1
        } else {
            config.max_threads.unwrap_or_else(server::default_threads)
        });
        fuse.clone_fd = false;
        let session = fuser::Session::from_fd(floor, device, SessionACL::Owner, fuse)
            .map_err(|e| e.to_string())?;
        if let Some(device) = mounted.device {
            readahead::set(device, config.readahead_window_kb());
        }
        Ok((session, mounted))
    })();
    let (session, _mounted) = match result {
        Ok(s) => s,
        Err(e) => {
            if let Some(fd) = parent.take() {
                let _ = std::fs::File::from(fd).write_all(format!("f{e}").as_bytes());
                std::process::exit(1);
            }
            return Err(e);
        }
    };
    if let Some(fd) = parent.take() {
        let _ = std::fs::File::from(fd).write_all(b"s");
        detach_stdio();
    }
    session.run().map_err(|e| e.to_string())
}

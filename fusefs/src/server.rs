//! Serving an image on a FUSE connection: the one place that turns an `Archive` and a
//! `/dev/fuse` descriptor (with a mount already made on it, so the kernel has queued INIT)
//! into a running session. Both mounters use it: `squashfuse-rs` serves in its main thread,
//! `ch-run` on background threads of its supervisor. fuser stays behind this module.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock};

use fuser::{BackgroundSession, Config, SessionACL};
use sqfs::{Archive, Inode};

use crate::attr::Owners;
use crate::fs::{Monitor, SquashFs};

/// Which accesses must reach the filesystem rather than be answered from the kernel's
/// caches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Access {
    /// The image never changes: entries, attributes, listings and pages are cached without
    /// expiry, files and directories opened without a request.
    #[default]
    Cached,
    /// As `Cached`, but every open and release of a file is a request, so open files can be
    /// counted (an idle timeout waits for the last to close).
    CountingOpens,
    /// Every lookup, stat and open is a request, so that the session's check of who asks
    /// (`Admit::RootAndOwner`) sees every access.
    CheckingEveryAccess,
}

/// Whom the session answers; everyone else gets EACCES.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Admit {
    /// The user who mounted (the kernel admits nobody else without `allow_other`).
    #[default]
    Owner,
    /// Root and the user who mounted (`allow_root`: the kernel admits everyone).
    RootAndOwner,
    /// Everyone the kernel lets through (`allow_other`).
    All,
}

/// How an image is to be served. Start with [`Server::new`], adjust, then [`Server::start`].
pub struct Server {
    archive: Arc<Archive>,
    root: Inode,
    owners: Owners,
    workers: usize,
    prefetchers: usize,
    access: Access,
    admit: Admit,
}

impl Server {
    /// Serves `root` (the image's root, or a subdirectory) of `archive`, with one worker and
    /// one prefetch thread per CPU (at least two).
    pub fn new(archive: Arc<Archive>, root: Inode) -> Self {
        let threads = default_threads();
        Server {
            archive,
            root,
            owners: Owners::default(),
            workers: threads,
            prefetchers: threads,
            access: Access::default(),
            admit: Admit::default(),
        }
    }

    /// Every file shown as owned by these ids instead of the image's.
    pub fn owners(mut self, owners: Owners) -> Self {
        self.owners = owners;
        self
    }

    /// Threads that answer requests (at least one).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    pub fn admit(mut self, admit: Admit) -> Self {
        self.admit = admit;
        self
    }

    /// Takes over `device`, a `/dev/fuse` descriptor a mount was made with. The session
    /// answers INIT once it runs.
    pub fn start(self, device: OwnedFd) -> io::Result<Session> {
        let mut fs = SquashFs::new(self.archive, self.root, self.owners, self.prefetchers)
            .workers(self.workers);
        fs = match self.access {
            Access::Cached => fs,
            Access::CountingOpens => fs.counting_opens(),
            Access::CheckingEveryAccess => fs.checking_every_access(),
        };
        let slots = fs.session_slots();
        let monitor = fs.monitor();
        let mut config = Config::default();
        config.n_threads = Some(self.workers);
        SquashFs::configure(&mut config);
        let acl = match self.admit {
            Admit::Owner => SessionACL::Owner,
            Admit::RootAndOwner => SessionACL::RootAndOwner,
            Admit::All => SessionACL::All,
        };
        let inner = fuser::Session::from_fd(fs, device, acl, config)?;
        slots.fill(&inner)?;
        Ok(Session { inner, monitor })
    }
}

/// A session on a mounted connection, not yet serving.
pub struct Session {
    inner: fuser::Session<SquashFs>,
    monitor: Monitor,
}

impl Session {
    /// What the idle timeout watches: the last request's time and the open files.
    pub fn monitor(&self) -> Monitor {
        self.monitor.clone()
    }

    /// Serves in this thread (and the workers) until the kernel ends the connection: at
    /// unmount, or, once the mount is detached, when the last file open in it is closed.
    pub fn run(self) -> io::Result<()> {
        self.inner.run()
    }

    /// Serves on background threads, which start before this returns: the mount may be used
    /// at once. Serving stops when the returned value is dropped or the connection ends.
    pub fn spawn(self) -> io::Result<Background> {
        self.inner.spawn().map(Background)
    }
}

/// A session served by background threads.
pub struct Background(#[allow(dead_code)] BackgroundSession);

/// One thread per CPU, and at least two, so that a slow request does not hold up the rest.
/// Found once per process: the standard library reads the cgroup's CPU quota from /proc
/// and /sys at each call (six files), on the way to every mount being ready.
pub fn default_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .max(2)
    })
}

/// Makes every thread allocate from glibc's one main heap. Decompressed blocks are made by
/// one thread (a request or prefetch worker) and freed by another when the cache evicts
/// them; with a heap per thread, freed blocks pile up in heaps that the next block is not
/// taken from. Measured after `tar c` of a Debian rootfs image: peak RSS 63-77 MiB with
/// per-thread heaps, 38 MiB with one (32 MiB of it the block cache). A process-wide choice:
/// each program that serves an image calls it once, in `main`, before any thread starts;
/// small allocations still come from per-thread caches.
pub fn one_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; any value is accepted or refused.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

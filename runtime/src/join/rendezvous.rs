//! Where the peers of a `--join` group meet: a Unix socket, named for the group's tag, in a
//! directory that only this user can write to, and that is this host's.
//!
//! Not an abstract socket (ch-run's first design) nor a name in `/dev/shm` (Charliecloud's
//! semaphore and shared memory, `/ch-run_TAG`, in bin/ch_core.c): both are names every user
//! of the node shares, and the tag is guessable (`SLURM_STEP_ID`, the parent's pid), so
//! another user who takes the name first makes the group fail or wait for its timeout.
//! Nobody else can make a name in a directory that is ours and closed to others.
//!
//! The directory is the first usable one of:
//! 1. `$XDG_RUNTIME_DIR/ch-run-join.HOST`: the user's own tmpfs (systemd-logind), when set;
//! 2. `/tmp/ch-run-join.UID.HOST`: on every node, but anyone can make that name first;
//! 3. `$HOME/.ch-run-join.HOST`: nobody else can write there.
//!
//! For the image servers (`ch-run-share`), `/var/tmp/$USER.ch/ch-run-share.HOST` comes
//! first: see [`Purpose::in_storage`].
//!
//! HOST is this host's name (`/proc/sys/kernel/hostname`, escaped as tags are), in every
//! name: any of these bases may be one file system that several nodes share (home
//! directories usually are; `/tmp` and `/var/tmp` are on some diskless clusters, and
//! `XDG_RUNTIME_DIR` is whatever a user sets). A Unix socket works on the host that made it
//! only: from another node, connecting to it is refused as for a socket nobody listens on.
//! In one directory, each node would take the other's live sockets for dead, remove them and
//! take their names, and groups of one step on two nodes would mix or time out; a sweep would
//! remove other nodes' live servers. In a directory of its own, a node only ever sees
//! sockets of its own, and a refused connection means a dead socket. (Earlier versions used
//! these names without HOST. Their directories are never looked at, let alone swept: on a
//! shared file system they may hold other nodes' live sockets. Those versions' runs remove
//! them once empty; dead sockets of killed winners or servers in them stay.)
//!
//! Usable: made with mode 0700 or found, then opened without following a symlink and
//! checked through that descriptor: a directory of ours, closed to group and others, in a
//! base that is ours or root's and that others cannot write to (unless it is sticky, like
//! `/tmp`, where only the owner may rename or remove an entry). A name someone else holds is
//! passed over at once, with a warning naming it, never waited on; every peer walks the
//! same list, so they all arrive at the same directory.
//!
//! Inside, one socket per tag. An exclusive `flock(2)` on the directory covers every change
//! to it: becoming the winner (bind and listen) or finding it (connect), removing a socket
//! whose listener is gone (a killed winner), removing the directory once it is empty. A
//! winner listens before it lets go of the lock, so a socket that refuses a connection under
//! the lock has no listener, and is taken over at once instead of waited on. Whoever of a
//! group ends removes what is dead and, if nothing else is left, the directory: the winner
//! when its group is complete, every peer when it exits (after a killed winner).
//!
//! Sockets are reached through `/proc/self/fd/N/NAME`: the directory's own path may be longer
//! than `sun_path` allows (108 bytes) and is not looked up again after the check; its name
//! (with HOST, up to 64 bytes, 192 escaped) is not in the address.

use std::fmt::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{fcntl, open, openat, FcntlArg, Flock, FlockArg, OFlag};
use nix::sys::socket::{
    bind, connect, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{geteuid, unlinkat, UnlinkatFlags};

use crate::failure::{with_errno, Failure};

/// Longest socket name: `sun_path` holds 107 bytes and a NUL; `/proc/self/fd/`, a
/// descriptor of up to 10 digits and a slash come first.
const MAX_ENTRY: usize = 107 - "/proc/self/fd/".len() - 10 - 1;

fn runtime(what: impl std::fmt::Display, e: Errno) -> Failure {
    Failure::Runtime(with_errno(what, e))
}

/// `text` with every byte but `[A-Za-z0-9._-]` written `%XX`: a file name, one to one.
fn escape(text: &[u8]) -> String {
    let mut out = String::new();
    for &b in text {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// FNV-1a, 128 bits: names a tag too long to spell out (only this user's own tags share the
/// directory, so only an accident could collide).
pub(crate) fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME))
}

/// The socket's name for a group tag: `tag-TAG` escaped, or `hash-…` when that is too long.
pub fn entry_name(tag: &str) -> String {
    let name = format!("tag-{}", escape(tag.as_bytes()));
    if name.len() <= MAX_ENTRY {
        name
    } else {
        format!("hash-{:032x}", fnv1a_128(tag.as_bytes()))
    }
}

/// What a directory of sockets is for: its names and how messages about it begin.
pub struct Purpose {
    /// `ch-run-join`: the directory is `$XDG_RUNTIME_DIR/STEM.HOST`, `/tmp/STEM.UID.HOST` or
    /// `$HOME/.STEM.HOST`.
    pub stem: &'static str,
    /// What messages begin with (`join`).
    pub label: &'static str,
    /// What the sockets are, for messages (`peer group socket`).
    pub what: &'static str,
    /// Whether `/var/tmp/$USER.ch/STEM.HOST` (in ch-run's own directory, which holds the
    /// default mount point; made if missing) comes first.
    pub in_storage: bool,
}

/// `--join`'s peer groups.
pub const JOIN: Purpose = Purpose {
    stem: "ch-run-join",
    label: "join",
    what: "peer group socket",
    in_storage: false,
};

/// The directories to try, in order: (base, name of ours in it). Each name ends in this
/// host's name (see the module's comment).
fn candidates(
    env: &dyn Fn(&str) -> Option<String>,
    uid: u32,
    host: &[u8],
    purpose: &Purpose,
) -> Vec<(PathBuf, String)> {
    let absolute = |var| env(var).filter(|d| d.starts_with('/'));
    let stem = purpose.stem;
    let host = escape(host);
    let mut list = Vec::new();
    if purpose.in_storage {
        if let Some(user) = env("USER").filter(|u| !u.is_empty() && !u.contains('/')) {
            list.push((
                crate::image::default_storage(&user),
                format!("{stem}.{host}"),
            ));
        }
    }
    if let Some(dir) = absolute("XDG_RUNTIME_DIR") {
        list.push((PathBuf::from(dir), format!("{stem}.{host}")));
    }
    list.push((PathBuf::from("/tmp"), format!("{stem}.{uid}.{host}")));
    if let Some(home) = absolute("HOME") {
        list.push((PathBuf::from(home), format!(".{stem}.{host}")));
    }
    list
}

/// This host's name as the kernel has it (the UTS namespace's, which `hostname` sets), without
/// the newline; empty if unreadable (then `/proc/self/fd`, which every socket address goes
/// through, is missing too).
fn host_name() -> Vec<u8> {
    let mut name = std::fs::read("/proc/sys/kernel/hostname").unwrap_or_default();
    if name.last() == Some(&b'\n') {
        name.pop();
    }
    name
}

/// Why a candidate was passed over: quietly (it does not exist, can't be made) or loudly
/// (someone else holds the name, or it is open to others).
enum Skip {
    Quiet(String),
    Loud(String),
}

fn is_closed_to_others(st: &FileStat) -> bool {
    st.st_mode & 0o077 == 0
}

/// Ours or root's, and nobody else may rename what is in it: not writable by group or
/// others, or sticky.
fn is_safe_base(st: &FileStat, uid: u32) -> bool {
    (st.st_uid == uid || st.st_uid == 0)
        && (st.st_mode & 0o022 == 0 || st.st_mode & Mode::S_ISVTX.bits() != 0)
}

fn owned(raw: i32) -> OwnedFd {
    // SAFETY: the caller just got `raw` from a system call that made a new descriptor.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// The group directory: where its socket is, open.
pub struct Place {
    /// The directory the group directory is in (to remove it).
    base: OwnedFd,
    /// The group directory's name in `base`.
    name: String,
    /// The group directory, open for reading (flock and listing need that).
    dir: OwnedFd,
    /// Its path, for messages.
    shown: PathBuf,
    /// What messages about it begin with.
    label: &'static str,
}

impl Place {
    /// The first usable directory of the list (see the module's comment); passing over one
    /// that someone else holds is a warning.
    pub fn choose(warn: &mut dyn FnMut(String)) -> Result<Place, Failure> {
        Place::choose_for(&JOIN, warn)
    }

    /// As [`Place::choose`], among the directories of `purpose`.
    pub fn choose_for(purpose: &Purpose, warn: &mut dyn FnMut(String)) -> Result<Place, Failure> {
        let uid = geteuid().as_raw();
        let mut skipped = Vec::new();
        let env = |v: &str| std::env::var(v).ok();
        let list = candidates(&env, uid, &host_name(), purpose);
        let storage = purpose
            .in_storage
            .then(|| env("USER").filter(|u| !u.is_empty() && !u.contains('/')))
            .flatten()
            .map(|user| crate::image::default_storage(&user));
        if let Some(storage) = &storage {
            // ch-run's own directory, made as for the default mount point (checked below).
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new().mode(0o755).create(storage);
        }
        for (base, name) in list {
            // Anyone may make `/var/tmp/$USER.ch` first: as a symlink it could lead anywhere,
            // into a mount that never answers, say. The default mount point refuses one too.
            let follow = Some(&base) != storage.as_ref();
            match Place::open_in(&base, &name, uid, follow) {
                Ok(mut place) => {
                    place.label = purpose.label;
                    return Ok(place);
                }
                Err(Skip::Quiet(why)) => skipped.push(why),
                Err(Skip::Loud(why)) => {
                    warn(format!("{}: not using {why}", purpose.label));
                    skipped.push(why);
                }
            }
        }
        Err(Failure::Runtime(format!(
            "{}: no private directory for the {}: {}",
            purpose.label,
            purpose.what,
            skipped.join("; ")
        )))
    }

    /// A place another process chose and handed over (its two descriptors).
    pub fn from_parts(
        base: OwnedFd,
        name: String,
        dir: OwnedFd,
        shown: PathBuf,
        label: &'static str,
    ) -> Place {
        Place {
            base,
            name,
            dir,
            shown,
            label,
        }
    }

    /// What [`Place::from_parts`] takes: the parent's and the directory's descriptors, its
    /// name in the parent and its path.
    pub fn parts(&self) -> (&OwnedFd, &str, &OwnedFd, &Path) {
        (&self.base, &self.name, &self.dir, &self.shown)
    }

    /// `base/name`, made if missing, if it is usable.
    #[cfg(test)]
    fn open(base: &Path, name: &str, uid: u32) -> Result<Place, Skip> {
        Place::open_in(base, name, uid, true)
    }

    /// `base/name`, made if missing, if it is usable; `base` itself not a symlink unless
    /// `follow`.
    fn open_in(base: &Path, name: &str, uid: u32, follow: bool) -> Result<Place, Skip> {
        let shown = base.join(name);
        let at = |what: &str, e: Errno| format!("{}: {what}: {}", shown.display(), e.desc());
        let nofollow = if follow {
            OFlag::empty()
        } else {
            OFlag::O_NOFOLLOW
        };
        let base_fd = open(
            base,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | nofollow,
            Mode::empty(),
        )
        .map(owned)
        .map_err(|e| match e {
            Errno::ENOTDIR | Errno::ELOOP if !follow => {
                Skip::Loud(at("its parent is a symlink", e))
            }
            _ => Skip::Quiet(at("can't open its parent", e)),
        })?;
        let st = fstat(base_fd.as_raw_fd()).map_err(|e| Skip::Quiet(at("can't stat", e)))?;
        if !is_safe_base(&st, uid) {
            return Err(Skip::Loud(format!(
                "{}: its parent is writable by others or not ours (owner uid {}, mode {:04o})",
                shown.display(),
                st.st_uid,
                st.st_mode & 0o7777
            )));
        }
        match mkdirat(Some(base_fd.as_raw_fd()), name, Mode::S_IRWXU) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Skip::Quiet(at("can't mkdir", e))),
        }
        // It exists now: anything but our own private directory is someone else's doing (or
        // a mistake), and worth a warning.
        let dir = openat(
            Some(base_fd.as_raw_fd()),
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(owned)
        .map_err(|e| {
            Skip::Loud(at(
                "can't open it as a directory (not following symlinks)",
                e,
            ))
        })?;
        let st = fstat(dir.as_raw_fd()).map_err(|e| Skip::Loud(at("can't stat", e)))?;
        if st.st_uid != uid || !is_closed_to_others(&st) {
            return Err(Skip::Loud(format!(
                "{}: not a private directory of ours (owner uid {}, mode {:04o})",
                shown.display(),
                st.st_uid,
                st.st_mode & 0o7777
            )));
        }
        Ok(Place {
            base: base_fd,
            name: name.to_string(),
            dir,
            shown,
            label: JOIN.label,
        })
    }

    /// Where an entry's socket is, for messages.
    pub fn path_of(&self, entry: &str) -> PathBuf {
        self.shown.join(entry)
    }

    fn address(&self, entry: &str) -> Result<UnixAddr, Failure> {
        UnixAddr::new(format!("/proc/self/fd/{}/{entry}", self.dir.as_raw_fd()).as_str())
            .map_err(|e| runtime(format!("{}: bad socket name", self.label), e))
    }

    /// Takes the directory's lock; None if the directory was removed meanwhile (the last of
    /// another group found it empty): choose again, and a new one is made.
    pub fn lock(&self, deadline: Instant) -> Result<Option<Locked<'_>>, Failure> {
        let mut pause = Duration::from_millis(1);
        loop {
            // A lock belongs to the open file (this process's), shared by its duplicates.
            let fd = self.dir.try_clone().map_err(|e| {
                Failure::Runtime(format!("{}: can't duplicate descriptor: {e}", self.label))
            })?;
            match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    let st = fstat(self.dir.as_raw_fd()).map_err(|e| {
                        runtime(
                            format!("{}: can't stat {}", self.label, self.shown.display()),
                            e,
                        )
                    })?;
                    if st.st_nlink == 0 {
                        return Ok(None);
                    }
                    return Ok(Some(Locked {
                        place: self,
                        _lock: lock,
                    }));
                }
                Err((_, Errno::EWOULDBLOCK | Errno::EINTR)) => {}
                Err((_, e)) => {
                    return Err(runtime(
                        format!("{}: can't lock {}", self.label, self.shown.display()),
                        e,
                    ))
                }
            }
            // Held for the few system calls of a claim: short waits, a bounded total.
            if Instant::now() >= deadline {
                return Err(Failure::Runtime(format!(
                    "timeout waiting for {} lock",
                    self.label
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Removes what a group left that nothing uses any more (dead sockets, then the
    /// directory if empty), if the lock comes within `patience`.
    pub fn tidy(&self, patience: Duration) {
        if let Ok(Some(locked)) = self.lock(Instant::now() + patience) {
            locked.tidy();
        }
    }
}

/// What a connection to a group's socket found.
pub enum Reached {
    /// The winner's listener: our connection.
    Listener(OwnedFd),
    /// The winner's backlog is full: try again shortly.
    Busy,
    /// A socket nobody listens on (its winner was killed).
    Dead,
    /// No socket: there is no winner.
    Absent,
}

/// The directory, locked: the only state in which its entries change.
pub struct Locked<'a> {
    place: &'a Place,
    _lock: Flock<OwnedFd>,
}

impl Locked<'_> {
    /// Connects to the socket `entry` (close-on-exec, blocking once connected).
    pub fn connect(&self, entry: &str) -> Result<Reached, Failure> {
        let addr = self.place.address(entry)?;
        // Non-blocking: a full backlog must not keep the lock held (the winner may need it).
        let fd = new_socket(SockType::SeqPacket, SockFlag::SOCK_NONBLOCK)?;
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => {
                fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::empty())).map_err(|e| {
                    runtime(
                        format!("{}: can't make socket blocking", self.place.label),
                        e,
                    )
                })?;
                Ok(Reached::Listener(fd))
            }
            Err(Errno::EAGAIN) => Ok(Reached::Busy),
            Err(Errno::ECONNREFUSED) => Ok(Reached::Dead),
            Err(Errno::ENOENT) => Ok(Reached::Absent),
            Err(e) => Err(runtime(
                format!(
                    "{}: can't connect to {}",
                    self.place.label,
                    self.place.path_of(entry).display()
                ),
                e,
            )),
        }
    }

    /// Removes the dead socket `entry` (a winner that was killed); anything else there is
    /// in the way and an error.
    pub fn remove_dead(&self, entry: &str) -> Result<(), Failure> {
        if !self.is_socket(entry) {
            return Err(Failure::Runtime(format!(
                "{}: {} is in the way (not a socket)",
                self.place.label,
                self.place.path_of(entry).display()
            )));
        }
        self.remove(entry);
        Ok(())
    }

    /// Removes `entry` (gone already is fine).
    pub fn remove(&self, entry: &str) {
        let _ = unlinkat(
            Some(self.place.dir.as_raw_fd()),
            entry,
            UnlinkatFlags::NoRemoveDir,
        );
    }

    /// Makes the socket `entry` and listens on it (close-on-exec).
    pub fn listen(&self, entry: &str) -> Result<OwnedFd, Failure> {
        let addr = self.place.address(entry)?;
        let fd = new_socket(SockType::SeqPacket, SockFlag::empty())?;
        bind(fd.as_raw_fd(), &addr).map_err(|e| {
            runtime(
                format!(
                    "{}: can't bind {}",
                    self.place.label,
                    self.place.path_of(entry).display()
                ),
                e,
            )
        })?;
        listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))
            .map_err(|e| runtime(format!("{}: can't listen", self.place.label), e))?;
        Ok(fd)
    }

    fn is_socket(&self, entry: &str) -> bool {
        fstatat(
            Some(self.place.dir.as_raw_fd()),
            entry,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok_and(|st| st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFSOCK.bits())
    }

    /// Whether `entry` is a socket nobody listens on. A datagram socket's connect asks
    /// without being a connection: a listener of another type answers EPROTOTYPE, a socket
    /// without one ECONNREFUSED (Linux, net/unix/af_unix.c), and no winner ever sees it.
    fn is_dead_socket(&self, entry: &str) -> bool {
        if !self.is_socket(entry) {
            return false;
        }
        let (Ok(addr), Ok(probe)) = (
            self.place.address(entry),
            new_socket(SockType::Datagram, SockFlag::empty()),
        ) else {
            return false;
        };
        connect(probe.as_raw_fd(), &addr) == Err(Errno::ECONNREFUSED)
    }

    /// Removes dead sockets, then the directory if nothing else is in it.
    pub fn tidy(&self) {
        if self.sweep() == 0 {
            // Whoever waits for the lock sees the directory gone and makes a new one.
            let _ = unlinkat(
                Some(self.place.base.as_raw_fd()),
                self.place.name.as_str(),
                UnlinkatFlags::RemoveDir,
            );
        }
    }

    /// Removes dead sockets (those of servers and winners that were killed, as a batch
    /// job's end kills them) and returns how many entries are left.
    pub fn sweep(&self) -> usize {
        let listing = Dir::openat(
            Some(self.place.dir.as_raw_fd()),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        let Ok(mut listing) = listing else { return 1 };
        let mut left = 0;
        for entry in listing.iter().flatten() {
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            match std::str::from_utf8(name) {
                Ok(name) if self.is_dead_socket(name) => self.remove(name),
                _ => left += 1,
            }
        }
        left
    }
}

fn new_socket(kind: SockType, flags: SockFlag) -> Result<OwnedFd, Failure> {
    socket(
        AddressFamily::Unix,
        kind,
        SockFlag::SOCK_CLOEXEC | flags,
        None,
    )
    .map_err(|e| runtime("join: can't make socket", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn entry_names_spell_out_tags_or_hash_long_ones() {
        assert_eq!(entry_name("7"), "tag-7");
        assert_eq!(entry_name("a/b c"), "tag-a%2Fb%20c");
        assert_eq!(entry_name(".."), "tag-..");
        assert_ne!(entry_name("a/b"), entry_name("a%2Fb"));
        let long = "x".repeat(200);
        let name = entry_name(&long);
        assert!(
            name.starts_with("hash-") && name.len() <= MAX_ENTRY,
            "{name}"
        );
        assert_ne!(name, entry_name(&"x".repeat(201)));
        // The longest that is spelled out still fits a socket address with any descriptor.
        let fits = "y".repeat(MAX_ENTRY - "tag-".len());
        let addr = format!("/proc/self/fd/{}/{}", i32::MAX, entry_name(&fits));
        assert!(UnixAddr::new(addr.as_str()).is_ok());
        assert!(entry_name(&format!("{fits}y")).starts_with("hash-"));
    }

    #[test]
    fn candidates_come_in_order() {
        let env = |v: &str| match v {
            "XDG_RUNTIME_DIR" => Some("/run/user/5".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        let list = candidates(&env, 5, b"n1/x", &JOIN);
        let paths: Vec<PathBuf> = list.iter().map(|(b, n)| b.join(n)).collect();
        assert_eq!(
            paths,
            [
                "/run/user/5/ch-run-join.n1%2Fx",
                "/tmp/ch-run-join.5.n1%2Fx",
                "/home/u/.ch-run-join.n1%2Fx"
            ]
            .map(PathBuf::from)
        );
        // Relative or missing variables are no candidates.
        let env = |v: &str| (v == "XDG_RUNTIME_DIR").then(|| "run".to_string());
        assert_eq!(candidates(&env, 5, b"h", &JOIN).len(), 1);
    }

    #[test]
    fn every_directory_is_this_hosts_own() {
        let env = |v: &str| match v {
            "USER" => Some("u".to_string()),
            "XDG_RUNTIME_DIR" => Some("/shared/run".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        let share = Purpose {
            in_storage: true,
            ..JOIN
        };
        let on = |host: &[u8]| candidates(&env, 5, host, &share);
        let (a, b) = (on(b"nodeA"), on(b"nodeB"));
        assert_eq!(a.len(), 4);
        assert_eq!(
            a[0],
            (
                crate::image::default_storage("u"),
                "ch-run-join.nodeA".into()
            )
        );
        for ((base_a, name_a), (base_b, name_b)) in a.iter().zip(&b) {
            assert_eq!(base_a, base_b);
            assert_ne!(name_a, name_b);
        }
        // No host name can make two hosts' names one, nor one longer than a file name may
        // be (NAME_MAX, 255): the kernel's host names have up to 64 bytes, any bytes.
        assert_ne!(on(b"a/b"), on(b"a%2Fb"));
        assert_ne!(on(b"n\xff"), on(b"n\xfe"));
        let longest = [0xffu8; 64];
        for (_, name) in on(&longest) {
            assert!(name.len() <= 255 && !name.contains('/'), "{name}");
        }
        let tmp = candidates(&env, u32::MAX, &longest, &share);
        assert!(tmp.iter().all(|(_, name)| name.len() <= 255));
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ch-rendezvous-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    fn me() -> u32 {
        geteuid().as_raw()
    }

    #[test]
    fn only_a_private_directory_of_ours_is_used() {
        let base = scratch("private");
        let place = Place::open(&base, "d", me()).ok().expect("made and usable");
        let md = std::fs::symlink_metadata(base.join("d")).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o700);
        drop(place);
        // Open to others: passed over, loudly.
        std::fs::set_permissions(base.join("d"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(Place::open(&base, "d", me()), Err(Skip::Loud(_))));
        // A symlink to a private directory of ours: not followed.
        std::os::unix::fs::symlink(base.join("d"), base.join("link")).unwrap();
        std::fs::set_permissions(base.join("d"), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(
            Place::open(&base, "link", me()),
            Err(Skip::Loud(_))
        ));
        // A file.
        std::fs::write(base.join("file"), "").unwrap();
        assert!(matches!(
            Place::open(&base, "file", me()),
            Err(Skip::Loud(_))
        ));
        // Someone else's (uid + 1 stands for another user).
        assert!(matches!(
            Place::open(&base, "d", me() + 1),
            Err(Skip::Loud(_))
        ));
        // A base others can write to and rename in.
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(Place::open(&base, "d", me()), Err(Skip::Loud(_))));
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(Place::open(&base, "d", me()).is_ok());
        // No base: quietly.
        assert!(matches!(
            Place::open(&base.join("none"), "d", me()),
            Err(Skip::Quiet(_))
        ));
        // A base that is a symlink, where it must not be (`/var/tmp/$USER.ch`): not followed.
        std::os::unix::fs::symlink(&base, base.join("base-link")).unwrap();
        assert!(Place::open_in(&base.join("base-link"), "d", me(), true).is_ok());
        assert!(matches!(
            Place::open_in(&base.join("base-link"), "d", me(), false),
            Err(Skip::Loud(_))
        ));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_dead_socket_is_taken_over_and_everything_tidied() {
        let base = scratch("tidy");
        let deadline = Instant::now() + Duration::from_secs(10);
        let place = Place::open(&base, "d", me()).ok().unwrap();
        let locked = place.lock(deadline).unwrap().unwrap();
        assert!(matches!(locked.connect("tag-a").unwrap(), Reached::Absent));
        let live = locked.listen("tag-a").unwrap();
        let dead = locked.listen("tag-b").unwrap();
        drop(dead);
        assert!(matches!(locked.connect("tag-b").unwrap(), Reached::Dead));
        // Probing is not connecting: the live listener has nothing to accept after a tidy.
        locked.tidy();
        assert!(base.join("d/tag-a").exists());
        assert!(!base.join("d/tag-b").exists());
        nix::fcntl::fcntl(live.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
        assert_eq!(
            nix::sys::socket::accept(live.as_raw_fd()),
            Err(Errno::EAGAIN)
        );
        assert!(matches!(
            locked.connect("tag-a").unwrap(),
            Reached::Listener(_)
        ));
        // Something that is not a socket is left alone, and so is the directory.
        std::fs::write(base.join("d/tag-c"), "").unwrap();
        assert!(locked.remove_dead("tag-c").is_err());
        drop(live);
        locked.tidy();
        assert!(base.join("d/tag-c").exists() && !base.join("d/tag-a").exists());
        std::fs::remove_file(base.join("d/tag-c")).unwrap();
        // A sweep removes dead sockets and keeps the directory, even when empty.
        drop(locked.listen("tag-d").unwrap());
        assert_eq!(locked.sweep(), 0);
        assert!(base.join("d").exists() && !base.join("d/tag-d").exists());
        locked.tidy();
        assert!(!base.join("d").exists());
        drop(locked);
        // Whoever waited for the lock learns that the directory is gone.
        assert!(place.lock(deadline).unwrap().is_none());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_lock_excludes_another_open_directory() {
        let base = scratch("lock");
        let one = Place::open(&base, "d", me()).ok().unwrap();
        let two = Place::open(&base, "d", me()).ok().unwrap();
        let held = one.lock(Instant::now() + Duration::from_secs(5)).unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(two.lock(soon).is_err(), "both hold the lock");
        drop(held);
        assert!(two.lock(soon + Duration::from_secs(5)).unwrap().is_some());
        std::fs::remove_dir_all(&base).unwrap();
    }
}

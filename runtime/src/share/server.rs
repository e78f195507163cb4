//! The image server: `ch-run` exec'ed by [`super::spawn`] with [`FLAG`], the image, its
//! listening socket, the starting run's connection and the socket's directory as
//! descriptors 3 to 7.
//!
//! It enters a user namespace where this user is the run's `uid`:`gid` and a mount
//! namespace, mounts the image attached nowhere (`fsmount`) and serves it; every `ch-run`
//! that connects (this user only) gets a detached copy of that mount (`open_tree`), to
//! attach in its own container. Nothing else of the server's is handed out: not its
//! namespaces, not its descriptors. Once no connection is left and none came for the idle
//! time, it removes its socket under the directory's lock (taking any connection that
//! arrived meanwhile instead), and exits; its mount was never attached anywhere but in the
//! containers, which have all gone.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::PollTimeout;
use nix::sys::socket::{accept4, SockFlag};
use sqfs::{Archive, OpenOptions};

use super::wire;
use crate::failure::Failure;
use crate::handoff;
use crate::join::rendezvous::Place;
use crate::{mount_api, userns};

/// The hidden first argument that makes `ch-run` an image server.
pub const FLAG: &str = "--ch-run-share-server";
/// What `ps` shows.
const NAME: &str = "ch-run-share";
/// Descriptors handed over: the image file, then the listener, the first connection, the
/// socket directory's parent and the directory.
pub const FIRST_FD: i32 = 3;

/// How long the end waits for the directory's lock (held for microseconds at a time); if
/// it does not come, the server stays and tries again.
const LOCK_PATIENCE: Duration = Duration::from_secs(5);

/// What a server is told on its command line.
pub struct Args {
    pub uid: u32,
    pub gid: u32,
    pub idle: Duration,
    pub image: PathBuf,
    pub identity: String,
    pub entry: String,
    pub place_name: String,
    pub place_shown: PathBuf,
}

impl Args {
    pub fn to_argv(&self) -> Result<Vec<CString>, Failure> {
        let words: Vec<Vec<u8>> = vec![
            NAME.into(),
            FLAG.into(),
            self.uid.to_string().into(),
            self.gid.to_string().into(),
            self.idle.as_millis().to_string().into(),
            self.image.as_os_str().as_bytes().to_vec(),
            self.identity.clone().into(),
            self.entry.clone().into(),
            self.place_name.clone().into(),
            self.place_shown.as_os_str().as_bytes().to_vec(),
        ];
        words
            .into_iter()
            .map(CString::new)
            .collect::<Result<_, _>>()
            .map_err(|_| Failure::Runtime("share: a path contains a NUL byte".into()))
    }

    fn from_argv(words: &[OsString]) -> Option<Args> {
        let [uid, gid, idle, image, identity, entry, place_name, place_shown] = words else {
            return None;
        };
        let text = |w: &OsString| w.to_str().map(str::to_string);
        Some(Args {
            uid: text(uid)?.parse().ok()?,
            gid: text(gid)?.parse().ok()?,
            idle: Duration::from_millis(text(idle)?.parse().ok()?),
            image: PathBuf::from(image),
            identity: text(identity)?,
            entry: text(entry)?,
            place_name: text(place_name)?,
            place_shown: PathBuf::from(place_shown),
        })
    }
}

/// If this process was started as a server, serves and exits; else returns.
pub fn run_if_asked() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).map(|a| a.as_bytes()) != Some(FLAG.as_bytes()) {
        return;
    }
    let Some(parsed) = Args::from_argv(&args[2..]) else {
        crate::failure::say("error", "share: bad image server arguments");
        std::process::exit(crate::failure::EXIT_CHRUN)
    };
    std::process::exit(serve(parsed))
}

/// The descriptor `n` after [`FIRST_FD`], checked to be open.
fn handed(n: i32) -> Option<OwnedFd> {
    let fd = FIRST_FD + n;
    fcntl(fd, FcntlArg::F_GETFD).ok()?;
    // SAFETY: the spawning process put this descriptor here for us, and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn serve(args: Args) -> i32 {
    let _ = nix::sys::prctl::set_name(&CString::new(NAME).expect("no NUL"));
    // It holds a descriptor per container, of everyone's runs: not limited by the `ulimit -n`
    // of whichever run happened to start it.
    // SAFETY: plain system calls on a struct owned here.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    let (Some(image), Some(listener), Some(first), Some(base), Some(dir)) =
        (handed(0), handed(1), handed(2), handed(3), handed(4))
    else {
        crate::failure::say(
            "error",
            "share: image server started without its descriptors",
        );
        return crate::failure::EXIT_CHRUN;
    };
    let place = Place::from_parts(
        base,
        args.place_name.clone(),
        dir,
        args.place_shown.clone(),
        super::SHARE.label,
    );
    let started = start(&args, image);
    let (_server, mount) = match started {
        Ok(ready) => ready,
        Err(failure) => {
            wire::send_failure(&first, &failure);
            retire(&place, &args.entry, listener);
            return failure.exit_code();
        }
    };
    let mut conns = Vec::new();
    if hand_over(&first, &args, &mount) {
        conns.push(first);
    }
    if fcntl(listener.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).is_err() {
        retire(&place, &args.entry, listener);
        return crate::failure::EXIT_CHRUN;
    }
    let mut idle_since: Option<Instant> = None;
    loop {
        if conns.is_empty() {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= args.idle {
                match leave_unless_called(&place, &args, &mount, &listener, &mut conns) {
                    true => return 0,
                    // Someone came at the last moment, or the lock did not: stay a while.
                    false => idle_since = conns.is_empty().then(Instant::now),
                }
                continue;
            }
        } else {
            idle_since = None;
        }
        let timeout = match idle_since {
            Some(since) => {
                let left = args.idle.saturating_sub(since.elapsed());
                PollTimeout::from(u16::try_from(left.as_millis() + 1).unwrap_or(u16::MAX))
            }
            None => PollTimeout::NONE,
        };
        match handoff::poll_connections(&mut conns, Some(listener.as_fd()), timeout) {
            Ok(false) => {}
            Ok(true) => accept_all(&listener, &args, &mount, &mut conns),
            Err(_) => return crate::failure::EXIT_CHRUN,
        }
    }
}

/// Enters the namespaces and mounts the image, detached (what a run would have done
/// itself, but for the mount point).
fn start(args: &Args, image: OwnedFd) -> Result<(crate::fuse_mount::FuseServer, OwnedFd), Failure> {
    userns::enter(args.uid, args.gid)?;
    let cant = |e: sqfs::Error| {
        Failure::Runtime(format!(
            "can't open SquashFS: {}: {e}",
            args.image.display()
        ))
    };
    let archive = Archive::open_file(File::from(image), &OpenOptions::default()).map_err(cant)?;
    crate::fuse_mount::mount_detached_and_serve(Arc::new(archive), &args.image)
}

/// Sends a new copy of the mount on `conn`; whether it went.
fn hand_over(conn: &OwnedFd, args: &Args, mount: &OwnedFd) -> bool {
    match mount_api::clone_detached(mount) {
        Ok(copy) => wire::send_ready(conn, &args.identity, &copy).is_ok(),
        Err(e) => {
            let failure = Failure::Runtime(crate::failure::with_errno(
                "share: can't copy the image's mount",
                e,
            ));
            wire::send_failure(conn, &failure);
            false
        }
    }
}

/// Takes every waiting connection of this user and hands it a copy of the mount.
fn accept_all(listener: &OwnedFd, args: &Args, mount: &OwnedFd, conns: &mut Vec<OwnedFd>) {
    loop {
        match accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
            Ok(raw) => {
                // SAFETY: accept4 returned a new descriptor we own.
                let conn = unsafe { OwnedFd::from_raw_fd(raw) };
                // Seen from here, this user is the run's uid; anyone else the overflow uid.
                if crate::join::same_user(&conn, args.uid) && hand_over(&conn, args, mount) {
                    conns.push(conn);
                }
            }
            Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
            Err(_) => return,
        }
    }
}

/// Idle for long enough: under the directory's lock, takes what connected meanwhile (then
/// stays), else removes the socket (nobody can reach this server any more) and says to go.
fn leave_unless_called(
    place: &Place,
    args: &Args,
    mount: &OwnedFd,
    listener: &OwnedFd,
    conns: &mut Vec<OwnedFd>,
) -> bool {
    let locked = match place.lock(Instant::now() + LOCK_PATIENCE) {
        Ok(Some(locked)) => locked,
        // The directory was removed, the socket with it: nobody can come any more.
        Ok(None) => return true,
        Err(_) => return false,
    };
    accept_all(listener, args, mount, conns);
    if !conns.is_empty() {
        return false;
    }
    locked.remove(&args.entry);
    locked.tidy();
    true
}

/// Gives up the socket (a server that could not start).
fn retire(place: &Place, entry: &str, listener: OwnedFd) {
    if let Ok(Some(locked)) = place.lock(Instant::now() + LOCK_PATIENCE) {
        locked.remove(entry);
        drop(listener);
        locked.tidy();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn arguments_round_trip() {
        let args = Args {
            uid: 0,
            gid: 1000,
            idle: Duration::from_millis(2500),
            image: "/images/a b.sqfs".into(),
            identity: "ch-run 1 dev 2".into(),
            entry: "img-00".into(),
            place_name: "ch-run-share.5".into(),
            place_shown: "/tmp/ch-run-share.5".into(),
        };
        let argv: Vec<OsString> = args
            .to_argv()
            .unwrap()
            .into_iter()
            .map(|c| OsString::from_vec(c.into_bytes()))
            .collect();
        assert_eq!(argv[1], FLAG);
        let back = Args::from_argv(&argv[2..]).unwrap();
        assert_eq!(back.uid, 0);
        assert_eq!(back.gid, 1000);
        assert_eq!(back.idle, Duration::from_millis(2500));
        assert_eq!(back.image, PathBuf::from("/images/a b.sqfs"));
        assert_eq!(back.identity, "ch-run 1 dev 2");
        assert!(Args::from_argv(&argv[3..]).is_none());
    }
}

//! Starting an image server: a process of its own, detached from the `ch-run` that starts
//! it, which outlives it.
//!
//! Forked twice (the middle process makes a new session and exits at once, so the server
//! is in a session without a terminal it could ever acquire, and is nobody's child here:
//! the supervisor stops being a subreaper for that moment, or the server would be its child
//! and the supervisor would wait for it), then `exec`ed afresh with an empty environment
//! and nothing but `/dev/null` and the five descriptors it needs: no pipe of the caller's
//! (`srun` and `$(…)` wait for those to close), no memory of the caller's.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::prctl;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};

use super::server::{self, Args};
use super::Request;
use crate::failure::{with_errno, Failure};
use crate::image::Image;
use crate::join::rendezvous::Place;

/// Starts the server for `request` listening on `listener` (in `place`); returns this
/// run's connection to it, on which it answers as to any other.
pub fn start(
    listener: OwnedFd,
    place: &Place,
    request: &Request,
    image: &Image,
    ids: (u32, u32),
) -> Result<OwnedFd, Failure> {
    let Image::Squash { path, file, .. } = image else {
        return Err(Failure::Runtime("share: not a SquashFS image".into()));
    };
    let (base, name, dir, shown) = place.parts();
    let args = Args {
        uid: ids.0,
        gid: ids.1,
        idle: request.idle,
        image: path.clone(),
        identity: request.identity.clone(),
        entry: request.entry.clone(),
        place_name: name.to_string(),
        place_shown: shown.to_path_buf(),
    };
    let argv = args.to_argv()?;
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Failure::Runtime(with_errno("share: can't make socket pair", e)))?;
    // In the server's order (see `server::FIRST_FD`).
    let handed = [
        file.as_raw_fd(),
        listener.as_raw_fd(),
        theirs.as_raw_fd(),
        base.as_raw_fd(),
        dir.as_raw_fd(),
    ];
    let subreaper = prctl::get_child_subreaper().unwrap_or(false);
    let _ = prctl::set_child_subreaper(false);
    // SAFETY: this process is single-threaded (the supervisor before the container exists).
    let forked = unsafe { fork() };
    match forked {
        Ok(ForkResult::Child) => {
            let _ = nix::unistd::setsid();
            // SAFETY: as above; the middle process only forks and exits.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => become_server(&handed, &argv),
                _ => unsafe { libc::_exit(0) },
            }
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = waitpid(child, None);
            let _ = prctl::set_child_subreaper(subreaper);
            Ok(ours)
        }
        Err(e) => {
            let _ = prctl::set_child_subreaper(subreaper);
            Err(Failure::Runtime(with_errno("share: can't fork", e)))
        }
    }
}

/// In the server's process: the descriptors in place, nothing else open, then exec.
fn become_server(handed: &[i32; 5], argv: &[CString]) -> ! {
    let to = server::FIRST_FD;
    // SAFETY: plain system calls on descriptors this process holds; then exec or exit.
    unsafe {
        // Out of the way of the numbers they go to first, then into place (dup2 clears
        // close-on-exec on the copy). Just above them: a small `ulimit -n` (under 64, say)
        // must leave room.
        let mut high = [0; 5];
        for (slot, fd) in high.iter_mut().zip(handed) {
            *slot = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, to + 5);
            if *slot < 0 {
                let failure = Failure::Runtime(with_errno(
                    "share: can't pass descriptors to the image server",
                    nix::errno::Errno::last(),
                ));
                let conn = std::os::fd::BorrowedFd::borrow_raw(handed[2]);
                super::wire::send_failure(&conn, &failure);
                libc::_exit(1)
            }
        }
        for (i, fd) in high.iter().enumerate() {
            libc::dup2(*fd, to + i as i32);
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        libc::syscall(libc::SYS_close_range, (to + 5) as u32, u32::MAX, 0u32);
        // What the caller ignored (`nohup`, a `trap '' TERM`) would stay ignored across
        // exec: the server would outlive a `kill` its user means for it.
        for sig in 1..libc::SIGRTMAX() {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::chdir(c"/".as_ptr());
        let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        libc::execve(c"/proc/self/exe".as_ptr(), ptrs.as_ptr(), envp.as_ptr());
        let failure = Failure::Runtime(with_errno(
            "share: can't start the image server",
            nix::errno::Errno::last(),
        ));
        let conn = <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(to + 2);
        super::wire::send_failure(&conn, &failure);
        libc::_exit(1)
    }
}

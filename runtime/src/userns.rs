//! The unprivileged user + mount namespace every container runs in.

use std::os::fd::{AsFd, OwnedFd};

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::{getegid, geteuid, getgid, getuid};

use crate::failure::{fail, with_errno, Failure};

/// Refuses to run setuid or setgid: ch-run is meant to need no privilege at all, and an
/// installation that adds some is a mistake worth stopping for.
pub fn refuse_setuid() -> Result<(), Failure> {
    if getuid() != geteuid() || getgid() != getegid() {
        return fail("ch-run must not be setuid or setgid");
    }
    Ok(())
}

/// Enters a new user namespace where the invoking user is `uid`:`gid` (one mapping each,
/// `setgroups` denied, as an unprivileged user may write), and a new mount namespace whose
/// mounts propagate nowhere; then [`seal`]s this process. Must be called while the process
/// is single-threaded.
pub fn enter(uid: u32, gid: u32) -> Result<(), Failure> {
    let (host_uid, host_gid) = (geteuid(), getegid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
        .map_err(|e| Failure::Runtime(with_errno("can't init user+mount namespaces", e)))?;
    // These files belong to root once the process is sealed: write them first. Until then
    // the namespace has no other process in it.
    write_proc("/proc/self/setgroups", "deny\n")?;
    write_proc("/proc/self/uid_map", &format!("{uid} {host_uid} 1\n"))?;
    write_proc("/proc/self/gid_map", &format!("{gid} {host_gid} 1\n"))?;
    seal()?;
    make_mounts_private()
}

/// Makes this process non-dumpable, so that the container's root can't read or trace it.
///
/// The supervisor holds every capability in the container's user namespace; so does a
/// command run as uid 0 there, and the same host user runs both. For such a pair the kernel
/// allows `ptrace` access: `/proc/PID/mem`, `environ`, `fd/` (the report pipe, `/dev/fuse`)
/// were the container root's. A non-dumpable process's `/proc` files belong to root, and
/// access needs `CAP_SYS_PTRACE` in the namespace its memory was made in (the host's, where
/// ch-run was executed), which nothing in the container has. The supervisor still opens its
/// own `/proc/self/fd/N` and `ns/` (a process may always look at itself); only writing
/// `uid_map`/`gid_map` needs them to be its own files, hence the order in [`enter`]. An exec
/// makes a process dumpable again: the command is unaffected.
pub fn seal() -> Result<(), Failure> {
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| Failure::Runtime(with_errno("can't make the supervisor non-dumpable", e)))
}

/// Stops mounts made here from reaching the host (and the host's from reaching here).
pub fn make_mounts_private() -> Result<(), Failure> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| Failure::Runtime(with_errno("can't re-mount / as private", e)))
}

fn write_proc(path: &str, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text).map_err(|e| Failure::Runtime(format!("can't write {path}: {e}")))
}

/// The namespaces of a running container, to join it.
pub struct Namespaces {
    pub user: OwnedFd,
    pub mount: OwnedFd,
}

impl Namespaces {
    /// The namespaces of process `pid` (`/proc/PID/ns/{user,mnt}`).
    pub fn of_pid(pid: i32) -> Result<Self, Failure> {
        let open = |ns: &str| {
            let path = format!("/proc/{pid}/ns/{ns}");
            std::fs::File::open(&path)
                .map(OwnedFd::from)
                .map_err(|e| Failure::Runtime(format!("can't open {path}: {e}")))
        };
        Ok(Namespaces {
            user: open("user")?,
            mount: open("mnt")?,
        })
    }

    /// The namespaces of `pid` for `--join-pid`, with Charliecloud's messages.
    pub fn of_pid_for_join(pid: i32) -> Result<Self, Failure> {
        let user = format!("/proc/{pid}/ns/user");
        match std::fs::metadata(&user) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return fail(format!("join: no PID {pid}: {user} not found"))
            }
            _ => {}
        }
        Self::of_pid(pid).map_err(|e| Failure::Runtime(format!("join: {}", e.message())))
    }

    /// This process's own namespaces.
    pub fn of_self() -> Result<Self, Failure> {
        Self::of_pid(std::process::id() as i32)
    }

    /// Moves this (single-threaded) process into them; its root and working directory
    /// become the container's root.
    pub fn join(&self) -> Result<(), Failure> {
        setns(self.user.as_fd(), CloneFlags::CLONE_NEWUSER)
            .map_err(|e| Failure::Runtime(with_errno("can't join user namespace", e)))?;
        setns(self.mount.as_fd(), CloneFlags::CLONE_NEWNS)
            .map_err(|e| Failure::Runtime(with_errno("can't join mount namespace", e)))
    }
}

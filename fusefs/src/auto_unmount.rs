//! `-o auto_unmount`: if the daemon dies without the mount having been unmounted (killed,
//! crashed), a watcher process unmounts it, so that no dead mount ("Transport endpoint is
//! not connected") is left behind. libfuse leaves this to fusermount3, which stays running
//! and watches a socket; but as root we mount with mount(2), without fusermount3, and
//! fusermount3 3.14's watch never unmounts a plain user's mount (it checks the dead mount
//! as root, which a mount without allow_other turns away: libfuse issue 586). So the
//! watcher is our own: a process forked before the mount is made, so that it holds no
//! `/dev/fuse` descriptor (one would keep a dead daemon's mount hanging instead of failing),
//! waiting for the daemon's end of a pipe to close.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::unistd::{fork, pipe2, ForkResult};

use crate::fuse_mount;
use crate::mountinfo::DeviceId;

/// The daemon's end of the watcher's pipe; the watcher acts when it closes.
pub struct Watcher {
    pipe: File,
}

impl Watcher {
    /// Forks the watcher for a mount to be made at `mountpoint` (canonical). Must run
    /// before any thread is started and before the mount exists.
    pub fn start(mountpoint: &Path) -> Result<Watcher, String> {
        // Close-on-exec: helpers we start must not keep the pipe open after we die.
        let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        // SAFETY: no threads exist yet, so the child may run arbitrary code.
        match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
            ForkResult::Parent { .. } => {
                drop(read_end);
                Ok(Watcher {
                    pipe: File::from(write_end),
                })
            }
            ForkResult::Child => {
                drop(write_end);
                watch(read_end, mountpoint.to_path_buf())
            }
        }
    }

    /// Tells the watcher which mount is ours, once it is made.
    pub fn mounted(&mut self, device: Option<DeviceId>) {
        if let Some((major, minor)) = device {
            let _ = writeln!(self.pipe, "{major}:{minor}");
        }
    }
}

/// The watcher's life: wait until the daemon is gone, then unmount its mount if it is
/// still there; never returns. SIGINT, SIGTERM and SIGHUP stay blocked (inherited), so a
/// signal meant for the daemon, or a terminal's ^C to both, leaves the watcher watching.
fn watch(pipe: OwnedFd, mountpoint: PathBuf) -> ! {
    close_all_but(pipe.as_raw_fd());
    crate::daemon::detach_stdio();
    let mut said = String::new();
    // Returns at end of file: the daemon has exited, however it ended.
    let _ = File::from(pipe).read_to_string(&mut said);
    if let Some(device) = parse_device(&said) {
        // A clean exit has already unmounted (the session ends only when the mount is
        // gone); then the mount at the path, if any, is not ours and is left alone.
        let _ = fuse_mount::detach_if_ours(&mountpoint, Some(device));
    }
    // SAFETY: _exit ends the process at once; nothing of the daemon's is flushed or
    // dropped twice.
    unsafe { libc::_exit(0) }
}

fn parse_device(said: &str) -> Option<DeviceId> {
    let (major, minor) = said.lines().next()?.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Closes every descriptor above stderr but `keep`: the watcher must not hold what the
/// daemon had open (the pipe its waiting parent reads to the end, the image).
fn close_all_but(keep: RawFd) {
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in open {
        if fd > 2 && fd != keep {
            // SAFETY: this process only reads its pipe from here on and then _exits: the
            // objects owning these descriptors are never used or dropped.
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_device_is_read_back() {
        assert_eq!(super::parse_device("0:52\n"), Some((0, 52)));
        assert_eq!(super::parse_device(""), None);
        assert_eq!(super::parse_device("x"), None);
    }
}

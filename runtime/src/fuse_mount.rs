//! The image's FUSE mount, served by threads of this process: `mount(2)` on a `/dev/fuse`
//! descriptor we opened (no fusermount3, no setuid helper), then a `fusefs::Server` on it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use fusefs::server::{Background, Server};
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{getegid, geteuid};
use sqfs::Archive;

use crate::failure::{with_errno, Failure};

/// Keeps the mount served; the threads live as long as the process.
pub struct FuseServer {
    _session: Background,
}

/// Mounts `archive` read-only, nosuid and nodev on `target` and starts serving it. The
/// threads start before this returns, so the caller may use the mount at once (a lookup on
/// a FUSE mount nobody serves would block forever). Runs inside the container's namespaces.
pub fn mount_and_serve(
    archive: Arc<Archive>,
    image: &Path,
    target: &Path,
) -> Result<FuseServer, Failure> {
    let root = archive
        .root()
        .map_err(|e| Failure::Runtime(format!("can't open SquashFS: {}: {e}", image.display())))?;
    let fd: OwnedFd = open("/dev/fuse", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map(|raw| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
        .map_err(|e| Failure::Runtime(with_errno("can't open /dev/fuse", e)))?;
    let data = format!(
        "fd={},rootmode=40000,user_id={},group_id={}",
        fd.as_raw_fd(),
        geteuid(),
        getegid()
    );
    mount(
        Some(image),
        target,
        Some("fuse.squashfuse"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|e| {
        Failure::Runtime(with_errno(
            format!("can't mount SquashFS at {}", target.display()),
            e,
        ))
    })?;

    // The kernel queued INIT when mount(2) returned; answering it makes the mount usable.
    let session = Server::new(archive, root)
        .start(fd)
        .map_err(|e| Failure::Runtime(format!("can't start FUSE session: {e}")))?
        .spawn()
        .map_err(|e| Failure::Runtime(format!("can't start FUSE threads: {e}")))?;
    Ok(FuseServer { _session: session })
}

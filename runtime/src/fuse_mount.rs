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
use sqfs::{Archive, Inode};

use crate::failure::{with_errno, Failure};
use crate::mount_api;

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
    let (root, fd) = open_fuse(&archive, image)?;
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
    serve(archive, root, fd)
}

/// The image's root, checked, and a new `/dev/fuse` descriptor to mount with.
fn open_fuse(archive: &Archive, image: &Path) -> Result<(Inode, OwnedFd), Failure> {
    let root = archive
        .root()
        .map_err(|e| Failure::Runtime(format!("can't open SquashFS: {}: {e}", image.display())))?;
    let fd: OwnedFd = open("/dev/fuse", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map(|raw| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
        .map_err(|e| Failure::Runtime(with_errno("can't open /dev/fuse", e)))?;
    Ok((root, fd))
}

/// Answers the INIT the kernel queued for the mount made with `fd`, and serves it.
fn serve(archive: Arc<Archive>, root: Inode, fd: OwnedFd) -> Result<FuseServer, Failure> {
    let session = Server::new(archive, root)
        .start(fd)
        .map_err(|e| Failure::Runtime(format!("can't start FUSE session: {e}")))?
        .spawn()
        .map_err(|e| Failure::Runtime(format!("can't start FUSE threads: {e}")))?;
    Ok(FuseServer { _session: session })
}

/// Mounts `archive` as [`mount_and_serve`] does, but attached nowhere: returns the detached
/// mount (see [`crate::mount_api`]), of which each container attaches a copy.
pub fn mount_detached_and_serve(
    archive: Arc<Archive>,
    image: &Path,
) -> Result<(FuseServer, OwnedFd), Failure> {
    let (root, fd) = open_fuse(&archive, image)?;
    let cant = |e| {
        Failure::Runtime(with_errno(
            format!("can't mount SquashFS {}", image.display()),
            e,
        ))
    };
    let context = mount_api::Context::open("fuse").map_err(cant)?;
    // What mount(2) takes as its data, one option at a time; the same type and source.
    let source = image.to_string_lossy();
    for (key, value) in [
        ("source", source.as_ref()),
        ("subtype", "squashfuse"),
        ("fd", &fd.as_raw_fd().to_string()),
        ("rootmode", "40000"),
        ("user_id", &geteuid().to_string()),
        ("group_id", &getegid().to_string()),
    ] {
        context.set(key, value).map_err(cant)?;
    }
    // Read-only as a file system too, as MS_RDONLY makes it (mountinfo's super options).
    context.set_flag("ro").map_err(cant)?;
    let mount = context
        .mount(libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV)
        .map_err(cant)?;
    // The kernel queued INIT when the file system was made; answering it makes it usable.
    Ok((serve(archive, root, fd)?, mount))
}

//! The FUSE mount itself, made and detached here rather than by fuser: fuser's unmount
//! (fuser 0.18, `mnt/fuse_pure.rs`) asks `poll` on the device whether the mount is still
//! there and reads the answer backwards, so it skips the unmount while a request is queued
//! and, once the mount is gone, unmounts whatever is at the path then (a mount stacked
//! beneath ours). Like libfuse (`lib/mount.c`), we call mount(2) ourselves when we may and
//! go through `fusermount3` when we may not; and we unmount only the mount we made,
//! lazily, as squashfuse (since 0.2.0) does on SIGTERM.

use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::fusermount;
use crate::mountinfo::{self, DeviceId};
use crate::options::MountConfig;

/// A mount we made: what identifies it, so that only it is ever unmounted.
pub struct Mounted {
    /// Canonical, as mountinfo names it.
    mountpoint: PathBuf,
    /// Our mount's device, read from mountinfo right after mounting; None if it could not
    /// be found there (then the top mount at the path is taken to be ours).
    pub device: Option<DeviceId>,
}

/// The source, type, flags and data of mount(2) for `config`, as libfuse makes them (the
/// device and owner are added by whoever mounts).
struct Request {
    source: String,
    subtype: String,
    flags: MsFlags,
    /// Kernel options besides `fd=`, `rootmode=`, `user_id=`, `group_id=`.
    data: Vec<String>,
}

impl Request {
    fn new(config: &MountConfig) -> Self {
        // Read-only always: the image can't be written. nosuid and nodev unless asked
        // otherwise, as for every FUSE mount.
        let mut flags = MsFlags::MS_RDONLY;
        for (wanted, flag) in [
            (!config.suid, MsFlags::MS_NOSUID),
            (!config.dev, MsFlags::MS_NODEV),
            (config.noexec, MsFlags::MS_NOEXEC),
            (config.noatime, MsFlags::MS_NOATIME),
            (config.sync, MsFlags::MS_SYNCHRONOUS),
            (config.dirsync, MsFlags::MS_DIRSYNC),
        ] {
            if wanted {
                flags |= flag;
            }
        }
        let mut data = Vec::new();
        if config.default_permissions {
            data.push("default_permissions".to_string());
        }
        // allow_root is allow_other for the kernel; the session lets only root and the
        // owner through (libfuse does the same).
        if config.allow_other || config.allow_root {
            data.push("allow_other".to_string());
        }
        if let Some(n) = config.max_read {
            data.push(format!("max_read={n}"));
        }
        data.extend(config.kernel_options.iter().cloned());
        Request {
            source: config
                .fsname
                .clone()
                .unwrap_or_else(|| config.image.display().to_string()),
            subtype: config
                .subtype
                .clone()
                .unwrap_or_else(|| "squashfuse".to_string()),
            flags,
            data,
        }
    }

    /// The same request as fusermount3's `-o` list.
    fn helper_options(&self) -> String {
        let mut options = Vec::new();
        for (flag, on, off) in [
            (MsFlags::MS_RDONLY, "ro", "rw"),
            (MsFlags::MS_NOSUID, "nosuid", "suid"),
            (MsFlags::MS_NODEV, "nodev", "dev"),
        ] {
            options.push(if self.flags.contains(flag) { on } else { off }.to_string());
        }
        for (flag, name) in [
            (MsFlags::MS_NOEXEC, "noexec"),
            (MsFlags::MS_NOATIME, "noatime"),
            (MsFlags::MS_SYNCHRONOUS, "sync"),
            (MsFlags::MS_DIRSYNC, "dirsync"),
        ] {
            if self.flags.contains(flag) {
                options.push(name.to_string());
            }
        }
        options.push(format!("fsname={}", fusermount::escape(&self.source)));
        options.push(format!("subtype={}", fusermount::escape(&self.subtype)));
        options.extend(self.data.iter().cloned());
        options.join(",")
    }
}

/// Mounts FUSE at `mountpoint` (canonical) as `config` asks; returns the device to serve.
pub fn mount(config: &MountConfig, mountpoint: &Path) -> Result<(OwnedFd, Mounted), String> {
    let request = Request::new(config);
    let device = match mount_directly(&request, mountpoint)? {
        Some(device) => device,
        None => fusermount::mount(mountpoint, &request.helper_options())?,
    };
    let device_id = mountinfo::top_mount_at(mountpoint)
        .filter(|m| m.fstype.starts_with("fuse"))
        .map(|m| m.device);
    Ok((
        device,
        Mounted {
            mountpoint: mountpoint.to_path_buf(),
            device: device_id,
        },
    ))
}

/// mount(2) on a `/dev/fuse` we open; None if we may not (EPERM: not root, no
/// CAP_SYS_ADMIN in the mount's user namespace), so fusermount3 should.
fn mount_directly(request: &Request, mountpoint: &Path) -> Result<Option<OwnedFd>, String> {
    use std::os::fd::AsRawFd;
    let device: OwnedFd = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/fuse")
    {
        Ok(file) => file.into(),
        // fusermount3 is setuid root: it can open what we can't.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(format!("/dev/fuse: {e}")),
    };
    // The root's mode until the first GETATTR: libfuse gives only its type, a directory.
    let mut data = format!(
        "fd={},rootmode=40000,user_id={},group_id={}",
        device.as_raw_fd(),
        nix::unistd::getuid(),
        nix::unistd::getgid()
    );
    for option in &request.data {
        data.push(',');
        data.push_str(option);
    }
    let fstype = format!("fuse.{}", request.subtype);
    match nix::mount::mount(
        Some(request.source.as_str()),
        mountpoint,
        Some(fstype.as_str()),
        request.flags,
        Some(data.as_str()),
    ) {
        Ok(()) => Ok(Some(device)),
        Err(nix::errno::Errno::EPERM) => Ok(None),
        Err(e) => Err(format!("mount {}: {}", mountpoint.display(), e.desc())),
    }
}

impl Mounted {
    /// Detaches our mount from the tree at once (MNT_DETACH, like `umount -l`): it is gone
    /// from the path and from /proc/mounts, files already open stay readable, and the
    /// kernel ends the session (ENODEV to our readers) once the last of them is closed.
    /// Nothing is done if our mount is no longer the one on top at the path (already
    /// unmounted, or covered by another mount, which is not ours to take away).
    pub fn detach(&self) -> Result<(), String> {
        detach_if_ours(&self.mountpoint, self.device)
    }
}

/// `Mounted::detach` for the mount on `mountpoint` with `device` (None: any FUSE mount).
pub fn detach_if_ours(mountpoint: &Path, device: Option<DeviceId>) -> Result<(), String> {
    let ours = match (mountinfo::top_mount_at(mountpoint), device) {
        (Some(top), Some(device)) => top.device == device,
        (Some(top), None) => top.fstype.starts_with("fuse"),
        (None, _) => false,
    };
    if !ours {
        return Err(format!(
            "{}: the mount on top is not ours (ours is gone or covered)",
            mountpoint.display()
        ));
    }
    match nix::mount::umount2(mountpoint, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => fusermount::unmount_lazily(mountpoint),
        Err(e) => Err(format!("umount {}: {}", mountpoint.display(), e.desc())),
    }
}

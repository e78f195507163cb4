//! Bind mounts into the image: `-b SRC[:DST]` parsing, and binding onto a destination that is
//! resolved strictly inside the new root (a symlink in the image that points out of it,
//! absolute or by `..`, is refused rather than followed onto the host).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use crate::failure::{with_errno, Failure};

/// One `-b` request, checked for form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub src: PathBuf,
    pub dst: PathBuf,
}

/// Parses `SRC[:DST]` with Charliecloud's messages.
pub fn parse(spec: &str) -> Result<Bind, Failure> {
    let (src, dst) = match spec.split_once(':') {
        Some((src, dst)) => {
            if dst.is_empty() {
                return Err(Failure::Runtime("--bind: no destination provided".into()));
            }
            (src, dst)
        }
        None => (spec, spec),
    };
    if src.is_empty() {
        return Err(Failure::Runtime("--bind: no source provided".into()));
    }
    if !dst.starts_with('/') {
        return Err(Failure::Runtime(
            "--bind: destination must be absolute".into(),
        ));
    }
    if Path::new(dst).components().count() == 1 {
        return Err(Failure::Runtime("--bind: destination can't be /".into()));
    }
    Ok(Bind {
        src: PathBuf::from(src),
        dst: PathBuf::from(dst),
    })
}

/// Why a destination could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum Unusable {
    Missing,
    /// It resolves outside the new root.
    Escapes,
    Other(Errno),
}

/// Opens `dst` (absolute, as seen in the container) under the new root without ever leaving
/// it, as an `O_PATH` descriptor to mount onto.
pub fn resolve(root: &OwnedFd, dst: &Path) -> Result<OwnedFd, Unusable> {
    openat2(
        root,
        dst,
        libc::O_PATH,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    )
    .map_err(|e| match e {
        Errno::ENOENT | Errno::ENOTDIR => Unusable::Missing,
        Errno::EXDEV | Errno::ELOOP => Unusable::Escapes,
        e => Unusable::Other(e),
    })
}

/// `openat2(2)`: `path` (a leading `/` is dropped) under `dir` with `flags` (close-on-exec
/// added) and `resolve` (`RESOLVE_*`).
pub fn openat2(dir: &OwnedFd, path: &Path, flags: i32, resolve: u64) -> Result<OwnedFd, Errno> {
    let relative = path.strip_prefix("/").unwrap_or(path);
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    let path = CString::new(relative.as_os_str().as_bytes()).map_err(|_| Errno::ENOENT)?;
    // SAFETY: open_how is plain integers; all-zero is a valid value to fill in.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: openat2 with a valid descriptor, a NUL-terminated path and a filled open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: openat2 returned a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The path that names what `fd` refers to, for mount(2)'s target.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Binds host `src` (recursively, as Charliecloud does) onto `target`, a path naming an
/// opened destination (see [`fd_path`]).
pub fn bind_onto(src: &Path, target: &Path) -> Result<(), Errno> {
    mount(
        Some(src),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
}

/// Why a mount onto a destination in the new root failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Destination(Unusable),
    Mount(Errno),
}

/// How many times a mount onto a destination is tried while mount(2) says ENOENT for it.
const MOUNT_TRIES: usize = 8;

/// Resolves `dst` under `root` (as [`resolve`]) and runs `mount` on the path naming it.
///
/// Containers sharing one FUSE mount of their image (`crate::share`) and starting together
/// walk the same new names at once, and Linux 6.16 and later (fs/fuse's connection epoch)
/// lets one walk undo another's: a FUSE lookup makes its new dentry visible before stamping
/// it with the epoch, and a second process walking the name in between takes it for a
/// stale one and unhashes it, although the first holds it. mount(2) onto an unhashed
/// dentry fails with ENOENT (measured: 31 in 100 rounds of 8 containers with 40 binds each
/// failed so). The name looked up again is whole, so the mount is tried again on a fresh
/// lookup; a destination really gone fails the lookup instead.
pub fn mount_onto(
    root: &OwnedFd,
    dst: &Path,
    mount: impl Fn(&Path) -> Result<(), Errno>,
) -> Result<(), Refused> {
    let mut tries = 1;
    loop {
        let target = resolve(root, dst).map_err(Refused::Destination)?;
        match mount(&fd_path(&target)) {
            Err(Errno::ENOENT) if tries < MOUNT_TRIES => tries += 1,
            done => return done.map_err(Refused::Mount),
        }
    }
}

/// A `-b` bind with Charliecloud's messages; `newroot` is only for the message.
pub fn bind_user(root: &OwnedFd, newroot: &Path, bind: &Bind) -> Result<(), Failure> {
    if !bind.src.exists() {
        return Err(Failure::Runtime(format!(
            "can't bind: source not found: {}",
            bind.src.display()
        )));
    }
    mount_onto(root, &bind.dst, |target| bind_onto(&bind.src, target)).map_err(|e| {
        Failure::Runtime(match e {
            Refused::Destination(Unusable::Missing) => {
                format!("can't bind: destination not found: {}", bind.dst.display())
            }
            Refused::Destination(Unusable::Escapes) => format!(
                "can't bind: {} not subdirectory of {}",
                bind.dst.display(),
                newroot.display()
            ),
            Refused::Destination(Unusable::Other(e)) => {
                with_errno(format!("can't bind: {}", bind.dst.display()), e)
            }
            Refused::Mount(e) => with_errno(
                format!(
                    "can't bind {} to {}",
                    bind.src.display(),
                    bind.dst.display()
                ),
                e,
            ),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_specs_parse_with_charliecloud_messages() {
        assert_eq!(
            parse("/a").unwrap(),
            Bind {
                src: "/a".into(),
                dst: "/a".into()
            }
        );
        assert_eq!(parse("/a:/b").unwrap().dst, PathBuf::from("/b"));
        let msg = |s| parse(s).unwrap_err().message().to_string();
        assert_eq!(msg(":/b"), "--bind: no source provided");
        assert_eq!(msg("/a:"), "--bind: no destination provided");
        assert_eq!(msg("/a:/"), "--bind: destination can't be /");
        assert_eq!(msg("/a://"), "--bind: destination can't be /");
        assert_eq!(msg("/a:b"), "--bind: destination must be absolute");
        assert_eq!(msg("rel"), "--bind: destination must be absolute");
    }

    #[test]
    fn destinations_never_resolve_out_of_the_root() {
        let dir = std::env::temp_dir().join(format!("ch-binds-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("inside")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("inside", root.join("rel")).unwrap();
        let fd: OwnedFd = std::fs::File::open(&root).unwrap().into();
        assert!(resolve(&fd, Path::new("/inside")).is_ok());
        assert!(resolve(&fd, Path::new("/rel")).is_ok());
        assert_eq!(
            resolve(&fd, Path::new("/abs")).unwrap_err(),
            Unusable::Escapes
        );
        assert_eq!(
            resolve(&fd, Path::new("/up")).unwrap_err(),
            Unusable::Escapes
        );
        assert_eq!(
            resolve(&fd, Path::new("/../etc")).unwrap_err(),
            Unusable::Escapes
        );
        assert_eq!(
            resolve(&fd, Path::new("/missing")).unwrap_err(),
            Unusable::Missing
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

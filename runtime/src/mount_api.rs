//! Linux's descriptor-based mount calls (5.2 and later; `mount_setattr(2)`'s page lists
//! them): a file system made and mounted without a mount point (`fsopen`, `fsconfig`,
//! `fsmount`), copies of such a mount (`open_tree`), and attaching one where wanted
//! (`move_mount`). A shared image server mounts its image this way, detached, and gives each
//! container a copy to attach in its own mount namespace. nix 0.29 has no wrappers: these
//! are the raw system calls, with libc's numbers and flags.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;

fn fd_result(ret: libc::c_long) -> Result<OwnedFd, Errno> {
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the system call returned a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

fn unit_result(ret: libc::c_long) -> Result<(), Errno> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn cstring(text: &str) -> Result<CString, Errno> {
    CString::new(text).map_err(|_| Errno::EINVAL)
}

/// Whether this kernel has these calls (an `open_tree` on no descriptor says EBADF if so).
pub fn supported() -> bool {
    // SAFETY: no memory is passed but a static empty string.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, -1, c"".as_ptr(), 0) };
    !(ret < 0 && Errno::last() == Errno::ENOSYS)
}

/// A file system context being configured (`fsopen`).
pub struct Context {
    fd: OwnedFd,
}

impl Context {
    /// Starts making a file system of type `fs` (`fuse`, say).
    pub fn open(fs: &str) -> Result<Context, Errno> {
        let name = cstring(fs)?;
        // SAFETY: a NUL-terminated string and a flag.
        let ret = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), libc::FSOPEN_CLOEXEC) };
        Ok(Context {
            fd: fd_result(ret)?,
        })
    }

    /// Sets option `key` to `value`.
    pub fn set(&self, key: &str, value: &str) -> Result<(), Errno> {
        let (key, value) = (cstring(key)?, cstring(value)?);
        // SAFETY: NUL-terminated strings that outlive the call.
        unit_result(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.fd.as_raw_fd(),
                libc::FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        })
    }

    /// Sets the flag option `key` (`ro`).
    pub fn set_flag(&self, key: &str) -> Result<(), Errno> {
        let key = cstring(key)?;
        // SAFETY: a NUL-terminated string that outlives the call.
        unit_result(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.fd.as_raw_fd(),
                libc::FSCONFIG_SET_FLAG,
                key.as_ptr(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        })
    }

    /// Makes the file system, and a mount of it attached nowhere with `attributes`
    /// (`MOUNT_ATTR_*`).
    pub fn mount(self, attributes: u64) -> Result<OwnedFd, Errno> {
        // SAFETY: no memory is passed.
        unit_result(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.fd.as_raw_fd(),
                libc::FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        })?;
        // SAFETY: as above.
        fd_result(unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                self.fd.as_raw_fd(),
                libc::FSMOUNT_CLOEXEC,
                attributes,
            )
        })
    }
}

/// A new detached copy of the mount `mount` (close-on-exec): attachable once, anywhere.
pub fn clone_detached(mount: &OwnedFd) -> Result<OwnedFd, Errno> {
    // SAFETY: a static empty string; flags only.
    fd_result(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    })
}

/// Attaches the detached mount `mount` on `target` in this process's mount namespace.
pub fn attach(mount: &OwnedFd, target: &Path) -> Result<(), Errno> {
    let target = CString::new(target.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: NUL-terminated strings that outlive the call.
    unit_result(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
}

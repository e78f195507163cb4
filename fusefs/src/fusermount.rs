//! Mounting and unmounting through `fusermount3`, the setuid helper of fuse3, for a user
//! who may not call mount(2). Its protocol (libfuse's util/fusermount.c): it reads the
//! number of a Unix socket from `_FUSE_COMMFD`, mounts with the options of `-o`, and sends
//! the `/dev/fuse` descriptor back over that socket as SCM_RIGHTS with one byte. (Its own
//! `auto_unmount` is not used: fusermount3 3.14 checks the dead mount as root, which a
//! user's mount without allow_other refuses, so it never unmounts one; libfuse issue 586.
//! `auto_unmount` has its own watcher here.)

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

const HELPER: &str = "fusermount3";

/// `fusermount3 -o OPTIONS -- MOUNTPOINT`: the FUSE device of the new mount, or
/// fusermount3's own error message.
pub fn mount(mountpoint: &Path, options: &str) -> Result<OwnedFd, String> {
    let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let theirs_fd = theirs.as_raw_fd();
    let mut command = Command::new(HELPER);
    command
        .arg("-o")
        .arg(options)
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", theirs_fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the closure only calls fcntl, which is async-signal-safe. Our end of the
    // socket pair, like every descriptor std opens, stays close-on-exec.
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(theirs_fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("{HELPER}: {e} (needed to mount as a user without privilege)"))?;
    drop(theirs);
    let received = receive_device(&ours);
    let mut stderr = String::new();
    if received.is_none() {
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
    }
    // It exits once it has sent the descriptor (or failed).
    let _ = child.wait();
    received.ok_or_else(
        || match stderr.lines().map(str::trim).find(|l| !l.is_empty()) {
            Some(line) => line.to_string(),
            None => format!("{HELPER} failed"),
        },
    )
}

/// The descriptor fusermount3 sends, or None if it closed the socket without one (it failed
/// and says why on stderr).
fn receive_device(socket: &UnixStream) -> Option<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(std::os::fd::RawFd);
    let msg = loop {
        match recvmsg::<UnixAddr>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other.ok()?,
        }
    };
    let mut device = None;
    for cmsg in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in our table for us; it is owned
                // here and nowhere else. Extra descriptors are closed by their drop.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                device.get_or_insert(owned);
            }
        }
    }
    device
}

/// `fusermount3 -u -q -z -- MOUNTPOINT`: a lazy unmount of a mount of ours.
pub fn unmount_lazily(mountpoint: &Path) -> Result<(), String> {
    let out = Command::new(HELPER)
        .args(["-u", "-q", "-z", "--"])
        .arg(mountpoint)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{HELPER}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{HELPER} -u -z: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// An option value as fusermount3 reads `fsname=` and `subtype=`: a backslash escapes the
/// next character, so commas and backslashes in a path survive.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == ',' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn commas_and_backslashes_are_escaped() {
        assert_eq!(super::escape(r"/a,b\c.sqfs"), r"/a\,b\\c.sqfs");
    }
}

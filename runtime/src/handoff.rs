//! Receiving descriptors over a Unix socket (SCM_RIGHTS): `--join`'s winner hands each peer
//! its namespaces, a shared image server hands each run a copy of its mount.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::failure::{with_errno, Failure};

/// Waits until `conn` has something to read (a message, or its end), or fails with
/// `timeout` at `deadline`: a stuck sender must not hold the receiver forever.
pub fn wait_readable(
    conn: BorrowedFd,
    deadline: Instant,
    label: &str,
    timeout: &str,
) -> Result<(), Failure> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Runtime(timeout.into()));
        }
        let mut fds = [PollFd::new(conn, PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => return Err(Failure::Runtime(with_errno(format!("{label}: poll"), e))),
        }
    }
}

/// Receives one message into `buf`, and the descriptors sent with it (close-on-exec; room
/// for more than either sender sends, so extra ones are received and closed, never cut
/// off). None: the sender reset the connection. `what` says what failed to arrive.
pub fn receive(
    conn: BorrowedFd,
    buf: &mut [u8],
    label: &str,
    what: &str,
) -> Result<Option<(usize, Vec<OwnedFd>)>, Failure> {
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    let msg = match msg {
        Ok(msg) => msg,
        Err(Errno::ECONNRESET) => return Ok(None),
        Err(e) => return Err(Failure::Runtime(with_errno(what, e))),
    };
    let mut received = Vec::new();
    for cmsg in msg
        .cmsgs()
        .map_err(|e| Failure::Runtime(with_errno(label, e)))?
    {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: SCM_RIGHTS gave us these descriptors.
            received.extend(
                fds.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok(Some((msg.bytes, received)))
}

/// Waits up to `timeout` for the connections `conns` to close or `listener` (if any) to
/// have someone to accept. A peer never writes, so a connection that turns readable has
/// closed: those are dropped. Says whether the listener is ready (false after EINTR).
pub fn poll_connections(
    conns: &mut Vec<OwnedFd>,
    listener: Option<BorrowedFd>,
    timeout: PollTimeout,
) -> Result<bool, Errno> {
    let mut fds: Vec<PollFd> = conns
        .iter()
        .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN))
        .chain(listener.map(|l| PollFd::new(l, PollFlags::POLLIN)))
        .collect();
    match poll(&mut fds, timeout) {
        Err(Errno::EINTR) => return Ok(false),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let ready: Vec<bool> = fds
        .iter()
        .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
        .collect();
    drop(fds);
    let mut i = 0;
    conns.retain(|_| {
        let closed = ready[i];
        i += 1;
        !closed
    });
    Ok(listener.is_some() && ready.last() == Some(&true))
}

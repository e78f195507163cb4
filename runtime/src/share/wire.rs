//! What a server says to a `ch-run` that connected, one message on a `SOCK_SEQPACKET`
//! connection: `S` IDENTITY with a detached copy of its mount of the image (`SCM_RIGHTS`),
//! or `E` CODE SPACE MESSAGE when it could not mount the image (the error a ch-run mounting
//! it itself would have printed, and its exit code).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::failure::{Failure, EXIT_EXEC, EXIT_USAGE};
use crate::handoff;

/// Largest message: an identity is about 200 bytes, an error one line.
const MAX_MESSAGE: usize = 8192;

pub enum Answer {
    Ready { identity: String, mount: OwnedFd },
    Failed(Failure),
}

fn send(conn: &impl AsRawFd, bytes: &[u8], fds: &[RawFd]) -> Result<(), Errno> {
    let cmsgs = [ControlMessage::ScmRights(fds)];
    let cmsgs = if fds.is_empty() { &[][..] } else { &cmsgs[..] };
    loop {
        match sendmsg::<()>(
            conn.as_raw_fd(),
            &[IoSlice::new(bytes)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => continue,
            other => return other.map(|_| ()),
        }
    }
}

/// Hands a connected `ch-run` its copy of the mount.
pub fn send_ready(conn: &OwnedFd, identity: &str, mount: &OwnedFd) -> Result<(), Errno> {
    let mut bytes = b"S".to_vec();
    bytes.extend_from_slice(identity.as_bytes());
    send(conn, &bytes, &[mount.as_raw_fd()])
}

/// Tells the `ch-run` that started the server why it could not serve.
pub fn send_failure(conn: &impl AsRawFd, failure: &Failure) {
    let text = format!("E{} {}", failure.exit_code(), failure.message());
    let _ = send(conn, text.as_bytes(), &[]);
}

/// The server's answer; None if it closed the connection without one (it was leaving, or
/// was killed). Waits until `deadline` at most.
pub fn receive(conn: &OwnedFd, deadline: Instant) -> Result<Option<Answer>, Failure> {
    handoff::wait_readable(
        conn.as_fd(),
        deadline,
        "share",
        "share: timeout waiting for the image server",
    )?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let Some((len, received)) = handoff::receive(
        conn.as_fd(),
        &mut buf,
        "share",
        "share: can't receive from the image server",
    )?
    else {
        return Ok(None);
    };
    let bytes = &buf[..len];
    let garbled = || Failure::Runtime("share: garbled answer from the image server".into());
    match bytes.split_first() {
        None => Ok(None),
        Some((b'E', rest)) => {
            let text = String::from_utf8_lossy(rest);
            let (code, msg) = text.split_once(' ').ok_or_else(garbled)?;
            let msg = msg.to_string();
            Ok(Some(Answer::Failed(match code.parse::<i32>() {
                Ok(EXIT_USAGE) => Failure::Usage(msg),
                Ok(EXIT_EXEC) => Failure::Exec(msg),
                Ok(_) => Failure::Runtime(msg),
                Err(_) => return Err(garbled()),
            })))
        }
        Some((b'S', rest)) => {
            let identity = String::from_utf8(rest.to_vec()).map_err(|_| garbled())?;
            let mut received = received;
            if received.len() != 1 {
                return Err(garbled());
            }
            let mount = received.pop().ok_or_else(garbled)?;
            Ok(Some(Answer::Ready { identity, mount }))
        }
        Some(_) => Err(garbled()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::time::Duration;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn the_identity_and_the_descriptor_arrive() {
        let (a, b) = pair();
        let sent: OwnedFd = std::fs::File::open("/").unwrap().into();
        send_ready(&a, "ch-run x dev 1", &sent).unwrap();
        match receive(&b, soon()).unwrap() {
            Some(Answer::Ready { identity, mount }) => {
                assert_eq!(identity, "ch-run x dev 1");
                let id = |fd: &OwnedFd| nix::sys::stat::fstat(fd.as_raw_fd()).unwrap().st_ino;
                assert_eq!(id(&mount), id(&sent));
            }
            _ => panic!("not ready"),
        }
    }

    #[test]
    fn a_failure_keeps_its_code_and_a_closed_connection_is_none() {
        let (a, b) = pair();
        send_failure(
            &a,
            &Failure::Runtime("can't open /dev/fuse: No such device".into()),
        );
        match receive(&b, soon()).unwrap() {
            Some(Answer::Failed(f)) => {
                assert_eq!(f.exit_code(), 31);
                assert_eq!(f.message(), "can't open /dev/fuse: No such device");
            }
            _ => panic!("not failed"),
        }
        drop(a);
        assert!(receive(&b, soon()).unwrap().is_none());
    }
}

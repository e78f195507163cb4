//! `--join`: the ranks of one node share one container (user + mount namespace, one FUSE
//! mount).
//!
//! Peers meet on an abstract Unix socket named after the user and the group's tag. The
//! first to bind it is the winner: it builds the container and hands each peer its
//! namespace descriptors; a peer joins them and runs its own command. Every peer keeps its
//! connection open until everything it started has exited, and the winner serves the image
//! until all connections have closed. Abstract sockets are not files and vanish with their
//! last descriptor, so nothing is left behind however a peer ends, and a peer learns of a
//! winner that failed at once (its connection closes) instead of waiting for a timeout.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    accept4, bind, connect, getsockopt, listen, recvmsg, sendmsg, socket, sockopt, AddressFamily,
    Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::unistd::getuid;

use crate::failure::{with_errno, Failure};
use crate::userns::Namespaces;

/// How long a peer tries to find or become a winner, and to get into its container,
/// before giving up.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(30);

/// A peer group: its size and its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub count: u32,
    pub tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    None,
    /// `--join-pid=PID`: enter that process's container.
    Pid(i32),
    Group(Group),
}

/// The leading decimal number of `text`, as Charliecloud reads peer counts from the
/// environment (`SLURM_STEP_TASKS_PER_NODE=2(x3)` is 2).
fn leading_number(name: &str, text: &str) -> Result<u32, Failure> {
    let digits: String = text
        .trim_start()
        .trim_start_matches('+')
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    if digits.is_empty() {
        return Err(Failure::Runtime(format!("{name}: no digits found")));
    }
    digits
        .parse()
        .map_err(|_| Failure::Runtime(format!("{name}: out of range")))
}

/// Works out the group from the options and the environment (MPI's and Slurm's variables).
pub fn plan(
    join: &crate::cli::JoinRequest,
    join_pid: Option<i32>,
    env: &dyn Fn(&str) -> Option<String>,
    notes: &mut Vec<String>,
) -> Result<Plan, Failure> {
    if let Some(pid) = join_pid {
        return Ok(Plan::Pid(pid));
    }
    if !join.enabled {
        return Ok(Plan::None);
    }
    let count = match join.count {
        Some(n) => {
            notes.push("join: peer group size from command line".into());
            n
        }
        None => {
            let mut found = None;
            for var in [
                "OMPI_COMM_WORLD_LOCAL_SIZE",
                "SLURM_STEP_TASKS_PER_NODE",
                "SLURM_CPUS_ON_NODE",
            ] {
                if let Some(value) = env(var) {
                    notes.push(format!("join: peer group size from {var}"));
                    found = Some(leading_number(var, &value)?);
                    break;
                }
            }
            found.unwrap_or(0)
        }
    };
    if count == 0 {
        return Err(Failure::Runtime(
            "join: no valid peer group size found".into(),
        ));
    }
    let tag = match (&join.tag, env("SLURM_STEP_ID")) {
        (Some(tag), _) => {
            notes.push("join: peer group tag from command line".into());
            tag.clone()
        }
        (None, Some(step)) => {
            notes.push("join: peer group tag from SLURM_STEP_ID".into());
            step
        }
        (None, None) => {
            notes.push("join: peer group tag from getppid(2)".into());
            nix::unistd::getppid().to_string()
        }
    };
    if tag.is_empty() {
        return Err(Failure::Runtime(
            "join: peer group tag cannot be empty string".into(),
        ));
    }
    Ok(Plan::Group(Group { count, tag }))
}

fn address(group: &Group) -> Result<UnixAddr, Failure> {
    let name = format!("ch-run-join/{}/{}", getuid(), group.tag);
    UnixAddr::new_abstract(name.as_bytes())
        .map_err(|e| Failure::Runtime(with_errno("join: bad tag", e)))
}

fn new_socket() -> Result<OwnedFd, Failure> {
    socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Failure::Runtime(with_errno("join: can't make socket", e)))
}

/// Whether the process at the other end is the same user (an abstract socket has no
/// permissions of its own). `uid` is this user as this process sees it: the host uid
/// before entering the container, the container's uid after (where every other host user
/// appears as the overflow uid, which therefore never matches).
fn same_user(fd: &OwnedFd, uid: u32) -> bool {
    uid != overflow_uid() && getsockopt(fd, sockopt::PeerCredentials).is_ok_and(|c| c.uid() == uid)
}

/// The uid unmapped users appear as in a user namespace.
pub fn overflow_uid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65534)
}

pub enum Claim {
    Winner(Listener),
    Peer(Peer),
}

/// Becomes the group's winner, or a peer of the existing winner.
pub fn claim(
    group: &Group,
    deadline: Instant,
    say: &mut dyn FnMut(String),
) -> Result<Claim, Failure> {
    let addr = address(group)?;
    loop {
        let fd = new_socket()?;
        match bind(fd.as_raw_fd(), &addr) {
            Ok(()) => {
                listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))
                    .map_err(|e| Failure::Runtime(with_errno("join: can't listen", e)))?;
                say("join: I won".into());
                return Ok(Claim::Winner(Listener { fd }));
            }
            Err(Errno::EADDRINUSE) => {}
            Err(e) => return Err(Failure::Runtime(with_errno("join: can't bind socket", e))),
        }
        let fd = new_socket()?;
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) if same_user(&fd, getuid().as_raw()) => {
                say("join: I lost".into());
                return Ok(Claim::Peer(Peer { fd }));
            }
            Ok(()) => {
                return Err(Failure::Runtime(
                    "join: peer group socket owned by another user".into(),
                ))
            }
            // The winner just stopped accepting: the name is free again, or about to be.
            Err(Errno::ECONNREFUSED | Errno::ENOENT) => {}
            Err(e) => return Err(Failure::Runtime(with_errno("join: can't connect", e))),
        }
        if Instant::now() > deadline {
            return Err(Failure::Runtime("timeout waiting for join lock".into()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The winner's socket, before the container is ready.
pub struct Listener {
    fd: OwnedFd,
}

impl Listener {
    /// Hands the container (this process's namespaces) to up to `count - 1` peers, in a
    /// thread, and tracks their connections.
    /// `uid` is the container's uid (this user, inside).
    pub fn serve(self, count: u32, uid: u32) -> Result<Peers, Failure> {
        let ns = Namespaces::of_self()?;
        let state = Arc::new((
            Mutex::new(PeerState {
                connected: 0,
                listening: true,
                own_done: None,
            }),
            Condvar::new(),
        ));
        let peers = Peers {
            state: state.clone(),
        };
        let listener = self.fd;
        std::thread::Builder::new()
            .name("join".into())
            .spawn(move || accept_peers(listener, &ns, count.saturating_sub(1), uid, &state))
            .map_err(|e| Failure::Runtime(format!("join: can't start thread: {e}")))?;
        Ok(peers)
    }
}

struct PeerState {
    connected: usize,
    /// The listening socket is still open (late peers may still come).
    listening: bool,
    /// When the winner's own processes were all gone.
    own_done: Option<Instant>,
}

/// How long a winner whose own processes are done still waits for peers that have not
/// arrived yet (a fast command like `true` can end before its peers even connect).
const LATE_PEER_GRACE: Duration = Duration::from_secs(10);

fn accept_peers(
    listener: OwnedFd,
    ns: &Namespaces,
    wanted: u32,
    uid: u32,
    state: &(Mutex<PeerState>, Condvar),
) {
    let (lock, cvar) = state;
    let mut listener = Some(listener);
    let mut conns: Vec<OwnedFd> = Vec::new();
    let mut accepted = 0;
    // Accept until the group is complete (or, once the winner's own processes are gone,
    // until the grace for late peers is over); then only watch the connections, and stop
    // when every peer is gone.
    loop {
        {
            let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
            s.connected = conns.len();
            let late = s.own_done.is_some_and(|t| t.elapsed() > LATE_PEER_GRACE);
            if (accepted >= wanted || late) && listener.is_some() {
                // Closing it frees the name for the next group with this tag.
                s.listening = false;
                listener = None;
            }
            if listener.is_none() && conns.is_empty() {
                break;
            }
        }
        let mut fds: Vec<PollFd> = conns
            .iter()
            .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN))
            .collect();
        if let Some(l) = &listener {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Err(Errno::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        // A peer never writes: its connection turns readable only when it closes.
        let mut i = 0;
        conns.retain(|_| {
            let closed = ready[i];
            i += 1;
            !closed
        });
        if let (Some(l), Some(true)) = (&listener, ready.last()) {
            // Close-on-exec: the winner's command must not inherit its peers' connections.
            if let Ok(raw) = accept4(l.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                // SAFETY: accept4 returned a new descriptor we own.
                let conn = unsafe { OwnedFd::from_raw_fd(raw) };
                if same_user(&conn, uid) && send_namespaces(&conn, ns).is_ok() {
                    conns.push(conn);
                    accepted += 1;
                }
            }
        }
    }
    let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
    s.connected = 0;
    s.listening = false;
    drop(listener);
    cvar.notify_all();
}

fn send_namespaces(conn: &OwnedFd, ns: &Namespaces) -> Result<(), Errno> {
    let fds = [ns.user.as_raw_fd(), ns.mount.as_raw_fd()];
    let byte = [b'n'];
    sendmsg::<()>(
        conn.as_raw_fd(),
        &[std::io::IoSlice::new(&byte)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(|_| ())
}

/// The winner's view of its peers.
pub struct Peers {
    state: Arc<(Mutex<PeerState>, Condvar)>,
}

impl Peers {
    /// Waits, once the winner's own processes are all gone, for its peers to be done (and
    /// for late ones, for a while).
    fn wait(&self) {
        let (lock, cvar) = &*self.state;
        let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
        s.own_done.get_or_insert_with(Instant::now);
        while s.connected > 0 || s.listening {
            s = cvar.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A loser's connection to the winner.
pub struct Peer {
    fd: OwnedFd,
}

impl Peer {
    /// Receives the winner's namespaces and enters them (this process must be
    /// single-threaded). The connection stays open as long as the returned value lives.
    /// None: the winner closed the connection without taking us in (its group was complete
    /// or it failed); the caller tries again.
    pub fn join(self, deadline: Instant) -> Result<Option<OwnedFd>, Failure> {
        // A stuck winner must not hold us forever.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure::Runtime("timeout waiting for join lock".into()));
            }
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => break,
                Err(e) => return Err(Failure::Runtime(with_errno("join: poll", e))),
            }
        }
        let mut byte = [0u8; 1];
        let mut iov = [IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!([RawFd; 2]);
        let msg = loop {
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
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
            Err(e) => {
                return Err(Failure::Runtime(with_errno(
                    "join: can't receive namespaces",
                    e,
                )))
            }
        };
        let mut fds = Vec::new();
        for cmsg in msg
            .cmsgs()
            .map_err(|e| Failure::Runtime(with_errno("join", e)))?
        {
            if let ControlMessageOwned::ScmRights(received) = cmsg {
                // SAFETY: SCM_RIGHTS gave us these descriptors.
                fds.extend(
                    received
                        .into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if fds.len() != 2 {
            return Ok(None);
        }
        let mount = fds.pop().expect("two descriptors");
        let user = fds.pop().expect("two descriptors");
        Namespaces { user, mount }.join()?;
        Ok(Some(self.fd))
    }
}

/// What keeps a container's group together until this supervisor exits.
pub enum Membership {
    Alone,
    Winner(Peers),
    /// The open connection to the winner.
    Peer(OwnedFd),
}

impl Membership {
    /// The winner waits for every peer to be done before it stops serving the image.
    pub fn wait_for_peers(&self) {
        if let Membership::Winner(peers) = self {
            peers.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::JoinRequest;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn group_size_and_tag_follow_charliecloud_precedence() {
        let on = JoinRequest {
            enabled: true,
            ..Default::default()
        };
        let mut notes = Vec::new();
        let env = env_of(&[
            ("SLURM_STEP_TASKS_PER_NODE", "2(x3)"),
            ("SLURM_CPUS_ON_NODE", "8"),
            ("SLURM_STEP_ID", "7"),
        ]);
        assert_eq!(
            plan(&on, None, &env, &mut notes).unwrap(),
            Plan::Group(Group {
                count: 2,
                tag: "7".into()
            })
        );
        let env = env_of(&[
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "4"),
            ("SLURM_CPUS_ON_NODE", "8"),
        ]);
        let explicit = JoinRequest {
            enabled: true,
            count: Some(3),
            tag: Some("t".into()),
        };
        assert_eq!(
            plan(&explicit, None, &env, &mut notes).unwrap(),
            Plan::Group(Group {
                count: 3,
                tag: "t".into()
            })
        );
        match plan(&on, None, &env, &mut notes).unwrap() {
            Plan::Group(g) => assert_eq!(g.count, 4),
            other => panic!("{other:?}"),
        }
        let none = env_of(&[]);
        let e = plan(&on, None, &none, &mut notes).unwrap_err();
        assert_eq!(e.message(), "join: no valid peer group size found");
        let bad = env_of(&[("OMPI_COMM_WORLD_LOCAL_SIZE", "abc")]);
        let e = plan(&on, None, &bad, &mut notes).unwrap_err();
        assert_eq!(e.message(), "OMPI_COMM_WORLD_LOCAL_SIZE: no digits found");
        assert_eq!(plan(&on, Some(5), &none, &mut notes).unwrap(), Plan::Pid(5));
        assert_eq!(
            plan(&JoinRequest::default(), None, &env, &mut notes).unwrap(),
            Plan::None
        );
    }
}

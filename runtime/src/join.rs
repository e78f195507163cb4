//! `--join`: the ranks of one node share one container (user + mount namespace, one FUSE
//! mount).
//!
//! Peers meet on a Unix socket named for the group's tag in a directory only this user can
//! write to ([`rendezvous`]). The first to make it is the winner: it builds the container and
//! hands each peer its namespace descriptors; a peer joins them and runs its own command.
//! Every peer keeps its connection open until everything it started has exited, and the
//! winner serves the image until all connections have closed. The winner removes the socket
//! once its group is complete (or it fails), and a peer learns of a winner that failed at
//! once (its connection closes) instead of waiting for a timeout; the socket of a winner
//! that was killed is removed by its last peer, or taken over by the next group.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::PollTimeout;
use nix::sys::socket::{accept4, getsockopt, sendmsg, sockopt, ControlMessage, MsgFlags, SockFlag};
use nix::unistd::getuid;

use crate::failure::Failure;
use crate::handoff;
use crate::protocol::Message;
use crate::userns::Namespaces;

pub(crate) mod rendezvous;
mod tasks_per_node;
use rendezvous::{Place, Reached};

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
/// environment (anything after the digits is ignored).
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
                    found = Some(if var == "SLURM_STEP_TASKS_PER_NODE" {
                        // Per node of the step: this node's entry.
                        tasks_per_node::on_node(&value, env("SLURM_NODEID").as_deref())?
                    } else {
                        leading_number(var, &value)?
                    });
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
        (None, Some(step)) => match env("SLURM_JOB_ID") {
            // A step's id is its number in its job (0 for the first): two jobs of this user
            // on one node have steps of the same id. Charliecloud uses the step id alone.
            Some(job) if !step.is_empty() => {
                notes.push("join: peer group tag from SLURM_JOB_ID and SLURM_STEP_ID".into());
                format!("{job}.{step}")
            }
            _ => {
                notes.push("join: peer group tag from SLURM_STEP_ID".into());
                step
            }
        },
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

/// Whether the process at the other end is the same user. Only this user can make a socket
/// in the group's directory; a winner checks whom it accepts all the same. `uid` is this
/// user as this process sees it: the host uid before entering the container, the
/// container's uid after (where every other host user appears as the overflow uid, which
/// therefore never matches).
pub(crate) fn same_user(fd: &OwnedFd, uid: u32) -> bool {
    uid != overflow_uid() && getsockopt(fd, sockopt::PeerCredentials).is_ok_and(|c| c.uid() == uid)
}

/// The uid unmapped users appear as in a user namespace.
pub fn overflow_uid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65534)
}

/// How long the end of a group waits for the directory's lock to tidy up (it is held for
/// microseconds at a time; giving up only leaves a dead socket for the next group).
const TIDY_PATIENCE: Duration = Duration::from_secs(5);

pub enum Claim {
    Winner(Listener),
    Peer(Peer),
}

/// Becomes the group's winner, or a peer of the existing winner. `tell` gets what to print
/// (Info at -v; a Warning always).
pub fn claim(
    group: &Group,
    deadline: Instant,
    tell: &mut dyn FnMut(Message),
) -> Result<Claim, Failure> {
    let entry = rendezvous::entry_name(&group.tag);
    loop {
        let place = Place::choose(&mut |warning| tell(Message::Warning(warning)))?;
        tell(Message::Info(format!(
            "join: peer group socket: {}",
            place.path_of(&entry).display()
        )));
        // None: the directory was removed (the last of another group found it empty).
        while let Some(locked) = place.lock(deadline)? {
            match locked.connect(&entry)? {
                Reached::Listener(fd) => {
                    drop(locked);
                    if !same_user(&fd, getuid().as_raw()) {
                        return Err(Failure::Runtime(
                            "join: peer group socket owned by another user".into(),
                        ));
                    }
                    tell(Message::Info("join: I lost".into()));
                    return Ok(Claim::Peer(Peer { fd, place }));
                }
                Reached::Busy => {}
                found @ (Reached::Dead | Reached::Absent) => {
                    if matches!(found, Reached::Dead) {
                        locked.remove_dead(&entry)?;
                        tell(Message::Info(
                            "join: the last winner was killed; taking its place".into(),
                        ));
                    }
                    let fd = locked.listen(&entry)?;
                    drop(locked);
                    tell(Message::Info("join: I won".into()));
                    return Ok(Claim::Winner(Listener {
                        bound: Some(Bound { fd, place, entry }),
                    }));
                }
            }
            // The winner's backlog is full: let it accept.
            drop(locked);
            if Instant::now() > deadline {
                return Err(Failure::Runtime("timeout waiting for join lock".into()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The winner's listening socket and where it is.
struct Bound {
    fd: OwnedFd,
    place: Place,
    entry: String,
}

impl Bound {
    /// Removes the socket while still listening, under the lock (so nobody takes it for a
    /// dead one and replaces it meanwhile), closes it and tidies the directory. Frees the
    /// name for the next group with this tag.
    fn retire(self) {
        let Bound { fd, place, entry } = self;
        if let Ok(Some(locked)) = place.lock(Instant::now() + TIDY_PATIENCE) {
            locked.remove(&entry);
            drop(fd);
            locked.tidy();
        }
    }
}

/// The winner's socket, before the container is ready; removed if the winner fails.
pub struct Listener {
    bound: Option<Bound>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(bound) = self.bound.take() {
            bound.retire();
        }
    }
}

impl Listener {
    /// Hands the container (this process's namespaces) to up to `count - 1` peers, in a
    /// thread, and tracks their connections.
    /// `uid` is the container's uid (this user, inside).
    pub fn serve(mut self, count: u32, uid: u32) -> Result<Peers, Failure> {
        let ns = Namespaces::of_self()?;
        let Some(bound) = self.bound.take() else {
            return Err(Failure::Runtime("join: listener already served".into()));
        };
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
        let spawned = std::thread::Builder::new()
            .name("join".into())
            .spawn(move || accept_peers(bound, &ns, count.saturating_sub(1), uid, &state));
        spawned.map_err(|e| Failure::Runtime(format!("join: can't start thread: {e}")))?;
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
    bound: Bound,
    ns: &Namespaces,
    wanted: u32,
    uid: u32,
    state: &(Mutex<PeerState>, Condvar),
) {
    let (lock, cvar) = state;
    let mut listener = Some(bound);
    let mut conns: Vec<OwnedFd> = Vec::new();
    let mut accepted = 0;
    // Accept until the group is complete (or, once the winner's own processes are gone,
    // until the grace for late peers is over); then only watch the connections, and stop
    // when every peer is gone.
    loop {
        let late = {
            let s = lock.lock().unwrap_or_else(|e| e.into_inner());
            s.own_done.is_some_and(|t| t.elapsed() > LATE_PEER_GRACE)
        };
        if accepted >= wanted || late {
            if let Some(bound) = listener.take() {
                bound.retire();
            }
        }
        {
            let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
            s.connected = conns.len();
            s.listening = listener.is_some();
            if listener.is_none() && conns.is_empty() {
                break;
            }
        }
        let listening = listener.as_ref().map(|l| l.fd.as_fd());
        let Ok(accept) =
            handoff::poll_connections(&mut conns, listening, PollTimeout::from(200u16))
        else {
            break;
        };
        if let (Some(l), true) = (&listener, accept) {
            // Close-on-exec: the winner's command must not inherit its peers' connections.
            if let Ok(raw) = accept4(l.fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                // SAFETY: accept4 returned a new descriptor we own.
                let conn = unsafe { OwnedFd::from_raw_fd(raw) };
                if same_user(&conn, uid) && send_namespaces(&conn, ns).is_ok() {
                    conns.push(conn);
                    accepted += 1;
                }
            }
        }
    }
    if let Some(bound) = listener.take() {
        bound.retire();
    }
    let mut s = lock.lock().unwrap_or_else(|e| e.into_inner());
    s.connected = 0;
    s.listening = false;
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
    place: Place,
}

impl Peer {
    /// Receives the winner's namespaces and enters them (this process must be
    /// single-threaded). The connection stays open as long as the returned value lives.
    /// None: the winner closed the connection without taking us in (its group was complete
    /// or it failed); the caller tries again.
    pub fn join(self, deadline: Instant) -> Result<Option<Member>, Failure> {
        // A stuck winner must not hold us forever.
        handoff::wait_readable(
            self.fd.as_fd(),
            deadline,
            "join",
            "timeout waiting for join lock",
        )?;
        let mut byte = [0u8; 1];
        let Some((_, mut fds)) = handoff::receive(
            self.fd.as_fd(),
            &mut byte,
            "join",
            "join: can't receive namespaces",
        )?
        else {
            return Ok(None);
        };
        if fds.len() != 2 {
            return Ok(None);
        }
        let mount = fds.pop().expect("two descriptors");
        let user = fds.pop().expect("two descriptors");
        Namespaces { user, mount }.join()?;
        Ok(Some(Member {
            _connection: self.fd,
            place: self.place,
        }))
    }
}

/// A peer in its container: what it keeps until its supervisor exits.
pub struct Member {
    /// Open until then: the winner serves the image as long as any is.
    _connection: OwnedFd,
    /// The group's directory, to clear up after a winner that was killed.
    place: Place,
}

/// What keeps a container's group together until this supervisor exits.
pub enum Membership {
    Alone,
    Winner(Peers),
    Peer(Member),
}

impl Membership {
    /// At the supervisor's end: the winner waits for every peer to be done before it stops
    /// serving the image; a peer removes the socket of a winner that was killed (a live
    /// one's stays), and the directory if that was all in it.
    pub fn end(&self) {
        match self {
            Membership::Winner(peers) => peers.wait(),
            Membership::Peer(member) => member.place.tidy(TIDY_PATIENCE),
            Membership::Alone => {}
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
        // Slurm's count for this node of the step, not the first node's.
        let env = env_of(&[
            ("SLURM_STEP_TASKS_PER_NODE", "3,2"),
            ("SLURM_NODEID", "1"),
            ("SLURM_CPUS_ON_NODE", "8"),
        ]);
        match plan(&on, None, &env, &mut notes).unwrap() {
            Plan::Group(g) => assert_eq!(g.count, 2),
            other => panic!("{other:?}"),
        }
        // Steps of two jobs on one node: the job's id keeps them apart.
        let env = env_of(&[
            ("SLURM_CPUS_ON_NODE", "8"),
            ("SLURM_JOB_ID", "41"),
            ("SLURM_STEP_ID", "0"),
        ]);
        match plan(&on, None, &env, &mut notes).unwrap() {
            Plan::Group(g) => assert_eq!(g.tag, "41.0"),
            other => panic!("{other:?}"),
        }
        let env = env_of(&[
            ("SLURM_CPUS_ON_NODE", "8"),
            ("SLURM_JOB_ID", "41"),
            ("SLURM_STEP_ID", ""),
        ]);
        let e = plan(&on, None, &env, &mut notes).unwrap_err();
        assert_eq!(e.message(), "join: peer group tag cannot be empty string");
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

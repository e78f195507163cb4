//! The supervisor: the process `ch-run` forks to build the container, serve its FUSE mount
//! and be the parent of the command.
//!
//! It is a child subreaper, so every process the command leaves behind becomes its child
//! when orphaned: it keeps serving the image until the last of them has exited, and then
//! leaves, taking the namespaces (and so the mount) with it. The waiting `ch-run` process
//! learns the command's status as soon as the command itself ends. If `ch-run` dies first
//! (`kill -9`), the lifeline pipe tells the supervisor, which kills everything it supervises.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::prctl;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::failure::Failure;
use crate::join::{self, Membership};
use crate::plan::Plan;
use crate::protocol::Message;
use crate::{rootfs, share, userns};

struct Reporter {
    out: File,
}

impl Reporter {
    fn send(&mut self, msg: Message) {
        // The waiting process may be gone (killed); nothing to do about it then.
        let _ = msg.write_to(&mut self.out);
    }
}

/// Runs in the forked supervisor (`parent` is ch-run's pid); never returns.
pub fn run(plan: Plan, report: OwnedFd, lifeline: OwnedFd, parent: Pid) -> ! {
    // Until the command runs, ch-run's death (kill -9 during setup) ends this process too;
    // from then on the lifeline thread takes over, to take the command's processes along.
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != parent {
        std::process::exit(0);
    }
    let mut reporter = Reporter {
        out: File::from(report),
    };
    match start(&plan, &mut reporter) {
        Err(failure) => {
            reporter.send(Message::Failed(
                failure.exit_code(),
                failure.message().into(),
            ));
            std::process::exit(0)
        }
        Ok(started) => supervise(started, reporter, lifeline, plan.verbose),
    }
}

/// What must stay alive while the container runs.
struct Started {
    command: Pid,
    _server: Option<crate::fuse_mount::FuseServer>,
    membership: Membership,
    /// Open while this container lives: its image server serves as long as one is.
    _shared: Option<OwnedFd>,
}

fn start(plan: &Plan, reporter: &mut Reporter) -> Result<Started, Failure> {
    prctl::set_child_subreaper(true)
        .map_err(|e| Failure::Runtime(format!("can't become subreaper: {e}")))?;
    // What goes wrong in the image reaches the user as one error line (through the
    // reporter) or as EIO to the command, not as the FUSE server's log on the terminal;
    // -vv shows that log. The command gets the real stderr back.
    let command_stderr = if plan.verbose >= 2 {
        None
    } else {
        Some(quiet_stderr()?)
    };
    // Info lines print at -v; warnings always (the waiting process leaves them out at -q).
    let mut tell = |msg: Message| {
        if plan.verbose >= 1 || !matches!(msg, Message::Info(_)) {
            reporter.send(msg);
        }
    };
    for note in &plan.notes {
        tell(Message::Info(note.clone()));
    }
    // Inherited by the command's process, forked below before the mount is served.
    prctl::set_no_new_privs()
        .map_err(|e| Failure::Runtime(format!("can't set no_new_privs: {e}")))?;
    let stderr = command_stderr.as_ref().map(|fd| fd.as_raw_fd());
    // The command's process is forked as soon as this one is in the container's
    // namespaces (see `Command::fork`); it execs once the root is built.
    let mut shared = None;
    let (server, membership, pending) = match &plan.join {
        join::Plan::None => {
            // Found or started on the host, before this process is in the container.
            let mount = match &plan.share {
                Some(request) => {
                    let ids = (plan.uid, plan.gid);
                    match share::attach(request, &plan.image, ids, &mut tell) {
                        Ok(attached) => {
                            shared = Some(attached.connection);
                            Some(attached.mount)
                        }
                        // This container mounts the image itself, as without sharing: it
                        // runs, or fails with the one error line that mount gives (the same
                        // a server that could not mount it reported).
                        Err(failure) => {
                            tell(Message::Info(format!(
                                "share: {}; mounting the image for this container alone",
                                // Most of share's own messages say "share:" already.
                                failure.message().trim_start_matches("share: ")
                            )));
                            None
                        }
                    }
                }
                None => None,
            };
            userns::enter(plan.uid, plan.gid)?;
            let pending = plan.command.fork(stderr)?;
            (rootfs::build(plan, mount)?, Membership::Alone, pending)
        }
        join::Plan::Pid(pid) => {
            tell(Message::Info(format!("joining namespaces of pid {pid}")));
            // Sealed before it is in the container's namespaces, where its root could look.
            userns::seal()?;
            userns::Namespaces::of_pid_for_join(*pid)?.join()?;
            (None, Membership::Alone, plan.command.fork(stderr)?)
        }
        join::Plan::Group(group) => {
            let deadline = Instant::now() + join::CLAIM_TIMEOUT;
            loop {
                match join::claim(group, deadline, &mut tell)? {
                    join::Claim::Winner(listener) => {
                        userns::enter(plan.uid, plan.gid)?;
                        let pending = plan.command.fork(stderr)?;
                        let server = rootfs::build(plan, None)?;
                        let peers = listener.serve(group.count, plan.uid)?;
                        break (server, Membership::Winner(peers), pending);
                    }
                    join::Claim::Peer(peer) => {
                        // Sealed before it is in the container's namespaces.
                        userns::seal()?;
                        match peer.join(deadline)? {
                            Some(member) => {
                                let pending = plan.command.fork(stderr)?;
                                break (None, Membership::Peer(member), pending);
                            }
                            // The winner closed its group (or failed) before taking us in:
                            // find or start another.
                            None => tell(Message::Info("join: winner gone; trying again".into())),
                        }
                    }
                }
            }
        }
    };
    tell(Message::Info(plan.executing.clone()));
    // ch-run learns the pid before the command runs (it passes signals on to it).
    let command = pending.start(|pid| tell(Message::Started(pid.as_raw())))?;
    Ok(Started {
        command,
        _server: server,
        membership,
        _shared: shared,
    })
}

fn supervise(started: Started, mut reporter: Reporter, lifeline: OwnedFd, verbose: i32) -> ! {
    let command_done = Arc::new(AtomicBool::new(false));
    {
        let command_done = command_done.clone();
        let _ = std::thread::Builder::new()
            .name("lifeline".into())
            .spawn(move || watch_lifeline(lifeline, &command_done));
    }
    // The lifeline watches ch-run now (it sees a death that came before it started, too).
    let _ = prctl::set_pdeathsig(None);
    // The supervisor outlives the command and must not hold its terminal or output pipes
    // (a `$(ch-run …)` would otherwise wait for it); at -vv the FUSE log keeps stderr.
    let log = (verbose >= 2)
        .then(|| nix::fcntl::fcntl(2, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).ok())
        .flatten();
    fusefs::daemon::detach_stdio();
    if let Some(fd) = log {
        let _ = nix::unistd::dup2(fd, 2);
        let _ = nix::unistd::close(fd);
    }
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(status) => {
                if status.pid() == Some(started.command) {
                    if let Some(raw) = raw_status(status) {
                        command_done.store(true, Ordering::SeqCst);
                        reporter.send(Message::Ended(raw));
                    }
                }
            }
            Err(Errno::EINTR) => continue,
            Err(_) => break, // ECHILD: nothing of ours is left running.
        }
    }
    started.membership.end();
    std::process::exit(0)
}

/// The wait status as the kernel encodes it (for the waiting process to decode).
fn raw_status(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some((code & 0xff) << 8),
        WaitStatus::Signaled(_, sig, core) => Some(sig as i32 | if core { 0x80 } else { 0 }),
        _ => None,
    }
}

/// Waits for `ch-run` to go away. If it goes before the command ended, it was killed: kill
/// everything below this process too (repeatedly, in case something forked meanwhile).
fn watch_lifeline(lifeline: OwnedFd, command_done: &AtomicBool) {
    loop {
        let mut fds = [PollFd::new(lifeline.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            _ => break,
        }
    }
    if command_done.load(Ordering::SeqCst) {
        return;
    }
    loop {
        let victims = descendants(std::process::id() as i32);
        for pid in &victims {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(if victims.is_empty() {
            200
        } else {
            20
        }));
    }
}

/// Every process below `root`, from `/proc/*/stat` (parent ids).
fn descendants(root: i32) -> Vec<i32> {
    let mut links = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                // The parent id is the second field after the parenthesised name.
                if let Some(ppid) = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<i32>().ok())
                {
                    links.push((pid, ppid));
                }
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            links
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Points this process's stderr at /dev/null; returns (close-on-exec) the stderr it had.
fn quiet_stderr() -> Result<OwnedFd, Failure> {
    let fail = |e: Errno| Failure::Runtime(format!("can't redirect stderr: {e}"));
    let saved = nix::fcntl::fcntl(2, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(fail)?;
    // SAFETY: fcntl returned a new descriptor we own.
    let saved = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(saved) };
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(|e| Failure::Runtime(format!("can't open /dev/null: {e}")))?;
    nix::unistd::dup2(null.as_raw_fd(), 2).map_err(fail)?;
    Ok(saved)
}

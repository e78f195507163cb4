//! The `ch-run` process the user (or `srun`) started: it forks the supervisor, passes the
//! signals it receives on to the command, and exits with the command's status as soon as
//! the command ends, even if processes it left behind keep the container alive.

use std::fs::File;
use std::io::BufReader;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{fork, pipe2, ForkResult, Pid};

use crate::failure::{say, Failure, EXIT_CHRUN};
use crate::plan::Plan;
use crate::protocol::Message;
use crate::supervisor;

/// Signals sent to ch-run that the command gets too.
const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
];

/// `si_code` of a signal the kernel generated itself (a terminal's ^C reaches the whole
/// foreground process group, the command included; forwarding it would deliver it twice).
const SI_KERNEL: i32 = 0x80;

/// Runs the plan; returns ch-run's exit status.
pub fn run(plan: Plan) -> Result<i32, Failure> {
    let mut signals = SigSet::empty();
    for s in FORWARDED {
        signals.add(s);
    }
    // Blocked before the fork: the supervisor keeps them blocked (it must survive a ^C to
    // the process group); the command unblocks them before exec.
    signals
        .thread_block()
        .map_err(|e| Failure::Runtime(format!("can't block signals: {e}")))?;
    let pipe = |what| {
        pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Failure::Runtime(format!("can't make {what} pipe: {e}")))
    };
    let (report_read, report_write) = pipe("report")?;
    let (lifeline_read, lifeline_write) = pipe("lifeline")?;
    // SAFETY: ch-run is single-threaded here (no thread has been started), so the child may
    // run arbitrary code.
    match unsafe { fork() }.map_err(|e| Failure::Runtime(format!("can't fork: {e}")))? {
        ForkResult::Child => {
            drop(report_read);
            drop(lifeline_write);
            supervisor::run(plan, report_write, lifeline_read)
        }
        ForkResult::Parent { .. } => {
            drop(report_write);
            drop(lifeline_read);
            let status = wait_for_command(report_read, &signals, plan.verbose);
            drop(lifeline_write);
            status
        }
    }
}

fn wait_for_command(report: OwnedFd, signals: &SigSet, verbose: i32) -> Result<i32, Failure> {
    let signal_fd = SignalFd::with_flags(signals, SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Failure::Runtime(format!("can't make signalfd: {e}")))?;
    let mut reader = BufReader::new(File::from(report));
    let mut command: Option<Pid> = None;
    let mut pending: Vec<Signal> = Vec::new();
    loop {
        // Messages already buffered come first; poll only when the buffer is empty.
        if reader.buffer().is_empty() {
            let mut fds = [
                PollFd::new(reader.get_ref().as_fd(), PollFlags::POLLIN),
                PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Failure::Runtime(format!("poll: {e}"))),
                Ok(_) => {}
            }
            let signalled = fds[1]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLIN));
            let reported = fds[0].revents().is_some_and(|r| !r.is_empty());
            if signalled {
                if let Ok(Some(info)) = signal_fd.read_signal() {
                    if info.ssi_code != SI_KERNEL {
                        if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                            match command {
                                Some(pid) => {
                                    let _ = kill(pid, sig);
                                }
                                None => pending.push(sig),
                            }
                        }
                    }
                }
            }
            if !reported {
                continue;
            }
        }
        match Message::read_from(&mut reader) {
            Some(Message::Info(msg)) => {
                if verbose >= 1 {
                    eprintln!("ch-run[{}]: {msg}", std::process::id());
                }
            }
            Some(Message::Started(pid)) => {
                let pid = Pid::from_raw(pid);
                command = Some(pid);
                for sig in pending.drain(..) {
                    let _ = kill(pid, sig);
                }
            }
            Some(Message::Ended(raw)) => return Ok(exit_status(raw)),
            Some(Message::Failed(code, msg)) => {
                return Err(match code {
                    64 => Failure::Usage(msg),
                    49 => Failure::Exec(msg),
                    _ => Failure::Runtime(msg),
                })
            }
            None => {
                say("error", "container supervisor died unexpectedly");
                return Ok(EXIT_CHRUN);
            }
        }
    }
}

/// The command's exit status, or 128+N when signal N killed it (what a shell reports).
fn exit_status(raw: i32) -> i32 {
    let signal = raw & 0x7f;
    if signal == 0 {
        (raw >> 8) & 0xff
    } else {
        128 + signal
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn statuses_as_a_shell_reports_them() {
        assert_eq!(super::exit_status(42 << 8), 42);
        assert_eq!(super::exit_status(0), 0);
        assert_eq!(super::exit_status(15), 143);
        assert_eq!(super::exit_status(9 | 0x80), 137);
    }
}

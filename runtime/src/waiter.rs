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

/// How ch-run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Exit with this status.
    Exit(i32),
    /// Die of this signal, as the command did (so a shell loop sees ^C for what it was).
    Signal(i32),
}

/// Runs the plan; returns how ch-run ends.
pub fn run(plan: Plan) -> Result<Ending, Failure> {
    // Signals ignored when ch-run started (nohup) stay ignored: not forwarded, and still
    // ignored in the command.
    let ignored = crate::exec::ignored_signals();
    let mut signals = SigSet::empty();
    for s in FORWARDED {
        if !ignored.contains(&(s as i32)) {
            signals.add(s);
        }
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
    let me = nix::unistd::getpid();
    // SAFETY: ch-run is single-threaded here (no thread has been started), so the child may
    // run arbitrary code.
    match unsafe { fork() }.map_err(|e| Failure::Runtime(format!("can't fork: {e}")))? {
        ForkResult::Child => {
            drop(report_read);
            drop(lifeline_write);
            supervisor::run(plan, report_write, lifeline_read, me)
        }
        ForkResult::Parent { child } => {
            drop(report_write);
            drop(lifeline_read);
            let ending = wait_for_command(report_read, &signals, plan.verbose, child);
            drop(lifeline_write);
            ending
        }
    }
}

/// Whether this process is in the foreground process group of its terminal (then a
/// terminal-generated ^C or ^\ reached the command as well).
fn in_terminal_foreground() -> bool {
    let me = nix::unistd::getpgrp();
    (0..3).any(|fd| {
        // SAFETY: tcgetpgrp only reads; a non-terminal fd gives an error.
        let pgrp = unsafe { libc::tcgetpgrp(fd) };
        pgrp > 0 && pgrp == me.as_raw()
    })
}

/// Whether a signal the kernel generated (`si_code` SI_KERNEL) already reached the command:
/// ^C and ^\ go to the whole foreground process group. A hangup goes to the session leader
/// only, so it is always passed on.
fn command_got_it_too(sig: Signal, code: i32) -> bool {
    code == SI_KERNEL && matches!(sig, Signal::SIGINT | Signal::SIGQUIT) && in_terminal_foreground()
}

fn wait_for_command(
    report: OwnedFd,
    signals: &SigSet,
    verbose: i32,
    supervisor: Pid,
) -> Result<Ending, Failure> {
    let signal_fd = SignalFd::with_flags(signals, SfdFlags::SFD_CLOEXEC)
        .map_err(|e| Failure::Runtime(format!("can't make signalfd: {e}")))?;
    let mut reader = BufReader::new(File::from(report));
    let mut command: Option<Pid> = None;
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
            // Messages before signals: the command's pid is in the pipe before the command
            // runs, so a signal sent after it did anything finds the pid known. The signal
            // stays pending in the signalfd until the pipe has nothing more to say.
            if signalled && !reported {
                if let Ok(Some(info)) = signal_fd.read_signal() {
                    if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                        match command {
                            Some(pid) => {
                                if !command_got_it_too(sig, info.ssi_code) {
                                    let _ = kill(pid, sig);
                                }
                            }
                            // Still setting up: every forwarded signal would end the command,
                            // so it ends the setup, and ch-run dies of it.
                            None => {
                                let _ = kill(supervisor, Signal::SIGKILL);
                                return Ok(Ending::Signal(sig as i32));
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
            Some(Message::Warning(msg)) => {
                if verbose >= 0 {
                    say("warning", &msg);
                }
            }
            Some(Message::Started(pid)) => command = Some(Pid::from_raw(pid)),
            Some(Message::Ended(raw)) => return Ok(ending(raw)),
            Some(Message::Failed(code, msg)) => {
                return Err(match code {
                    64 => Failure::Usage(msg),
                    49 => Failure::Exec(msg),
                    _ => Failure::Runtime(msg),
                })
            }
            None => {
                // The supervisor died (killed): its mount is gone, so is the command.
                if let Some(pid) = command {
                    let _ = kill(pid, Signal::SIGKILL);
                }
                say("error", "container supervisor died unexpectedly");
                return Ok(Ending::Exit(EXIT_CHRUN));
            }
        }
    }
}

/// How the command ended, from its wait status.
fn ending(raw: i32) -> Ending {
    let signal = raw & 0x7f;
    if signal == 0 {
        Ending::Exit((raw >> 8) & 0xff)
    } else {
        Ending::Signal(signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_from_wait_statuses() {
        assert_eq!(ending(42 << 8), Ending::Exit(42));
        assert_eq!(ending(0), Ending::Exit(0));
        assert_eq!(ending(15), Ending::Signal(15));
        assert_eq!(ending(9 | 0x80), Ending::Signal(9));
    }
}

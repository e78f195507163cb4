//! Starting the command: everything is prepared before `fork`, because the forking process
//! serves FUSE with other threads and its child may then only make plain system calls until
//! it execs (no allocation, no locks).

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe2, ForkResult, Pid};

use crate::failure::{with_errno, Failure};

/// Where the child failed, sent back over the error pipe with the errno.
const STAGE_CD: u8 = 1;
const STAGE_EXEC: u8 = 2;

/// The shell that runs scripts without `#!`.
const SH: &std::ffi::CStr = c"/bin/sh";

/// The default search path when the container's environment has none (glibc's `execvp`).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// A command ready to exec in the container.
pub struct Command {
    /// The command as the user typed it, for messages.
    name: String,
    /// Full paths to try in order (from `$PATH` when the name has no slash).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
    cwd_text: String,
    /// Signals ignored when ch-run started (`nohup`): they stay ignored in the command.
    keep_ignored: Vec<libc::c_int>,
}

/// The signals this process ignores (apart from SIGPIPE, which Rust's runtime ignores for
/// itself before `main`), as inherited from whoever started ch-run.
pub fn ignored_signals() -> Vec<libc::c_int> {
    (1..libc::SIGRTMIN())
        .filter(|&sig| sig != libc::SIGPIPE && sig != libc::SIGKILL && sig != libc::SIGSTOP)
        .filter(|&sig| {
            // SAFETY: sigaction with a null new action only reads the current one.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction == libc::SIG_IGN
            }
        })
        .collect()
}

fn cstring(bytes: &[u8]) -> Result<CString, Failure> {
    CString::new(bytes).map_err(|_| Failure::Runtime("argument contains a NUL byte".into()))
}

impl Command {
    /// `argv` run with `env` (name, value pairs) in `cwd` (None: stay at `/`).
    pub fn new(
        argv: &[OsString],
        env: &[(OsString, OsString)],
        cwd: Option<&str>,
    ) -> Result<Self, Failure> {
        let name = argv
            .first()
            .ok_or_else(|| Failure::Usage("no command specified".into()))?;
        let name_bytes = name.as_bytes();
        let path = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map_or(OsStr::new(DEFAULT_PATH), |(_, v)| v.as_os_str());
        let candidates = if name_bytes.contains(&b'/') {
            vec![cstring(name_bytes)?]
        } else if name_bytes.is_empty() {
            Vec::new()
        } else {
            path.as_bytes()
                .split(|&b| b == b':')
                .map(|dir| {
                    let dir = if dir.is_empty() { &b"."[..] } else { dir };
                    let mut full = dir.to_vec();
                    full.push(b'/');
                    full.extend_from_slice(name_bytes);
                    cstring(&full)
                })
                .collect::<Result<_, _>>()?
        };
        let mut envp = Vec::with_capacity(env.len());
        for (k, v) in env {
            let mut pair = k.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(v.as_bytes());
            envp.push(cstring(&pair)?);
        }
        Ok(Command {
            name: name.to_string_lossy().into_owned(),
            candidates,
            argv: argv
                .iter()
                .map(|a| cstring(a.as_bytes()))
                .collect::<Result<_, _>>()?,
            envp,
            cwd: cwd.map(|d| cstring(d.as_bytes())).transpose()?,
            cwd_text: cwd.unwrap_or("/").to_string(),
            keep_ignored: Vec::new(),
        })
    }

    /// Keeps these signals ignored in the command.
    pub fn keep_ignored(mut self, signals: Vec<libc::c_int>) -> Self {
        self.keep_ignored = signals;
        self
    }

    /// Forks and execs the command; returns its pid once the exec succeeded, or the failure
    /// (`can't cd to …`, exit 31; `can't execve(2): …`, exit 49) after reaping the child.
    /// `stderr`, if given, becomes the command's standard error.
    ///
    /// `announce` gets the command's pid before the command runs any of its own code (the
    /// child waits for it before exec): whoever must signal the command (ch-run passing on
    /// a signal) knows its pid by the time the command can have done anything visible.
    pub fn spawn(&self, stderr: Option<RawFd>, announce: impl FnOnce(Pid)) -> Result<Pid, Failure> {
        let (err_read, err_write) = pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Failure::Runtime(with_errno("can't make pipe", e)))?;
        let (go_read, go_write) = pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Failure::Runtime(with_errno("can't make pipe", e)))?;
        let argv: Vec<*const libc::c_char> = self
            .argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp: Vec<*const libc::c_char> = self
            .envp
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        // For a file without `#!` (ENOEXEC), execvp's rule: run it with /bin/sh. The slot
        // after "/bin/sh" takes the candidate's path in the child.
        let mut sh_argv: Vec<*const libc::c_char> = vec![SH.as_ptr(), std::ptr::null()];
        sh_argv.extend(self.argv.iter().skip(1).map(|a| a.as_ptr()));
        sh_argv.push(std::ptr::null());
        let parent = nix::unistd::getpid().as_raw();
        // SAFETY: the child only makes system calls on memory prepared above, then execs
        // or exits.
        match unsafe { fork() }.map_err(|e| Failure::Runtime(with_errno("can't fork", e)))? {
            ForkResult::Child => {
                drop(err_read);
                drop(go_write);
                self.child(
                    &err_write,
                    &go_read,
                    stderr,
                    parent,
                    &argv,
                    &envp,
                    &mut sh_argv,
                )
            }
            ForkResult::Parent { child } => {
                drop(err_write);
                drop(go_read);
                announce(child);
                // The child goes on (to exec) when it reads this byte, or at EOF.
                let _ = nix::unistd::write(&go_write, b"g");
                drop(go_write);
                let mut buf = [0u8; 5];
                let n = read_full(&err_read, &mut buf);
                if n < buf.len() {
                    return Ok(child);
                }
                let _ = waitpid(child, None);
                let errno = Errno::from_raw(i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]));
                Err(match buf[0] {
                    STAGE_CD => Failure::Runtime(with_errno(
                        format!("can't cd to {}", self.cwd_text),
                        errno,
                    )),
                    _ => {
                        Failure::Exec(with_errno(format!("can't execve(2): {}", self.name), errno))
                    }
                })
            }
        }
    }

    /// In the forked child: restore what the parent changed for itself, then exec.
    #[allow(clippy::too_many_arguments)]
    fn child(
        &self,
        err: &OwnedFd,
        go: &OwnedFd,
        stderr: Option<RawFd>,
        parent: libc::pid_t,
        argv: &[*const libc::c_char],
        envp: &[*const libc::c_char],
        sh_argv: &mut [*const libc::c_char],
    ) -> ! {
        // SAFETY: async-signal-safe system calls only.
        unsafe {
            // If the supervisor dies, the mount dies with it: so does the command.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(137);
            }
            // The supervisor blocks the signals it forwards and Rust ignores SIGPIPE; the
            // command starts with a clean slate, as it would from a shell.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if let Some(fd) = stderr {
                libc::dup2(fd, 2);
            }
            for sig in 1..libc::SIGRTMIN() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP && !self.keep_ignored.contains(&sig)
                {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            // Wait until the supervisor has announced our pid (see `spawn`); a signal passed
            // on meanwhile acts on this process as it would on the command.
            let mut byte = 0u8;
            while libc::read(go.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) < 0
                && *libc::__errno_location() == libc::EINTR
            {}
            if let Some(dir) = &self.cwd {
                if libc::chdir(dir.as_ptr()) != 0 {
                    fail_child(err, STAGE_CD, 31);
                }
            }
            let mut errno = libc::ENOENT;
            for path in &self.candidates {
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                let mut e = *libc::__errno_location();
                if e == libc::ENOEXEC {
                    sh_argv[1] = path.as_ptr();
                    libc::execve(SH.as_ptr(), sh_argv.as_ptr(), envp.as_ptr());
                    e = *libc::__errno_location();
                }
                // execvp's rules: a permission error is reported if nothing else works;
                // only "not here" errors move on to the next directory.
                if errno != libc::EACCES {
                    errno = e;
                }
                if ![
                    libc::EACCES,
                    libc::ENOENT,
                    libc::ENOTDIR,
                    libc::ESTALE,
                    libc::ENODEV,
                    libc::ETIMEDOUT,
                ]
                .contains(&e)
                {
                    errno = e;
                    break;
                }
            }
            *libc::__errno_location() = errno;
            fail_child(err, STAGE_EXEC, 49)
        }
    }
}

/// Sends `stage` and errno to the parent and exits with `code`.
unsafe fn fail_child(err: &OwnedFd, stage: u8, code: i32) -> ! {
    let e = (*libc::__errno_location()).to_ne_bytes();
    let msg = [stage, e[0], e[1], e[2], e[3]];
    libc::write(err.as_raw_fd(), msg.as_ptr().cast(), msg.len());
    libc::_exit(code)
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_bare_name_is_searched_in_the_containers_path() {
        let env = vec![(OsString::from("PATH"), OsString::from("/a::/b"))];
        let c = Command::new(&os(&["ls", "-l"]), &env, None).unwrap();
        assert_eq!(c.candidates, [c"/a/ls", c"./ls", c"/b/ls"]);
        let c = Command::new(&os(&["./x"]), &env, None).unwrap();
        assert_eq!(c.candidates, [c"./x"]);
    }

    #[test]
    fn exec_failures_report_the_command_and_exit_49() {
        let env = vec![(OsString::from("PATH"), OsString::from("/nonexistent"))];
        let c = Command::new(&os(&["no-such-command"]), &env, None).unwrap();
        let e = c.spawn(None, |_| {}).unwrap_err();
        assert_eq!(e.exit_code(), 49);
        assert_eq!(
            e.message(),
            "can't execve(2): no-such-command: No such file or directory"
        );
        let c = Command::new(&os(&["/bin/true"]), &[], Some("/nonexistent-dir")).unwrap();
        let e = c.spawn(None, |_| {}).unwrap_err();
        assert_eq!(e.exit_code(), 31);
        assert!(
            e.message().starts_with("can't cd to /nonexistent-dir: "),
            "{e}"
        );
    }

    #[test]
    fn a_started_command_runs_with_the_given_environment() {
        let env = vec![(OsString::from("X"), OsString::from("42"))];
        let c = Command::new(&os(&["/bin/sh", "-c", "exit $X"]), &env, Some("/")).unwrap();
        let pid = c.spawn(None, |_| {}).unwrap();
        let status = waitpid(pid, None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(pid, 42));
    }
}

//! How `ch-run` fails: one line on stderr and Charliecloud's exit codes, which job scripts
//! test for.
//!
//! A [`Failure`]'s kind is its exit code, and that is all any caller decides on: `main`
//! exits with it, and the supervisor passes code and text to the waiting `ch-run` process
//! through a pipe, where they become a `Failure` again. The text inside is only ever
//! printed, so it stays a string, worded where the failure happens (with the path or
//! option it concerns). Where a caller does decide on what went wrong, the error is typed
//! before it becomes a `Failure`: `bounded::Error` (too big, unreadable, a damaged image),
//! `trust::Unusable` (not private, or not openable) and `binds::Unusable` (a destination
//! missing, or leading out of the image), each worded by the caller that matched it.

use std::fmt;

/// Exit status for every error of ch-run itself (Charliecloud's `ERR_CHRUN`).
pub const EXIT_CHRUN: i32 = 31;
/// Exit status when the command cannot be executed (Charliecloud's `EXIT_EXEC`).
pub const EXIT_EXEC: i32 = 49;
/// Exit status for a command line ch-run cannot parse (BSD's `EX_USAGE`, as argp uses).
pub const EXIT_USAGE: i32 = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A bad command line.
    Usage(String),
    /// Anything ch-run itself could not do.
    Runtime(String),
    /// The command could not be executed.
    Exec(String),
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Runtime(_) => EXIT_CHRUN,
            Failure::Exec(_) => EXIT_EXEC,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::Runtime(m) | Failure::Exec(m) => m,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Shorthand for the common case.
pub fn fail<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Runtime(msg.into()))
}

/// An io::Error's text without Rust's " (os error N)" tail: strerror, as Charliecloud
/// prints it.
pub fn io_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

/// `what: strerror`, the way Charliecloud appends an errno to a message.
pub fn with_errno(what: impl fmt::Display, errno: nix::errno::Errno) -> String {
    format!("{what}: {}", errno.desc())
}

/// Prints a message in ch-run's format, `ch-run[PID]: LEVEL: MESSAGE`.
pub fn say(level: &str, msg: &str) {
    eprintln!("ch-run[{}]: {level}: {msg}", std::process::id());
}

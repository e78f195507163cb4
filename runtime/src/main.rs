//! `ch-run [OPTION…] IMAGE [--] CMD [ARG…]`.

use runtime::cli::{self, Request};
use runtime::failure::{say, Failure};
use runtime::waiter::Ending;
use runtime::{plan, waiter};

/// What `--feature` answers yes to.
const FEATURES: [&str; 3] = ["extglob", "overlayfs", "squash"];

fn run() -> Result<Ending, Failure> {
    match cli::parse(std::env::args_os().skip(1))? {
        Request::Print(text) => {
            print!("{text}");
            Ok(Ending::Exit(0))
        }
        Request::Feature(name) if FEATURES.contains(&name.as_str()) => Ok(Ending::Exit(0)),
        Request::Feature(name) => Err(Failure::Runtime(format!("unknown feature: {name}"))),
        Request::Run(options) => waiter::run(plan::build(&options)?),
    }
}

/// Dies of `sig` as the command did (no core dump of our own); 128+N if that fails.
fn die_of(sig: i32) -> ! {
    // SAFETY: plain system calls on this process.
    unsafe {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    std::process::exit(128 + sig)
}

fn main() {
    // Before any thread: the supervisor's FUSE threads inherit it (see fusefs::one_heap).
    fusefs::one_heap();
    let code = match run() {
        Ok(Ending::Exit(code)) => code,
        Ok(Ending::Signal(sig)) => die_of(sig),
        Err(failure) => {
            say("error", failure.message());
            failure.exit_code()
        }
    };
    std::process::exit(code)
}

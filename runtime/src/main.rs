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

/// Allocations this large are mapped on their own, not taken from the heap.
///
/// Each FUSE request thread allocates a read buffer of 16 MiB, of which a request touches a
/// page or two. Left to glibc, the first such buffer (INIT's) is mapped, and its free raises
/// the threshold to 16 MiB, so the next ones come from the heap, where calloc clears the
/// memory it reuses: page faults and zeroing on every start. A fixed threshold (which also
/// stops glibc moving it) maps them, untouched until used; data blocks (at most 1 MiB) stay
/// in the heap and are reused as the block cache evicts them.
const MMAP_THRESHOLD: i32 = 2 << 20;

fn main() {
    // Before any thread: the supervisor's FUSE threads inherit it (see fusefs::one_heap).
    fusefs::one_heap();
    // SAFETY: mallopt only sets an allocator parameter; any value is accepted or refused.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
    // A shared image server started by another ch-run (see runtime::share) never returns.
    runtime::share::server::run_if_asked();
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

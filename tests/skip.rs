//! Tests that cannot run here (no root, no `/dev/fuse`, no Slurm...) are skips, and a skip
//! is never silent: libtest has no "skipped" result for a test that decides at run time, so
//! a skip is shown three ways, each outside the output libtest captures:
//!
//! - the test's own line on stderr when it skips: `SKIPPED kernel_compare::name: reason`;
//! - after the binary's `test result:` line, a count and the list of its skipped tests;
//! - with `CH_TEST_SKIP_LOG=FILE`, one line per skip appended to FILE, which
//!   `scripts/test.sh` counts and prints at the end of the whole suite.
//!
//! Where a skip is not acceptable it is a failure instead: with `CH_TEST_REQUIRE_ALL` or
//! `CI` set (CI, and `scripts/test.sh` run as root, which sets up everything every test
//! needs), and for one need with its own variable (`CH_TEST_REQUIRE_CONTAINERS`,
//! `CH_TEST_REQUIRE_SLURM`).

use std::io::Write;
use std::sync::{Mutex, Once};

use crate::sys::{fuse_available, is_root};

/// Something a test needs that a machine may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Root: loop mounts, owners and devices, running things as the test user.
    Root,
    /// `/dev/fuse` opens for reading and writing.
    Fuse,
    /// The corpus (`testdata/build-corpus.sh`) is built and up to date.
    Corpus,
    /// The test user can open `/dev/fuse` and make a user namespace: ch-run can run.
    Containers,
    /// A Slurm node is up (`scripts/slurm-up.sh`).
    Slurm,
    /// The two simulated Slurm nodes (partition `two`, `scripts/slurm-nodes.sh`) are up.
    SlurmNodes,
}

impl Need {
    fn present(self) -> bool {
        match self {
            Need::Root => is_root(),
            Need::Fuse => fuse_available(),
            // Root builds the corpus: there, a missing corpus is a failure (`images()`).
            Need::Corpus => is_root() || crate::corpus::available(),
            Need::Containers => crate::container::containers_usable(),
            Need::Slurm => slurm_up(),
            Need::SlurmNodes => slurm_nodes_up(),
        }
    }

    /// What is missing, and who provides it.
    fn missing(self) -> &'static str {
        match self {
            Need::Root => "needs root (scripts/test.sh as root runs it)",
            Need::Fuse => "needs a usable /dev/fuse (scripts/setup.sh makes it mode 0666)",
            Need::Corpus => {
                "needs the test corpus, which only root can build (scripts/setup.sh builds it)"
            }
            Need::Containers => {
                "the test user can't open /dev/fuse or make a user namespace (scripts/setup.sh)"
            }
            Need::Slurm => "no Slurm node is up (scripts/slurm-up.sh as root starts one)",
            Need::SlurmNodes => {
                "the two simulated Slurm nodes are not up (scripts/slurm-up.sh as root starts them)"
            }
        }
    }

    /// The variable that makes this need's absence a failure on its own.
    fn own_variable(self) -> Option<&'static str> {
        match self {
            Need::Containers => Some("CH_TEST_REQUIRE_CONTAINERS"),
            Need::Slurm | Need::SlurmNodes => Some("CH_TEST_REQUIRE_SLURM"),
            _ => None,
        }
    }
}

/// Whether everything in `needs` is here. If not, the calling test is recorded as skipped
/// (or fails, where skips are not allowed) and should return at once.
pub fn needs(needs: &[Need]) -> bool {
    let missing: Vec<Need> = needs.iter().copied().filter(|n| !n.present()).collect();
    if missing.is_empty() {
        return true;
    }
    if let Some(var) = missing
        .iter()
        .filter_map(|n| n.own_variable())
        .find(|v| set(v))
    {
        let reasons: Vec<&str> = missing.iter().map(|n| n.missing()).collect();
        panic!(
            "{} cannot run: {}; {var} is set, so that is a failure",
            test_name(),
            reasons.join("; ")
        );
    }
    let reasons: Vec<&str> = missing.iter().map(|n| n.missing()).collect();
    skip(&reasons.join("; "));
    false
}

/// Records that the calling test does not run, and why (or fails it, where skips are not
/// allowed). The test returns right after.
pub fn skip(reason: &str) {
    let test = test_name();
    if let Some(var) = ["CH_TEST_REQUIRE_ALL", "CI"].into_iter().find(|v| set(v)) {
        panic!("{test} cannot run: {reason}; {var} is set, so every test must run");
    }
    let line = format!("SKIPPED {test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os("CH_TEST_SKIP_LOG") {
        // One write per line with O_APPEND: test binaries running at once don't interleave.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            panic!("{test}: CH_TEST_SKIP_LOG {}: {e}", log.to_string_lossy());
        }
    }
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if !skipped.iter().any(|(t, _)| *t == test) {
        skipped.push((test, reason.to_string()));
    }
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain extern "C" function without arguments.
        unsafe { libc::atexit(print_skipped) };
    });
}

/// Whether an environment variable is set to something other than empty, `0` or `false`.
fn set(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

static SKIPPED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();

/// Runs at exit, after libtest's `test result:` line, so the skips sit right under it.
extern "C" fn print_skipped() {
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    let mut text = format!(
        "{}: {} test(s) SKIPPED (counted as passed above, but they did not run):\n",
        binary_name(),
        skipped.len()
    );
    for (test, reason) in skipped.iter() {
        text.push_str(&format!("    {test}: {reason}\n"));
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// `binary::test`: libtest runs each test on a thread named after it.
fn test_name() -> String {
    let thread = std::thread::current();
    format!("{}::{}", binary_name(), thread.name().unwrap_or("?"))
}

/// The test binary's name without cargo's hash (`kernel_compare-0123abcd` → `kernel_compare`).
fn binary_name() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}

/// Whether a Slurm node is idle or partly used (`sinfo`).
fn slurm_up() -> bool {
    static UP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UP.get_or_init(|| nodes_up(&[]) > 0)
}

/// Whether both nodes of the partition `two` are idle or partly used.
fn slurm_nodes_up() -> bool {
    static UP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UP.get_or_init(|| nodes_up(&["-p", "two"]) == 2)
}

/// How many nodes `sinfo ARGS` lists as idle or partly used.
fn nodes_up(args: &[&str]) -> usize {
    std::process::Command::new("sinfo")
        .args(["-h", "-N", "-o", "%T"])
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or(0, |o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| {
                    ["idle", "mixed", "allocated"]
                        .iter()
                        .any(|s| l.starts_with(s))
                })
                .count()
        })
}

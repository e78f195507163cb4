//! What the test user runs, out of the clone's reach. The tests run as root from a clone that
//! may sit where the test user cannot enter (root's home, a `mktemp -d` directory: mode
//! 0700), so the binaries the test user runs are copied, once per test process, into a
//! fresh directory everyone can enter, which is removed when the process exits.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::sys::built_binary;

/// This process's directory under the system temp dir, mode 0755; removed at exit.
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fresh_dir(&std::env::temp_dir()))
}

/// Where the simulated Slurm nodes (`scripts/slurm-nodes.sh`) see what this machine sees:
/// each node has its own `/tmp`, `/var/tmp`, `/run` and `/dev/shm`, as cluster nodes do,
/// and shares the rest, as they share `/home` and the images.
pub const SHARED_BASE: &str = "/srv";

/// This process's directory under `SHARED_BASE`, mode 0755; removed at exit.
pub fn shared_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fresh_dir(Path::new(SHARED_BASE)))
}

fn fresh_dir(base: &Path) -> PathBuf {
    let dir = base.join(format!("e2e-reachable-{}", std::process::id()));
    // A directory left by an earlier process with this pid holds nothing we need.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    remove_at_exit(&dir);
    dir
}

/// A copy of the workspace binary `name` (as `built_binary` finds it) in `dir()`, made once.
pub fn binary(name: &str) -> PathBuf {
    static COPIES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    copy_once(&COPIES, dir(), name)
}

/// A copy of the workspace binary `name` in `shared_dir()`, made once.
pub fn shared_binary(name: &str) -> PathBuf {
    static COPIES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    copy_once(&COPIES, shared_dir(), name)
}

fn copy_once(copies: &Mutex<Vec<String>>, dir: &Path, name: &str) -> PathBuf {
    let copy = dir.join(name);
    let mut made = copies.lock().unwrap_or_else(|e| e.into_inner());
    if !made.iter().any(|n| n == name) {
        std::fs::copy(built_binary(name), &copy)
            .unwrap_or_else(|e| panic!("copy {name} to {}: {e}", copy.display()));
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        made.push(name.to_string());
    }
    copy
}

static AT_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes `dir` and what is in it when the test process exits.
pub fn remove_at_exit(dir: &Path) {
    let mut dirs = AT_EXIT.lock().unwrap_or_else(|e| e.into_inner());
    if dirs.is_empty() {
        // SAFETY: registers a plain extern "C" function without arguments.
        unsafe { libc::atexit(remove_dirs) };
    }
    dirs.push(dir.to_path_buf());
}

extern "C" fn remove_dirs() {
    let dirs = AT_EXIT.lock().unwrap_or_else(|e| e.into_inner());
    for dir in dirs.iter() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! The progress bar, on a terminal only: bytes read of the bytes the tree's files hold,
//! counted first by a walk of `stat`s alone (which also warms the caches the real walk
//! uses). Its errors are ignored: the real walk reports them.

use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::source::{self, Kind};

/// Bytes in the regular files under `root`, each inode counted once, `excludes` left out.
fn total_bytes(root: &OwnedFd, excludes: &HashSet<Vec<u8>>) -> u64 {
    let Ok(root) = root.try_clone() else {
        return 0;
    };
    let mut total = 0u64;
    let mut seen = HashSet::new();
    let mut stack: Vec<(OwnedFd, Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
    if let Ok(names) = source::list(root.as_fd()) {
        stack.push((root, Vec::new(), names));
    }
    while let Some((dir, rel, names)) = stack.last_mut() {
        let Some(name) = names.pop() else {
            stack.pop();
            continue;
        };
        let mut path = rel.clone();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        if excludes.contains(&path) {
            continue;
        }
        let Ok(st) = source::stat_at(dir.as_fd(), &name) else {
            continue;
        };
        match st.kind {
            Kind::File if st.nlink < 2 || seen.insert((st.dev, st.ino)) => total += st.size,
            Kind::Dir => {
                let sub = source::open_dir_at(dir.as_fd(), &name);
                if let Ok(sub) = sub {
                    if let Ok(names) = source::list(sub.as_fd()) {
                        stack.push((sub, path, names));
                    }
                }
            }
            _ => {}
        }
    }
    total
}

/// A bar for packing the tree under `root`, drawn on stderr if it is a terminal and `show`;
/// a hidden one otherwise (then the tree is not counted).
pub fn bar(show: bool, root: &OwnedFd, excludes: &HashSet<Vec<u8>>) -> ProgressBar {
    use std::io::IsTerminal;
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_bytes(root, excludes));
    bar.set_style(
        ProgressStyle::with_template(
            "[{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

//! Helpers of the `sqfs pack` tests: a scratch directory, and the comparison of a packed
//! tree's snapshot with its source's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::snapshot::{compare, Ignore, Node};

/// A directory of the test's own, removed with what it holds.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// `$TMPDIR/KIND-PID-NAME`, empty.
    pub fn new(kind: &str, name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("{kind}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The sets of paths that are one inode (hard links), in path order.
pub fn link_groups(nodes: &[Node]) -> Vec<Vec<Vec<u8>>> {
    let mut by_ino: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.mode & 0o170000 != 0o040000) {
        by_ino.entry(n.ino).or_default().push(n.path.clone());
    }
    let mut groups: Vec<Vec<Vec<u8>>> = by_ino.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    groups
}

/// Checks that `actual` shows the tree `expected` shows: every field a user sees (inode
/// numbers aside, and directory sizes and link counts, which are each file system's own),
/// and the same names for each hard-linked inode (of which the tree has some).
pub fn same_tree(what: &str, expected: &[Node], actual: &[Node]) {
    let ignore = Ignore {
        ino: true,
        dir_size: true,
        nlink: false,
    };
    if let Err(diff) = compare(expected, actual, ignore) {
        panic!("{what}:\n{diff}");
    }
    assert_eq!(
        link_groups(expected),
        link_groups(actual),
        "{what}: hard links"
    );
    assert!(!link_groups(expected).is_empty(), "the tree has hard links");
}

/// Asserts that a command succeeded without a word on stderr.
pub fn succeeded(out: &Output, what: &str) {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that a command failed with one line on stderr, `sqfs: error: …` with
/// `expected` in it.
pub fn one_error_line(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("sqfs: error: ") && stderr.contains(expected),
        "expected {expected:?} in {stderr:?}"
    );
}

/// The names in `dir`, sorted (an image and any temporary file left beside it).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A few files, directories, a hard link and a symlink under `root`.
pub fn small_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("a"), b"a file\n").unwrap();
    std::fs::write(root.join("sub/b"), vec![7u8; 300_000]).unwrap();
    std::fs::write(root.join("sub/deeper/c"), b"c").unwrap();
    std::fs::hard_link(root.join("a"), root.join("sub/a-link")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
}

//! What the integration tests share: a scratch directory, a tree deeper than PATH_MAX
//! (made relative to descriptors), and gensquashfs (squashfs-tools-ng), which packs one
//! (mksquashfs refuses a path past PATH_MAX).

#![allow(dead_code)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{self as rfs, Mode, OFlags};

/// A scratch directory, removed at the end.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sqfs-deep-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `depth` directories named `name`, one in the other, and `make(bottom)` run in the last.
pub fn deep_tree(root: &Path, name: &str, depth: usize, make: impl Fn(&OwnedFd)) {
    let mut fd = rfs::open(root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    for _ in 0..depth {
        rfs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)).unwrap();
        fd = rfs::openat(&fd, name, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    }
    make(&fd);
}

pub fn pack(tree: &Path, image: &Path) {
    let out = Command::new("gensquashfs")
        .arg("-D")
        .arg(tree)
        .args(["-q", "-f", "-c", "gzip"])
        .arg(image)
        .output()
        .expect("gensquashfs (squashfs-tools-ng) is needed");
    assert!(
        out.status.success(),
        "gensquashfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

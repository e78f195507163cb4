//! The body of the `extract` fuzz target: an arbitrary image extracted with `sqfs extract`
//! into a scratch directory, and the check that nothing outside that directory changed.
//!
//! Compiled into the target (`extract.rs`) and, by path, into `tests/extract_hostile.rs`,
//! which replays the seeds and committed findings through it; so it uses only `std`,
//! `sqfs` and `sqfs_tool`.
//!
//! The sandbox, made once per process:
//!
//! ```text
//! top/                  sentinel-file, sentinel-dir/inner, work/
//!   work/               sentinel-file, sentinel-dir/inner, sentinel-link -> sentinel-file,
//!                       image.sqfs, out/
//!     out/              the destination, emptied before each input
//! ```
//!
//! The seeds' symlinks point at `../sentinel-file`, `../../sentinel-dir` and the like, so
//! that a one-byte change of a name (a duplicate: symlink then file) aims a write at a
//! sentinel. Any result of the extraction is allowed; a change outside `out/` (a name
//! added or removed in `top/` or `work/`, a sentinel's bytes, mode, owner, link count,
//! mtime or ctime) is a finding.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sqfs::{Archive, OpenOptions};

/// What `lstat`, `readlink` and the bytes say about an entry outside the destination.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    content: Option<Vec<u8>>,
    target: Option<PathBuf>,
}

/// The scratch tree one process extracts into.
pub struct Sandbox {
    top: PathBuf,
    work: PathBuf,
    out: PathBuf,
    image: PathBuf,
    before: BTreeMap<PathBuf, Option<Entry>>,
}

impl Sandbox {
    /// Makes the sandbox under the temporary directory, named after the process.
    pub fn new(tag: &str) -> Sandbox {
        let top = std::env::temp_dir().join(format!("sqfs-fuzz-{tag}-{}", std::process::id()));
        if top.exists() {
            remove_tree(&top);
        }
        let work = top.join("work");
        for dir in [&top, &work] {
            std::fs::create_dir_all(dir.join("sentinel-dir")).expect("sandbox");
            std::fs::write(dir.join("sentinel-file"), "sentinel\n").expect("sandbox");
            std::fs::write(dir.join("sentinel-dir/inner"), "inner\n").expect("sandbox");
        }
        symlink("sentinel-file", work.join("sentinel-link")).expect("sandbox");
        let image = work.join("image.sqfs");
        std::fs::write(&image, b"").expect("sandbox");
        let out = work.join("out");
        std::fs::create_dir(&out).expect("sandbox");
        let mut sandbox = Sandbox {
            top,
            work,
            out,
            image,
            before: BTreeMap::new(),
        };
        sandbox.before = sandbox.state();
        sandbox
    }

    /// The destination directory.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Extracts `data` as an image (if it opens as one) into the emptied destination;
    /// panics if anything outside the destination changed. Returns whether the image
    /// opened and the extraction's result.
    pub fn extract(&self, data: &[u8]) -> Option<Result<sqfs_tool::ExtractSummary, String>> {
        remove_tree(&self.out);
        std::fs::create_dir(&self.out).expect("sandbox out/");
        std::fs::write(&self.image, data).expect("sandbox image");
        // At offset 0, or 4 / 8 KiB when the magic is there (as the `image` target).
        let offset = [0u64, 4096, 8192]
            .into_iter()
            .find(|&o| data.get(o as usize..o as usize + 4) == Some(b"hsqs"))
            .unwrap_or(0);
        let options = OpenOptions {
            offset,
            ..OpenOptions::default()
        };
        let result = File::open(&self.image)
            .ok()
            .and_then(|f| Archive::open_file(f, &options).ok())
            .map(|archive| {
                let options = sqfs_tool::ExtractOptions {
                    force: false,
                    processors: 1,
                    progress: false,
                };
                sqfs_tool::extract(&archive, "/", &self.out, &options).map_err(|e| e.to_string())
            });
        let after = self.state();
        for (path, entry) in &after {
            assert_eq!(
                self.before.get(path),
                Some(entry),
                "{} changed outside the destination (result: {result:?})",
                path.display()
            );
        }
        assert_eq!(
            self.before.len(),
            after.len(),
            "an entry outside the destination was removed (result: {result:?})"
        );
        result
    }

    /// The entries outside the destination. `work/` itself and `image.sqfs` change with
    /// each input (out/ is remade, the image rewritten): only their names count.
    fn state(&self) -> BTreeMap<PathBuf, Option<Entry>> {
        let mut out = BTreeMap::new();
        out.insert(self.top.clone(), Some(entry(&self.top)));
        for dir in [&self.top, &self.work] {
            let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
                .expect("sandbox listing")
                .map(|e| e.expect("sandbox listing").path())
                .collect();
            names.sort();
            for p in names {
                let volatile = p == self.work || p == self.image || p == self.out;
                out.insert(p.clone(), (!volatile).then(|| entry(&p)));
                if p.file_name() == Some("sentinel-dir".as_ref()) {
                    let inner = p.join("inner");
                    out.insert(inner.clone(), Some(entry(&inner)));
                }
            }
        }
        out
    }
}

impl Sandbox {
    /// Removes the whole sandbox.
    pub fn remove(&self) {
        remove_tree(&self.top);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.remove();
    }
}

fn entry(path: &Path) -> Entry {
    let m = std::fs::symlink_metadata(path).expect("sandbox entry");
    Entry {
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        nlink: m.nlink(),
        ino: m.ino(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        content: m
            .is_file()
            .then(|| std::fs::read(path).expect("sandbox file")),
        target: m
            .file_type()
            .is_symlink()
            .then(|| std::fs::read_link(path).expect("sandbox link")),
    }
}

/// Removes a tree an extraction made, whose directories may be read-only or mode 000.
/// Only real directories (never a symlink) are made writable, by a path of real
/// directories from `dir`.
fn remove_tree(dir: &Path) {
    fn open_up(dir: &Path) {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    open_up(&e.path());
                }
            }
        }
    }
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        open_up(dir);
    }
    let _ = std::fs::remove_dir_all(dir);
}

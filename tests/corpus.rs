//! The test image corpus that `testdata/build-corpus.sh` builds, read from its manifest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::sys::is_root;

/// One image of the corpus, as a line of `images.txt` describes it.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub path: PathBuf,
    pub offset: u64,
    pub codec: String,
    pub builder: String,
    pub notes: Vec<String>,
}

impl Image {
    pub fn has_note(&self, note: &str) -> bool {
        self.notes.iter().any(|n| n == note)
    }

    /// The number of nodes (root included) a walk of this image must find: the corpus
    /// tree's, or the root alone for the empty images.
    pub fn nodes(&self) -> usize {
        if self.has_note("empty") {
            1
        } else {
            tree_entries()
        }
    }

    /// Whether the kernel's squashfs driver can mount and read this image: all but the
    /// listed exceptions.
    pub fn kernel_readable(&self) -> bool {
        self.readable_by(Reader::Kernel)
    }

    /// Whether `reader` can read this image: all but the listed exceptions.
    pub fn readable_by(&self, reader: Reader) -> bool {
        !EXCEPTIONS
            .iter()
            .any(|(name, r, _)| *name == self.name && *r == reader)
    }
}

/// The readers the corpus is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The kernel's squashfs driver, through a loop mount.
    Kernel,
    /// squashfs-tools' `unsquashfs` (4.5.1 on Debian 12).
    Unsquashfs,
}

const LZMA: &str = "legacy lzma (compressor id 2): the kernel has no decoder for it";
const UNSQUASHFS_LZ4_IDS: &str = "unsquashfs 4.5.1 fails on this gensquashfs lz4 image's id \
    table (`read_id_table: failed to read id table block`), which the kernel reads";

/// Every image a reference reader cannot read, and why: the only images the comparisons
/// leave out (the kernel comparison reads another build of the same tree instead). The
/// corpus check (`testdata/build-corpus.sh`) tags what the kernel or unsquashfs failed on;
/// a tag on an image not listed here, or an unsquashfs exception the check no longer
/// finds, fails every test that reads the corpus, so coverage never shrinks unseen.
pub const EXCEPTIONS: &[(&str, Reader, &str)] = &[
    ("m-lzma", Reader::Kernel, LZMA),
    ("g-lzma", Reader::Kernel, LZMA),
    ("g-lzma-opts", Reader::Kernel, LZMA),
    (
        "m-nopad",
        Reader::Kernel,
        "-nopad: the size is not a multiple of 512, and a loop device drops the partial last sector",
    ),
    (
        "m-xz-bcj-ia64",
        Reader::Kernel,
        "the IA-64 BCJ filter left the kernel's xz decoder with IA-64 (Linux 6.7)",
    ),
    ("g-lz4", Reader::Unsquashfs, UNSQUASHFS_LZ4_IDS),
    ("g-lz4hc", Reader::Unsquashfs, UNSQUASHFS_LZ4_IDS),
];

/// The reader a manifest tag says failed on an image (testdata/README.md lists the tags).
fn failed_reader(tag: &str) -> Option<Reader> {
    match tag {
        "lzma-kernel-unsupported" | "nopad-kernel-unmountable" | "kernel-mount-failed" => {
            Some(Reader::Kernel)
        }
        "unsquashfs-broken" => Some(Reader::Unsquashfs),
        _ => None,
    }
}

/// What in the manifest disagrees with `EXCEPTIONS`.
fn unexpected_exceptions(images: &[Image]) -> Vec<String> {
    let mut problems = Vec::new();
    for image in images {
        for tag in &image.notes {
            if let Some(reader) = failed_reader(tag) {
                if image.readable_by(reader) {
                    problems.push(format!(
                        "{}: tagged {tag}, but {reader:?} is not an expected exception for it",
                        image.name
                    ));
                }
            }
        }
    }
    for (name, reader, _) in EXCEPTIONS {
        match images.iter().find(|i| i.name == *name) {
            None => problems.push(format!("{name}: listed as an exception, not in the corpus")),
            Some(image)
                if *reader == Reader::Unsquashfs && !image.has_note("unsquashfs-broken") =>
            {
                problems.push(format!(
                    "{name}: listed as unreadable by unsquashfs, but the corpus check read it: \
                     take it off the list"
                ))
            }
            Some(_) => {}
        }
    }
    problems
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A committed image of testdata/tiny.
pub fn tiny(name: &str) -> PathBuf {
    repo_root().join("testdata/tiny").join(name)
}

/// As root, builds the corpus if it is out of date (once per test process; the script does
/// nothing for an up-to-date corpus), and returns its images. Building needs root: files
/// with 2100 owners and device nodes; a plain user gets the corpus root built last. Panics
/// if the corpus is not there, or if a reader failed on an image not in `EXCEPTIONS`.
pub fn images() -> &'static [Image] {
    let images = load().as_ref().unwrap_or_else(|e| panic!("{e}"));
    let problems = unexpected_exceptions(images);
    assert!(
        problems.is_empty(),
        "the corpus has unexpected exceptions (testdata/out/check.txt; tests/corpus.rs EXCEPTIONS):\n{}",
        problems.join("\n")
    );
    images
}

/// The corpus tree's entries, root included, as the corpus check counted them with `find`
/// (`# tree entries: N` in check.txt).
pub fn tree_entries() -> usize {
    let check = repo_root().join("testdata/out/check.txt");
    let text =
        std::fs::read_to_string(&check).unwrap_or_else(|e| panic!("{}: {e}", check.display()));
    text.lines()
        .find_map(|l| l.strip_prefix("# tree entries: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}: no '# tree entries: N' line", check.display()))
}

/// Whether the corpus is there: built (as root, brought up to date) or built before.
pub fn available() -> bool {
    load().is_ok()
}

fn load() -> &'static Result<Vec<Image>, String> {
    static IMAGES: OnceLock<Result<Vec<Image>, String>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let root = repo_root();
        let out = root.join("testdata/out");
        // Only root can build (or lock) the corpus; a plain user reads what root built.
        if is_root() {
            let status = Command::new("bash")
                .arg(root.join("testdata/build-corpus.sh"))
                .arg(&out)
                .status()
                .map_err(|e| format!("run testdata/build-corpus.sh: {e}"))?;
            if !status.success() {
                return Err(format!("testdata/build-corpus.sh failed: {status}"));
            }
        }
        let manifest = std::fs::read_to_string(out.join("images.txt")).map_err(|e| {
            format!(
                "{}: {e} (as root, scripts/setup.sh builds the corpus)",
                out.join("images.txt").display()
            )
        })?;
        Ok(manifest
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                assert!(f.len() >= 5, "bad manifest line: {line}");
                let path = PathBuf::from(f[1]);
                Image {
                    name: f[0].to_string(),
                    path: if path.is_absolute() {
                        path
                    } else {
                        out.join(path)
                    },
                    offset: f[2].parse().expect("offset"),
                    codec: f[3].to_string(),
                    builder: f[4].to_string(),
                    notes: f[5..]
                        .iter()
                        .flat_map(|s| s.split(','))
                        .map(str::to_string)
                        .collect(),
                }
            })
            .collect())
    })
}

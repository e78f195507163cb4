//! The test image corpus that `testdata/build-corpus.sh` builds, read from its manifest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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

    /// Whether the kernel's squashfs driver can mount and read this image. It cannot read
    /// legacy lzma, nor the IA-64 BCJ filter (gone with IA-64 in Linux 6.7), and a loop
    /// device cannot map a `-nopad` image's partial last block; the manifest marks these
    /// with a `…kernel-…` note.
    pub fn kernel_readable(&self) -> bool {
        !self.notes.iter().any(|n| n.contains("kernel-")) && !self.name.contains("bcj-ia64")
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the corpus (once per test process; the script itself skips an up-to-date corpus)
/// and returns its images. Building needs root: files with 2100 owners and device nodes.
pub fn images() -> &'static [Image] {
    static IMAGES: OnceLock<Vec<Image>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let root = repo_root();
        let out = root.join("testdata/out");
        let status = Command::new("bash")
            .arg(root.join("testdata/build-corpus.sh"))
            .arg(&out)
            .status()
            .expect("run testdata/build-corpus.sh");
        assert!(status.success(), "testdata/build-corpus.sh failed");
        let manifest = std::fs::read_to_string(out.join("images.txt")).expect("read images.txt");
        manifest
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
                    notes: f[5..].iter().map(|s| s.to_string()).collect(),
                }
            })
            .collect()
    })
}

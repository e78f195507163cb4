//! `sqfs extract` of each image must write the same tree `unsquashfs -d` writes: names in
//! order, modes, owners, times, link targets, hard links, devices, xattrs and bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_tests::corpus::{images, repo_root};
use e2e_tests::snapshot::{compare, from_dir, Ignore};
use e2e_tests::sys::is_root;

/// The `sqfs` binary cargo built next to this test (target/<profile>/sqfs).
fn sqfs_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("sqfs");
    assert!(
        bin.exists(),
        "{} not built (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sqfs-extract-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn extract_matches_unsquashfs_on_every_image() {
    if !is_root() {
        e2e_tests::skip::skip("extracting owners, devices and trusted.* xattrs needs root");
        return;
    }
    let _ = repo_root();
    let mut failures = Vec::new();
    for image in images() {
        let ours = scratch(&format!("{}-sqfs", image.name));
        let theirs = scratch(&format!("{}-unsquashfs", image.name));
        let result = (|| -> Result<(), String> {
            run(Command::new(sqfs_bin())
                .arg("extract")
                .arg(format!("--offset={}", image.offset))
                .arg(&image.path)
                .arg(&ours))?;
            if !image.readable_by(e2e_tests::corpus::Reader::Unsquashfs) {
                // An expected exception (tests/corpus.rs); the kernel test covers these.
                return Ok(());
            }
            run(Command::new("unsquashfs")
                .args(["-no-progress", "-quiet", "-o"])
                .arg(image.offset.to_string())
                .arg("-d")
                .arg(&theirs)
                .arg(&image.path))?;
            compare(
                &from_dir(&theirs),
                &from_dir(&ours),
                Ignore {
                    ino: true,
                    dir_size: true,
                    ..Ignore::default()
                },
            )
        })();
        if let Err(e) = result {
            failures.push(format!("{}: {e}", image.name));
        }
        remove(&ours);
        remove(&theirs);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn remove(dir: &Path) {
    // Extracted trees hold mode-000 directories; as root that does not stop removal.
    let _ = std::fs::remove_dir_all(dir);
}

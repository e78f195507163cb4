//! `sqfs extract` of each image must write the same tree `unsquashfs -d` writes: names in
//! order, modes, owners, times, link targets, hard links, devices, xattrs and bytes; and so
//! must the extraction of a subtree, which keeps its path (`/modes/dir-0700` is written to
//! `DIR/modes/dir-0700`, `DIR/modes` with `/modes`'s attributes).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_tests::corpus::{images, repo_root, Image};
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

/// Subtrees of the corpus tree (testdata/make-tree.py): directories whose parents have
/// attributes of their own, hard links, xattrs, a deep chain, and single files.
const SUBTREES: [&str; 6] = [
    "/modes/dir-0700",
    "/xattrs/dir-with-xattrs",
    "/hardlinks",
    "/deep/d01/d02",
    "/times/dir-t-0/f",
    "/files/random-131073",
];

#[test]
fn subtree_extraction_matches_unsquashfs() {
    if !e2e_tests::skip::needs(&[e2e_tests::skip::Need::Root, e2e_tests::skip::Need::Corpus]) {
        return;
    }
    let _ = repo_root();
    // One image per builder and codec: the subtree logic does not depend on the rest.
    let mut kinds = HashSet::new();
    let picked: Vec<&Image> = images()
        .iter()
        .filter(|i| !i.has_note("unsquashfs-broken") && kinds.insert((&i.builder, &i.codec)))
        .collect();
    let mut failures = Vec::new();
    let mut compared = 0;
    for image in picked {
        let archive = sqfs::Archive::open_file(
            std::fs::File::open(&image.path).unwrap(),
            &sqfs::OpenOptions {
                offset: image.offset,
                ..Default::default()
            },
        )
        .unwrap();
        for subtree in SUBTREES {
            if archive.lookup_path(subtree).is_err() {
                continue;
            }
            compared += 1;
            let tag = format!("{}-{}", image.name, subtree.replace('/', "_"));
            let ours = scratch(&format!("{tag}-sqfs"));
            let theirs = scratch(&format!("{tag}-unsquashfs"));
            let result = (|| -> Result<(), String> {
                run(Command::new(sqfs_bin())
                    .args(["extract", "-q"])
                    .arg(format!("--offset={}", image.offset))
                    .arg(&image.path)
                    .arg(&ours)
                    .arg(subtree))?;
                run(Command::new("unsquashfs")
                    .args(["-no-progress", "-quiet", "-o"])
                    .arg(image.offset.to_string())
                    .arg("-d")
                    .arg(&theirs)
                    .arg(&image.path)
                    .arg(subtree))?;
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
                failures.push(format!("{} {subtree}: {e}", image.name));
            }
            remove(&ours);
            remove(&theirs);
        }
    }
    assert!(
        compared >= SUBTREES.len(),
        "only {compared} subtrees found in the corpus"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn remove(dir: &Path) {
    // Extracted trees hold mode-000 directories; as root that does not stop removal.
    let _ = std::fs::remove_dir_all(dir);
}

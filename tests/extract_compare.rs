//! `sqfs extract` of each image must write the same tree `unsquashfs -d` writes: names in
//! order, modes, owners, times, link targets, hard links, devices, xattrs and bytes; and so
//! must the extraction of a subtree, which keeps its path (`/modes/dir-0700` is written to
//! `DIR/modes/dir-0700`, `DIR/modes` with `/modes`'s attributes).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use e2e_tests::corpus::{images, repo_root, Image};
use e2e_tests::snapshot::{compare, from_dir, sorted, Ignore};
use e2e_tests::sys::{is_root, Tmpfs};

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

/// A fresh path on `tmpfs` to extract into.
fn scratch(tmpfs: &Tmpfs, name: &str) -> PathBuf {
    let dir = tmpfs.dir.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `check` on every item, on a thread per core (each check runs two extractions and
/// reads both trees back: on two cores one waits for the disk while the other computes);
/// the failures, in the items' order.
fn on_every_core<T: Sync>(
    items: &[T],
    check: impl Fn(&T) -> Result<(), String> + Sync,
) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if let Err(e) = check(item) {
                    failures.lock().unwrap().push((i, e));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    failures.into_iter().map(|(_, e)| e).collect()
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
    let tmpfs = Tmpfs::new("extract").unwrap();
    let failures = on_every_core(images(), |image| {
        let ours = scratch(&tmpfs, &format!("{}-sqfs", image.name));
        let theirs = scratch(&tmpfs, &format!("{}-unsquashfs", image.name));
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
                // In path order: tmpfs lists a directory in the order it was filled.
                &sorted(from_dir(&theirs)),
                &sorted(from_dir(&ours)),
                Ignore {
                    ino: true,
                    dir_size: true,
                    ..Ignore::default()
                },
            )
        })();
        remove(&ours);
        remove(&theirs);
        result.map_err(|e| format!("{}: {e}", image.name))
    });
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
    let tmpfs = Tmpfs::new("subtrees").unwrap();
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
            let ours = scratch(&tmpfs, &format!("{tag}-sqfs"));
            let theirs = scratch(&tmpfs, &format!("{tag}-unsquashfs"));
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
                    &sorted(from_dir(&theirs)),
                    &sorted(from_dir(&ours)),
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

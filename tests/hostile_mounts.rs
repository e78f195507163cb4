//! Hostile images through the real mount: damaged variants of real images (see hostile.rs)
//! mounted with squashfuse-rs, walked and read with a time bound, unmounted; and run with
//! ch-run. Each may be refused (one line) or give EIO; none may crash the daemon, hang a
//! reader, leave the mount behind or grow the daemon past a memory bound.
//!
//! `HOSTILE_VARIANTS=N` sets how many damaged variants each source image gets (CI: the
//! default; `scripts/soak-hostile.sh` runs thousands).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use e2e_tests::container::{can_run_containers, test_image, Scratch};
use e2e_tests::corpus::repo_root;
use e2e_tests::hostile::{targeted_variants, unservable_root, variants};
use e2e_tests::sys::{fuse_available, is_mounted, is_root, FuseMount};
use sqfs::internals::{self, InodeBody};

/// How long one walk of a mounted variant may take.
const WALK_LIMIT: Duration = Duration::from_secs(30);
/// The daemon's peak resident memory may not pass this, whatever the image says.
const RSS_LIMIT_KIB: u64 = 256 * 1024;

fn variant_count(default: usize) -> usize {
    std::env::var("HOSTILE_VARIANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Lists, stats, reads (up to 16 MiB a file) and reads links of everything under `root`,
/// ignoring errors; bounded in entries and depth so a cyclic image ends too.
fn walk(root: &Path) -> usize {
    let mut seen = 0;
    let mut stack = vec![(root.to_path_buf(), 0)];
    let mut buf = vec![0u8; 1 << 16];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > 5000 {
                return seen;
            }
            let path = entry.path();
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let _ = e2e_tests::sys::xattrs(&path);
            if md.is_dir() && depth < 40 {
                stack.push((path, depth + 1));
            } else if md.file_type().is_symlink() {
                let _ = std::fs::read_link(&path);
            } else if md.is_file() {
                if let Ok(mut f) = std::fs::File::open(&path) {
                    use std::io::Read;
                    let mut total = 0;
                    while let Ok(n) = f.read(&mut buf) {
                        total += n;
                        if n == 0 || total > 16 << 20 {
                            break;
                        }
                    }
                }
            }
        }
    }
    seen
}

fn daemon_pid(mount: &Path) -> Option<i32> {
    let needle = mount.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        (cmdline.contains("squashfuse-rs") && cmdline.contains(&needle)).then_some(pid)
    })
}

fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Mounts one variant, walks it with a time bound, checks the daemon, unmounts.
fn try_variant(name: &str, bytes: &[u8], dir: &Path) {
    let file = dir.join("variant.sqfs");
    std::fs::write(&file, bytes).unwrap();
    let mount = match FuseMount::new(&file, &[]) {
        Err(msg) => {
            assert!(
                !msg.contains('\n') && !msg.contains("panicked"),
                "{name}: refused badly: {msg}"
            );
            assert!(msg.starts_with("squashfuse-rs: "), "{name}: {msg}");
            return;
        }
        Ok(m) => m,
    };
    let pid = daemon_pid(&mount.dir).unwrap_or_else(|| panic!("{name}: no daemon"));
    let (tx, rx) = mpsc::channel();
    let root = mount.dir.clone();
    std::thread::spawn(move || {
        let _ = tx.send(walk(&root));
    });
    if rx.recv_timeout(WALK_LIMIT).is_err() {
        let _ = Command::new("umount").args(["-l"]).arg(&mount.dir).status();
        panic!("{name}: a reader hung on the mount");
    }
    // SAFETY: kill with signal 0 only checks the process exists.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "{name}: the daemon died");
    assert!(is_mounted(&mount.dir), "{name}: the mount went away");
    let rss = peak_rss_kib(pid);
    assert!(rss <= RSS_LIMIT_KIB, "{name}: daemon peak RSS {rss} KiB");
    let dir = mount.dir.clone();
    drop(mount);
    assert!(!is_mounted(&dir), "{name}: mount left behind");
    let deadline = Instant::now() + Duration::from_secs(5);
    // SAFETY: as above.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(
            Instant::now() < deadline,
            "{name}: daemon still running after unmount"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An image with uncompressed inodes (so targeted_variants can patch them) and 4 KiB blocks.
fn uncompressed_inode_image(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("a/b/c")).unwrap();
    std::fs::write(tree.join("empty"), "").unwrap();
    std::fs::write(tree.join("a/small"), "x".repeat(100)).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(tree.join("a/b/big"), &big).unwrap();
    std::fs::write(tree.join("a/b/c/tail"), &big[..9000]).unwrap();
    std::os::unix::fs::symlink("../a/small", tree.join("a/b/link")).unwrap();
    let image = dir.join("noI.sqfs");
    let ok = Command::new("mksquashfs")
        .arg(&tree)
        .arg(&image)
        .args([
            "-noappend",
            "-quiet",
            "-no-progress",
            "-noI",
            "-b",
            "4096",
            "-all-root",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    image
}

/// An image with uncompressed inodes and directories (so names can be patched in place):
/// sorted names of one length in the root, a file with no tail, and a 4 KiB block size.
fn uncompressed_listing_image(dir: &Path) -> PathBuf {
    let tree = dir.join("tree-listing");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    for name in ["name-a", "name-b", "name-c"] {
        std::fs::write(tree.join(name), name.repeat(50)).unwrap();
    }
    std::fs::write(tree.join("sub/whole"), vec![7u8; 8192]).unwrap();
    std::fs::write(tree.join("sub/tail"), vec![9u8; 100]).unwrap();
    let image = dir.join("noI-noD.sqfs");
    let ok = Command::new("mksquashfs")
        .arg(&tree)
        .arg(&image)
        .args([
            "-noappend",
            "-quiet",
            "-no-progress",
            "-noI",
            "-noD",
            "-b",
            "4096",
            "-all-root",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    image
}

/// Corruptions of what the reader now refuses or must survive: a repeated, an out-of-order
/// and a slashed name in the root's listing, a fragment index past the table on a file
/// with no tail, a root whose owners or listing cannot be read, an id table index that
/// ends before the image does.
fn strict_variants(path: &Path) -> Vec<(String, Vec<u8>)> {
    let image = std::fs::read(path).unwrap();
    let archive = sqfs::Archive::open(path).unwrap();
    let sb = archive.superblock().clone();
    let root = archive.root().unwrap();
    let InodeBody::Directory(info) = internals::body(&root) else {
        panic!("the root is a directory")
    };
    let entries: Vec<_> = archive
        .read_dir(&root)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // The root's listing lies in the directory table's first (uncompressed) block.
    let listing = (sb.directory_table_start + info.listing.block + 2) as usize
        + usize::from(info.listing.offset);
    let block_len = u16::from_le_bytes(
        image[(sb.directory_table_start + info.listing.block) as usize..][..2]
            .try_into()
            .unwrap(),
    ) & 0x7fff;
    let name_b = entries.iter().find(|e| e.name == b"name-b").unwrap();
    assert!(name_b.cookie <= u64::from(block_len) - u64::from(info.listing.offset));
    let at = listing + name_b.cookie as usize - 6;
    let mut out = Vec::new();
    for (label, name) in [
        ("repeated", &b"name-a"[..]),
        ("out-of-order", b"name-0"),
        ("slashed", b"nam/-b"),
    ] {
        let mut v = image.clone();
        v[at..at + 6].copy_from_slice(name);
        out.push((format!("root-listing-{label}-name"), v));
    }
    // Basic file inode: the fragment index is at byte 20 (uncompressed inode table).
    let whole = archive.lookup_path("/sub/whole").unwrap();
    assert!(!internals::is_extended(&whole) && whole.size() == 8192);
    let pos = (sb.inode_table_start + whole.reference().block + 2) as usize
        + usize::from(whole.reference().offset);
    let mut v = image.clone();
    v[pos + 20..pos + 24].copy_from_slice(&sb.fragment_count.to_le_bytes());
    out.push(("tailless-file-fragment-past-the-table".into(), v));
    for what in ["owners", "listing"] {
        out.push((
            format!("root-{what}-unreadable"),
            unservable_root(path, what),
        ));
    }
    let mut v = image.clone();
    v[40..48].copy_from_slice(&(sb.bytes_used + 8).to_le_bytes());
    v.extend([0u8; 8]);
    out.push(("id-index-ends-before-the-image".into(), v));
    out
}

#[test]
fn damaged_images_through_squashfuse_rs() {
    if !is_root() || !fuse_available() {
        e2e_tests::skip::skip("needs root and /dev/fuse to mount");
        return;
    }
    let dir = std::env::temp_dir().join(format!("hostile-mounts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tiny = repo_root().join("testdata/tiny");
    let mut sources: Vec<(String, Vec<u8>)> = [
        "tiny-gzip.sqfs",
        "tiny-xz.sqfs",
        "tiny-lz4.sqfs",
        "tiny-gzip-4k.sqfs",
    ]
    .iter()
    .filter_map(|n| Some((n.to_string(), std::fs::read(tiny.join(n)).ok()?)))
    .collect();
    assert!(
        sources.len() >= 3,
        "tiny images missing in {}",
        tiny.display()
    );
    let noi = uncompressed_inode_image(&dir);
    sources.push(("noI".into(), std::fs::read(&noi).unwrap()));

    let targeted = targeted_variants(&noi);
    assert!(
        targeted.iter().any(|(n, _)| n.contains("lists-the-root"))
            && targeted.iter().any(|(n, _)| n.contains("fragment-past"))
            && targeted.iter().any(|(n, _)| n.contains("block-word")),
        "targeted corruptions not all made: {:?}",
        targeted.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let mut all: Vec<(String, Vec<u8>)> = targeted;
    let strict = strict_variants(&uncompressed_listing_image(&dir));
    assert_eq!(strict.len(), 7, "strict corruptions not all made");
    all.extend(strict);
    let per_source = variant_count(40);
    for (seed, (source, image)) in sources.iter().enumerate() {
        for (name, bytes) in variants(image, seed as u64 + 11, per_source) {
            all.push((format!("{source}: {name}"), bytes));
        }
    }
    let tried = all.len();
    // Two at a time: mounting and unmounting is mostly waiting.
    let half = all.len() / 2;
    let (first, second) = all.split_at(half);
    std::thread::scope(|scope| {
        for (k, chunk) in [first, second].into_iter().enumerate() {
            let dir = dir.join(format!("worker-{k}"));
            std::fs::create_dir_all(&dir).unwrap();
            scope.spawn(move || {
                for (name, bytes) in chunk {
                    try_variant(name, bytes, &dir);
                }
            });
        }
    });
    eprintln!("{tried} damaged variants mounted, walked and unmounted");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_images_through_ch_run() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("hostile");
    let image = std::fs::read(&test_image().sqfs).unwrap();
    let file = s.dir.join("variant.sqfs");
    let path = file.to_string_lossy().into_owned();
    let mnt = s.mnt_arg();
    let (mut refused, mut ran) = (0, 0);
    let count = variant_count(40);
    for (name, bytes) in variants(&image, 7, count) {
        std::fs::write(&file, &bytes).unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let mut child = s
            .command(
                &[
                    "-m",
                    &mnt,
                    &path,
                    "--",
                    "/bin/sh",
                    "-c",
                    "ls -lR / >/dev/null 2>&1; cat /data/hello",
                ],
                &[],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{name}: ch-run hung");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        if status.code() == Some(31) {
            assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
            assert!(stderr.contains("]: error: "), "{name}: {stderr}");
            refused += 1;
        } else {
            ran += 1;
        }
        s.assert_clean();
    }
    eprintln!(
        "{refused} variants refused with one line, {ran} ran (their commands saw EIO or nothing)"
    );
    // The set (fixed seed) damages the superblock and tables as well as data the command
    // reads: both outcomes must have been exercised, or the test proved nothing.
    assert!(
        count < 20 || (refused > 0 && ran > 0),
        "{refused} refused, {ran} ran: expected some of each"
    );
}

#[test]
fn image_truncated_under_a_running_container() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("truncated");
    let copy = s.dir.join("copy.sqfs");
    std::fs::copy(&test_image().sqfs, &copy).unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let path = copy.to_string_lossy().into_owned();
    let mnt = s.mnt_arg();
    // The shell is in memory before the cut; what it runs after the cut needs the image.
    let script = "cat /data/hello; touch /tmp/ready; while [ ! -e /tmp/go ]; do :; done; \
                  cat /data/big > /dev/null; echo cat=$?";
    let child = s
        .command(&["-m", &mnt, &path, "--", "/bin/sh", "-c", script], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.tmp.join("ready").exists() {
        assert!(Instant::now() < deadline, "the container never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Someone rewrites the image on the shared filesystem: it shrinks to its first 64 KiB.
    let f = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
    f.set_len(64 << 10).unwrap();
    std::fs::write(s.tmp.join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout} {stderr}");
    assert!(stdout.starts_with("hello from the image\n"), "{stdout}");
    // Whether exec or the read meets the cut first, the command sees EIO, nothing worse.
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("cat=") && l != "cat=0"),
        "the command after the cut must fail: {stdout} {stderr}"
    );
    assert!(
        stderr.contains("Input/output error") && !stderr.contains("panicked"),
        "{stderr}"
    );
    for f in ["ready", "go"] {
        std::fs::remove_file(s.tmp.join(f)).unwrap();
    }
    s.assert_clean();
}

#[test]
fn an_image_whose_root_cannot_be_served_is_refused_by_ch_run() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("unservable-root");
    let file = s.dir.join("unservable.sqfs");
    let path = file.to_string_lossy().into_owned();
    let mnt = s.mnt_arg();
    for what in ["owners", "listing"] {
        std::fs::write(&file, unservable_root(&test_image().sqfs, what)).unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let out = s.run(&["-m", &mnt, &path, "--", "/bin/true"]);
        eprintln!("{what}: {}", out.stderr.trim_end());
        assert_eq!(out.code, 31, "{what}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{what}: {out:?}");
        // Refused when the image is opened, before anything is mounted (ch-run used to
        // mount it and fail later, at "can't bind: /dev: I/O error").
        assert!(
            out.stderr.contains("]: error: can't open SquashFS: ") && out.stderr.contains("root"),
            "{what}: {out:?}"
        );
        s.assert_clean();
    }
}

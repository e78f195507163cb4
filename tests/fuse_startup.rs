//! What a squashfuse-rs mount costs before it is used: nothing runs in the daemon but the
//! threads that answer requests (and the one that waits for signals) until a read needs
//! more. The prefetch workers and the page-cache writer start with the first read that
//! gives them work, so a mount that is only stat-ed or listed (a container start that
//! execs one binary, `ls`) never creates them, and the first requests of a fresh mount do
//! not wait behind them for the cores. A walk (tar, cp -r: each file of a directory read to
//! its end, in listing order) gives them work: the blocks of the next files; reads in any
//! other order (a program's start) give them none.

use std::path::PathBuf;

use e2e_tests::fuse_daemon::{serving_daemon, wait_until, PATIENCE};
use e2e_tests::skip::{needs, Need};
use e2e_tests::sys::{FuseMount, ScratchImage};

/// The names of the daemon's threads (`/proc/PID/task/*/comm`).
fn thread_names(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

fn background_threads(pid: i32) -> Vec<String> {
    thread_names(pid)
        .into_iter()
        .filter(|name| name.starts_with("prefetch") || name == "page-store" || name == "push-ahead")
        .collect()
}

/// Bytes that do not repeat within a block, so the file spans many stored blocks.
fn big() -> Vec<u8> {
    noise(0x1234_5678, 2 << 20)
}

/// `len` bytes that do not compress, from `seed`.
fn noise(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// An image of `big` (2 MiB), and small files, made in a fresh directory.
/// An image of a 2 MiB file `big` and ten small files in `d`.
fn image() -> ScratchImage {
    let mut files = vec![("big".to_string(), big())];
    files.extend((0..10).map(|i| (format!("d/f{i}"), format!("file {i}\n").into_bytes())));
    ScratchImage::new("startup", &[], &files, &["-comp", "gzip"])
}

#[test]
fn prefetch_and_page_store_threads_start_with_the_first_read_that_needs_them() {
    if !needs(&[Need::Fuse]) {
        return;
    }
    let image = image();
    let mount = FuseMount::new(&image.image, &[]).unwrap();
    let daemon = serving_daemon(&mount.dir);

    // Stat and list: answered by the request threads alone.
    assert!(std::fs::metadata(&mount.dir).unwrap().is_dir());
    let names = std::fs::read_dir(mount.dir.join("d")).unwrap().count();
    assert_eq!(names, 10);
    assert!(
        thread_names(daemon).iter().any(|n| n.starts_with("fuser")),
        "the request threads: {:?}",
        thread_names(daemon)
    );
    assert_eq!(
        background_threads(daemon),
        Vec::<String>::new(),
        "threads started before any read"
    );

    // A sequential read of a file of many blocks has blocks to decode ahead: the prefetch
    // workers start, and the bytes are the file's.
    assert_eq!(std::fs::read(mount.dir.join("big")).unwrap(), big());
    wait_until("a prefetch thread", PATIENCE, || {
        background_threads(daemon)
            .iter()
            .any(|n| n.starts_with("prefetch"))
    });
}

/// An image of `w/f0` .. `w/f7`, 100 KiB each, each in a data block of its own.
fn walk_image() -> (PathBuf, Vec<Vec<u8>>) {
    let dir = std::env::temp_dir().join(format!("sqfs-walk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("w")).unwrap();
    let files: Vec<Vec<u8>> = (0..8).map(|i| noise(i + 1, 100 << 10)).collect();
    for (i, bytes) in files.iter().enumerate() {
        std::fs::write(src.join("w").join(format!("f{i}")), bytes).unwrap();
    }
    let image = dir.join("image.sqfs");
    e2e_tests::sys::mksquashfs(&src, &image, &["-comp", "gzip", "-no-fragments"]);
    (dir, files)
}

#[test]
fn a_walk_in_listing_order_is_decoded_ahead_and_other_reads_are_not() {
    if !needs(&[Need::Fuse]) {
        return;
    }
    let (dir, files) = walk_image();
    let image = dir.join("image.sqfs");

    // Each file read whole, last to first: no file follows the one before in the listing.
    {
        let mount = FuseMount::new(&image, &[]).unwrap();
        let daemon = serving_daemon(&mount.dir);
        let w = mount.dir.join("w");
        assert_eq!(std::fs::read_dir(&w).unwrap().count(), files.len());
        for (i, bytes) in files.iter().enumerate().rev() {
            assert_eq!(&std::fs::read(w.join(format!("f{i}"))).unwrap(), bytes);
        }
        let started: Vec<String> = background_threads(daemon)
            .into_iter()
            .filter(|n| n.starts_with("prefetch") || n == "push-ahead")
            .collect();
        assert_eq!(
            started,
            Vec::<String>::new(),
            "decoded ahead of reads out of order"
        );
    }

    // The same files in listing order: the next ones are decoded ahead, on a prefetch thread
    // or on the thread that pushes a walk's next files into the page cache (`push_ahead`).
    let mount = FuseMount::new(&image, &[]).unwrap();
    let daemon = serving_daemon(&mount.dir);
    let w = mount.dir.join("w");
    assert_eq!(std::fs::read_dir(&w).unwrap().count(), files.len());
    for (i, bytes) in files.iter().enumerate() {
        assert_eq!(&std::fs::read(w.join(format!("f{i}"))).unwrap(), bytes);
    }
    wait_until("a thread decoding ahead", PATIENCE, || {
        background_threads(daemon)
            .iter()
            .any(|n| n.starts_with("prefetch") || n.starts_with("push-ahead"))
    });
    drop(mount);
    let _ = std::fs::remove_dir_all(&dir);
}

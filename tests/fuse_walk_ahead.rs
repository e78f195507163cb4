//! What squashfuse-rs puts into the kernel's page cache ahead of a walk that reads what it
//! lists (tar c, cp -r): once a file has been read to its end, the files listed after it
//! and those of the directories listed next come into the page cache before they are
//! read, with their own bytes, so the walk sends no READ for them. A walk that only lists
//! (find, ls -lR) gets nothing pushed.
//!
//! Residency is seen with mincore(2) on a mapping of the file, which reads nothing.

use std::path::Path;
use std::time::Duration;

use e2e_tests::fuse_daemon::{wait_until, PATIENCE};
use e2e_tests::skip::{needs, Need};
use e2e_tests::sys::ScratchImage as Image;
use e2e_tests::sys::{resident_pages, FuseMount};

/// The content of file `i`: distinct bytes, 2 to 3 blocks of 128 KiB (no fragment of its
/// own to share: each file's blocks are its own).
fn content(i: usize) -> Vec<u8> {
    let len = 300_000 + i * 4099;
    (0..len).map(|k| ((k / 7) * 31 + i * 13) as u8).collect()
}

/// `d/f00`..`d/f07` and `d/sub/s00`..`d/sub/s03` (listed after `d`'s files: `sub` sorts
/// after `f*`).
fn walk_image(name: &str) -> (Image, Vec<(String, Vec<u8>)>) {
    let files: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            let path = if i < 8 {
                format!("d/f{i:02}")
            } else {
                format!("d/sub/s{:02}", i - 8)
            };
            (path, content(i))
        })
        .collect();
    let image = Image::new(
        &format!("walk-ahead-{name}"),
        &["d/sub"],
        &files,
        &["-comp", "gzip"],
    );
    (image, files)
}

fn can_run() -> bool {
    needs(&[Need::Fuse])
}

fn wait_resident(path: &Path, what: &str) {
    wait_until(&format!("{what} in the page cache"), PATIENCE, || {
        let (resident, pages) = resident_pages(path);
        resident == pages
    });
}

#[test]
fn a_walk_that_reads_its_files_finds_the_next_ones_in_the_page_cache() {
    if !can_run() {
        return;
    }
    let (image, files) = walk_image("reads");
    let mount = FuseMount::new(&image.image, &[]).unwrap();
    let d = mount.dir.join("d");
    // The listing makes the files known to the kernel (only those can be pushed).
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 9);
    for (path, _) in &files[..8] {
        assert_eq!(
            resident_pages(&mount.dir.join(path)).0,
            0,
            "{path} cached before any read"
        );
    }

    // Read to its end: a walk. The files listed after it come without being read.
    assert_eq!(std::fs::read(d.join("f00")).unwrap(), files[0].1);
    for (path, bytes) in &files[1..8] {
        let path = mount.dir.join(path);
        wait_resident(&path, &path.display().to_string());
        assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{}", path.display());
    }

    // The walk goes into the next directory: its files come once it is listed.
    assert_eq!(std::fs::read_dir(d.join("sub")).unwrap().count(), 4);
    for (path, bytes) in &files[8..] {
        let path = mount.dir.join(path);
        wait_resident(&path, &path.display().to_string());
        assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{}", path.display());
    }
}

#[test]
fn a_walk_that_reads_the_start_of_a_small_file_finds_the_next_ones_in_the_page_cache() {
    if !can_run() {
        return;
    }
    // Files smaller than a block, each its own (no fragments to share with the others): a
    // READ at a file's start brings the rest of its one block with it, so no READ of it
    // reaches its end, as tar's 10 KiB reads of a 60 KiB file.
    let files: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| {
            let bytes: Vec<u8> = (0..60_000 + i * 1_001)
                .map(|k| ((k / 5) * 17 + i * 29) as u8)
                .collect();
            (format!("d/g{i:02}"), bytes)
        })
        .collect();
    let image = Image::new(
        "walk-ahead-small",
        &["d"],
        &files,
        &["-comp", "gzip", "-no-fragments"],
    );
    let mount = FuseMount::new(&image.image, &[]).unwrap();
    let d = mount.dir.join("d");
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 8);
    for (path, _) in &files {
        assert_eq!(
            resident_pages(&mount.dir.join(path)).0,
            0,
            "{path} cached before any read"
        );
    }
    // Its first page only: no readahead reaches its end.
    let mut g00 = std::fs::File::open(d.join("g00")).unwrap();
    // SAFETY: a valid descriptor; advice only.
    let advised = unsafe {
        libc::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(&g00),
            0,
            0,
            libc::POSIX_FADV_RANDOM,
        )
    };
    assert_eq!(advised, 0);
    let mut start = vec![0u8; 4096];
    std::io::Read::read_exact(&mut g00, &mut start).unwrap();
    assert_eq!(start, files[0].1[..4096]);
    for (path, bytes) in &files[1..] {
        let path = mount.dir.join(path);
        wait_resident(&path, &path.display().to_string());
        assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{}", path.display());
    }
}

#[test]
fn a_walk_that_only_lists_gets_nothing_pushed() {
    if !can_run() {
        return;
    }
    let (image, files) = walk_image("lists");
    let mount = FuseMount::new(&image.image, &[]).unwrap();
    // As `find` or `ls -lR`: every directory listed, every entry stat-ed, nothing read.
    for dir in ["d", "d/sub"] {
        for entry in std::fs::read_dir(mount.dir.join(dir)).unwrap() {
            entry.unwrap().metadata().unwrap();
        }
    }
    // Nothing pushes later either: a push would come within this (the pushes of the other
    // test come in milliseconds).
    std::thread::sleep(Duration::from_secs(1));
    for (path, _) in &files {
        assert_eq!(
            resident_pages(&mount.dir.join(path)).0,
            0,
            "{path} cached, never read"
        );
    }
}

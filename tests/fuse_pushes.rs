//! What squashfuse-rs puts into the kernel's page cache without being asked, so that a walk
//! of small files (tar, cp -r) needs no READ round trip per file: once one file of a
//! fragment block is read, the other files stored in that block (and known to the kernel)
//! are in the page cache, with their own bytes, including those of the next directory,
//! as soon as it is listed; a read of the start of a small file brings the rest of it.
//!
//! Residency is seen with mincore(2) on a mapping of the file, which reads nothing.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_tests::fuse_daemon::{wait_until, PATIENCE};
use e2e_tests::skip::{needs, Need};
use e2e_tests::sys::FuseMount;

/// The content of small file `i`: distinct bytes, 1 to 3 KiB.
fn small(i: usize) -> Vec<u8> {
    let len = 1024 + (i * 677) % 2048;
    (0..len).map(|k| (k * 31 + i * 7) as u8).collect()
}

/// An image of `files` (paths under `d/`), made by mksquashfs in a fresh directory
/// (removed on drop).
struct Image {
    dir: PathBuf,
    image: PathBuf,
}

impl Image {
    fn new(name: &str, files: &[(String, Vec<u8>)]) -> Image {
        let dir = std::env::temp_dir().join(format!("sqfs-pushes-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("d")).unwrap();
        for (path, bytes) in files {
            let path = src.join("d").join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let image = dir.join("image.sqfs");
        let status = Command::new("mksquashfs")
            .arg(&src)
            .arg(&image)
            .args(["-no-progress", "-quiet", "-comp", "gzip", "-noappend"])
            .status()
            .expect("mksquashfs (squashfs-tools) must be installed");
        assert!(status.success());
        Image { dir, image }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How many of `file`'s pages are in the page cache, and how many it has.
fn resident_pages(file: &Path) -> (usize, usize) {
    let f = File::open(file).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let page = 4096;
    let pages = len.div_ceil(page);
    // SAFETY: a fresh read-only shared mapping of an open file, unmapped below; mincore
    // writes one byte per page into a vector of that many.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED, "mmap {}", file.display());
        let mut vec = vec![0u8; pages];
        let rc = libc::mincore(addr, len, vec.as_mut_ptr());
        libc::munmap(addr, len);
        assert_eq!(rc, 0, "mincore {}", file.display());
        (vec.iter().filter(|&&b| b & 1 == 1).count(), pages)
    }
}

fn can_run() -> bool {
    needs(&[Need::Fuse])
}

#[test]
fn reading_one_small_file_brings_the_others_of_its_fragment_block() {
    if !can_run() {
        return;
    }
    let files: Vec<(String, Vec<u8>)> = (0..30).map(|i| (format!("f{i:02}"), small(i))).collect();
    let image = Image::new("mates", &files);
    let mount = FuseMount::new(&image.image, &[]).unwrap();
    let d = mount.dir.join("d");
    // The listing makes the files known to the kernel (only those can be pushed).
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), files.len());
    for (name, _) in &files {
        assert_eq!(
            resident_pages(&d.join(name)).0,
            0,
            "{name} cached before any read"
        );
    }

    assert_eq!(std::fs::read(d.join("f00")).unwrap(), files[0].1);

    for (name, bytes) in &files[1..] {
        let path = d.join(name);
        wait_until(&format!("{name} in the page cache"), PATIENCE, || {
            let (resident, pages) = resident_pages(&path);
            resident == pages
        });
        assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{name}'s bytes");
    }
}

#[test]
fn reading_the_start_of_a_small_file_brings_the_rest_of_it() {
    if !can_run() {
        return;
    }
    // Shorter than a block (128 KiB), so kept in a fragment; 25 pages.
    let bytes: Vec<u8> = (0..100_000u32).map(|k| (k % 251) as u8).collect();
    let image = Image::new("rest", &[("small".into(), bytes.clone())]);
    let mount = FuseMount::new(&image.image, &[]).unwrap();
    let path = mount.dir.join("d/small");
    let f = File::open(&path).unwrap();
    // No readahead: the kernel asks for the one page read.
    // SAFETY: fadvise only sets the file's readahead policy.
    assert_eq!(
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) },
        0
    );
    let mut first = [0u8; 4096];
    f.read_exact_at(&mut first, 0).unwrap();
    assert_eq!(&first[..], &bytes[..4096]);

    wait_until("the rest of the file in the page cache", PATIENCE, || {
        let (resident, pages) = resident_pages(&path);
        resident == pages
    });
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn the_next_directorys_files_in_a_fragment_block_already_read_come_once_it_is_listed() {
    if !can_run() {
        return;
    }
    // a/ and b/ are written one after the other into one fragment block.
    let files: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            let dir = if i < 6 { "a" } else { "b" };
            (format!("{dir}/f{i:02}"), small(i))
        })
        .collect();
    let image = Image::new("next", &files);
    let mount = FuseMount::new(&image.image, &[]).unwrap();
    let d = mount.dir.join("d");
    assert_eq!(std::fs::read_dir(d.join("a")).unwrap().count(), 6);
    assert_eq!(std::fs::read(d.join("a/f00")).unwrap(), files[0].1);
    // Listed after the read: the kernel learns of b's files only now.
    assert_eq!(std::fs::read_dir(d.join("b")).unwrap().count(), 6);
    for (name, bytes) in &files[6..] {
        let path = d.join(name);
        wait_until(&format!("{name} in the page cache"), PATIENCE, || {
            let (resident, pages) = resident_pages(&path);
            resident == pages
        });
        assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{name}'s bytes");
    }
}

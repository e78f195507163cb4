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
use std::path::Path;

use e2e_tests::fuse_daemon::{wait_until, PATIENCE};
use e2e_tests::skip::{needs, Need};
use e2e_tests::sys::{resident_pages, FuseMount};

/// The content of small file `i`: distinct bytes, 1 to 3 KiB.
fn small(i: usize) -> Vec<u8> {
    let len = 1024 + (i * 677) % 2048;
    (0..len).map(|k| (k * 31 + i * 7) as u8).collect()
}

/// An image of `files` (paths under `d/`), made by mksquashfs in a fresh directory
/// (removed on drop).
use e2e_tests::sys::ScratchImage as Image;

/// An image of the directory `d` holding `files`.
fn image(name: &str, files: &[(String, Vec<u8>)]) -> Image {
    let files: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(path, bytes)| (format!("d/{path}"), bytes.clone()))
        .collect();
    Image::new(
        &format!("pushes-{name}"),
        &["d"],
        &files,
        &["-comp", "gzip"],
    )
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
    let image = image("mates", &files);
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
    let image = image("rest", &[("small".into(), bytes.clone())]);
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
    let image = image("next", &files);
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

/// An image in which the files `a` (5000 bytes) and `b` (100 bytes) carry one inode number
/// (a damaged image: `b`'s inode and its directory entry are patched to `a`'s number), with
/// `c`, which shares their fragment block. Built with uncompressed inodes and directories.
fn shared_number_image(name: &str) -> (Image, Vec<u8>, Vec<u8>) {
    let a: Vec<u8> = (0..5000u32).map(|k| (k * 7 % 251) as u8).collect();
    let b = vec![b'B'; 100];
    let files = [
        ("0".to_string(), vec![b'0'; 10]),
        ("a".to_string(), a.clone()),
        ("b".to_string(), b.clone()),
        ("c".to_string(), vec![b'C'; 3000]),
    ];
    let made = Image::new(
        &format!("pushes-{name}"),
        &[],
        &files,
        &["-noI", "-noD", "-all-root"],
    );
    let image = made.image.clone();

    let archive = sqfs::Archive::open(&image).unwrap();
    let sb = archive.superblock().clone();
    let number = |n: &str| archive.lookup_path(n).unwrap().number();
    let (a_number, b_inode) = (number("a"), archive.lookup_path("b").unwrap());
    let mut bytes = std::fs::read(&image).unwrap();
    // Uncompressed metadata blocks start with a 2-byte length; the inode number is at 12
    // in every inode's header.
    let at = (sb.inode_table_start + b_inode.reference().block + 2) as usize
        + usize::from(b_inode.reference().offset);
    bytes[at + 12..at + 16].copy_from_slice(&a_number.to_le_bytes());
    // The root's listing: one header {count, start, base number} then entries {offset,
    // number - base (i16), type, name length - 1, name}.
    let table = sb.directory_table_start as usize + 2;
    let base = u32::from_le_bytes(bytes[table + 8..table + 12].try_into().unwrap());
    let entry = (table + 12..sb.fragment_table_start as usize)
        .find(|&p| bytes[p + 6..p + 9] == [0, 0, b'b'])
        .expect("b's directory entry");
    let delta = i16::try_from(i64::from(a_number) - i64::from(base)).unwrap();
    bytes[entry + 2..entry + 4].copy_from_slice(&delta.to_le_bytes());
    std::fs::write(&image, &bytes).unwrap();
    (made, a, b)
}

/// Size and bytes of `path`, the size as `stat` says before the read.
fn size_and_bytes(path: &Path) -> (u64, Vec<u8>) {
    let size = std::fs::metadata(path).unwrap().len();
    (size, std::fs::read(path).unwrap())
}

#[test]
fn two_inodes_numbered_alike_read_as_the_first_linked_as_by_the_kernels_driver() {
    if !needs(&[Need::Fuse, Need::Root]) {
        return;
    }
    for (round, first, second) in [(0, "a", "b"), (1, "b", "a")] {
        let (image, a, b) = shared_number_image(&format!("shared-number-{round}"));
        let kernel = e2e_tests::sys::LoopMount::new(&image.image, 0).unwrap();
        let fuse = FuseMount::new(&image.image, &[]).unwrap();
        let mut seen = Vec::new();
        for dir in [&kernel.dir, &fuse.dir] {
            // Looked up in this order: the kernel's driver keeps the first inode it loads
            // under that number and shows it under both names.
            let stats: Vec<u64> = [first, second]
                .iter()
                .map(|n| std::fs::metadata(dir.join(n)).unwrap().len())
                .collect();
            // c's read pushes the other files of the fragment block (ours only).
            assert_eq!(std::fs::read(dir.join("c")).unwrap(), vec![b'C'; 3000]);
            let read: Vec<(u64, Vec<u8>)> = [first, second]
                .iter()
                .map(|n| size_and_bytes(&dir.join(n)))
                .collect();
            seen.push((stats, read));
        }
        let want = if first == "a" { &a } else { &b };
        assert_eq!(
            seen[0].0,
            vec![want.len() as u64; 2],
            "round {round}: the kernel's driver shows the first inode loaded"
        );
        assert_eq!(
            seen[1].0, seen[0].0,
            "round {round}: sizes stated as by the kernel's driver"
        );
        assert!(
            seen[1].1 == seen[0].1,
            "round {round}: sizes and bytes read as by the kernel's driver: {:?}",
            seen[1]
                .1
                .iter()
                .map(|(size, bytes)| (size, bytes.len()))
                .collect::<Vec<_>>()
        );
    }
}

/// A FORGET of the node, then a lookup of the other name: the node stands for the other
/// inode now, and its reads (without open: the kernel sends none) must not come from the
/// state kept for the first.
#[test]
fn a_node_id_taken_by_another_inode_after_a_forget_reads_that_inode() {
    if !needs(&[Need::Fuse, Need::Root]) {
        return;
    }
    let (image, a, b) = shared_number_image("shared-number-forget");
    let mount = FuseMount::new(&image.image, &[]).unwrap();
    assert_eq!(size_and_bytes(&mount.dir.join("b")), (100, b.clone()));
    // Drop the kernel's dentries and inodes: it sends FORGET for b's node.
    std::fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
    let (size, bytes) = size_and_bytes(&mount.dir.join("a"));
    assert_eq!(bytes.len() as u64, size, "as many bytes read as stat says");
    assert!(
        (size, &bytes) == (100, &b) || (size, &bytes) == (5000, &a),
        "one of the two inodes, whole: {size} bytes stated, {} read",
        bytes.len()
    );
}

/// The peak resident memory (VmHWM, KiB) of the squashfuse-rs daemon serving `mount`.
fn daemon_peak_kib(mount: &Path) -> u64 {
    let needle = mount.to_string_lossy().into_owned();
    let pid = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains("squashfuse-rs") && cmdline.contains(&needle)).then_some(pid)
        })
        .expect("the daemon of the mount");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM")
}

#[test]
fn random_reads_of_an_image_of_1_mib_blocks_keep_the_daemon_within_64_mib() {
    if !can_run() {
        return;
    }
    // 160 MiB that does not compress, in 1 MiB blocks: each 4 KiB read pushes its whole
    // block, far more blocks than the cache holds.
    let dir = std::env::temp_dir().join(format!("sqfs-pushes-big-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..160usize << 17)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    std::fs::write(dir.join("src/big"), &bytes).unwrap();
    let image = dir.join("big.sqfs");
    e2e_tests::sys::mksquashfs(&dir.join("src"), &image, &["-b", "1M", "-comp", "lz4"]);
    let mount = FuseMount::new(&image, &[]).unwrap();
    let path = mount.dir.join("big");
    let readers: Vec<_> = (0..4u64)
        .map(|seed| {
            let path = path.clone();
            std::thread::spawn(move || {
                let f = File::open(&path).unwrap();
                // SAFETY: fadvise only sets the file's readahead policy.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
                let pages = f.metadata().unwrap().len() / 4096;
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
                let mut page = [0u8; 4096];
                for _ in 0..15_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let at = (x % pages) * 4096;
                    f.read_exact_at(&mut page, at).unwrap();
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    let peak = daemon_peak_kib(&mount.dir);
    drop(mount);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(peak <= 64 << 10, "daemon peak RSS {peak} KiB, over 64 MiB");
}

#[test]
fn a_file_read_from_start_to_end_does_not_fill_the_block_cache() {
    if !can_run() {
        return;
    }
    // 96 MiB in 128 KiB blocks, three times the 32 MiB block cache: each block a READ has
    // answered whole is in the page cache and leaves the block cache, its buffer taking
    // the next block.
    let dir = std::env::temp_dir().join(format!("sqfs-pushes-seq-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let bytes: Vec<u8> = (0..96usize << 20)
        .map(|k| ((k / 5) as u32).wrapping_mul(2_654_435_761).to_le_bytes()[k % 3])
        .collect();
    std::fs::write(dir.join("src/seq"), &bytes).unwrap();
    let image = dir.join("seq.sqfs");
    e2e_tests::sys::mksquashfs(&dir.join("src"), &image, &["-comp", "lz4"]);
    let mount = FuseMount::new(&image, &[]).unwrap();
    let path = mount.dir.join("seq");
    let read_all = || {
        let f = File::open(&path).unwrap();
        let mut got = Vec::with_capacity(bytes.len());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read_at(&mut buf, got.len() as u64).unwrap();
            if n == 0 {
                break got;
            }
            got.extend_from_slice(&buf[..n]);
        }
    };
    assert!(read_all() == bytes, "the first read differs");
    let peak = daemon_peak_kib(&mount.dir);
    // Out of the page cache again: the blocks the block cache let go are decoded again.
    let f = File::open(&path).unwrap();
    // SAFETY: fadvise reads no memory of ours.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let (resident, pages) = resident_pages(&path);
    assert!(
        resident < pages / 2,
        "{resident} of {pages} pages still cached"
    );
    assert!(read_all() == bytes, "the second read differs");
    drop(mount);
    let _ = std::fs::remove_dir_all(&dir);
    // With every block kept until evicted, the cache alone is 32 MiB.
    assert!(peak <= 24 << 10, "daemon peak RSS {peak} KiB, over 24 MiB");
}

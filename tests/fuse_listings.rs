//! How much of a directory one listing request brings: the kernel asks squashfuse-rs for as
//! many entries as the reader's getdents buffer holds (up to 32 KiB and more), and gets that
//! many, so a big directory costs a few READDIRPLUS round trips, not one per 4 KiB. Each
//! getdents of a FUSE mount is answered by at most one request, so the entries the first
//! getdents returns are the ones the first reply carried.

use std::os::fd::AsRawFd;

use e2e_tests::skip::{needs, Need};
use e2e_tests::sys::{listing_walk, FuseMount, LoopMount};

/// `linux_dirent64` records in the first `len` bytes of a getdents64 buffer.
fn records(buf: &[u8]) -> usize {
    let mut at = 0;
    let mut n = 0;
    while at + 19 <= buf.len() {
        let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
        if reclen == 0 {
            break;
        }
        at += reclen;
        n += 1;
    }
    n
}

/// Whether the kernel asks for as many entries as the getdents buffer holds (Linux 6.16,
/// "fuse: increase readdir buffer size"); before, it asked for a page's worth.
fn asks_for_the_readers_buffer() -> bool {
    // SAFETY: uname fills the struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return false;
    }
    let release: String = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 16)
}

#[test]
fn one_getdents_brings_as_many_entries_as_its_buffer_holds() {
    if !needs(&[Need::Fuse]) {
        return;
    }
    let base = std::env::temp_dir().join(format!("sqfs-listings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let src = base.join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    // 150 entries of about 180 bytes each in a READDIRPLUS reply: 27 KiB.
    for i in 0..150 {
        std::fs::write(src.join("d").join(format!("entry-{i:03}")), b"x").unwrap();
    }
    let image = base.join("image.sqfs");
    e2e_tests::sys::mksquashfs(&src, &image, &["-comp", "gzip"]);
    let mount = FuseMount::new(&image, &[]).unwrap();

    let dir = std::fs::File::open(mount.dir.join("d")).unwrap();
    let mut buf = vec![0u8; 32 << 10];
    // SAFETY: getdents64 writes at most buf.len() bytes into buf.
    let got = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            dir.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    assert!(got > 0, "getdents64: {}", std::io::Error::last_os_error());
    let first = records(&buf[..got as usize]);
    if asks_for_the_readers_buffer() {
        // "." and ".." and every entry; 4 KiB replies carried 24.
        assert_eq!(first, 152, "entries in the first getdents");
    } else {
        eprintln!("kernel before 6.16 asks for 4 KiB of entries at a time: {first} came");
    }
    drop(dir);

    // And the listing is the kernel's, d_ino and all (as root, against a loop mount).
    if e2e_tests::sys::is_root() {
        let kernel = LoopMount::new(&image, 0).unwrap();
        assert_eq!(listing_walk(&mount.dir), listing_walk(&kernel.dir));
    }
    drop(mount);
    let _ = std::fs::remove_dir_all(&base);
}

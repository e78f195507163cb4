//! Thousands of damaged variants of the tiny committed images (bit flips, truncations,
//! zeroed ranges, random superblock fields): opening and walking each must end with
//! either success or an error, never a panic, a hang or a runaway allocation.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqfs::{Archive, Inode, OpenOptions};

fn tiny_images() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/tiny");
    let mut images: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sqfs"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    images.sort();
    assert!(
        images.len() >= 3,
        "expected the tiny images in {}",
        dir.display()
    );
    images
}

/// A small deterministic generator (xorshift64*), so a failing variant can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The variants of one image: every kind of damage the issue names.
fn variants(image: &[u8], seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    let len = image.len();
    for i in 0..600 {
        let mut v = image.to_vec();
        let flips = 1 + rng.below(4);
        for _ in 0..flips {
            let at = rng.below(len);
            v[at] ^= 1 << rng.below(8);
        }
        out.push((format!("bitflip#{i}"), v));
    }
    for i in 0..200 {
        // Random values in the superblock's fields (bytes 4..96), whole words at a time.
        let mut v = image.to_vec();
        let field = 4 + 4 * rng.below(23);
        let value = match rng.below(4) {
            0 => 0,
            1 => u32::MAX,
            2 => rng.next() as u32,
            _ => (rng.next() as u32) % (len as u32 * 2),
        };
        v[field..field + 4].copy_from_slice(&value.to_le_bytes());
        out.push((format!("superblock-field{field}#{i}"), v));
    }
    for cut in (0..len).step_by((len / 150).max(1)) {
        out.push((format!("truncated-at-{cut}"), image[..cut].to_vec()));
    }
    for i in 0..200 {
        let mut v = image.to_vec();
        let at = rng.below(len);
        let n = (1 + rng.below(64)).min(len - at);
        v[at..at + n].fill(if i % 2 == 0 { 0 } else { 0xFF });
        out.push((format!("filled-{at}+{n}"), v));
    }
    out
}

/// Everything a FUSE filesystem would do with an image; errors are fine, the walk ends.
fn exercise(archive: &Archive) {
    let Ok(root) = archive.root() else { return };
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    let mut steps = 0;
    while let Some(inode) = stack.pop() {
        steps += 1;
        assert!(steps < 100_000, "walk did not end");
        let _ = archive.attr(&inode);
        let _ = archive.xattrs(&inode);
        let _ = archive.read_link(&inode);
        let _ = archive.inode_by_number(inode.number());
        if inode.kind() == sqfs::FileType::File {
            read_all(archive, &inode);
        }
        if !inode.is_dir() || !seen.insert(inode.number()) {
            continue;
        }
        let Ok(entries) = archive.read_dir(&inode) else {
            continue;
        };
        let mut prev: Option<Vec<u8>> = None;
        for entry in entries.take(10_000) {
            let Ok(entry) = entry else { break };
            // A listing refuses repeated and out-of-order names, whatever the damage.
            if let Some(prev) = &prev {
                assert!(entry.name > *prev, "listing returned names out of order");
            }
            prev = Some(entry.name.clone());
            let _ = archive.lookup_entry(&inode, &entry.name);
            let _ = archive
                .read_dir_from(&inode, entry.cookie)
                .map(|r| r.take(3).count());
            if let Ok(child) = archive.entry_inode(&entry) {
                stack.push(child);
            }
        }
        let _ = archive.lookup_entry(&inode, b"no-such-name");
        assert!(matches!(
            archive.lookup_entry(&inode, &[b'x'; 257]),
            Err(sqfs::Error::NameTooLong)
        ));
    }
}

fn read_all(archive: &Archive, inode: &Inode) {
    let Ok(data) = archive.file_data(inode) else {
        return;
    };
    let mut buf = vec![0u8; 65536];
    let mut offset = 0u64;
    // Sparse files may claim huge sizes: sample instead of reading to the end.
    for _ in 0..64 {
        match archive.read_data(&data, offset, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => offset += n as u64 + (offset / 3),
        }
    }
    let _ = archive.read_data(&data, data.size().saturating_sub(7), &mut buf[..13]);
    // The bounded read: a damaged size is refused by the limit, before any allocation.
    match archive.read_file(inode, 1 << 20) {
        Ok(bytes) => assert_eq!(bytes.len() as u64, inode.size()),
        Err(sqfs::Error::TooBig { size, .. }) => assert!(size > 1 << 20),
        Err(_) => {}
    }
}

#[test]
fn damaged_images_never_panic_or_hang() {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        // A hang would otherwise just stall CI: fail loudly instead.
        s.spawn(|| {
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                if start.elapsed() > Duration::from_secs(600) {
                    eprintln!("damaged-image walk still running after 10 minutes: a hang");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let path = std::env::temp_dir().join(format!("sqfs-hostile-{}.img", std::process::id()));
        let mut total = 0;
        let mut opened = 0;
        let mut panics = Vec::new();
        for (name, image) in tiny_images() {
            for (what, bytes) in variants(&image, image.len() as u64 * 7919) {
                File::create(&path).unwrap().write_all(&bytes).unwrap();
                total += 1;
                let result = catch_unwind(AssertUnwindSafe(|| {
                    let options = OpenOptions {
                        offset: 0,
                        cache_bytes: 1 << 20,
                    };
                    if let Ok(archive) = Archive::open_file(File::open(&path).unwrap(), &options) {
                        exercise(&archive);
                        true
                    } else {
                        false
                    }
                }));
                match result {
                    Ok(true) => opened += 1,
                    Ok(false) => {}
                    Err(_) => panics.push(format!("{name} {what}")),
                }
            }
        }
        let _ = std::fs::remove_file(&path);
        done.store(true, Ordering::Relaxed);
        eprintln!(
            "{total} damaged variants, {opened} still opened, {} panicked",
            panics.len()
        );
        assert!(total > 3000, "only {total} variants");
        assert!(panics.is_empty(), "panics on: {}", panics.join(", "));
    });
}

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

#[path = "support/peak_alloc.rs"]
mod peak_alloc;

#[global_allocator]
static ALLOC: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc::new();

/// The most one damaged variant may allocate at once while it is opened and walked: the
/// 1 MiB cache, a few blocks and listings (measured: 772 KiB); an allocation sized by a
/// damaged field could be gigabytes.
const MOST_BYTES_PER_VARIANT: usize = 4 << 20;

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

/// Whether every directory, attribute, link and file byte of the image reads without an
/// error (damage that leaves the image whole: padding, unused bits).
fn reads_cleanly(archive: &Archive) -> bool {
    let whole = || -> Result<bool, sqfs::Error> {
        let (mut stack, mut seen) = (vec![archive.root()?], HashSet::new());
        while let Some(inode) = stack.pop() {
            if seen.len() > 100_000 || !seen.insert(inode.number()) {
                return Ok(false);
            }
            archive.attr(&inode)?;
            archive.xattrs(&inode)?;
            match inode.kind() {
                sqfs::FileType::Symlink => drop(archive.read_link(&inode)?),
                sqfs::FileType::File if inode.size() <= 1 << 20 => {
                    let data = archive.file_data(&inode)?;
                    let mut buf = vec![0u8; inode.size() as usize + 1];
                    if archive.read_data(&data, 0, &mut buf)? != inode.size() as usize {
                        return Ok(false);
                    }
                }
                sqfs::FileType::Directory => {
                    for entry in archive.read_dir(&inode)? {
                        stack.push(archive.entry_inode(&entry?)?);
                    }
                }
                _ => {}
            }
        }
        Ok(true)
    };
    whole().unwrap_or(false)
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
        let mut clean = 0;
        let mut most = (0, String::new());
        let mut panics = Vec::new();
        for (name, image) in tiny_images() {
            for (what, bytes) in variants(&image, image.len() as u64 * 7919) {
                File::create(&path).unwrap().write_all(&bytes).unwrap();
                total += 1;
                let baseline = ALLOC.reset_peak();
                let result = catch_unwind(AssertUnwindSafe(|| {
                    let options = OpenOptions {
                        offset: 0,
                        cache_bytes: 1 << 20,
                    };
                    let archive = Archive::open_file(File::open(&path).unwrap(), &options).ok()?;
                    exercise(&archive);
                    Some(reads_cleanly(&archive))
                }));
                let used = ALLOC.peak() - baseline;
                if used > most.0 {
                    most = (used, format!("{name} {what}"));
                }
                match result {
                    Ok(Some(whole)) => {
                        opened += 1;
                        clean += usize::from(whole);
                    }
                    Ok(None) => {}
                    Err(_) => panics.push(format!("{name} {what}")),
                }
            }
        }
        let _ = std::fs::remove_file(&path);
        done.store(true, Ordering::Relaxed);
        eprintln!(
            "{total} damaged variants, {opened} still opened, {clean} read whole without an error, {} panicked; at most {} KiB allocated at once ({})",
            panics.len(),
            most.0 >> 10,
            most.1
        );
        assert!(total > 3000, "only {total} variants");
        assert!(panics.is_empty(), "panics on: {}", panics.join(", "));
        // The damage must leave some images readable, or the walks test nothing past open.
        assert!(
            opened > total / 4,
            "only {opened} of {total} variants opened"
        );
        assert!(
            clean > total / 20,
            "only {clean} of {total} variants read whole"
        );
        assert!(
            most.0 <= MOST_BYTES_PER_VARIANT,
            "{} allocated {} bytes at once",
            most.1,
            most.0
        );
    });
}

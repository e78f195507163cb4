//! Every corpus image mounted with `squashfuse-rs` must look exactly like the kernel's loop
//! mount of it: the walk in readdir order, every `lstat` field incl. `st_ino`, what readdir
//! itself says (`d_ino`, `d_type`, "." and ".."), symlink targets, xattrs, content digests,
//! and reads at odd offsets; and it must stay right under 8 threads reading random ranges
//! at once.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use e2e_tests::corpus::{images, Image, Reader, EXCEPTIONS};
use e2e_tests::skip::{needs, Need};
use e2e_tests::snapshot::{compare, from_dir, Ignore};
use e2e_tests::sys::{listing_walk, FuseMount, Listed, LoopMount};

fn offset_option(image: &Image) -> String {
    format!("offset={}", image.offset)
}

fn can_run() -> bool {
    // Root for the kernel's loop mount.
    needs(&[Need::Root, Need::Fuse])
}

#[test]
fn fuse_matches_kernel_on_every_image() {
    if !can_run() {
        return;
    }
    let mut failures = Vec::new();
    let mut compared = 0;
    for image in images().iter().filter(|i| i.kernel_readable()) {
        let kernel = LoopMount::new(&image.path, image.offset).unwrap();
        let fuse = FuseMount::new(&image.path, &[&offset_option(image)]).unwrap();
        // First, on the fresh mount, a walk by readdir alone (as `find` walks).
        if let Err(diff) = same_listing(&listing_walk(&kernel.dir), &listing_walk(&fuse.dir)) {
            failures.push(format!("{}: {diff}", image.name));
        }
        let expected = from_dir(&kernel.dir);
        // Something was compared: the whole tree (an empty walk on both sides would agree).
        if expected.len() != image.nodes() {
            failures.push(format!(
                "{}: the kernel's mount shows {} nodes, the corpus tree has {}",
                image.name,
                expected.len(),
                image.nodes()
            ));
        }
        if let Err(diff) = compare(&expected, &from_dir(&fuse.dir), Ignore::default()) {
            failures.push(format!("{}:\n{diff}", image.name));
        }
        match odd_reads(&kernel.dir, &fuse.dir) {
            Err(diff) => failures.push(format!("{}: {diff}", image.name)),
            Ok(0) if image.nodes() > 1 => failures.push(format!("{}: no file probed", image.name)),
            Ok(_) => {}
        }
        compared += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let unreadable = EXCEPTIONS.iter().filter(|(_, r, _)| *r == Reader::Kernel);
    let expected = images().len() - unreadable.count();
    assert!(
        compared == expected && compared > 0,
        "compared {compared} images, expected {expected}"
    );
    eprintln!("{compared} images: squashfuse-rs shows what the kernel shows");
}

/// The first readdir entry where two walks differ.
fn same_listing(kernel: &[Listed], fuse: &[Listed]) -> Result<(), String> {
    let show = |e: Option<&Listed>| {
        e.map(|(p, ino, t)| (String::from_utf8_lossy(p).into_owned(), *ino, *t))
    };
    match (0..kernel.len().max(fuse.len())).find(|&i| kernel.get(i) != fuse.get(i)) {
        None => Ok(()),
        Some(i) => Err(format!(
            "readdir differs at entry {i}: kernel {:?}, squashfuse-rs {:?}",
            show(kernel.get(i)),
            show(fuse.get(i))
        )),
    }
}

/// Regular files under `root` up to `max` bytes, as paths relative to it.
fn files(root: &Path, max: u64) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let md = entry.metadata().unwrap();
            if md.is_dir() {
                stack.push(entry.path());
            } else if md.is_file() && md.len() <= max && md.len() > 1 {
                out.push(entry.path().strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn pread(f: &File, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = f.read_at(&mut buf[done..], offset + done as u64).unwrap();
        if n == 0 {
            break;
        }
        done += n;
    }
    buf.truncate(done);
    buf
}

/// Reads at odd offsets of every 7th file, both mounts against each other; how many files.
fn odd_reads(kernel: &Path, fuse: &Path) -> Result<usize, String> {
    let mut probed = 0;
    for rel in files(kernel, 64 << 20).iter().step_by(7) {
        probed += 1;
        let (k, f) = (
            File::open(kernel.join(rel)).unwrap(),
            File::open(fuse.join(rel)).unwrap(),
        );
        let size = k.metadata().unwrap().len();
        for (offset, len) in [
            (1, 4095),
            (4095, 2),
            (131071, 3),
            (131065, 131086),
            (size / 2 - 1, 3),
            (size - 1, 10),
        ] {
            if pread(&k, offset, len) != pread(&f, offset, len) {
                return Err(format!(
                    "{}: read of {len} at {offset} differs",
                    rel.display()
                ));
            }
        }
    }
    Ok(probed)
}

/// A small deterministic generator for reproducible random ranges.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn stress(image: &Image) {
    let kernel = LoopMount::new(&image.path, image.offset).unwrap();
    let fuse = FuseMount::new(&image.path, &[&offset_option(image)]).unwrap();
    let mut candidates = files(&kernel.dir, 64 << 20);
    candidates
        .sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(kernel.dir.join(p)).unwrap().len()));
    candidates.truncate(6);
    assert!(!candidates.is_empty());
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (candidates, kernel, fuse) = (&candidates, &kernel.dir, &fuse.dir);
            s.spawn(move || {
                let mut state = 0x9E37_79B9 ^ ((t + 1) * 0x1234_5678_9ABC);
                let open: Vec<_> = candidates
                    .iter()
                    .map(|p| {
                        (
                            File::open(kernel.join(p)).unwrap(),
                            File::open(fuse.join(p)).unwrap(),
                            p,
                        )
                    })
                    .collect();
                for _ in 0..400 {
                    let (k, f, p) = &open[next(&mut state) as usize % open.len()];
                    let size = k.metadata().unwrap().len();
                    let offset = next(&mut state) % size;
                    let len = (next(&mut state) % 300_000) as usize + 1;
                    assert!(
                        pread(k, offset, len) == pread(f, offset, len),
                        "{}: {len} bytes at {offset}",
                        p.display()
                    );
                }
            });
        }
    });
}

#[test]
fn eight_threads_reading_random_ranges_get_the_right_bytes() {
    if !can_run() {
        return;
    }
    let by_name = |name: &str| {
        images()
            .iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("{name} in corpus"))
    };
    stress(by_name("m-zstd"));
    stress(by_name("m-gzip-4k"));
}

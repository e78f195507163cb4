//! A damaged image under a live squashfuse-rs mount: a corrupt data block gives EIO to the
//! reads that need it and the daemon keeps serving; an image file truncated or rewritten
//! while mounted gives EIO, never a crash.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use e2e_tests::corpus::images;
use e2e_tests::sys::{fuse_available, is_mounted, is_root, FuseMount};

fn can_run() -> bool {
    if !is_root() || !fuse_available() {
        e2e_tests::skip::skip("needs root and /dev/fuse");
        return false;
    }
    true
}

fn copy_of(name: &str, tag: &str) -> PathBuf {
    let src = &images().iter().find(|i| i.name == name).unwrap().path;
    let dst = std::env::temp_dir().join(format!("sqfs-damage-{}-{tag}.sqfs", std::process::id()));
    std::fs::copy(src, &dst).unwrap();
    dst
}

fn read_whole(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    File::open(path)?.read_to_end(&mut v)?;
    Ok(v)
}

/// Regular files of the mount, largest first.
fn big_files(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() && md.len() > 200_000 && md.len() < 64 << 20 {
                out.push((e.path(), md.len()));
            }
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.1));
    out
}

#[test]
fn truncating_the_image_under_a_mount_gives_eio_not_a_crash() {
    if !can_run() {
        return;
    }
    let image = copy_of("m-zstd", "truncate");
    let mount = FuseMount::new(&image, &[]).unwrap();
    let files = big_files(&mount.dir);
    assert!(files.len() >= 3);
    // Truncate to half: data blocks past the cut are gone (metadata is cached or not:
    // either way the daemon must answer, with bytes or EIO).
    let len = std::fs::metadata(&image).unwrap().len();
    File::options()
        .write(true)
        .open(&image)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let mut eio = 0;
    for (path, _) in &files {
        match read_whole(path) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "{}: {e}", path.display());
                eio += 1;
            }
        }
    }
    assert!(
        eio > 0,
        "no read failed after the image lost half its bytes"
    );
    // The daemon is still there and answers.
    assert!(is_mounted(&mount.dir));
    assert!(std::fs::read_dir(&mount.dir).is_ok());
    drop(mount);
    let _ = std::fs::remove_file(&image);
}

#[test]
fn a_corrupt_data_block_fails_only_its_reads() {
    if !can_run() {
        return;
    }
    let image = copy_of("m-gzip", "corrupt");
    // Find a file's first data block through the library, then overwrite it with junk.
    let archive = sqfs::Archive::open(&image).unwrap();
    let mount_probe = FuseMount::new(&image, &[]).unwrap();
    let (victim, _) = big_files(&mount_probe.dir)[0].clone();
    let rel = victim
        .strip_prefix(&mount_probe.dir)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let others: Vec<_> = big_files(&mount_probe.dir)
        .into_iter()
        .skip(1)
        .map(|(p, _)| {
            (
                p.strip_prefix(&mount_probe.dir).unwrap().to_path_buf(),
                read_whole(&p).unwrap(),
            )
        })
        .collect();
    drop(mount_probe);
    let data = archive
        .file_data(&archive.lookup_path(&rel).unwrap())
        .unwrap();
    let (pos, block) = data.block(0);
    assert!(!block.is_hole() && block.stored > 64);
    let mut f = File::options().write(true).open(&image).unwrap();
    f.seek(SeekFrom::Start(pos + 16)).unwrap();
    f.write_all(&[0xA5; 32]).unwrap();
    drop(f);

    let mount = FuseMount::new(&image, &[]).unwrap();
    let err = read_whole(&mount.dir.join(&rel)).expect_err("a corrupt block must not read");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    // Twice: the error is not cached into success, and the daemon is still serving.
    assert!(read_whole(&mount.dir.join(&rel)).is_err());
    for (path, bytes) in others.iter().take(5) {
        if !path.starts_with(&rel) {
            assert_eq!(
                &read_whole(&mount.dir.join(path)).unwrap(),
                bytes,
                "{}",
                path.display()
            );
        }
    }
    drop(mount);
    let _ = std::fs::remove_file(&image);
}

//! A damaged image under a live squashfuse-rs mount: a corrupt data block gives EIO to the
//! reads that need it and the daemon keeps serving; an image file truncated or rewritten
//! while mounted gives EIO, never a crash.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use e2e_tests::corpus::images;
use e2e_tests::hostile::unservable_root;
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
    let (pos, block) = sqfs::internals::data_block_at(&data, 0);
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

fn mounted_at(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let dir = dir.to_string_lossy().into_owned();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(&dir))
}

fn daemons_for(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains("squashfuse-rs") && cmdline.contains(&needle)).then_some(cmdline)
        })
        .collect()
}

#[test]
fn an_image_whose_root_cannot_be_served_is_refused_and_nothing_is_mounted() {
    if !can_run() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sqfs-damage-{}-root", std::process::id()));
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    for what in ["owners", "listing"] {
        let image = dir.join(format!("{what}.sqfs"));
        let tiny = e2e_tests::corpus::repo_root().join("testdata/tiny/tiny-gzip.sqfs");
        std::fs::write(&image, unservable_root(&tiny, what)).unwrap();
        let out = std::process::Command::new(e2e_tests::sys::built_binary("squashfuse-rs"))
            .arg(&image)
            .arg(&mnt)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            let _ = std::process::Command::new("umount").arg(&mnt).status();
            panic!("{what}: mounted an image whose root cannot be served");
        }
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(
            stderr.starts_with("squashfuse-rs: ") && stderr.contains("root"),
            "{what}: {stderr}"
        );
        assert!(!mounted_at(&mnt), "{what}: something is mounted");
        assert!(!is_mounted(&mnt), "{what}: something is mounted");
        assert_eq!(daemons_for(&mnt), Vec::<String>::new(), "{what}: a daemon");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_lookup_of_an_over_long_name_is_enametoolong() {
    if !can_run() {
        return;
    }
    let image = e2e_tests::corpus::repo_root().join("testdata/tiny/tiny-gzip.sqfs");
    let mount = FuseMount::new(&image, &[]).unwrap();
    // The kernel's squashfs_lookup() answers ENAMETOOLONG past SQUASHFS_NAME_LEN (256);
    // FUSE passes names up to 1024 bytes on to the daemon.
    let long = mount.dir.join("a".repeat(257));
    let err = std::fs::symlink_metadata(&long).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG), "{err}");
    let longest = mount.dir.join("a".repeat(256));
    let err = std::fs::symlink_metadata(&longest).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    assert!(std::fs::symlink_metadata(mount.dir.join("hello.txt")).is_ok());
}

//! The deepest tree the walk allows (2,048 directories with the root) is extracted and listed
//! with a small stack: the walk keeps its place on a stack of its own. A recursive walk
//! needed 2 to 4 MiB and aborted ("has overflowed its stack") under `ulimit -s 2048`.

mod support;

use std::process::{Command, Output};

use rustix::fs::{self as rfs, FileType, Mode};
use support::{deep_tree, pack, Scratch};

/// `sqfs ARGS…` with a 1 MiB stack (the main thread's size comes from the limit at exec).
fn sqfs_small_stack(args: &[&std::ffi::OsStr]) -> Output {
    Command::new("sh")
        .args(["-c", "ulimit -s 1024 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_sqfs"))
        .args(args)
        .output()
        .unwrap()
}

fn image_of_depth(s: &Scratch, depth: usize) -> std::path::PathBuf {
    let tree = s.0.join(format!("tree-{depth}"));
    std::fs::create_dir(&tree).unwrap();
    deep_tree(&tree, "d", depth, |bottom| {
        rfs::mknodat(
            bottom,
            "fifo",
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
    });
    let image = s.0.join(format!("deep-{depth}.sqfs"));
    pack(&tree, &image);
    image
}

#[test]
fn the_deepest_tree_allowed_needs_little_stack() {
    let s = Scratch::new("stack");
    let image = image_of_depth(&s, 2047);
    let out = s.0.join("out");
    let r = sqfs_small_stack(&[
        "extract".as_ref(),
        "-q".as_ref(),
        image.as_ref(),
        out.as_ref(),
    ]);
    assert!(
        r.status.success(),
        "extract: {:?} {}",
        r.status,
        String::from_utf8_lossy(&r.stderr)
    );
    let mut bottom = out.clone();
    for _ in 0..2047 {
        bottom.push("d");
    }
    // Past PATH_MAX: look it up from a descriptor near the bottom.
    let mut fd = rfs::open(&out, rfs::OFlags::PATH, Mode::empty()).unwrap();
    for _ in 0..2047 {
        fd = rfs::openat(
            &fd,
            "d",
            rfs::OFlags::PATH | rfs::OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .unwrap();
    }
    let st = rfs::statat(&fd, "fifo", rfs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
    assert_eq!(rfs::FileType::from_raw_mode(st.st_mode), FileType::Fifo);

    let r = sqfs_small_stack(&["ls".as_ref(), "-R".as_ref(), image.as_ref()]);
    assert!(r.status.success(), "ls -R: {:?}", r.status);
    let listing = String::from_utf8(r.stdout).unwrap();
    // The root, 2,047 directories and the fifo.
    assert_eq!(listing.lines().count(), 2049);
    let deepest = format!("{}/fifo", "/d".repeat(2047));
    assert_eq!(listing.lines().last(), Some(deepest.as_str()));
}

#[test]
fn one_level_deeper_is_refused_in_one_line() {
    let s = Scratch::new("too-deep");
    let image = image_of_depth(&s, 2048);
    let out = s.0.join("out");
    let r = sqfs_small_stack(&[
        "extract".as_ref(),
        "-q".as_ref(),
        image.as_ref(),
        out.as_ref(),
    ]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8(r.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.ends_with("the image's tree is deeper than 2048 directories\n"),
        "{err}"
    );
}

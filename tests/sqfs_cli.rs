//! The `sqfs` tool as a user meets it: `info`, `ls`, `cat`, `extract`, `--offset`, and
//! every error as one line and a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_tests::corpus::tiny;
use e2e_tests::sys::built_binary;

fn sqfs(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(built_binary("sqfs"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn info_ls_and_cat() {
    let img = tiny("tiny-gzip.sqfs");
    let (ok, out, _) = sqfs(&["info", path(&img)]);
    assert!(ok);
    assert!(
        out.contains("compression:     gzip") && out.contains("block size:      131072"),
        "{out}"
    );
    // The tiny images are made with -mkfs-time 0.
    assert!(
        out.contains("created:         1970-01-01 00:00:00 UTC (0)"),
        "{out}"
    );

    let (ok, out, _) = sqfs(&["ls", path(&img)]);
    assert!(ok);
    assert!(
        out.lines().any(|l| l == "hello.txt") && out.lines().count() == 17,
        "{out}"
    );

    let (ok, out, _) = sqfs(&["ls", "-l", path(&img), "/dir"]);
    assert!(ok);
    assert!(
        out.contains("-rw-r--r--   1     0/0                7 2009-02-13 23:31:30 nested.txt"),
        "{out}"
    );

    let (ok, out, _) = sqfs(&["ls", "-lR", path(&img)]);
    assert!(ok);
    assert!(
        out.contains("/symlink -> hello.txt")
            && out.contains("4095, 1048575")
            && out.contains("/dir/sub/deeper.txt"),
        "{out}"
    );

    let (ok, out, _) = sqfs(&["cat", path(&img), "/hello.txt"]);
    assert!(ok);
    assert_eq!(out, "Hello, SquashFS!\n");

    let (ok, out, _) = sqfs(&[
        "cat",
        "--offset",
        "8192",
        path(&tiny("tiny-offset-8k.sqfs")),
        "dir/nested.txt",
    ]);
    assert!(ok);
    assert_eq!(out, "nested\n");
}

#[test]
fn cat_follows_symlinks_inside_the_image_and_takes_several_paths() {
    let img = tiny("tiny-gzip.sqfs");
    // /symlink -> hello.txt, /dir-link -> dir.
    let (ok, out, err) = sqfs(&["cat", path(&img), "/symlink", "dir-link/nested.txt"]);
    assert!(ok, "{err}");
    assert_eq!(out, "Hello, SquashFS!\nnested\n");
    let (ok, _, err) = sqfs(&["cat", path(&img), "/dangling"]);
    assert!(
        !ok && err.contains("/dangling: no such file or directory"),
        "{err}"
    );

    // Absolute targets start at the image's root, `..` stops there, and a chain of 40
    // symlinks is followed but not one of 41 (Linux's limit), nor a loop.
    let dir = std::env::temp_dir().join(format!("sqfs-cli-cat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("target"), "in the image\n").unwrap();
    let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, tree.join(name));
    link("/target", "sub/absolute").unwrap();
    link("../../../../target", "sub/up-too-far").unwrap();
    link("target", "chain0").unwrap();
    for i in 1..=40 {
        link(&format!("chain{}", i - 1), &format!("chain{i}")).unwrap();
    }
    link("loop-b", "loop-a").unwrap();
    link("loop-a", "loop-b").unwrap();
    let img = dir.join("links.sqfs");
    let made = Command::new("mksquashfs")
        .arg(&tree)
        .arg(&img)
        .args(["-quiet", "-no-progress"])
        .status()
        .unwrap();
    assert!(made.success());
    let (ok, out, err) = sqfs(&[
        "cat",
        path(&img),
        "sub/absolute",
        "sub/up-too-far",
        "chain39",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "in the image\n".repeat(3));
    for looping in ["chain40", "loop-a"] {
        let (ok, _, err) = sqfs(&["cat", path(&img), looping]);
        assert!(
            !ok && err.lines().count() == 1 && err.contains("too many levels of symbolic links"),
            "{looping}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sqfs-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The closing line unsquashfs prints as seven, for tiny-gzip.sqfs (devices need root).
fn tiny_summary(dirs: u32) -> String {
    let devices = if e2e_tests::sys::is_root() { 3 } else { 0 };
    format!(
        "created 8 files, {dirs} directories, 3 symlinks, {devices} devices, 1 fifos, \
         1 sockets, 1 hard links\n"
    )
}

#[test]
fn extract_prints_a_summary_unless_quiet() {
    let dest = scratch("summary");
    let (ok, out, err) = sqfs(&["extract", path(&tiny("tiny-gzip.sqfs")), path(&dest)]);
    assert!(ok, "{err}");
    assert_eq!(out, tiny_summary(4));
    let _ = std::fs::remove_dir_all(&dest);
    // Zero decompressor threads is refused (unsquashfs: "-processors should be 1 or larger").
    let (ok, _, err) = sqfs(&[
        "extract",
        "-p",
        "0",
        path(&tiny("tiny-gzip.sqfs")),
        path(&dest),
    ]);
    assert!(!ok && err.contains("0 is not in 1.."), "{err}");
    assert!(!dest.exists());
    for quiet in ["-q", "-quiet"] {
        let (ok, out, err) = sqfs(&["extract", quiet, path(&tiny("tiny-gzip.sqfs")), path(&dest)]);
        assert!(ok, "{err}");
        assert_eq!(out, "", "{quiet}");
        let _ = std::fs::remove_dir_all(&dest);
    }
}

#[test]
fn extract_of_a_subtree_keeps_its_path() {
    use std::os::unix::fs::MetadataExt;
    let dest = scratch("subtree");
    let img = tiny("tiny-gzip.sqfs");
    let (ok, out, err) = sqfs(&["extract", "-q", path(&img), path(&dest), "/dir/sub"]);
    assert!(ok && out.is_empty(), "{err}");
    assert_eq!(
        std::fs::read(dest.join("dir/sub/deeper.txt")).unwrap(),
        b"deeper\n"
    );
    // Only the way to the subtree: /dir's other entries are not extracted.
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&dest), ["dir"]);
    assert_eq!(names(&dest.join("dir")), ["sub"]);
    if e2e_tests::sys::is_root() {
        // /dir is 1001/1002 in the image: the way there has the image's attributes.
        let m = std::fs::metadata(dest.join("dir")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1001, 1002));
    }
    let _ = std::fs::remove_dir_all(&dest);
    // A single file: DIR/hello.txt, as unsquashfs writes it.
    let (ok, _, err) = sqfs(&["extract", "-q", path(&img), path(&dest), "hello.txt"]);
    assert!(ok, "{err}");
    assert_eq!(names(&dest), ["hello.txt"]);
    let _ = std::fs::remove_dir_all(&dest);
}

#[test]
fn extract_f_fills_a_directory_and_never_follows_its_symlinks() {
    let dir = scratch("force");
    let (dest, outside) = (dir.join("dest"), dir.join("outside"));
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), "original\n").unwrap();
    // Where the image has a file, a directory and a symlink: symlinks out of DEST.
    std::os::unix::fs::symlink(outside.join("victim"), dest.join("hello.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), dest.join("symlink")).unwrap();
    std::fs::write(dest.join("mine"), "kept\n").unwrap();
    let img = tiny("tiny-gzip.sqfs");
    let (ok, _, err) = sqfs(&["extract", path(&img), path(&dest)]);
    assert!(
        !ok && err.contains("not empty") && err.contains("-f"),
        "{err}"
    );
    let (ok, out, err) = sqfs(&["extract", "-f", path(&img), path(&dest)]);
    assert!(ok, "{err}");
    assert_eq!(out, tiny_summary(4));
    assert_eq!(
        std::fs::read(outside.join("victim")).unwrap(),
        b"original\n"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    assert_eq!(
        std::fs::read(dest.join("hello.txt")).unwrap(),
        b"Hello, SquashFS!\n"
    );
    assert!(std::fs::symlink_metadata(dest.join("dir"))
        .unwrap()
        .is_dir());
    assert_eq!(
        std::fs::read_link(dest.join("symlink")).unwrap(),
        Path::new("hello.txt")
    );
    assert_eq!(std::fs::read(dest.join("mine")).unwrap(), b"kept\n");
    // Again over its own output: files replaced, directories merged.
    let (ok, _, err) = sqfs(&["extract", "-f", "-q", path(&img), path(&dest)]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(dest.join("dir/nested.txt")).unwrap(),
        b"nested\n"
    );
    // A directory where the image has a file is not removed.
    let _ = std::fs::remove_file(dest.join("empty"));
    std::fs::create_dir(dest.join("empty")).unwrap();
    std::fs::write(dest.join("empty/precious"), "").unwrap();
    let (ok, _, err) = sqfs(&["extract", "-f", path(&img), path(&dest)]);
    assert!(
        !ok && err.lines().count() == 1 && err.contains("a directory is in the way"),
        "{err}"
    );
    assert!(dest.join("empty/precious").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn extract_writes_the_tree() {
    let dest = std::env::temp_dir().join(format!("sqfs-cli-extract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dest);
    let (ok, _, err) = sqfs(&["extract", path(&tiny("tiny-gzip-4k.sqfs")), path(&dest)]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read(dest.join("hello.txt")).unwrap(),
        b"Hello, SquashFS!\n"
    );
    assert_eq!(
        std::fs::read_link(dest.join("symlink")).unwrap(),
        Path::new("hello.txt")
    );
    let sparse = std::fs::read(dest.join("sparse.bin")).unwrap();
    assert_eq!(sparse.len(), 300_000);
    assert!(sparse[5000..290_000].iter().all(|&b| b == 0));
    // A destination that is not empty is refused, not merged into.
    let (ok, _, err) = sqfs(&["extract", path(&tiny("tiny-gzip.sqfs")), path(&dest)]);
    assert!(!ok && err.contains("not empty"), "{err}");
    let _ = std::fs::remove_dir_all(&dest);
}

#[test]
fn errors_are_one_line_and_nonzero() {
    let img = tiny("tiny-gzip.sqfs");
    let at_8k = tiny("tiny-offset-8k.sqfs");
    let cases: [(&[&str], &str); 7] = [
        (&["info", "/no/such/image"], "No such file"),
        (&["ls", "/etc/hostname"], "bad magic"),
        (
            &["ls", path(&img), "/nope"],
            "/nope: no such file or directory",
        ),
        (&["cat", path(&img), "/dir"], "not a regular file"),
        (&["cat", path(&img), "/hello.txt/x"], "not a directory"),
        (&["info", "--offset", "4096", path(&at_8k)], "bad magic"),
        (
            &["extract", path(&img), "/nonexistent-dest", "/nope"],
            "/nope: no such file or directory",
        ),
    ];
    for (args, expect) in cases {
        let (ok, _, err) = sqfs(args);
        assert!(!ok, "{args:?} succeeded");
        assert!(
            !Path::new("/nonexistent-dest").exists(),
            "{args:?} made its DIR"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("sqfs: error: ") && err.contains(expect),
            "{args:?}: {err}"
        );
    }
}

/// A bad command line is one line and exit 1, as every other error (unsquashfs exits 1 on
/// bad usage too); `--help` and `--version` print on stdout and exit 0.
#[test]
fn usage_errors_are_one_line_and_exit_1() {
    let run = |args: &[&str]| {
        let out = Command::new(built_binary("sqfs"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let img = tiny("tiny-gzip.sqfs");
    let cases: [(&[&str], &str); 7] = [
        (&[], "a command is needed: info, ls, cat, extract"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (
            &["extract", "-p", "0", path(&img), "/nonexistent-dest"],
            "0 is not in 1..",
        ),
        (
            &["extract", path(&img)],
            "required arguments were not provided: <DIR> (usage: sqfs extract",
        ),
        (
            &["ls", "--bogus", path(&img)],
            "unexpected argument '--bogus'",
        ),
        (&["cat", path(&img)], "<PATHS>..."),
        (&["info", "--offset", "x", path(&img)], "invalid value 'x'"),
    ];
    for (args, expect) in cases {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("sqfs: error: ") && err.contains(expect),
            "{args:?}: {err}"
        );
    }
    assert!(!Path::new("/nonexistent-dest").exists());
    for args in [&["--help"][..], &["extract", "--help"], &["-h"]] {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(
            out.contains("Usage: sqfs") && err.is_empty(),
            "{args:?}: {out}"
        );
    }
    let (code, out, _) = run(&["--version"]);
    // The workspace's version, which this package shares.
    let version = format!("sqfs {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!((code, out), (Some(0), version));
}

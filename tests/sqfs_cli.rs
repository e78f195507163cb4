//! The `sqfs` tool as a user meets it: `info`, `ls`, `cat`, `extract`, `--offset`, and
//! every error as one line and a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_tests::corpus::repo_root;
use e2e_tests::sys::built_binary;

fn tiny(name: &str) -> PathBuf {
    repo_root().join("testdata/tiny").join(name)
}

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
    let cases: [(&[&str], &str); 6] = [
        (&["info", "/no/such/image"], "No such file"),
        (&["ls", "/etc/hostname"], "bad magic"),
        (
            &["ls", path(&img), "/nope"],
            "/nope: no such file or directory",
        ),
        (&["cat", path(&img), "/dir"], "not a regular file"),
        (&["cat", path(&img), "/hello.txt/x"], "not a directory"),
        (&["info", "--offset", "4096", path(&at_8k)], "bad magic"),
    ];
    for (args, expect) in cases {
        let (ok, _, err) = sqfs(args);
        assert!(!ok, "{args:?} succeeded");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("sqfs: error: ") && err.contains(expect),
            "{args:?}: {err}"
        );
    }
}

//! `squashfuse-rs -V` / `-h` and usage errors, as squashfuse_ll users call it. (Being an
//! integration test of this package also makes `cargo test --workspace` build the binary
//! that the mount tests in `tests/` run.)

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_squashfuse-rs"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_and_help() {
    for flag in ["-V", "--version"] {
        let (code, out, _) = run(&[flag]);
        assert_eq!(code, 0);
        assert!(out.starts_with("squashfuse-rs "), "{out}");
    }
    for flag in ["-h", "--help"] {
        let (code, out, _) = run(&[flag]);
        assert_eq!(code, 0);
        assert!(
            out.contains("IMAGE") && out.contains("MOUNTPOINT") && out.contains("offset=N"),
            "{out}"
        );
    }
}

#[test]
fn usage_errors_exit_nonzero() {
    let (code, _, err) = run(&["only-an-image"]);
    assert_ne!(code, 0);
    assert!(err.contains("MOUNTPOINT"), "{err}");
    let (code, _, err) = run(&["-o", "frobnicate", "img", "mnt"]);
    assert_ne!(code, 0);
    assert_eq!(err.trim(), "squashfuse-rs: unknown option 'frobnicate'");
}

/// Every bad command line is one line on stderr and exit 1, as every other failure.
#[test]
fn usage_errors_are_one_line_and_exit_1() {
    let cases: [(&[&str], &str); 5] = [
        (&[], "<IMAGE>, <MOUNTPOINT>"),
        (&["only-an-image"], "not provided: <MOUNTPOINT>"),
        (&["--bogus", "img", "mnt"], "unexpected argument '--bogus'"),
        (&["img", "mnt", "-o"], "a value is required for '-o"),
        (
            &["-o", "frobnicate", "img", "mnt"],
            "unknown option 'frobnicate'",
        ),
    ];
    for (args, expect) in cases {
        let (code, out, err) = run(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("squashfuse-rs: ") && err.contains(expect),
            "{args:?}: {err}"
        );
    }
}

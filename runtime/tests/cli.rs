//! `ch-run`'s command line without running a container: help, version, features and usage
//! errors. (Being an integration test of this package also makes `cargo test --workspace`
//! build the binary that the container tests in `tests/` run.)

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ch-run"))
        .args(args)
        .env("USER", "someone")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_help_and_features() {
    assert_eq!(
        run(&["-V"]),
        (0, format!("{}\n", env!("CARGO_PKG_VERSION")), String::new())
    );
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("Usage: ch-run [OPTION...] IMAGE -- CMD [ARG...]"),
        "{out}"
    );
    assert_eq!(run(&["--feature=squash"]).0, 0);
    let (code, _, err) = run(&["--feature=seccomp"]);
    assert_eq!(code, 31);
    assert!(err.ends_with("error: unknown feature: seccomp\n"), "{err}");
}

#[test]
fn usage_errors_exit_64_with_one_line() {
    for args in [
        &["--no-such-option", "img", "true"][..],
        &["img", "ls", "-l"],
        &["img"],
        &[],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert_eq!(out, "");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("ch-run[") && err.contains("]: error: "),
            "{err}"
        );
    }
}

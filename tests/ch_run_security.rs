//! `ch-run` against someone who means harm: a hostile image (sizes and contents meant to
//! exhaust memory), another user who plants an image where ch-run looks for it, and a
//! container root who tries to read the supervisor that serves its image. Also the messages
//! a user sees first (an unreadable image, a bad `-W` size, 0.31's `--ch-ssh`).
//!
//! Runs ch-run as the unprivileged `chtest` (see container.rs); the storage tests use the
//! second user `chtest2` as the attacker, so they need root to set the scene.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use e2e_tests::container::{can_run_containers, Outcome, Scratch};

/// ch-run's memory is capped in these tests: a regression that reads or expands without
/// bound then dies of a failed allocation instead of taking the machine's memory.
const ADDRESS_SPACE_LIMIT: u64 = 1 << 30;

/// The limit ch-run puts on a file it reads from an image and on the environment it builds.
const READ_LIMIT: usize = 16 << 20;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `cmd` (a ch-run command line from `Scratch::command`) with its address space capped.
fn run_capped(mut cmd: Command) -> Outcome {
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let cap = libc::rlimit {
                rlim_cur: ADDRESS_SPACE_LIMIT,
                rlim_max: ADDRESS_SPACE_LIMIT,
            };
            libc::setrlimit(libc::RLIMIT_AS, &cap);
            Ok(())
        });
    }
    Outcome::from(cmd.output().unwrap())
}

/// The one stderr line of a failed run, checked for ch-run's format.
fn error_line(out: &Outcome) -> String {
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line expected: {out:?}");
    let (prefix, message) = lines[0]
        .split_once(": error: ")
        .unwrap_or_else(|| panic!("ch-run[PID]: error: expected: {out:?}"));
    assert!(
        prefix.starts_with("ch-run[") && prefix.ends_with(']'),
        "{out:?}"
    );
    message.to_string()
}

/// A minimal image tree: busybox, what ch-run binds onto, and `/ch/environment`.
fn tiny_tree(dir: &Path, environment: &[u8]) {
    for sub in ["bin", "dev", "proc", "sys", "tmp", "etc", "ch", "data"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in ["sh", "true", "cat", "env", "ls", "echo", "readlink", "tr"] {
        symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    for f in ["etc/passwd", "etc/group"] {
        std::fs::write(dir.join(f), "").unwrap();
    }
    std::fs::write(dir.join("data/hello"), "hello from the tiny image\n").unwrap();
    std::fs::write(dir.join("ch/environment"), environment).unwrap();
    let ok = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(ok.success());
}

fn mksquashfs(tree: &Path, image: &Path, extra: &[&str]) {
    let out = Command::new("mksquashfs")
        .arg(tree)
        .arg(image)
        .args(["-noappend", "-quiet", "-no-progress"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mksquashfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    chmod(image, 0o644);
}

fn arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------
// 1. A hostile image must not abort ch-run: every read from it is bounded.
// ---------------------------------------------------------------------------------------

/// Sets the size of the one extended file inode (a hard-linked file of `size` bytes) in an
/// image made with `-noI` (inode table stored uncompressed) to `new_size`.
fn patch_file_size(image: &Path, size: u64, new_size: u64) {
    let mut bytes = std::fs::read(image).unwrap();
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let inodes = u64_at(&bytes, 64) as usize;
    let dirs = u64_at(&bytes, 72) as usize;
    // Extended file inode (type 9): 16 bytes of header, blocks_start, file_size, sparse,
    // nlink (u32 at 40). mksquashfs writes this form for a file with two links.
    let found: Vec<usize> = (inodes..dirs - 44)
        .filter(|&at| {
            bytes[at..at + 2] == [9, 0]
                && u64_at(&bytes, at + 24) == size
                && bytes[at + 40..at + 44] == [2, 0, 0, 0]
        })
        .collect();
    assert_eq!(found.len(), 1, "the hard-linked file's inode, once");
    bytes[found[0] + 24..found[0] + 32].copy_from_slice(&new_size.to_le_bytes());
    std::fs::write(image, bytes).unwrap();
}

#[test]
fn an_environment_file_sized_beyond_memory_is_one_error_line() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("sec-hugeenv");
    let tree = s.dir.join("tree");
    // A distinctive size to find the inode by, and a second link to get the extended
    // (64-bit size) inode.
    let environment = format!("X={}\n", "x".repeat(2998));
    tiny_tree(&tree, environment.as_bytes());
    std::fs::hard_link(tree.join("ch/environment"), tree.join("ch/link")).unwrap();
    let image = s.dir.join("huge.sqfs");
    mksquashfs(&tree, &image, &["-noI"]);
    let mnt = s.mnt_arg();
    let before = run_capped(s.command(&["-m", &mnt, "--set-env", &arg(&image), "--", "env"], &[]));
    assert!(before.stdout.contains(&environment), "{before:?}");
    patch_file_size(&image, 3001, 1 << 62);
    let out = run_capped(s.command(&["-m", &mnt, "--set-env", &arg(&image), "--", "true"], &[]));
    assert_eq!(out.code, 31, "{out:?}");
    assert_eq!(
        error_line(&out),
        "can't read: /ch/environment: File too large (more than 16 MiB)"
    );
    s.assert_clean();
}

#[test]
fn a_real_environment_file_too_big_is_one_error_line() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("sec-bigenv");
    let tree = s.dir.join("tree");
    // Well-formed lines, just too many of them.
    let line = format!("BIG={}\n", "b".repeat(1000));
    let big = line.repeat(READ_LIMIT / line.len() + 1);
    tiny_tree(&tree, big.as_bytes());
    let image = s.dir.join("big.sqfs");
    mksquashfs(&tree, &image, &[]);
    let mnt = s.mnt_arg();
    let expected = "can't read: /ch/environment: File too large (more than 16 MiB)";
    let (image_arg, tree_arg) = (arg(&image), arg(&tree));
    // (-m is for SquashFS images only.)
    for args in [
        ["-m", &mnt, "--set-env", &image_arg].as_slice(),
        ["--set-env", &tree_arg].as_slice(),
    ] {
        let args = [args, &["--", "true"]].concat();
        let out = run_capped(s.command(&args, &[]));
        assert_eq!(
            (out.code, error_line(&out)),
            (31, expected.into()),
            "{args:?}"
        );
    }
    // Host files given to --set-env are bounded the same way, pipes and devices too.
    let host = s.dir.join("big.env");
    std::fs::write(&host, &big).unwrap();
    chmod(&host, 0o644);
    for file in [arg(&host), "/dev/zero".to_string()] {
        let out = run_capped(s.command(
            &[&format!("--set-env={file}"), &arg(&image), "--", "true"],
            &[],
        ));
        assert_eq!(out.code, 31, "{out:?}");
        assert_eq!(
            error_line(&out),
            format!("can't read: {file}: File too large (more than 16 MiB)")
        );
    }
    // Just under the limit is fine.
    let fits = line.repeat((READ_LIMIT - 64 * 1024) / line.len());
    std::fs::write(&host, &fits).unwrap();
    let out = run_capped(s.command(
        &[
            &format!("--set-env={}", arg(&host)),
            &arg(&image),
            "--",
            "true",
        ],
        &[],
    ));
    assert_eq!(out.code, 0, "{out:?}");
    s.assert_clean();
}

#[test]
fn an_environment_that_doubles_itself_is_one_error_line() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("sec-envbomb");
    let tree = s.dir.join("tree");
    // 300 bytes that expand to 2^40 bytes: each line doubles A.
    let mut bomb = String::from("A=x\n");
    for _ in 0..40 {
        bomb.push_str("A=$A:$A\n");
    }
    tiny_tree(&tree, bomb.as_bytes());
    let image = s.dir.join("bomb.sqfs");
    mksquashfs(&tree, &image, &[]);
    let out = run_capped(s.command(
        &["-m", &s.mnt_arg(), "--set-env", &arg(&image), "--", "true"],
        &[],
    ));
    assert_eq!(out.code, 31, "{out:?}");
    let msg = error_line(&out);
    assert!(
        msg.starts_with("can't set variable: environment larger than 16 MiB: /ch/environment:"),
        "{msg}"
    );
    // The same from the command line.
    let image = arg(&image);
    let mut args = vec!["--set-env=A=x"];
    args.extend(std::iter::repeat_n("--set-env=A=$A:$A", 40));
    args.extend([image.as_str(), "--", "true"]);
    let out = run_capped(s.command(&args, &[]));
    assert_eq!(
        (out.code, error_line(&out)),
        (
            31,
            "can't set variable: environment larger than 16 MiB: A=$A:$A".to_string()
        )
    );
    s.assert_clean();
}

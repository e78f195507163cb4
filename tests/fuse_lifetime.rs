//! How a squashfuse-rs mount ends. SIGTERM, SIGINT and SIGHUP detach the mount at once
//! (gone from /proc/mounts), files already open read on to their end, and the daemon exits
//! when the last is closed (squashfuse does so on SIGTERM since 0.2.0); a plain user's mount
//! is detached through fusermount3; and ending one mount never takes away another mount
//! at the same path. Every wait is for an event, bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e2e_tests::corpus::{images, tiny};
use e2e_tests::fuse_daemon::{
    bytes_in_image, ensure_plain_user, fuse_servers, is_running, output_within, plain_user_scene,
    send_signal, serving_daemon, wait_for_exit, wait_until, PATIENCE, PLAIN_USER,
};
use e2e_tests::sys::{built_binary, is_mounted};

/// Root (a second user's view, umount), /dev/fuse and the corpus.
fn can_run() -> bool {
    use e2e_tests::skip::{needs, Need};
    needs(&[Need::Root, Need::Fuse, Need::Corpus])
}

fn image(name: &str) -> PathBuf {
    images()
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("{name} in the corpus"))
        .path
        .clone()
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sqfs-life-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Mounts `image` at `dir` in daemon mode (with `args` before it); returns the daemon.
fn mount(args: &[&str], image: &Path, dir: &Path) -> i32 {
    let out = output_within(
        Command::new(built_binary("squashfuse-rs"))
            .args(args)
            .arg(image)
            .arg(dir),
        PATIENCE,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serving_daemon(dir)
}

/// Reads `file` to its end in 64 KiB steps with a pause between them, as a slow reader
/// (`tail -f`, a job reading its input) does.
fn read_slowly(file: &mut std::fs::File, into: &mut Vec<u8>) {
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut chunk).unwrap();
        if n == 0 {
            return;
        }
        into.extend_from_slice(&chunk[..n]);
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_signal_detaches_at_once_and_open_files_read_to_their_end() {
    if !can_run() {
        return;
    }
    let img = image("m-gzip");
    let (held_path, slow_path) = ("data/mixed-3MiB+12345", "data/text-512KiB");
    let (held_bytes, slow_bytes) = (
        bytes_in_image(&img, held_path),
        bytes_in_image(&img, slow_path),
    );
    for (signal, name) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let dir = scratch_dir(name);
        let daemon = mount(&[], &img, &dir);
        // One file opened and not read yet; one being read slowly.
        let mut held = std::fs::File::open(dir.join(held_path)).unwrap();
        let mut slow = std::fs::File::open(dir.join(slow_path)).unwrap();
        let mut slow_read = vec![0u8; 100_000];
        slow.read_exact(&mut slow_read).unwrap();

        send_signal(daemon, signal);
        wait_until(&format!("{name} to detach the mount"), PATIENCE, || {
            !is_mounted(&dir)
        });
        assert!(is_running(daemon), "{name}: the daemon left open files");
        read_slowly(&mut slow, &mut slow_read);
        assert!(
            slow_read == slow_bytes,
            "{name}: {slow_path} read other bytes"
        );
        let mut held_read = Vec::new();
        held.read_to_end(&mut held_read).unwrap();
        assert!(
            held_read == held_bytes,
            "{name}: {held_path} read other bytes"
        );
        drop(slow);
        assert!(
            is_running(daemon),
            "{name}: the daemon left a file still open"
        );
        drop(held);
        wait_for_exit(daemon, "the daemon to exit after the last file was closed");
        let _ = std::fs::remove_dir(&dir);
    }
}

#[test]
fn with_no_file_open_a_signal_ends_the_daemon() {
    if !can_run() {
        return;
    }
    let dir = scratch_dir("idle-signal");
    let daemon = mount(&[], &image("m-gzip"), &dir);
    assert!(std::fs::read_dir(&dir).unwrap().count() > 5);
    send_signal(daemon, libc::SIGTERM);
    wait_for_exit(daemon, "the daemon to exit on SIGTERM");
    assert!(!is_mounted(&dir));
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn tail_f_keeps_its_file_across_sigterm() {
    if !can_run() {
        return;
    }
    let dir = scratch_dir("tail");
    let daemon = mount(&[], &tiny("tiny-gzip.sqfs"), &dir);
    // tail checks its file every 0.1 s (FUSE is a "remote" filesystem to it: it polls).
    let mut tail = Command::new("tail")
        .args(["-f", "-s", "0.1"])
        .arg(dir.join("hello.txt"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(tail.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let _ = tx.send(line);
        // Kept open and drained: tail -f ends when its output pipe has no reader.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    });
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "Hello, SquashFS!\n");

    send_signal(daemon, libc::SIGTERM);
    wait_until("SIGTERM to detach the mount", PATIENCE, || {
        !is_mounted(&dir)
    });
    // Ten of tail's checks of its file later, tail and the daemon serving it are still
    // there (tail ends with "no files remaining" once its file fails).
    std::thread::sleep(Duration::from_secs(1));
    assert!(tail.try_wait().unwrap().is_none(), "tail ended");
    assert!(is_running(daemon));
    tail.kill().unwrap();
    let mut err = String::new();
    tail.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    tail.wait().unwrap();
    assert!(!err.contains("no files remaining"), "{err}");
    wait_for_exit(daemon, "the daemon to exit once tail was gone");
    let _ = std::fs::remove_dir(&dir);
}

/// A reader running as the plain user: it opens `file`, says "opened", waits for a line on
/// its stdin, then copies the file to its stdout.
fn user_reader(file: &Path) -> Child {
    Command::new("runuser")
        .args(["-u", PLAIN_USER, "--", "sh", "-c"])
        .arg(r#"exec 3<"$1" || exit 1; echo opened; read go; exec cat <&3"#)
        .arg("sh")
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_plain_users_mount_is_detached_through_fusermount3_and_its_reader_reads_on() {
    if !can_run() {
        return;
    }
    ensure_plain_user();
    // Everything the user touches is theirs: a copy of the binary and the image.
    let dir = scratch_dir("plain-user");
    let (img, mnt, bin) = plain_user_scene(&dir, &tiny("tiny-gzip.sqfs"), PLAIN_USER);
    let out = output_within(
        Command::new("runuser")
            .args(["-u", PLAIN_USER, "--"])
            .arg(&bin)
            .arg(&img)
            .arg(&mnt),
        PATIENCE,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let daemon = serving_daemon(&mnt);

    let mut reader = user_reader(&mnt.join("sparse.bin"));
    let mut stdout = reader.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut opened = [0u8; 7];
        let said = stdout.read_exact(&mut opened).map(|_| opened.to_vec());
        let _ = tx.send(said);
        let mut rest = Vec::new();
        let _ = stdout.read_to_end(&mut rest);
        let _ = tx.send(Ok(rest));
    });
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap().unwrap(), b"opened\n");

    send_signal(daemon, libc::SIGTERM);
    wait_until("fusermount3 -u -z to detach the mount", PATIENCE, || {
        !is_mounted(&mnt)
    });
    assert!(is_running(daemon), "the daemon left an open file");
    reader.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let rest = rx.recv_timeout(PATIENCE).unwrap().unwrap();
    assert!(
        rest == bytes_in_image(&img, "sparse.bin"),
        "sparse.bin read other bytes"
    );
    assert!(reader.wait().unwrap().success());
    wait_for_exit(daemon, "the daemon to exit after its reader");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits (bounded) for a foreground daemon to exit.
fn wait_child(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(what, PATIENCE, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap()
}

/// The daemon serving at `dir` other than `known`, once there is exactly one.
fn other_server(dir: &Path, known: i32) -> i32 {
    let others: Vec<i32> = fuse_servers(dir)
        .into_iter()
        .filter(|&p| p != known)
        .collect();
    assert_eq!(others.len(), 1, "{others:?}");
    others[0]
}

#[test]
fn ending_one_mount_leaves_another_mount_at_the_same_path() {
    if !can_run() {
        return;
    }
    let dir = scratch_dir("stacked");
    let hello = dir.join("hello.txt");
    // The lower mount's daemon in the foreground, its debug log saying what a signal did.
    let log = dir.with_extension("log");
    let mut lower = Command::new(built_binary("squashfuse-rs"))
        .arg("-d")
        .arg(tiny("tiny-gzip.sqfs"))
        .arg(&dir)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let lower_pid = lower.id() as i32;
    wait_until("the lower mount", PATIENCE, || is_mounted(&dir));

    // umount takes the upper mount; its daemon's exit leaves the lower one alone.
    let out = output_within(
        Command::new(built_binary("squashfuse-rs"))
            .arg(tiny("tiny-lz4.sqfs"))
            .arg(&dir),
        PATIENCE,
    );
    assert!(out.status.success());
    let upper = other_server(&dir, lower_pid);
    assert!(Command::new("umount").arg(&dir).status().unwrap().success());
    wait_for_exit(upper, "the upper daemon after umount");
    assert!(
        is_mounted(&dir),
        "the lower mount went with the upper daemon"
    );
    assert!(is_running(lower_pid));
    assert_eq!(std::fs::read(&hello).unwrap(), b"Hello, SquashFS!\n");

    // A signal to a daemon whose mount is covered detaches nothing: the mount on top is
    // not its own to take. Once uncovered, the next signal detaches its mount.
    let out = output_within(
        Command::new(built_binary("squashfuse-rs"))
            .arg(tiny("tiny-lz4.sqfs"))
            .arg(&dir),
        PATIENCE,
    );
    assert!(out.status.success());
    let covering = other_server(&dir, lower_pid);
    send_signal(lower_pid, libc::SIGTERM);
    wait_until("the covered daemon to handle SIGTERM", PATIENCE, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("not detached"))
    });
    assert!(is_running(lower_pid) && is_running(covering));
    assert_eq!(fuse_servers(&dir).len(), 2);
    assert_eq!(std::fs::read(&hello).unwrap(), b"Hello, SquashFS!\n");
    assert!(Command::new("umount").arg(&dir).status().unwrap().success());
    wait_for_exit(covering, "the covering daemon after umount");
    assert!(is_mounted(&dir) && is_running(lower_pid));
    send_signal(lower_pid, libc::SIGTERM);
    assert!(wait_child(&mut lower, "the lower daemon on its second SIGTERM").success());
    assert!(!is_mounted(&dir));
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir(&dir);
}

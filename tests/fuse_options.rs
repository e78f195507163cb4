//! squashfuse-rs behaves as squashfuse_ll users expect: `-o offset=`, `subdir=`, `uid=/gid=`,
//! `timeout=`, `notify_pipe=`, and libfuse's options, each mounted and its effect checked;
//! daemon mode returns only once the mount is ready; SIGTERM unmounts; bad input is one
//! clear line and a non-zero exit.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::corpus::{images, tiny};
use e2e_tests::fuse_daemon::{
    bytes_in_image, ensure_plain_user, fuse_servers, is_running, output_within, plain_user_scene,
    processes_naming, send_signal, serving_daemon, wait_for_exit, wait_until, PATIENCE, PLAIN_USER,
};
use e2e_tests::snapshot::{compare, from_dir, Ignore};
use e2e_tests::sys::{built_binary, fuse_available, is_mounted, is_root, FuseMount, LoopMount};

fn can_run() -> bool {
    if !is_root() || !fuse_available() {
        e2e_tests::skip::skip("needs root (kernel loop mounts to compare with) and /dev/fuse");
        return false;
    }
    true
}

fn image(name: &str) -> &'static e2e_tests::corpus::Image {
    images()
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("{name} in the corpus"))
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sqfs-opt-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn offset_reads_an_image_after_a_megabyte_of_junk() {
    if !can_run() {
        return;
    }
    let img = image("m-offset-1m");
    assert_eq!(img.offset, 1 << 20);
    let kernel = LoopMount::new(&img.path, img.offset).unwrap();
    let fuse = FuseMount::new(&img.path, &["offset=1048576"]).unwrap();
    compare(
        &from_dir(&kernel.dir),
        &from_dir(&fuse.dir),
        Ignore::default(),
    )
    .unwrap();
    // Without the offset the junk is not an image.
    let err = FuseMount::new(&img.path, &[])
        .err()
        .expect("no image at offset 0");
    assert!(err.contains("bad magic"), "{err}");
}

#[test]
fn subdir_mounts_a_directory_of_the_image_as_the_root() {
    if !can_run() {
        return;
    }
    let img = image("m-gzip");
    let kernel = LoopMount::new(&img.path, 0).unwrap();
    let fuse = FuseMount::new(&img.path, &["subdir=/links"]).unwrap();
    compare(
        &from_dir(&kernel.dir.join("links")),
        &from_dir(&fuse.dir),
        Ignore::default(),
    )
    .unwrap();
    let err = FuseMount::new(&img.path, &["subdir=/no/such/dir"])
        .err()
        .unwrap();
    assert!(err.contains("subdir") && err.lines().count() == 1, "{err}");
}

#[test]
fn uid_and_gid_override_every_owner() {
    if !can_run() {
        return;
    }
    let fuse = FuseMount::new(&image("m-zstd").path, &["uid=4321,gid=8765"]).unwrap();
    let nodes = from_dir(&fuse.dir);
    assert!(nodes.len() > 1000);
    assert!(nodes.iter().all(|n| n.uid == 4321 && n.gid == 8765));
}

/// The kernel's readahead window of the FUSE mount at `dir`, in KiB.
fn read_ahead_kb(dir: &Path) -> u32 {
    let dev = std::fs::metadata(dir).unwrap().dev();
    let path = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn read_ahead_kb_widens_the_kernels_readahead_window() {
    if !can_run() {
        return;
    }
    // FUSE's own default is 128 KiB; as root squashfuse-rs sets 1024 unless told otherwise,
    // before it says the mount is ready (an open file keeps the window it was opened with),
    // also when the mount point is given relative to the current directory.
    let dir = scratch_dir("readahead");
    std::fs::create_dir_all(dir.join("rel")).unwrap();
    let status = Command::new(built_binary("squashfuse-rs"))
        .current_dir(&dir)
        .arg(&image("m-zstd").path)
        .arg("rel")
        .status()
        .unwrap();
    assert!(status.success());
    let mounted = dir.join("rel");
    let window = read_ahead_kb(&mounted);
    let _ = Command::new("umount").arg(&mounted).status();
    assert_eq!(window, 1024, "the window when the daemon returned");

    let set = FuseMount::new(&image("m-zstd").path, &["read_ahead_kb=512"]).unwrap();
    assert_eq!(read_ahead_kb(&set.dir), 512);
    // Reads through the wider window still match the kernel's bytes.
    let img = image("m-zstd");
    let kernel = LoopMount::new(&img.path, img.offset).unwrap();
    let wide = FuseMount::new(&img.path, &["read_ahead_kb=4096"]).unwrap();
    compare(
        &from_dir(&kernel.dir),
        &from_dir(&wide.dir),
        Ignore::default(),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn with_an_idle_timeout_files_are_read_through_their_open_handles() {
    if !can_run() {
        return;
    }
    // -o timeout must count open files, so the kernel keeps sending OPEN and RELEASE and
    // READs come with the handle OPEN gave (without it, files are opened without asking).
    let img = image("m-gzip");
    let kernel = LoopMount::new(&img.path, img.offset).unwrap();
    let fuse = FuseMount::new(&img.path, &["timeout=600"]).unwrap();
    compare(
        &from_dir(&kernel.dir),
        &from_dir(&fuse.dir),
        Ignore::default(),
    )
    .unwrap();
}

#[test]
fn daemon_returns_with_the_mount_ready() {
    if !can_run() {
        return;
    }
    let dir = scratch_dir("ready");
    let out = output_within(
        Command::new(built_binary("squashfuse-rs"))
            .arg(&image("m-gzip").path)
            .arg(&dir),
        PATIENCE,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The very next line of a script can use the mount.
    assert!(
        is_mounted(&dir),
        "daemon returned before the mount was ready"
    );
    assert!(std::fs::read_dir(&dir).unwrap().count() > 5);
    let daemon = serving_daemon(&dir);
    assert!(Command::new("umount").arg(&dir).status().unwrap().success());
    wait_for_exit(daemon, "the daemon to exit after umount");
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn timeout_unmounts_once_idle_and_never_while_a_file_is_open() {
    if !can_run() {
        return;
    }
    const TIMEOUT: u64 = 2;
    let img = image("m-gzip");
    let rel = "data/mixed-3MiB+12345";
    let expected = bytes_in_image(&img.path, rel);
    // Each round mounts and opens a file at once. Whether the open comes before the idle
    // timeout is the scheduler's choice: on a loaded machine the mount may time out first,
    // rightly, as nothing was open; such a round checks the mount went and tries again.
    for round in 0..10 {
        let dir = scratch_dir(&format!("timeout-{round}"));
        let out = output_within(
            Command::new(built_binary("squashfuse-rs"))
                .arg("-o")
                .arg(format!("timeout={TIMEOUT}"))
                .arg(&img.path)
                .arg(&dir),
            PATIENCE,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let held = match std::fs::File::open(dir.join(rel)) {
            Ok(file) => file,
            Err(e) => {
                // The path led into the empty directory beneath: the mount had gone.
                assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{rel}: {e}");
                wait_until("an idle mount to go", PATIENCE, || !is_mounted(&dir));
                eprintln!("round {round}: idle timeout before the open; again");
                let _ = std::fs::remove_dir(&dir);
                continue;
            }
        };
        let daemon = serving_daemon(&dir);
        // Held open well past the timeout: the mount and its daemon stay.
        std::thread::sleep(Duration::from_secs(2 * TIMEOUT + 1));
        assert!(is_mounted(&dir), "unmounted while a file was open");
        assert!(is_running(daemon));
        let mut bytes = Vec::new();
        (&held).read_to_end(&mut bytes).unwrap();
        assert!(
            bytes == expected,
            "{rel}: other bytes through the held file"
        );
        let released = Instant::now();
        drop(held);
        wait_until("the idle timeout to unmount", PATIENCE, || {
            !is_mounted(&dir)
        });
        // The release was the last request: at least TIMEOUT seconds of idleness.
        let idle = released.elapsed();
        assert!(
            idle >= Duration::from_secs(TIMEOUT),
            "unmounted after {idle:?} idle, timeout={TIMEOUT}"
        );
        wait_for_exit(daemon, "the daemon to exit after the idle timeout");
        let _ = std::fs::remove_dir(&dir);
        return;
    }
    panic!("in 10 rounds the idle timeout always came before a file could be opened");
}

/// The byte written to the FIFO `reader` (opened non-blocking), waited for with a bound.
fn fifo_byte(reader: &mut std::fs::File) -> u8 {
    let start = Instant::now();
    let mut byte = [0u8; 1];
    loop {
        match reader.read(&mut byte) {
            Ok(1) => return byte[0],
            // 0: no writer (yet, or any more); WouldBlock: a writer, no byte yet.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("reading the notify pipe: {e}"),
        }
        assert!(
            start.elapsed() < PATIENCE,
            "nothing written to the notify pipe"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn notify_pipe_says_s_on_success_and_f_on_failure() {
    if !can_run() {
        return;
    }
    for (image_path, expect) in [
        (image("m-gzip").path.clone(), b's'),
        (PathBuf::from("/etc/hostname"), b'f'),
    ] {
        let dir = scratch_dir("notify");
        let fifo = dir.join("fifo");
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let _ = std::fs::remove_file(&fifo);
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        // Open for reading first, without blocking: the daemon's open for writing then
        // never waits, and every wait here is bounded.
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let out = output_within(
            Command::new(built_binary("squashfuse-rs"))
                .arg("-o")
                .arg(format!("notify_pipe={}", fifo.display()))
                .arg(&image_path)
                .arg(&mnt),
            PATIENCE,
        );
        assert_eq!(fifo_byte(&mut reader), expect, "{}", image_path.display());
        assert_eq!(out.status.success(), expect == b's');
        if expect == b's' {
            assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn sigterm_unmounts_a_foreground_mount() {
    if !can_run() {
        return;
    }
    let dir = scratch_dir("sigterm");
    let mut child = Command::new(built_binary("squashfuse-rs"))
        .arg("-f")
        .arg(&image("m-gzip").path)
        .arg(&dir)
        .spawn()
        .unwrap();
    wait_until("the mount", PATIENCE, || is_mounted(&dir));
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < PATIENCE, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(!is_mounted(&dir));
    let _ = std::fs::remove_dir(&dir);
}

fn run_failing(image: &Path, mountpoint: &Path) -> String {
    let out = Command::new(built_binary("squashfuse-rs"))
        .arg(image)
        .arg(mountpoint)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{} {} succeeded",
        image.display(),
        mountpoint.display()
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("squashfuse-rs: "), "{err}");
    assert!(!is_mounted(mountpoint));
    err
}

#[test]
fn bad_input_is_one_line_and_a_nonzero_exit() {
    if !fuse_available() || !e2e_tests::corpus::available() {
        e2e_tests::skip::skip("needs /dev/fuse and the corpus (scripts/setup.sh)");
        return;
    }
    let dir = scratch_dir("bad");
    let good = &image("m-gzip").path;
    assert!(run_failing(&dir.join("missing.sqfs"), &dir).contains("No such file"));
    assert!(run_failing(Path::new("/etc/hostname"), &dir).contains("bad magic"));
    assert!(run_failing(good, &dir.join("no-such-mountpoint")).contains("No such file"));
    let truncated = dir.join("truncated.sqfs");
    std::fs::write(&truncated, &std::fs::read(good).unwrap()[..100_000]).unwrap();
    assert!(run_failing(&truncated, &dir).contains("truncated"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inode_numbers_and_hard_links_match_the_kernel() {
    if !can_run() {
        return;
    }
    let img = image("m-gzip");
    let kernel = LoopMount::new(&img.path, 0).unwrap();
    let fuse = FuseMount::new(&img.path, &[]).unwrap();
    for rel in ["", "hardlinks", "files"] {
        let (k, f) = (
            std::fs::metadata(kernel.dir.join(rel)).unwrap(),
            std::fs::metadata(fuse.dir.join(rel)).unwrap(),
        );
        assert_eq!((k.ino(), k.nlink()), (f.ino(), f.nlink()), "{rel}");
    }
}

#[test]
fn a_plain_user_mounts_through_fusermount3_and_unmount_ends_the_daemon() {
    if !can_run() {
        return;
    }
    ensure_plain_user();
    // Everything the user touches must be theirs or world-readable: a scratch dir under /tmp.
    let dir = scratch_dir("plain-user");
    let (img, mnt, bin) = plain_user_scene(&dir, &tiny("tiny-gzip.sqfs"), PLAIN_USER);

    let out = Command::new("runuser")
        .args(["-u", PLAIN_USER, "--"])
        .arg(&bin)
        .arg(&img)
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(&mnt));
    let hello = Command::new("runuser")
        .args(["-u", PLAIN_USER, "--", "cat"])
        .arg(mnt.join("hello.txt"))
        .output()
        .unwrap();
    assert_eq!(hello.stdout, b"Hello, SquashFS!\n");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.contains(&*mnt.to_string_lossy()))
        .unwrap()
        .to_string();
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    // Found before the unmount, so that its end is something that can fail to happen.
    let daemon = serving_daemon(&mnt);

    let unmount = Command::new("runuser")
        .args(["-u", PLAIN_USER, "--", "fusermount3", "-u"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(unmount.success());
    wait_for_exit(daemon, "the daemon to exit after fusermount3 -u");
    assert!(!is_mounted(&mnt));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The user a plain user's `allow_root` mount must still turn away.
const OTHER_USER: &str = "chtest2";

#[test]
fn a_plain_users_allow_root_mount_lets_root_in_and_no_other_user() {
    if !can_run() {
        return;
    }
    ensure_plain_user();
    let other = Command::new("id").arg(OTHER_USER).output().unwrap();
    assert!(
        other.status.success(),
        "{OTHER_USER} missing: scripts/setup.sh makes it"
    );
    // A plain user's allow_root needs user_allow_other in /etc/fuse.conf, which no test may
    // set for the machine: the whole scene runs in a mount namespace of its own, where a
    // fuse.conf saying it is bound over /etc/fuse.conf (fusermount3 reads it there).
    let dir = scratch_dir("plain-allow-root");
    let conf = dir.join("fuse.conf");
    std::fs::write(&conf, "user_allow_other\n").unwrap();
    let (img, mnt, bin) = plain_user_scene(&dir, &tiny("tiny-gzip.sqfs"), PLAIN_USER);
    let script = format!(
        r#"set -u
mount --bind {conf} /etc/fuse.conf || exit 90
runuser -u {owner} -- {bin} -o allow_root {img} {mnt} || exit 91
trap 'runuser -u {owner} -- fusermount3 -u -z {mnt}' EXIT
echo "options: $(awk '$2 == "{mnt}" {{print $4}}' /proc/self/mounts)"
echo "root: $(cat {mnt}/hello.txt 2>&1)"
echo "owner: $(runuser -u {owner} -- cat {mnt}/hello.txt 2>&1)"
echo "other cat: $(runuser -u {other} -- cat {mnt}/hello.txt 2>&1)"
echo "other ls: $(runuser -u {other} -- ls {mnt} 2>&1)"
echo "other stat: $(runuser -u {other} -- stat -c %s {mnt}/hello.txt 2>&1)"
"#,
        conf = conf.display(),
        owner = PLAIN_USER,
        other = OTHER_USER,
        bin = bin.display(),
        img = img.display(),
        mnt = mnt.display(),
    );
    let out = output_within(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(&script),
        PATIENCE,
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let said = |what: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(what))
            .unwrap_or_else(|| panic!("no {what:?} in: {text} {}", summary(&out)))
            .to_string()
    };
    assert!(out.status.success(), "{}: {text}", summary(&out));
    let options = said("options: ");
    assert!(options.split(',').any(|o| o == "allow_other"), "{options}");
    assert_eq!(said("root: "), "Hello, SquashFS!");
    assert_eq!(said("owner: "), "Hello, SquashFS!");
    for what in ["other cat: ", "other ls: ", "other stat: "] {
        let answer = said(what);
        assert!(
            answer.contains("Permission denied"),
            "allow_root let {OTHER_USER} in: {what}{answer}"
        );
    }
    assert!(
        !is_mounted(&mnt),
        "the mount was in the test's namespace only"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The /proc/mounts fields of the mount on top at `dir`: source, type, options.
fn mount_fields(dir: &Path) -> (String, String, Vec<String>) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let target = dir.to_string_lossy();
    let line = mounts
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(1) == Some(&*target))
        .unwrap_or_else(|| panic!("{target} not in /proc/mounts"));
    let f: Vec<&str> = line.split(' ').collect();
    (
        f[0].to_string(),
        f[2].to_string(),
        f[3].split(',').map(str::to_string).collect(),
    )
}

/// `cat PATH` as the plain user, bounded.
fn cat_as_plain_user(path: &Path) -> std::process::Output {
    ensure_plain_user();
    output_within(
        Command::new("runuser")
            .args(["-u", PLAIN_USER, "--", "cat"])
            .arg(path),
        PATIENCE,
    )
}

/// `args` then `path`, run as the plain user.
fn as_plain_user(args: &[&str], path: &Path) -> std::process::Output {
    ensure_plain_user();
    output_within(
        Command::new("runuser")
            .args(["-u", PLAIN_USER, "--"])
            .args(args)
            .arg(path),
        PATIENCE,
    )
}

fn denied(out: &std::process::Output) -> bool {
    !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Permission denied")
}

/// What a failed expectation about `out` prints (not the bytes read).
fn summary(out: &std::process::Output) -> String {
    format!(
        "{}, {} bytes out, stderr: {}",
        out.status,
        out.stdout.len(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// A file every user may read, in m-gzip.
const READABLE: &str = "data/pattern-300000";

#[test]
fn fsname_and_subtype_name_the_mount() {
    if !can_run() {
        return;
    }
    let img = image("m-gzip");
    let plain = FuseMount::new(&img.path, &[]).unwrap();
    let (source, fstype, _) = mount_fields(&plain.dir);
    assert_eq!(source, img.path.to_string_lossy());
    assert_eq!(fstype, "fuse.squashfuse");
    // A comma in a value is escaped as libfuse escapes it.
    let named = FuseMount::new(&img.path, &["fsname=corpus\\,gzip", "subtype=sqfs"]).unwrap();
    let (source, fstype, _) = mount_fields(&named.dir);
    assert_eq!(
        (source.as_str(), fstype.as_str()),
        ("corpus,gzip", "fuse.sqfs")
    );
}

#[test]
fn noexec_refuses_to_run_programs_and_noatime_is_a_mount_flag() {
    if !can_run() {
        return;
    }
    let img = image("m-gzip");
    let plain = FuseMount::new(&img.path, &[]).unwrap();
    let ran = Command::new(plain.dir.join("bin/busybox"))
        .arg("true")
        .status()
        .unwrap();
    assert!(ran.success(), "busybox from the image: {ran}");
    let (_, _, options) = mount_fields(&plain.dir);
    assert!(
        !options.iter().any(|o| o == "noexec" || o == "noatime"),
        "{options:?}"
    );

    let flagged = FuseMount::new(&img.path, &["noexec,noatime"]).unwrap();
    let err = Command::new(flagged.dir.join("bin/busybox"))
        .arg("true")
        .status()
        .expect_err("exec on a noexec mount");
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    let (_, _, options) = mount_fields(&flagged.dir);
    for flag in ["ro", "nosuid", "nodev", "noexec", "noatime"] {
        assert!(options.iter().any(|o| o == flag), "{flag} in {options:?}");
    }
}

#[test]
fn allow_other_lets_another_user_read() {
    if !can_run() {
        return;
    }
    let img = image("m-gzip");
    let own = FuseMount::new(&img.path, &[]).unwrap();
    let out = cat_as_plain_user(&own.dir.join(READABLE));
    assert!(
        denied(&out),
        "another user read root's mount: {}",
        summary(&out)
    );

    let shared = FuseMount::new(&img.path, &["allow_other"]).unwrap();
    let out = cat_as_plain_user(&shared.dir.join(READABLE));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == bytes_in_image(&img.path, READABLE));
    let (_, _, options) = mount_fields(&shared.dir);
    assert!(options.iter().any(|o| o == "allow_other"), "{options:?}");
}

#[test]
fn allow_root_lets_root_in_and_turns_other_users_away() {
    if !can_run() {
        return;
    }
    // The kernel lets everyone through (allow_other) and the daemon turns away all but
    // root and the owner. (A plain user's mount with allow_root:
    // `a_plain_users_allow_root_mount_lets_root_in_and_no_other_user`.)
    let img = image("m-gzip");
    let m = FuseMount::new(&img.path, &["allow_root"]).unwrap();
    assert!(std::fs::read(m.dir.join(READABLE)).unwrap() == bytes_in_image(&img.path, READABLE));
    let out = cat_as_plain_user(&m.dir.join(READABLE));
    assert!(
        denied(&out),
        "allow_root let another user in: {}",
        summary(&out)
    );
    // Root has listed and stat-ed what follows: nothing of it may reach another user from
    // the kernel's caches either.
    let dir = m.dir.join(READABLE).parent().unwrap().to_path_buf();
    let listed = std::fs::read_dir(&dir).unwrap().count();
    assert!(listed > 0);
    std::fs::metadata(m.dir.join(READABLE)).unwrap();
    for (what, args) in [
        ("listed a directory", vec!["ls", "-l"]),
        ("stat-ed a file", vec!["stat"]),
    ] {
        let target = if args[0] == "ls" {
            dir.clone()
        } else {
            m.dir.join(READABLE)
        };
        let out = as_plain_user(&args, &target);
        assert!(
            denied(&out),
            "allow_root let another user in: {what}: {}",
            summary(&out)
        );
    }
    let (_, _, options) = mount_fields(&m.dir);
    assert!(options.iter().any(|o| o == "allow_other"), "{options:?}");
}

#[test]
fn default_permissions_makes_the_kernel_check_modes() {
    if !can_run() {
        return;
    }
    // modes/mode-000 has mode 000 and belongs to uid 1234. squashfuse-rs, like squashfuse,
    // checks no modes itself: only default_permissions keeps another user out.
    let img = image("m-gzip");
    let locked = "modes/mode-000";
    let open = FuseMount::new(&img.path, &["allow_other"]).unwrap();
    let out = cat_as_plain_user(&open.dir.join(locked));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"mode-000\n");

    let checked = FuseMount::new(&img.path, &["allow_other,default_permissions"]).unwrap();
    let out = cat_as_plain_user(&checked.dir.join(locked));
    assert!(
        denied(&out),
        "mode 000 read by another user: {}",
        summary(&out)
    );
    // Readable files stay readable, and root passes mode checks.
    assert!(cat_as_plain_user(&checked.dir.join(READABLE))
        .status
        .success());
    assert_eq!(
        std::fs::read(checked.dir.join(locked)).unwrap(),
        b"mode-000\n"
    );
    let (_, _, options) = mount_fields(&checked.dir);
    assert!(
        options.iter().any(|o| o == "default_permissions"),
        "{options:?}"
    );
}

/// squashfuse-rs with `args` in the foreground (its own -d/-f/-o debug), stderr to `log`;
/// returns once the mount is there.
fn foreground(args: &[&str], dir: &Path, log: &Path) -> std::process::Child {
    let child = Command::new(built_binary("squashfuse-rs"))
        .args(args)
        .arg(&image("m-gzip").path)
        .arg(dir)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    wait_until("the foreground mount", PATIENCE, || is_mounted(dir));
    child
}

/// Ends a foreground daemon with SIGTERM and returns its status, bounded.
fn terminate(mut child: std::process::Child) -> std::process::ExitStatus {
    send_signal(child.id() as i32, libc::SIGTERM);
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < PATIENCE, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The sizes of the READ requests in a debug log.
fn read_sizes(log: &Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(" READ "))
        .filter_map(|l| {
            l.split("size ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn debug_option_stays_in_the_foreground_and_logs_requests() {
    if !can_run() {
        return;
    }
    for debug in ["-d", "-odebug"] {
        let dir = scratch_dir("debug");
        let log = dir.with_extension("log");
        let child = foreground(&[debug], &dir, &log);
        // The process started is the one serving: it did not go to the background.
        assert_eq!(serving_daemon(&dir), child.id() as i32, "{debug}");
        assert!(std::fs::read(dir.join(READABLE)).is_ok());
        assert!(terminate(child).success());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("[DEBUG") && text.contains(" LOOKUP "),
            "{debug}: {text}"
        );
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_dir(&dir);
    }
}

#[test]
fn max_read_caps_the_size_of_read_requests() {
    if !can_run() {
        return;
    }
    let img = image("m-gzip");
    let big = "data/mixed-3MiB+12345";
    let expected = bytes_in_image(&img.path, big);
    for (options, cap) in [("debug", None), ("debug,max_read=16384", Some(16384))] {
        let dir = scratch_dir("max-read");
        let log = dir.with_extension("log");
        let child = foreground(&["-o", options], &dir, &log);
        let (_, _, mount_options) = mount_fields(&dir);
        assert!(
            std::fs::read(dir.join(big)).unwrap() == expected,
            "{options}"
        );
        assert!(terminate(child).success());
        let sizes = read_sizes(&log);
        assert!(!sizes.is_empty(), "{options}: no READ logged");
        let largest = *sizes.iter().max().unwrap();
        match cap {
            Some(cap) => {
                assert!(largest <= cap, "{options}: a READ of {largest} bytes");
                assert!(
                    mount_options.contains(&format!("max_read={cap}")),
                    "{mount_options:?}"
                );
            }
            // Without it the kernel asks for more at once.
            None => assert!(largest > 16384, "{options}: largest READ {largest}"),
        }
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_dir(&dir);
    }
}

#[test]
fn every_option_squashfuse_ll_takes_is_accepted() {
    if !can_run() {
        return;
    }
    // libfuse's options that mean nothing here (and the applied ones that change nothing
    // visible in this mount), all at once, and libfuse's -r and -n.
    let options = "ro,rw,kernel_cache,auto_cache,entry_timeout=1,attr_timeout=1.5,\
                   negative_timeout=0,use_ino,readdir_ino,clone_fd,max_idle_threads=2,\
                   max_threads=3,max_background=12,congestion_threshold=9,async_read,\
                   sync_read,max_write=4096,big_writes,atomic_o_trunc,no_remote_lock,\
                   no_remote_flock,no_remote_posix_lock,splice_read,no_splice_read,\
                   splice_write,no_splice_write,splice_move,no_splice_move,nonempty,\
                   large_read,blksize=4096,user=nobody,max_readahead=131072,\
                   nosuid,nodev,exec,atime,async,sync,dirsync";
    let img = image("m-gzip");
    let dir = scratch_dir("accepted");
    let out = output_within(
        Command::new(built_binary("squashfuse-rs"))
            .args(["-r", "-n", "-o", options])
            .arg(&img.path)
            .arg(&dir),
        PATIENCE,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(dir.join(READABLE)).unwrap() == bytes_in_image(&img.path, READABLE));
    let (_, _, mount_options) = mount_fields(&dir);
    // rw asked, ro given: the image is read-only.
    for flag in ["ro", "sync", "dirsync"] {
        assert!(
            mount_options.iter().any(|o| o == flag),
            "{flag}: {mount_options:?}"
        );
    }
    let daemon = serving_daemon(&dir);
    // max_threads=3: three FUSE worker threads.
    let workers = std::fs::read_dir(format!("/proc/{daemon}/task"))
        .unwrap()
        .filter(|t| {
            std::fs::read_to_string(t.as_ref().unwrap().path().join("comm"))
                .is_ok_and(|c| c.starts_with("fuser-"))
        })
        .count();
    assert_eq!(workers, 3);
    assert!(Command::new("umount").arg(&dir).status().unwrap().success());
    wait_for_exit(daemon, "the daemon after umount");
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn an_unknown_option_is_one_line_naming_it_and_exit_1() {
    if !e2e_tests::skip::needs(&[e2e_tests::skip::Need::Fuse]) {
        return;
    }
    let dir = scratch_dir("unknown");
    for (arg, named) in [
        ("ro,frobnicate", "'frobnicate'"),
        ("ro=1", "'ro=1'"),
        ("kernel_cache=yes", "'kernel_cache=yes'"),
    ] {
        let out = output_within(
            Command::new(built_binary("squashfuse-rs"))
                .args(["-o", arg])
                .arg(&image("m-gzip").path)
                .arg(&dir),
            PATIENCE,
        );
        if out.status.success() {
            // Mounted after all: take it away before failing.
            let _ = Command::new("umount").arg(&dir).status();
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{arg}: {err}");
        assert_eq!(err, format!("squashfuse-rs: unknown option {named}\n"));
        assert!(!is_mounted(&dir));
    }
    let _ = std::fs::remove_dir(&dir);
}

/// Mounts `image` at `mnt` as `user` with `options` (daemon mode), bounded.
fn mount_as(user: &str, bin: &Path, image: &Path, mnt: &Path, options: &[&str]) {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", user, "--"]).arg(bin);
    for o in options {
        cmd.args(["-o", o]);
    }
    let out = output_within(cmd.arg(image).arg(mnt), PATIENCE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(mnt));
}

#[test]
fn auto_unmount_takes_away_the_mount_of_a_killed_daemon() {
    if !can_run() {
        return;
    }
    ensure_plain_user();
    // Everything the plain user touches is theirs: a copy of the binary and an image.
    let dir = scratch_dir("auto-unmount");
    let img = dir.join("image.sqfs");
    std::fs::copy(tiny("tiny-gzip.sqfs"), &img).unwrap();
    let bin = dir.join("squashfuse-rs");
    std::fs::copy(built_binary("squashfuse-rs"), &bin).unwrap();
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    assert!(Command::new("chown")
        .args(["-R", PLAIN_USER])
        .arg(&dir)
        .status()
        .unwrap()
        .success());
    assert!(Command::new("chmod")
        .arg("755")
        .arg(&dir)
        .status()
        .unwrap()
        .success());

    for user in ["root", PLAIN_USER] {
        // Without it, a killed daemon leaves a dead mount behind.
        mount_as(user, &bin, &img, &mnt, &[]);
        let daemon = serving_daemon(&mnt);
        send_signal(daemon, libc::SIGKILL);
        wait_for_exit(daemon, "the killed daemon");
        assert!(
            is_mounted(&mnt),
            "{user}: a dead mount went without auto_unmount"
        );
        assert!(Command::new("umount")
            .args(["-l"])
            .arg(&mnt)
            .status()
            .unwrap()
            .success());

        // With it, the watcher (the one process naming the mount besides the daemon) takes
        // the dead mount away, then ends.
        mount_as(user, &bin, &img, &mnt, &["auto_unmount"]);
        let daemon = serving_daemon(&mnt);
        let watchers: Vec<i32> = processes_naming(&mnt)
            .into_iter()
            .filter(|&p| p != daemon)
            .collect();
        assert_eq!(watchers.len(), 1, "{user}: the watcher: {watchers:?}");
        send_signal(daemon, libc::SIGKILL);
        wait_until("auto_unmount to take the dead mount away", PATIENCE, || {
            !is_mounted(&mnt)
        });
        wait_for_exit(watchers[0], "the watcher");
        assert!(fuse_servers(&mnt).is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

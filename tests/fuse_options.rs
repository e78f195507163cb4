//! squashfuse-rs behaves as squashfuse_ll users expect: `-o offset=`, `subdir=`, `uid=/gid=`,
//! `timeout=`, `notify_pipe=`; daemon mode returns only once the mount is ready; SIGTERM
//! unmounts; bad input is one clear line and a non-zero exit.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::corpus::images;
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

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
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
fn daemon_returns_with_the_mount_ready_and_timeout_unmounts_when_idle() {
    if !can_run() {
        return;
    }
    let dir = scratch_dir("timeout");
    let status = Command::new(built_binary("squashfuse-rs"))
        .args(["-o", "timeout=1"])
        .arg(&image("m-gzip").path)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    // The very next line of a script can use the mount.
    assert!(
        is_mounted(&dir),
        "daemon returned before the mount was ready"
    );
    assert!(std::fs::read_dir(&dir).unwrap().count() > 5);
    // A file held open keeps it mounted past the timeout.
    let held = std::fs::File::open(
        dir.join("files")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert!(is_mounted(&dir), "unmounted while a file was open");
    drop(held);
    wait_until(
        "the idle timeout to unmount",
        Duration::from_secs(10),
        || !is_mounted(&dir),
    );
    let _ = std::fs::remove_dir(&dir);
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
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut byte = [0u8; 1];
                std::fs::File::open(fifo)
                    .unwrap()
                    .read_exact(&mut byte)
                    .unwrap();
                byte[0]
            })
        };
        let out = Command::new(built_binary("squashfuse-rs"))
            .arg("-o")
            .arg(format!("notify_pipe={}", fifo.display()))
            .arg(&image_path)
            .arg(&mnt)
            .output()
            .unwrap();
        assert_eq!(reader.join().unwrap(), expect, "{}", image_path.display());
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
    wait_until("the mount", Duration::from_secs(10), || is_mounted(&dir));
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
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still running after SIGTERM"
        );
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

/// The unprivileged user CI creates (`.ci/run`); made here when missing.
const PLAIN_USER: &str = "chtest";

fn ensure_plain_user() {
    let exists = Command::new("id")
        .arg(PLAIN_USER)
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        assert!(Command::new("useradd")
            .args(["--create-home", PLAIN_USER])
            .status()
            .unwrap()
            .success());
    }
}

fn daemon_running(mountpoint: &Path) -> bool {
    let pattern = format!("squashfuse-rs .*{}", mountpoint.display());
    Command::new("pgrep")
        .args(["-f", &pattern])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn a_plain_user_mounts_through_fusermount3_and_unmount_ends_the_daemon() {
    if !can_run() {
        return;
    }
    ensure_plain_user();
    // Everything the user touches must be theirs or world-readable: a scratch dir under /tmp.
    let dir = scratch_dir("plain-user");
    let img = dir.join("image.sqfs");
    std::fs::copy(repo_tiny("tiny-gzip.sqfs"), &img).unwrap();
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let bin = dir.join("squashfuse-rs");
    std::fs::copy(built_binary("squashfuse-rs"), &bin).unwrap();
    assert!(Command::new("chown")
        .args(["-R", PLAIN_USER])
        .arg(&dir)
        .status()
        .unwrap()
        .success());
    assert!(Command::new("chmod")
        .args(["755"])
        .arg(&dir)
        .status()
        .unwrap()
        .success());

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

    let unmount = Command::new("runuser")
        .args(["-u", PLAIN_USER, "--", "fusermount3", "-u"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(unmount.success());
    wait_until(
        "the daemon to exit after fusermount3 -u",
        Duration::from_secs(10),
        || !daemon_running(&mnt),
    );
    assert!(!is_mounted(&mnt));
    let _ = std::fs::remove_dir_all(&dir);
}

fn repo_tiny(name: &str) -> PathBuf {
    e2e_tests::corpus::repo_root()
        .join("testdata/tiny")
        .join(name)
}

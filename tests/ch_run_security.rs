//! `ch-run` against someone who means harm: a hostile image (sizes and contents meant to
//! exhaust memory), another user who plants an image where ch-run looks for it, and a
//! container root who tries to read the supervisor that serves its image. Also the messages
//! a user sees first (an unreadable image, a bad `-W` size, 0.31's `--ch-ssh`).
//!
//! Runs ch-run as the unprivileged `chtest` (see container.rs); the storage tests use the
//! second user `chtest2` as the attacker, so they need root to set the scene.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use e2e_tests::container::{
    can_run_containers, test_image, wait_for_file, Outcome, Scratch, TEST_USER,
};
use e2e_tests::sys::is_root;

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

// ---------------------------------------------------------------------------------------
// 2. Another user must not decide which image `ch-run NAME` runs.
// ---------------------------------------------------------------------------------------

/// The other unprivileged user (made like `chtest`): the attacker.
const OTHER_USER: &str = "chtest2";

fn uid_of(name: &str) -> u32 {
    let out = Command::new("id").args(["-u", name]).output().unwrap();
    assert!(
        out.status.success(),
        "user {name} missing (useradd -m {name})"
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Whether this test can set its scene (it needs root to act as two users); says why not,
/// and fails where CI demands that every test runs.
fn can_act_as_two_users() -> bool {
    if !can_run_containers() {
        return false;
    }
    if !is_root() {
        e2e_tests::skip::skip(&format!(
            "needs root to act as {TEST_USER} and {OTHER_USER}"
        ));
        return false;
    }
    true
}

fn chown(path: &Path, user: &str) {
    let uid = uid_of(user);
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

/// The warning lines of a run, without their `ch-run[PID]: warning: ` prefix.
fn warnings(out: &Outcome) -> Vec<String> {
    out.stderr
        .lines()
        .filter_map(|l| l.split_once("]: warning: ").map(|(_, w)| w.to_string()))
        .collect()
}

/// A default storage directory, `/var/tmp/$USER.ch`, for a user name of this test's own
/// (ch-run takes the name from `$USER`), so that nothing else on the machine uses it.
struct DefaultStorage {
    user: String,
    dir: PathBuf,
}

impl DefaultStorage {
    fn new(tag: &str) -> Self {
        let user = format!("chsec-{tag}-{}", std::process::id());
        let dir = PathBuf::from(format!("/var/tmp/{user}.ch"));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&dir);
        DefaultStorage { user, dir }
    }

    /// `STORAGE/img/busybox` (made by `owner`, modes as given), a link to the test image.
    fn plant(&self, owner: &str, storage_mode: u32, img_owner: &str, img_mode: u32) {
        let img = self.dir.join("img");
        std::fs::create_dir_all(&img).unwrap();
        symlink(&test_image().sqfs, img.join("busybox")).unwrap();
        chown(&img.join("busybox"), img_owner);
        chown(&img, img_owner);
        chmod(&img, img_mode);
        chown(&self.dir, owner);
        chmod(&self.dir, storage_mode);
    }

    /// `ch-run -m MNT ARGS…` as the test user, whose `$USER` points at this storage.
    fn run(&self, s: &Scratch, args: &[&str]) -> Outcome {
        let mnt = s.mnt_arg();
        let mut all = vec!["-m", mnt.as_str()];
        all.extend_from_slice(args);
        s.run_env(&all, &[("USER", &self.user)])
    }
}

impl Drop for DefaultStorage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.dir);
    }
}

fn not_private(path: &Path, reason: &str) -> String {
    format!(
        "storage directory not private: {}: {reason}; it must be a directory owned by you and writable only by you (or choose another with -s DIR)",
        path.display()
    )
}

#[test]
fn a_storage_directory_someone_else_made_is_refused() {
    if !can_act_as_two_users() {
        return;
    }
    let s = Scratch::new("sec-storage");
    let run_busybox = ["busybox", "--", "cat", "/data/hello"];

    // The attacker made /var/tmp/$USER.ch first and put an image in it.
    let st = DefaultStorage::new("owner");
    st.plant(OTHER_USER, 0o755, OTHER_USER, 0o755);
    let out = st.run(&s, &run_busybox);
    assert_eq!(out.code, 31, "{out:?}");
    assert_eq!(
        error_line(&out),
        not_private(&st.dir, &format!("owned by {OTHER_USER}"))
    );
    // Even a path that exists is not looked for there first: the name could be planted.
    let out = st.run(&s, &[&test_image().sqfs_arg(), "--", "true"]);
    assert_eq!(out.code, 31, "{out:?}");
    drop(st);

    // Ours, but anyone may write in it (someone may have planted an image already).
    let st = DefaultStorage::new("mode");
    st.plant(TEST_USER, 0o777, TEST_USER, 0o755);
    let out = st.run(&s, &run_busybox);
    assert_eq!(
        (out.code, error_line(&out)),
        (31, not_private(&st.dir, "writable by others"))
    );
    drop(st);

    // Ours, but its img directory is the attacker's.
    let st = DefaultStorage::new("img");
    st.plant(TEST_USER, 0o755, OTHER_USER, 0o755);
    let out = st.run(&s, &run_busybox);
    assert_eq!(
        (out.code, error_line(&out)),
        (
            31,
            not_private(&st.dir.join("img"), &format!("owned by {OTHER_USER}"))
        )
    );
    drop(st);

    // A symlink the attacker made to a directory of the victim's own.
    let st = DefaultStorage::new("link");
    let target = s.dir.join("victims-dir");
    std::fs::create_dir_all(target.join("img")).unwrap();
    symlink(&test_image().sqfs, target.join("img/busybox")).unwrap();
    for d in [&target, &target.join("img")] {
        chown(d, TEST_USER);
        chmod(d, 0o755);
    }
    symlink(&target, &st.dir).unwrap();
    chown(&st.dir, OTHER_USER);
    let out = st.run(&s, &run_busybox);
    assert_eq!(
        (out.code, error_line(&out)),
        (31, not_private(&st.dir, "a symbolic link"))
    );
    drop(st);

    // The user's own storage works, by name, and a path still works when no image of that
    // name is stored.
    let st = DefaultStorage::new("mine");
    st.plant(TEST_USER, 0o755, TEST_USER, 0o755);
    let out = st.run(&s, &run_busybox);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "hello from the image\n", ""),
        "{out:?}"
    );
    let out = st.run(&s, &[&test_image().sqfs_arg(), "--", "true"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    // The default mount point is made there; one someone else made is refused too.
    let mnt = st.dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    chown(&mnt, OTHER_USER);
    let out = s.run_env(
        &[&test_image().sqfs_arg(), "--", "true"],
        &[("USER", &st.user)],
    );
    assert_eq!(
        (out.code, error_line(&out)),
        (
            31,
            format!(
                "mount point not private: {}: owned by {OTHER_USER}; it must be a directory owned by you and writable only by you (or choose another with -m DIR)",
                mnt.display()
            )
        )
    );
    std::fs::remove_dir(&mnt).unwrap();
    let out = s.run_env(
        &[&test_image().sqfs_arg(), "--", "true"],
        &[("USER", &st.user)],
    );
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let md = std::fs::symlink_metadata(&mnt).unwrap();
    assert!(
        md.is_dir() && md.permissions().mode() & 0o7777 == 0o755,
        "{md:?}"
    );
    drop(st);
    s.assert_clean();
}

#[test]
fn dot_and_dot_dot_are_paths_not_image_names() {
    if !can_act_as_two_users() {
        return;
    }
    let s = Scratch::new("sec-dots");
    let st = DefaultStorage::new("dots");
    st.plant(TEST_USER, 0o755, TEST_USER, 0o755);
    // A directory image; ch-run starts in its /data, so `..` is the image.
    let tree = s.dir.join("tree");
    tiny_tree(&tree, b"");
    let mut cmd = s.command(
        &["-m", &s.mnt_arg(), "..", "--", "cat", "/data/hello"],
        &[("USER", &st.user)],
    );
    cmd.current_dir(tree.join("data"));
    let out = Outcome::from(cmd.output().unwrap());
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "hello from the tiny image\n"),
        "{out:?}"
    );
    drop(st);
    s.assert_clean();
}

#[test]
fn images_others_can_change_are_run_with_a_warning() {
    if !can_act_as_two_users() {
        return;
    }
    let s = Scratch::new("sec-warn");
    let mnt = s.mnt_arg();
    let dir = s.dir.join("images");
    std::fs::create_dir(&dir).unwrap();
    chown(&dir, TEST_USER);
    chmod(&dir, 0o755);
    let image = dir.join("img.sqfs");
    std::fs::copy(&test_image().sqfs, &image).unwrap();
    chown(&image, TEST_USER);
    let run = |quiet: bool| {
        let img = arg(&image);
        let mut args = vec!["-m", mnt.as_str(), img.as_str(), "--", "true"];
        if quiet {
            args.insert(0, "-q");
        }
        s.run(&args)
    };
    let cases: [(u32, u32, &str, String); 4] = [
        (
            0o666,
            0o755,
            TEST_USER,
            format!("{} is writable by others", image.display()),
        ),
        (
            0o644,
            0o777,
            TEST_USER,
            format!("its directory {} is writable by others", dir.display()),
        ),
        (
            0o644,
            0o755,
            OTHER_USER,
            format!("{} is owned by {OTHER_USER}", image.display()),
        ),
        (
            0o664,
            0o755,
            OTHER_USER,
            format!("{} is owned by {OTHER_USER}", image.display()),
        ),
    ];
    for (image_mode, dir_mode, owner, what) in cases {
        chown(&image, owner);
        chmod(&image, image_mode);
        chmod(&dir, dir_mode);
        let out = run(false);
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(
            warnings(&out),
            [format!("image can be changed by someone else: {what}")],
            "{out:?}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        let out = run(true);
        assert_eq!((out.code, out.stderr.as_str()), (0, ""), "-q: {out:?}");
    }
    // In a sticky directory anyone may write to, the user's own image is safe: nobody else
    // can rename or replace it.
    chown(&image, TEST_USER);
    chmod(&image, 0o644);
    chmod(&dir, 0o1777);
    let out = run(false);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    // A directory image that others can write to.
    let tree = s.dir.join("tree");
    tiny_tree(&tree, b"");
    chmod(&tree, 0o777);
    let out = s.run(&[&arg(&tree), "--", "true"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        warnings(&out),
        [format!(
            "image can be changed by someone else: {} is writable by group root and others",
            tree.display()
        )]
    );
    // A storage directory given with -s is the user's choice: a warning, not a refusal.
    let storage = s.dir.join("storage");
    std::fs::create_dir_all(storage.join("img")).unwrap();
    symlink(&test_image().sqfs, storage.join("img/busybox")).unwrap();
    chmod(&storage.join("img"), 0o777);
    let out = s.run(&["-m", &mnt, "-s", &arg(&storage), "busybox", "--", "true"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        warnings(&out),
        [format!(
            "image can be changed by someone else: its directory {} is writable by group root and others",
            storage.join("img").display()
        )]
    );
    s.assert_clean();
}

// ---------------------------------------------------------------------------------------
// 3. The container's root must not reach into the supervisor that serves its image.
// ---------------------------------------------------------------------------------------

/// What the command, as uid 0 in the container, gets from its parent (the supervisor):
/// its name, then a line per attempt to open or list what the supervisor holds; last, the
/// same for the supervisor's parent, the `ch-run` the user started (out of reach already:
/// it is in the host's user namespace, where the container has no capability).
const PROBE_PARENT: &str = "cat /proc/$PPID/comm; \
    for f in environ mem fd/0; do \
      (exec 3</proc/$PPID/$f) 2>/dev/null && echo $f: opened || echo $f: refused; \
    done; \
    for d in cwd/ fd; do \
      ls /proc/$PPID/$d >/dev/null 2>&1 && echo $d: listed || echo $d: refused; \
    done; \
    waiter=$(cut -d' ' -f4 /proc/$PPID/stat); \
    (exec 3</proc/$waiter/environ) 2>/dev/null && echo ch-run: opened || echo ch-run: refused";

const PROBE_REFUSED: &str = "environ: refused\nmem: refused\nfd/0: refused\ncwd/: refused\n\
    fd: refused\nch-run: refused\n";

/// The line a command writes to `path`, once it is whole (the file appears before the shell
/// has written into it).
fn written_line(path: &Path) -> String {
    wait_for_file(path);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap();
        if text.ends_with('\n') {
            return text.trim_end().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never got a whole line",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn container_root_cannot_read_the_supervisor() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("sec-dumpable");
    let mnt = s.mnt_arg();
    let image = test_image().sqfs_arg();
    let out = s.run(&[
        "-m",
        &mnt,
        "-u",
        "0",
        &image,
        "--",
        "sh",
        "-c",
        PROBE_PARENT,
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    // The parent is the supervisor (no pid namespace: it is visible), and nothing of it
    // can be read.
    assert_eq!(out.stdout, format!("ch-run\n{PROBE_REFUSED}"), "{out:?}");
    // The same for a directory image, and for the members of a --join group.
    let out = s.run(&[
        "-u",
        "0",
        &arg(&test_image().tree),
        "--",
        "sh",
        "-c",
        PROBE_PARENT,
    ]);
    assert_eq!(out.stdout, format!("ch-run\n{PROBE_REFUSED}"), "{out:?}");
    let tag = format!("--join-tag=sec-{}", std::process::id());
    let members: Vec<_> = (0..2)
        .map(|_| {
            s.spawn(
                &[
                    "-m",
                    &mnt,
                    "-u",
                    "0",
                    "--join-ct=2",
                    &tag,
                    &image,
                    "--",
                    "sh",
                    "-c",
                    PROBE_PARENT,
                ],
                &[],
            )
        })
        .collect();
    for member in members {
        let out = Outcome::from(member.wait_with_output().unwrap());
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.stdout, format!("ch-run\n{PROBE_REFUSED}"), "{out:?}");
    }
    // And for a ch-run that enters a running container with --join-pid.
    let first = s.spawn(
        &[
            "-m",
            &mnt,
            "-u",
            "0",
            &image,
            "--",
            "sh",
            "-c",
            "echo $$ > /tmp/pid; while [ ! -e /tmp/go ]; do sleep 0.02; done",
        ],
        &[],
    );
    let pid = written_line(&s.tmp.join("pid"));
    let out = s.run(&[
        &format!("--join-pid={pid}"),
        &image,
        "--",
        "sh",
        "-c",
        &format!("id -u; {PROBE_PARENT}"),
    ]);
    std::fs::write(s.tmp.join("go"), "").unwrap();
    assert_eq!(Outcome::from(first.wait_with_output().unwrap()).code, 0);
    for f in ["pid", "go"] {
        std::fs::remove_file(s.tmp.join(f)).unwrap();
    }
    assert_eq!(out.stdout, format!("0\nch-run\n{PROBE_REFUSED}"), "{out:?}");
    s.assert_clean();
}

#[test]
fn the_command_inherits_only_what_the_user_passed() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("sec-fds");
    let passed = std::fs::File::open("/dev/null").unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&passed);
    for image in [test_image().sqfs_arg(), arg(&test_image().tree)] {
        let mnt = s.mnt_arg();
        let mut cmd = s.command(
            &["-m", &mnt, &image, "--", "sh", "-c", "ls /proc/$$/fd; true"],
            &[],
        );
        // Descriptor 7, open without close-on-exec, as a shell's `7</dev/null` leaves it. The
        // shell's descriptors are listed (`; true` keeps sh from exec-ing ls in its place).
        // SAFETY: dup2 is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                libc::dup2(raw, 7);
                Ok(())
            });
        }
        let out = Outcome::from(cmd.stdout(Stdio::piped()).output().unwrap());
        assert_eq!(out.code, 0, "{out:?}");
        let mut fds: Vec<u32> = out.stdout.lines().map(|l| l.parse().unwrap()).collect();
        fds.sort();
        assert_eq!(fds, [0, 1, 2, 7], "{image}: {out:?}");
    }
    s.assert_clean();
}

// ---------------------------------------------------------------------------------------
// 4. First contact: messages that say what is wrong.
// ---------------------------------------------------------------------------------------

#[test]
fn an_image_the_user_cannot_read_says_permission_denied() {
    if !can_act_as_two_users() {
        return;
    }
    let s = Scratch::new("sec-unreadable");
    let image = s.dir.join("private.sqfs");
    std::fs::copy(&test_image().sqfs, &image).unwrap();
    chown(&image, OTHER_USER);
    chmod(&image, 0o600);
    let out = s.run(&[&arg(&image), "--", "true"]);
    assert_eq!(
        (out.code, error_line(&out)),
        (
            31,
            format!("can't open: {}: Permission denied", image.display())
        )
    );
    // A directory the user can't even search: stat fails, as Charliecloud says it.
    let closed = s.dir.join("closed");
    std::fs::create_dir(&closed).unwrap();
    chown(&closed, OTHER_USER);
    chmod(&closed, 0o700);
    let inside = closed.join("img.sqfs");
    let out = s.run(&[&arg(&inside), "--", "true"]);
    assert_eq!(
        (out.code, error_line(&out)),
        (
            31,
            format!("can't stat: {}: Permission denied", inside.display())
        )
    );
    // Something that is neither a directory nor a file: not opened at all (a FIFO would
    // block the open).
    let fifo = s.dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    chmod(&fifo, 0o666);
    let out = s.run(&[&arg(&fifo), "--", "true"]);
    assert_eq!(
        (out.code, error_line(&out)),
        (31, format!("unknown image type: {}", fifo.display()))
    );
    s.assert_clean();
}

#[test]
fn a_bad_write_fake_size_says_what_is_wrong() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("sec-wsize");
    let image = test_image().sqfs_arg();
    let mnt = s.mnt_arg();
    let expected = "expected N, N followed by k, m, g, t, p or e, or N%";
    for (size, what) in [
        ("abc", "abc: no digits found".to_string()),
        ("12x", "12x: extra characters after digits: x".to_string()),
        (
            "1.5g",
            "1.5g: extra characters after digits: .5g".to_string(),
        ),
        ("-5m", "-5m: no digits found".to_string()),
    ] {
        let out = s.run(&["-m", &mnt, &format!("-W={size}"), &image, "--", "true"]);
        assert_eq!(
            (out.code, error_line(&out)),
            (
                31,
                format!("--write-fake: invalid size: {what} ({expected})")
            ),
            "{size}"
        );
    }
    for size in ["64m", "50%", "1G", "100000"] {
        let out = s.run(&[
            "-m",
            &mnt,
            &format!("-W={size}"),
            &image,
            "--",
            "sh",
            "-c",
            "echo w > /data/new && cat /data/new",
        ]);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "w\n"),
            "{size}: {out:?}"
        );
    }
    s.assert_clean();
}

#[test]
fn ch_ssh_from_0_31_is_accepted_and_ignored() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("sec-chssh");
    let image = test_image().sqfs_arg();
    let out = s.run(&[
        "-m",
        &s.mnt_arg(),
        "--ch-ssh",
        &image,
        "--",
        "cat",
        "/data/hello",
    ]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "hello from the image\n"),
        "{out:?}"
    );
    assert_eq!(
        warnings(&out),
        ["--ch-ssh: ignored: this ch-run has no ch-ssh (Charliecloud removed it in 0.33)"],
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    s.assert_clean();
}

/// A 3 KB `/ch/environment` that copies a 4 MiB variable 400 times (`B=$A`): each copy was
/// kept for the `-v` log, and ch-run aborted on a failed allocation (exit 134) under the
/// 1 GiB cap (without it, 1.6 GB; 4,000 lines would have taken 16 GB). The assignments
/// together may make at most 64 MiB; past that, one line.
#[test]
fn copies_of_a_big_variable_are_one_error_line() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("sec-envcopies");
    let tree = s.dir.join("tree");
    let mut file = format!("A={}\n", "x".repeat(1024));
    for _ in 0..12 {
        file.push_str("A=$A:$A\n");
    }
    for _ in 0..400 {
        file.push_str("B=$A\n");
    }
    tiny_tree(&tree, file.as_bytes());
    let image = s.dir.join("copies.sqfs");
    mksquashfs(&tree, &image, &[]);
    let out = run_capped(s.command(
        &["-m", &s.mnt_arg(), "--set-env", &arg(&image), "--", "true"],
        &[],
    ));
    assert_eq!(out.code, 31, "{out:?}");
    let msg = error_line(&out);
    assert!(
        msg.starts_with("can't set variable: more than 64 MiB assigned: /ch/environment:"),
        "{msg}"
    );
    s.assert_clean();
}

//! For the `ch-run` tests: a busybox image built from the host's `busybox-static` with
//! mksquashfs, running `ch-run` as an unprivileged user (`chtest`, made by `scripts/setup.sh`,
//! when the tests run as root), and the check that nothing is left behind afterwards.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::sys::is_root;

/// The unprivileged user CI creates; the tests run ch-run as this user when they are root.
pub const TEST_USER: &str = "chtest";

/// Applets linked in the image's /bin.
const APPLETS: &[&str] = &[
    "sh",
    "cat",
    "ls",
    "sleep",
    "echo",
    "env",
    "id",
    "pwd",
    "sha256sum",
    "wc",
    "kill",
    "mkdir",
    "touch",
    "true",
    "false",
    "stat",
    "readlink",
    "grep",
    "head",
    "dd",
    "printf",
    "test",
    "tr",
    "cut",
    "sort",
    "rm",
    "mount",
    "seq",
];

pub struct TestImage {
    /// The SquashFS image.
    pub sqfs: PathBuf,
    /// The same tree as a directory image.
    pub tree: PathBuf,
    /// sha256 of /data/big (8 MiB of varied bytes) in the image.
    pub big_sha256: String,
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

impl TestImage {
    /// The image path as a command-line argument.
    pub fn sqfs_arg(&self) -> String {
        self.sqfs.to_string_lossy().into_owned()
    }
}

/// The test image, built once per test binary.
pub fn test_image() -> &'static TestImage {
    static IMAGE: OnceLock<TestImage> = OnceLock::new();
    IMAGE.get_or_init(build_image)
}

fn build_image() -> TestImage {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox missing: install busybox-static (scripts/setup.sh does)"
    );
    // Where the test user can read it, wherever the clone is; removed when the process exits.
    let base = crate::reachable::dir().join("image");
    let tree = base.join("tree");
    for dir in [
        "bin", "dev", "proc", "sys", "tmp", "home", "mnt", "etc", "ch", "data", "root", "var/tmp",
    ] {
        std::fs::create_dir_all(tree.join(dir)).unwrap();
    }
    std::fs::copy(busybox, tree.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        symlink("busybox", tree.join("bin").join(applet)).unwrap();
    }
    // A setuid-root copy (busybox runs as busybox for any name starting so): inert in the
    // container (nosuid, no_new_privs).
    std::fs::copy(busybox, tree.join("bin/busybox-suid")).unwrap();
    std::fs::write(
        tree.join("etc/passwd"),
        "imageuser:x:4242:4242::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(tree.join("etc/group"), "imagegroup:x:4242:\n").unwrap();
    for f in ["etc/hosts", "etc/resolv.conf", "etc/machine-id"] {
        std::fs::write(tree.join(f), "image's own\n").unwrap();
    }
    std::fs::write(
        tree.join("ch/environment"),
        "FROM_IMAGE='image value'\nPATH=/opt/image:$PATH\n",
    )
    .unwrap();
    std::fs::write(tree.join("data/hello"), "hello from the image\n").unwrap();
    let big: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(tree.join("data/big"), &big).unwrap();
    // Symlinks that point out of the image: a bind must refuse them as destinations.
    symlink("/etc", tree.join("escape-abs")).unwrap();
    symlink("../../../../..", tree.join("escape-up")).unwrap();
    symlink("data", tree.join("data-link")).unwrap();
    run_ok(Command::new("chmod").args(["-R", "a+rX"]).arg(&base));
    // Owned by the user who runs it, as images ch-image builds are; the setuid file is root's.
    if is_root() {
        run_ok(
            Command::new("chown")
                .args(["-R", &format!("{TEST_USER}:{TEST_USER}")])
                .arg(&tree),
        );
    }
    std::fs::set_permissions(
        tree.join("bin/busybox-suid"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    if is_root() {
        run_ok(
            Command::new("chown")
                .arg("root:root")
                .arg(tree.join("bin/busybox-suid")),
        );
        run_ok(
            Command::new("chmod")
                .arg("4755")
                .arg(tree.join("bin/busybox-suid")),
        );
    }

    let sqfs = base.join("busybox.sqfs");
    run_ok(
        Command::new("mksquashfs")
            .arg(&tree)
            .arg(&sqfs)
            .args(["-noappend", "-quiet", "-no-progress"])
            // A character device (1,3, like /dev/null): unusable through a nodev mount.
            .args(["-p", "devnode c 666 0 0 1 3"]),
    );
    std::fs::set_permissions(&sqfs, std::fs::Permissions::from_mode(0o644)).unwrap();
    TestImage {
        big_sha256: sha256(&tree.join("data/big")),
        sqfs,
        tree,
    }
}

/// The uid of the user ch-run runs as.
pub fn test_uid() -> u32 {
    if is_root() {
        nix_uid(TEST_USER)
    } else {
        // SAFETY: getuid has no preconditions.
        unsafe { libc::getuid() }
    }
}

fn nix_uid(name: &str) -> u32 {
    let out = Command::new("id").args(["-u", name]).output().unwrap();
    assert!(
        out.status.success(),
        "user {name} missing: scripts/setup.sh creates it"
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

pub fn user_name() -> String {
    if is_root() {
        TEST_USER.to_string()
    } else {
        std::env::var("USER").unwrap_or_else(|_| "nobody".into())
    }
}

/// This machine's host name as ch-run writes it in the names of its socket directories
/// (`ch-run-join.HOST`, runtime/src/join/rendezvous.rs): every byte but `[A-Za-z0-9._-]` as
/// `%XX`.
pub fn escaped_host_name() -> String {
    let name = std::fs::read("/proc/sys/kernel/hostname").unwrap();
    let name = name.strip_suffix(b"\n").unwrap_or(&name);
    name.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A test's own directories (TMPDIR, HOME, mount point), owned by the test user; the
/// environment marker lets `assert_clean` find every process a test started.
pub struct Scratch {
    pub dir: PathBuf,
    pub tmp: PathBuf,
    pub home: PathBuf,
    pub mnt: PathBuf,
    marker: String,
    /// What /dev/shm held when the test started (other programs may leave things there).
    shm_before: Vec<PathBuf>,
}

fn shm_objects() -> Vec<PathBuf> {
    std::fs::read_dir("/dev/shm")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn from(out: Output) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Outcome {
            code: out
                .status
                .code()
                .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Scratch {
    /// The test's mount point as a command-line argument (`--mount`).
    pub fn mnt_arg(&self) -> String {
        self.mnt.to_string_lossy().into_owned()
    }

    pub fn new(name: &str) -> Self {
        Self::new_in(&std::env::temp_dir(), name)
    }

    /// A test's directories under `base` (`reachable::shared_dir()` for the simulated Slurm
    /// nodes, which have their own `/tmp`).
    pub fn new_in(base: &Path, name: &str) -> Self {
        let dir = base.join(format!("ch-run-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (tmp, home, mnt) = (dir.join("tmp"), dir.join("home"), dir.join("mnt"));
        for d in [&tmp, &home, &mnt] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        if is_root() {
            run_ok(Command::new("chown").args(["-R", TEST_USER]).arg(&dir));
        }
        Scratch {
            shm_before: shm_objects(),
            marker: format!("{name}-{}", std::process::id()),
            dir,
            tmp,
            home,
            mnt,
        }
    }

    /// `ch-run ARGS` as the test user with a clean environment plus `env`.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        self.launched_command(&[], args, env)
    }

    /// `LAUNCHER… ch-run ARGS` (e.g. `srun -n 4`), as `command`.
    pub fn launched_command(
        &self,
        launcher: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Command {
        let ch_run = crate::reachable::binary("ch-run");
        self.launched_command_of(&ch_run, launcher, args, env)
    }

    /// `LAUNCHER… PROGRAM ARGS` (the `ch-run` the simulated Slurm nodes can reach, say), as
    /// `launched_command`.
    pub fn launched_command_of(
        &self,
        program: &Path,
        launcher: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Command {
        let mut vars: Vec<String> = vec![
            format!("USER={}", user_name()),
            format!("HOME={}", self.home.display()),
            "PATH=/usr/bin:/usr/sbin".to_string(),
            format!("TMPDIR={}", self.tmp.display()),
            format!("CH_TEST_MARKER={}", self.marker),
        ];
        vars.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", TEST_USER, "--", "env", "-i"]);
            c
        } else {
            let mut c = Command::new("env");
            c.arg("-i");
            c
        };
        cmd.args(&vars).args(launcher).arg(program).args(args);
        cmd.stdin(Stdio::null());
        // A directory the test user can enter (the test's own may be in a private clone):
        // srun's tasks start in the caller's directory.
        cmd.current_dir(&self.dir);
        inherit_only_stdio(&mut cmd);
        cmd
    }

    /// `ch-run ARGS` as `command`, on a simulated node named `host`: in a UTS namespace of
    /// its own (root's `unshare --uts`), sharing everything else with this machine, as nodes
    /// do whose `/tmp` and `/var/tmp` are one shared file system. Needs root.
    pub fn command_on_host(&self, host: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
        let inner = self.command(args, env);
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--uts",
            "--",
            "sh",
            "-c",
            "hostname \"$0\" && exec \"$@\"",
            host,
        ])
        .arg(inner.get_program())
        .args(inner.get_args())
        .stdin(Stdio::null())
        .current_dir(&self.dir);
        inherit_only_stdio(&mut cmd);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Outcome {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        Outcome::from(self.command(args, env).output().unwrap())
    }

    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        self.command(args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Live processes this test started (zombies excluded: the sandbox's pid 1 does not
    /// reap orphans, a real init does).
    pub fn processes(&self) -> Vec<String> {
        let needle = format!("CH_TEST_MARKER={}", self.marker);
        let mut found = Vec::new();
        for (pid, dir) in live_processes() {
            if pid == std::process::id() as i32 {
                continue;
            }
            let Ok(environ) = std::fs::read(dir.join("environ")) else {
                continue;
            };
            if !environ.split(|&b| b == 0).any(|v| v == needle.as_bytes()) {
                continue;
            }
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
        found
    }

    /// Nothing left: no process, no host-visible mount of the image or in the scratch dir,
    /// no /dev/shm object of the user, no file in TMPDIR. Waits up to `patience` for
    /// processes that are exiting.
    pub fn assert_clean_within(&self, patience: Duration) {
        let deadline = Instant::now() + patience;
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            self.processes(),
            Vec::<String>::new(),
            "processes left behind"
        );
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        let image_dir = test_image()
            .sqfs
            .parent()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let scratch = self.dir.to_string_lossy().into_owned();
        for line in mounts.lines() {
            assert!(
                !line.contains(&image_dir) && !line.contains(&scratch),
                "mount left behind: {line}"
            );
        }
        let uid = test_uid();
        for path in shm_objects() {
            use std::os::unix::fs::MetadataExt;
            if self.shm_before.contains(&path) {
                continue;
            }
            if let Ok(md) = std::fs::metadata(&path) {
                assert_ne!(md.uid(), uid, "/dev/shm object left: {}", path.display());
            }
        }
        let left: Vec<_> = std::fs::read_dir(&self.tmp)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "temp files left: {left:?}");
    }

    /// The host pid of the `ch-run` a `runuser`/`env` wrapper started (the wrapper's child).
    pub fn ch_run_pid(&self, wrapper: u32) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for p in self.processes() {
                let (pid, cmd) = p.split_once(": ").unwrap();
                let pid: i32 = pid.parse().unwrap();
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid: u32 = stat
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().nth(1))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                if cmd.contains("ch-run") && (ppid == wrapper || pid as u32 == wrapper) {
                    // runuser forks; with env the wrapper execs into ch-run itself.
                    return pid;
                }
            }
            assert!(
                Instant::now() < deadline,
                "ch-run did not start: {:?}",
                self.processes()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The supervisor: the ch-run process whose parent is ch-run `parent`.
    pub fn child_ch_run(&self, parent: i32) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for p in self.processes() {
                let (pid, cmd) = p.split_once(": ").unwrap();
                let pid: i32 = pid.parse().unwrap();
                if cmd.contains("ch-run") && parent_of(pid) == Some(parent) {
                    return pid;
                }
            }
            assert!(Instant::now() < deadline, "no supervisor under {parent}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn assert_clean(&self) {
        self.assert_clean_within(Duration::from_secs(5));
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // A test that failed halfway may have left its containers running: end them, so
        // one failure doesn't leave processes behind for the next run.
        for p in self.processes() {
            if let Some(pid) = p
                .split_once(':')
                .and_then(|(pid, _)| pid.parse::<i32>().ok())
            {
                // SAFETY: kill has no memory preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// ch-run passes on the descriptors it inherits (srun's PMI ones, say); the tests check what
/// it adds, so it inherits nothing but stdio from the test process.
fn inherit_only_stdio(cmd: &mut Command) {
    // SAFETY: close_range is async-signal-safe; CLOEXEC leaves std's own pipe working.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
            Ok(())
        });
    }
}

/// Whether this machine can run ch-run at all: the test user can open /dev/fuse and make
/// an unprivileged user namespace. Where they are absent the calling test is a recorded skip
/// (`crate::skip`), or a failure with `CH_TEST_REQUIRE_CONTAINERS` or `CI` set.
/// The processes alive now, each with its `/proc` directory (zombies left out: the sandbox's
/// pid 1 does not reap orphans, a real init does).
pub fn live_processes() -> Vec<(i32, PathBuf)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next());
        if state.is_some_and(|s| s != "Z") {
            found.push((pid, entry.path()));
        }
    }
    found
}

pub fn can_run_containers() -> bool {
    crate::skip::needs(&[crate::skip::Need::Containers])
}

/// The probe behind `can_run_containers`, run once per process.
pub fn containers_usable() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(|| {
        let probe = "exec 3<>/dev/fuse && unshare -Ur true";
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", TEST_USER, "--"]);
            c
        } else {
            Command::new("env")
        };
        cmd.args(["sh", "-c", probe])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Waits until `path` exists (the command wrote it: it is running).
pub fn wait_for_file(path: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process's parent, from /proc.
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Waits until `path` holds a whole line (a shell's `echo > FILE` creates the file before
/// it writes); returns it without the newline.
pub fn wait_for_line(path: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(line) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.strip_suffix('\n').map(str::to_string))
        {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held a line",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

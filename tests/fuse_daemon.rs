//! Driving squashfuse-rs daemons in the tests: which process serves a mount, whether it
//! still runs, signals, and waits that are always bounded (an event is waited for, never
//! assumed after a sleep).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long an awaited event may take on a loaded machine before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Waits for `done`, failing the test after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The arguments of process `pid` (empty if it is gone).
fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn holds_dev_fuse(pid: i32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == Path::new("/dev/fuse")))
        })
        .unwrap_or(false)
}

/// Every running squashfuse-rs process whose command line names `mountpoint` (a daemon,
/// or the watcher of `-o auto_unmount`).
pub fn processes_naming(mountpoint: &Path) -> Vec<i32> {
    let wanted = mountpoint.to_string_lossy();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            let args = cmdline(pid);
            args.first()
                .is_some_and(|a| Path::new(a).file_name() == Some("squashfuse-rs".as_ref()))
                && args.iter().any(|a| *a == wanted)
                && is_running(pid)
        })
        .collect()
}

/// The squashfuse-rs processes naming `mountpoint` that hold /dev/fuse open: the daemons
/// serving a mount there.
pub fn fuse_servers(mountpoint: &Path) -> Vec<i32> {
    processes_naming(mountpoint)
        .into_iter()
        .filter(|&pid| holds_dev_fuse(pid))
        .collect()
}

/// The one daemon serving the mount at `mountpoint` (given as the daemon was); fails the
/// test unless there is exactly one.
pub fn serving_daemon(mountpoint: &Path) -> i32 {
    let servers = fuse_servers(mountpoint);
    assert_eq!(
        servers.len(),
        1,
        "the squashfuse-rs serving {}: {servers:?}",
        mountpoint.display()
    );
    servers[0]
}

/// Whether process `pid` exists and has not ended (a zombie has ended).
pub fn is_running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold anything.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

/// Waits (bounded) for process `pid` to end.
pub fn wait_for_exit(pid: i32, what: &str) {
    wait_until(what, PATIENCE, || !is_running(pid));
}

/// Sends `signal` to `pid`.
pub fn send_signal(pid: i32, signal: libc::c_int) {
    // SAFETY: kill has no memory effects.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

/// Runs `cmd` to its end with its output, failing the test (after killing it) past
/// `limit`. Output is read until every holder of the pipes closed them (a daemon closes
/// them once the mount is ready), also within `limit`.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = |mut pipe: Box<dyn Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = pipe.read_to_end(&mut all);
            let _ = tx.send(all);
        });
        rx
    };
    let stdout = reader(Box::new(child.stdout.take().unwrap()));
    let stderr = reader(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let collect = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(limit.saturating_sub(start.elapsed()))
            .unwrap_or_else(|_| panic!("{cmd:?}: its output pipes stayed open past {limit:?}"))
    };
    Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    }
}

/// The bytes of `path` in `image`, as the sqfs library reads them.
pub fn bytes_in_image(image: &Path, path: &str) -> Vec<u8> {
    let archive = sqfs::Archive::open(image).unwrap();
    let inode = archive.lookup_path(path).unwrap();
    let data = archive.file_data(&inode).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = archive
            .read_data(&data, out.len() as u64, &mut buf)
            .unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// What a plain user's own mount needs, in `dir`: a copy of `image` and of squashfuse-rs
/// and an empty mount point, all the user's and readable by everyone (fusermount3 and the
/// daemon run as the user). Returns (image, mount point, binary).
pub fn plain_user_scene(
    dir: &Path,
    image: &Path,
    user: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let img = dir.join("image.sqfs");
    std::fs::copy(image, &img).unwrap();
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let bin = dir.join("squashfuse-rs");
    std::fs::copy(crate::sys::built_binary("squashfuse-rs"), &bin).unwrap();
    for (cmd, args) in [("chown", ["-R", user]), ("chmod", ["-R", "a+rX"])] {
        assert!(Command::new(cmd)
            .args(args)
            .arg(dir)
            .status()
            .unwrap()
            .success());
    }
    (img, mnt, bin)
}

/// The unprivileged user CI creates (`scripts/setup.sh`); made by `ensure_plain_user` when
/// missing.
pub const PLAIN_USER: &str = "chtest";

pub fn ensure_plain_user() {
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

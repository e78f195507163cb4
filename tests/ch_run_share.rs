//! Sharing: the `ch-run`s of one user on one image use one image server (one FUSE mount,
//! one page cache), each still in a container of its own. Sixteen started at once make one
//! server; a changed image gets a new one; another user never reaches it; `--no-share` and
//! `CH_RUN_SHARE=no` mount as before; an idle server leaves, and leaves nothing, also when
//! its directory was removed under it; a killed one is replaced, a stuck one costs a run its
//! bounded wait, not the run; and the server holds nothing of the caller's (a pipe from
//! ch-run ends when the command does).
//!
//! Every test uses an image of its own (a copy, or one it makes), so that its servers are
//! its own (a server is found by the image path on its command line); servers it leaves
//! running are killed at its end.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::container::{
    can_run_containers, escaped_host_name, live_processes, test_image, test_uid, user_name,
    Outcome, Scratch, TEST_USER,
};

/// Long enough that a server never leaves on its own during a test that doesn't want it to.
const LINGER: (&str, &str) = ("CH_RUN_SHARE_IDLE", "600");

/// Generous bound for anything to happen.
const PATIENCE: Duration = Duration::from_secs(30);

/// A test's own image: the test image's tree with `/marker` holding `text`, owned by the
/// test user, in the scratch directory.
fn own_image(s: &Scratch, name: &str, text: &str) -> PathBuf {
    own_image_with(s, name, |tree| {
        std::fs::write(tree.join("marker"), text).unwrap()
    })
}

/// A test's own image: the test image's tree as `change` leaves it, owned by the test user,
/// in the scratch directory.
fn own_image_with(s: &Scratch, name: &str, change: impl FnOnce(&Path)) -> PathBuf {
    let tree = s.dir.join(format!("tree-{name}"));
    let _ = std::fs::remove_dir_all(&tree);
    let status = Command::new("cp")
        .arg("-a")
        .arg(&test_image().tree)
        .arg(&tree)
        .status()
        .unwrap();
    assert!(status.success());
    change(&tree);
    let image = s.dir.join(format!("{name}.sqfs"));
    e2e_tests::sys::mksquashfs(&tree, &image, &[]);
    std::fs::remove_dir_all(&tree).unwrap();
    chown_to_test_user(&image);
    image
}

fn chown_to_test_user(path: &Path) {
    if e2e_tests::sys::is_root() {
        let status = Command::new("chown")
            .arg(TEST_USER)
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// The image servers alive for `image`: (pid, uid).
fn servers_of(image: &Path) -> Vec<(i32, u32)> {
    let mut found = Vec::new();
    for (pid, dir) in live_processes() {
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() != "ch-run-share" {
            continue;
        }
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        if cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == image.as_os_str().as_encoded_bytes())
        {
            let uid = std::fs::metadata(&dir).map(|m| m.uid()).unwrap_or(0);
            let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
            let real_uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(uid);
            found.push((pid, real_uid));
        }
    }
    found
}

fn pids(servers: &[(i32, u32)]) -> Vec<i32> {
    servers.iter().map(|(p, _)| *p).collect()
}

/// Waits until `check` holds, or fails with `what`.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(pid: i32) {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Kills the servers of `image` that a test left running.
struct Servers(PathBuf);

impl Drop for Servers {
    fn drop(&mut self) {
        for (pid, _) in servers_of(&self.0) {
            kill(pid);
        }
    }
}

fn arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The device number of `/` in a container on `image` (the FUSE mount's), and the marker.
fn root_device_and_marker(s: &Scratch, image: &Path, env: &[(&str, &str)]) -> (String, String) {
    let out = s.run_env(
        &[&arg(image), "--", "sh", "-c", "stat -c %d /; cat /marker"],
        env,
    );
    assert_eq!(out.code, 0, "{out:?}");
    let mut lines = out.stdout.lines();
    let dev = lines.next().unwrap_or_default().to_string();
    let marker = lines.next().unwrap_or_default().to_string();
    (dev, marker)
}

/// Where the test user's servers listen: in ch-run's own directory, this host's.
fn socket_dir() -> PathBuf {
    PathBuf::from(format!("/var/tmp/{}.ch", user_name())).join(socket_dir_name())
}

/// The name of this host's server directory in ch-run's own.
fn socket_dir_name() -> String {
    format!("ch-run-share.{}", escaped_host_name())
}

/// The name of server `pid`'s socket (an argument on its command line).
fn entry_of(pid: i32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .find(|a| a.starts_with("img-"))
        .expect("a socket name on the server's command line")
}

#[test]
fn two_runs_one_after_the_other_share_one_server() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-seq");
    let image = own_image(&s, "seq", "one");
    let _servers = Servers(image.clone());
    let (dev1, marker) = root_device_and_marker(&s, &image, &[LINGER]);
    assert_eq!(marker, "one");
    let first = servers_of(&image);
    assert_eq!(first.len(), 1, "one server after the first run: {first:?}");
    assert_eq!(first[0].1, test_uid(), "the server is the user's");
    let (dev2, _) = root_device_and_marker(&s, &image, &[LINGER]);
    assert_eq!(
        servers_of(&image),
        first,
        "the second run used the first's server"
    );
    assert_eq!(dev1, dev2, "one FUSE mount");
    s.assert_clean();
}

#[test]
fn sixteen_runs_at_once_make_one_server() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-16");
    let image = own_image(&s, "sixteen", "16");
    let _servers = Servers(image.clone());
    let children: Vec<_> = (0..16)
        .map(|_| {
            s.spawn(
                &[&arg(&image), "--", "sh", "-c", "stat -c %d /; cat /marker"],
                &[LINGER],
            )
        })
        .collect();
    let mut outputs = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}: {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(stdout);
    }
    assert!(
        outputs
            .iter()
            .all(|o| o == &outputs[0] && o.ends_with("16")),
        "{outputs:?}"
    );
    let servers = servers_of(&image);
    assert_eq!(servers.len(), 1, "exactly one server: {servers:?}");
    s.assert_clean();
}

/// Containers starting together on a new server walk the same new names at once, and on
/// Linux 6.16 and later one walk can unhash the dentry another has just looked up and is
/// about to mount onto (see `binds::mount_onto`); the start then failed "can't bind …: No
/// such file or directory" (31 rounds in 100 like these). Each round touches the image, so
/// its runs meet a server of their own, new, with nothing looked up yet.
#[test]
fn runs_starting_together_on_a_new_server_all_start() {
    if !can_run_containers() {
        return;
    }
    const ROUNDS: i64 = 100;
    const RUNS: usize = 12;
    const BINDS: usize = 40;
    let s = Scratch::new("share-together");
    let image = own_image_with(&s, "together", |tree| {
        for i in 0..BINDS {
            std::fs::create_dir(tree.join(format!("mnt/b{i:02}"))).unwrap();
        }
    });
    let binds: Vec<String> = (0..BINDS)
        .map(|i| format!("{}:/mnt/b{i:02}", s.home.display()))
        .collect();
    let _servers = Servers(image.clone());
    let mut args: Vec<&str> = Vec::new();
    for bind in &binds {
        args.extend(["-b", bind]);
    }
    let image_arg = arg(&image);
    args.extend([image_arg.as_str(), "--", "true"]);
    for round in 0..ROUNDS {
        let when =
            std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + round as u64);
        std::fs::File::options()
            .write(true)
            .open(&image)
            .unwrap()
            .set_modified(when)
            .unwrap();
        let children: Vec<_> = (0..RUNS).map(|_| s.spawn(&args, &[])).collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    for (pid, _) in servers_of(&image) {
        kill(pid);
    }
    s.assert_clean();
}

#[test]
fn a_changed_image_gets_a_new_server_and_its_new_content() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-changed");
    let image = own_image(&s, "changed", "before");
    let _servers = Servers(image.clone());
    assert_eq!(root_device_and_marker(&s, &image, &[LINGER]).1, "before");
    let old = pids(&servers_of(&image));
    assert_eq!(old.len(), 1);
    // Rewritten in place: the same inode, new bytes.
    let rewritten = own_image(&s, "rewritten", "rewritten in place");
    let ino = std::fs::metadata(&image).unwrap().ino();
    std::fs::write(&image, std::fs::read(&rewritten).unwrap()).unwrap();
    assert_eq!(std::fs::metadata(&image).unwrap().ino(), ino);
    assert_eq!(
        root_device_and_marker(&s, &image, &[LINGER]).1,
        "rewritten in place"
    );
    let after_rewrite = pids(&servers_of(&image));
    let new: Vec<_> = after_rewrite.iter().filter(|p| !old.contains(p)).collect();
    assert_eq!(new.len(), 1, "a new server: {old:?} then {after_rewrite:?}");
    // Replaced: another file renamed over it.
    let replacement = own_image(&s, "replacement", "replaced");
    std::fs::rename(&replacement, &image).unwrap();
    assert_eq!(root_device_and_marker(&s, &image, &[LINGER]).1, "replaced");
    let after_replace = pids(&servers_of(&image));
    assert_eq!(
        after_replace
            .iter()
            .filter(|p| !after_rewrite.contains(p))
            .count(),
        1,
        "a new server: {after_rewrite:?} then {after_replace:?}"
    );
    s.assert_clean();
}

#[test]
fn a_server_refuses_anyone_but_its_user() {
    if !can_run_containers() {
        return;
    }
    if !e2e_tests::sys::is_root() {
        e2e_tests::skip::skip("needs root to connect as another user");
        return;
    }
    let s = Scratch::new("share-other");
    let image = own_image(&s, "other", "mine");
    let _servers = Servers(image.clone());
    root_device_and_marker(&s, &image, &[LINGER]);
    assert_eq!(servers_of(&image).len(), 1);
    let socket = socket_dir().join(entry_of(servers_of(&image)[0].0));
    // The directory keeps everyone else out; root gets past it, and is refused by the server:
    // the connection closes with nothing said and no descriptor passed.
    let md = std::fs::metadata(socket_dir()).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o777), (test_uid(), 0o700));
    let before = servers_of(&image);
    let (bytes, fds) = connect_and_read(&socket);
    assert_eq!((bytes, fds), (0, 0), "{} answered root", socket.display());
    assert_eq!(servers_of(&image), before, "the server stays for its user");
    // And its user still gets in.
    assert_eq!(root_device_and_marker(&s, &image, &[LINGER]).1, "mine");
    assert_eq!(servers_of(&image), before);
    s.assert_clean();
}

/// Connects to `socket` and reads one message: (bytes, descriptors received).
fn connect_and_read(socket: &Path) -> (usize, usize) {
    let path = std::ffi::CString::new(socket.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: plain socket calls on memory owned here.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (i, b) in path.as_bytes().iter().enumerate() {
            addr.sun_path[i] = *b as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        let rc = libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len);
        assert_eq!(
            rc,
            0,
            "connect {}: {}",
            socket.display(),
            std::io::Error::last_os_error()
        );
        // Bounded: a server that neither answers nor closes fails the test.
        let tv = libc::timeval {
            tv_sec: PATIENCE.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let mut buf = [0u8; 8192];
        let mut cmsg = [0u64; 64];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cmsg);
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC);
        assert!(n >= 0, "no answer: {}", std::io::Error::last_os_error());
        let mut fds = 0;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_type == libc::SCM_RIGHTS {
                let payload = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                fds += payload / std::mem::size_of::<i32>();
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        libc::close(fd);
        (n as usize, fds)
    }
}

#[test]
fn no_share_and_ch_run_share_no_mount_for_the_run_alone() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-off");
    let image = own_image(&s, "off", "alone");
    let _servers = Servers(image.clone());
    let out = s.run_env(
        &["--no-share", &arg(&image), "--", "cat", "/marker"],
        &[LINGER],
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, "alone"), "{out:?}");
    assert_eq!(servers_of(&image), [], "--no-share started a server");
    let out = s.run_env(
        &[&arg(&image), "--", "cat", "/marker"],
        &[LINGER, ("CH_RUN_SHARE", "no")],
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, "alone"), "{out:?}");
    assert_eq!(servers_of(&image), [], "CH_RUN_SHARE=no started a server");
    s.assert_clean();
}

#[test]
fn an_idle_server_leaves_and_leaves_nothing() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-idle");
    let image = own_image(&s, "idle", "idle");
    let _servers = Servers(image.clone());
    let go = s.tmp.join("go");
    let mut child = s.spawn(
        &[
            &arg(&image),
            "--",
            "sh",
            "-c",
            "touch /tmp/running; while [ ! -e /tmp/go ]; do sleep 0.02; done; rm /tmp/running /tmp/go",
        ],
        &[("CH_RUN_SHARE_IDLE", "1")],
    );
    e2e_tests::container::wait_for_file(&s.tmp.join("running"));
    // While a container uses it, it stays, however long that is.
    let server = servers_of(&image);
    assert_eq!(server.len(), 1, "{server:?}");
    let socket = socket_dir().join(entry_of(server[0].0));
    assert!(socket.exists(), "{}", socket.display());
    std::fs::write(&go, "").unwrap();
    assert!(child.wait().unwrap().success());
    wait_until("the idle server exits", || servers_of(&image).is_empty());
    // It removed its socket before it left.
    assert!(!socket.exists(), "{} left behind", socket.display());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&arg(&image)), "{mounts}");
    s.assert_clean();
}

#[test]
fn a_killed_server_is_replaced() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-killed");
    let image = own_image(&s, "killed", "again");
    let _servers = Servers(image.clone());
    root_device_and_marker(&s, &image, &[LINGER]);
    let killed = pids(&servers_of(&image));
    assert_eq!(killed.len(), 1);
    let entry = entry_of(killed[0]);
    kill(killed[0]);
    wait_until("the killed server is gone", || {
        servers_of(&image).is_empty()
    });
    // Its socket is still there, with nobody listening (unless another test's run swept
    // it already): the next run takes its place.
    let _socket = socket_dir().join(entry);
    assert_eq!(root_device_and_marker(&s, &image, &[LINGER]).1, "again");
    let now = pids(&servers_of(&image));
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, killed);
    s.assert_clean();
}

#[test]
fn a_run_starting_a_server_removes_the_sockets_of_killed_ones() {
    if !can_run_containers() {
        return;
    }
    // A batch job's end kills its servers (Slurm's cgroup): nothing removes their sockets
    // but a later run.
    let s = Scratch::new("share-sweep");
    let killed_image = own_image(&s, "swept", "one");
    let next_image = own_image(&s, "sweeper", "two");
    let _servers = (Servers(killed_image.clone()), Servers(next_image.clone()));
    root_device_and_marker(&s, &killed_image, &[LINGER]);
    let killed = pids(&servers_of(&killed_image));
    assert_eq!(killed.len(), 1);
    let socket = socket_dir().join(entry_of(killed[0]));
    kill(killed[0]);
    wait_until("the killed server is gone", || {
        servers_of(&killed_image).is_empty()
    });
    assert_eq!(root_device_and_marker(&s, &next_image, &[LINGER]).1, "two");
    assert_eq!(servers_of(&next_image).len(), 1);
    assert!(!socket.exists(), "{} left behind", socket.display());
    s.assert_clean();
}

#[test]
fn a_pipe_from_ch_run_ends_with_the_command_while_the_server_stays() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-pipe");
    let image = own_image(&s, "pipe", "piped");
    let _servers = Servers(image.clone());
    let mut child = s
        .command(&[&arg(&image), "--", "cat", "/marker"], &[LINGER])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // End of file on both pipes, within the bound, though the server keeps running.
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let mut err = String::new();
        stdout.read_to_string(&mut out).unwrap();
        stderr.read_to_string(&mut err).unwrap();
        (out, err)
    });
    wait_until("ch-run's pipes close", || reader.is_finished());
    let (out, err) = reader.join().unwrap();
    assert_eq!(out, "piped", "{err}");
    assert!(child.wait().unwrap().success());
    assert_eq!(servers_of(&image).len(), 1, "the server lingers");
    s.assert_clean();
}

#[test]
fn a_stuck_server_costs_a_wait_not_the_run() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-stuck");
    let image = own_image(&s, "stuck", "still runs");
    let _servers = Servers(image.clone());
    root_device_and_marker(&s, &image, &[LINGER]);
    let stuck = pids(&servers_of(&image));
    assert_eq!(stuck.len(), 1);
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(stuck[0], libc::SIGSTOP) };
    // It accepts nothing now; the run gives up on it (after its bounded wait) and mounts
    // the image itself.
    let out = s.run_env(&["-v", &arg(&image), "--", "cat", "/marker"], &[LINGER]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "still runs"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("mounting the image for this container alone"),
        "{out:?}"
    );
    s.assert_clean();
}

#[test]
fn a_server_whose_directory_was_removed_still_leaves() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-gone");
    let image = own_image(&s, "gone", "gone");
    let _servers = Servers(image.clone());
    // A user name of the test's own: its directory in /var/tmp is the test's to remove.
    let user = format!("chshare-gone-{}", std::process::id());
    let storage = PathBuf::from(format!("/var/tmp/{user}.ch"));
    let mut child = s.spawn(
        &[
            "-m",
            &s.mnt_arg(),
            &arg(&image),
            "--",
            "sh",
            "-c",
            "touch /tmp/running; while [ ! -e /tmp/go ]; do sleep 0.02; done; rm /tmp/running /tmp/go",
        ],
        &[("CH_RUN_SHARE_IDLE", "1"), ("USER", &user)],
    );
    e2e_tests::container::wait_for_file(&s.tmp.join("running"));
    assert_eq!(servers_of(&image).len(), 1);
    assert!(storage.join(socket_dir_name()).exists());
    std::fs::remove_dir_all(&storage).unwrap();
    std::fs::write(s.tmp.join("go"), "").unwrap();
    assert!(child.wait().unwrap().success());
    wait_until("the server without a directory exits", || {
        servers_of(&image).is_empty()
    });
    assert!(!storage.exists());
    s.assert_clean();
}

/// The uid users without a mapping appear as in a user namespace.
fn overflow_uid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn runs_as_the_overflow_uid_neither_share_nor_wait() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-nobody");
    let image = own_image(&s, "nobody", "nobody");
    let _servers = Servers(image.clone());
    // A server sees every unmapped user as this uid: it can't tell its own from others, and
    // (before) refused every run but the first, which then retried until its timeout.
    let nobody = overflow_uid();
    for _ in 0..2 {
        let out = s.run_env(
            &["-v", "--uid", &nobody, &arg(&image), "--", "cat", "/marker"],
            &[LINGER],
        );
        assert_eq!((out.code, out.stdout.as_str()), (0, "nobody"), "{out:?}");
        assert!(!out.stderr.contains("trying again"), "{out:?}");
    }
    assert_eq!(servers_of(&image), [], "a server for the overflow uid");
    s.assert_clean();
}

/// `(soft, hard)` "Max open files" of process `pid`.
fn open_files_limit(pid: i32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut words = line["Max open files".len()..].split_whitespace();
    let soft = words.next().unwrap().to_string();
    (soft, words.next().unwrap().to_string())
}

#[test]
fn a_small_ulimit_n_still_shares_and_the_server_is_not_held_to_it() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-nofile");
    let image = own_image(&s, "nofile", "few files");
    let _servers = Servers(image.clone());
    for _ in 0..2 {
        // Set after `runuser`, whose PAM session sets the limits of its own.
        let mut cmd = s.launched_command(
            &["sh", "-c", "ulimit -Sn 40 && exec \"$@\"", "sh"],
            &["-v", &arg(&image), "--", "cat", "/marker"],
            &[LINGER],
        );
        let out = Outcome::from(cmd.output().unwrap());
        assert_eq!((out.code, out.stdout.as_str()), (0, "few files"), "{out:?}");
        assert!(!out.stderr.contains("for this container alone"), "{out:?}");
    }
    let servers = servers_of(&image);
    assert_eq!(servers.len(), 1, "{servers:?}");
    let (soft, hard) = open_files_limit(servers[0].0);
    assert_eq!(soft, hard, "the server keeps the starting run's ulimit -n");
    s.assert_clean();
}

/// A seccomp filter that fails system call `nr` with `errno` (what container platforms
/// do to calls they don't know), for `pre_exec`.
fn refuse_system_call(nr: libc::c_long, errno: i32) -> std::io::Result<()> {
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xC000_00B7;
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let program = [
        // seccomp_data: nr at 0, arch at 4.
        op(LD_W_ABS, 0, 0, 4),
        op(JEQ_K, 0, 3, ARCH),
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 0, 1, nr as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | errno as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with a filter program that outlives the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn a_seccomp_filter_refusing_the_mount_calls_costs_the_sharing_not_the_run() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-seccomp");
    let image = own_image(&s, "seccomp", "filtered");
    let _servers = Servers(image.clone());
    let calls = [
        ("move_mount", libc::SYS_move_mount, libc::EPERM),
        ("move_mount", libc::SYS_move_mount, libc::ENOSYS),
        ("open_tree", libc::SYS_open_tree, libc::EPERM),
        ("open_tree", libc::SYS_open_tree, libc::ENOSYS),
        ("fsopen", libc::SYS_fsopen, libc::EPERM),
        ("fsmount", libc::SYS_fsmount, libc::ENOSYS),
    ];
    for (name, nr, errno) in calls {
        // Each case starts its own server, under its own filter.
        for (pid, _) in servers_of(&image) {
            kill(pid);
        }
        wait_until("the last case's server is gone", || {
            servers_of(&image).is_empty()
        });
        let mut cmd = s.command(&[&arg(&image), "--", "cat", "/marker"], &[LINGER]);
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                refuse_system_call(nr, errno)
            });
        }
        let out = Outcome::from(cmd.output().unwrap());
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "filtered"),
            "{name} refused with errno {errno}: {out:?}"
        );
    }
    s.assert_clean();
}

#[test]
fn a_server_started_from_a_shell_that_ignores_sigterm_still_ends_on_it() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-term");
    let image = own_image(&s, "term", "term");
    let _servers = Servers(image.clone());
    let out = Outcome::from(
        s.launched_command(
            &["sh", "-c", "trap '' HUP INT TERM && exec \"$@\"", "sh"],
            &[&arg(&image), "--", "cat", "/marker"],
            &[LINGER],
        )
        .output()
        .unwrap(),
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, "term"), "{out:?}");
    let server = pids(&servers_of(&image));
    assert_eq!(server.len(), 1, "{server:?}");
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(server[0], libc::SIGTERM) };
    wait_until("the server ends on SIGTERM", || {
        servers_of(&image).is_empty()
    });
    s.assert_clean();
}

#[test]
fn root_in_a_container_cannot_look_into_its_server() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-peek");
    let image = own_image(&s, "peek", "peek");
    let _servers = Servers(image.clone());
    let root = ["--uid", "0", "--gid", "0"];
    let out = s.run_env(
        &[&root[..], &[&arg(&image), "--", "true"]].concat(),
        &[LINGER],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let server = pids(&servers_of(&image));
    assert_eq!(server.len(), 1, "{server:?}");
    // A sibling container of the same ids: its root holds every capability of its own
    // user namespace, and is the server's user on the host.
    let script = "for f in fd/ root/ cwd/ map_files/; do ls /proc/$0/$f >/dev/null 2>&1 && echo $f; done; \
                  for f in environ mem maps auxv; do (exec 3</proc/$0/$f) 2>/dev/null && echo $f; done; \
                  echo checked";
    let pid = server[0].to_string();
    let out = s.run_env(
        &[&root[..], &[&arg(&image), "--", "sh", "-c", script, &pid]].concat(),
        &[LINGER],
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "checked\n"),
        "readable in the server's /proc: {out:?}"
    );
    assert_eq!(pids(&servers_of(&image)), server, "one server for both");
    s.assert_clean();
}

#[test]
fn a_server_out_of_descriptors_turns_runs_away_at_once() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-emfile");
    let image = own_image(&s, "emfile", "crowded");
    let _servers = Servers(image.clone());
    let hold = |n: usize| {
        format!("touch /tmp/running-{n}; while [ ! -e /tmp/go ]; do sleep 0.02; done; cat /marker")
    };
    // The first run starts the server with 16 descriptors, soft and hard: a few containers'
    // worth.
    let first = s
        .launched_command(
            &["sh", "-c", "ulimit -n 16 && exec \"$@\"", "sh"],
            &["-v", &arg(&image), "--", "sh", "-c", &hold(0)],
            &[LINGER],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    e2e_tests::container::wait_for_file(&s.tmp.join("running-0"));
    let mut children = vec![first];
    const MORE: usize = 8;
    for n in 1..=MORE {
        children.push(s.spawn(&["-v", &arg(&image), "--", "sh", "-c", &hold(n)], &[LINGER]));
    }
    // Beyond the timeout a run waits for a server (30 s): this test tells how they ended
    // (a server that could not copy its mount says so), not how fast.
    let deadline = Instant::now() + Duration::from_secs(120);
    for n in 1..=MORE {
        while !s.tmp.join(format!("running-{n}")).exists() {
            assert!(Instant::now() < deadline, "run {n} never started");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::fs::write(s.tmp.join("go"), "").unwrap();
    let mut alone = 0;
    for child in children {
        let out = Outcome::from(child.wait_with_output().unwrap());
        assert_eq!((out.code, out.stdout.as_str()), (0, "crowded"), "{out:?}");
        // Turned away, not left waiting for an answer that could not come.
        assert!(!out.stderr.contains("timeout"), "{out:?}");
        alone += usize::from(out.stderr.contains("for this container alone"));
    }
    assert!(
        alone > 0,
        "the server had descriptors for every run: nothing tested"
    );
    assert_eq!(servers_of(&image).len(), 1);
    for n in 0..=MORE {
        std::fs::remove_file(s.tmp.join(format!("running-{n}"))).unwrap();
    }
    std::fs::remove_file(s.tmp.join("go")).unwrap();
    s.assert_clean();
}

#[test]
fn a_symlink_squatting_the_users_var_tmp_directory_is_not_followed() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("share-squat");
    let image = own_image(&s, "squat", "squatted");
    let _servers = Servers(image.clone());
    // Anyone can make /var/tmp/$USER.ch first, as a symlink to wherever they like (a mount
    // of theirs that never answers, say); here, to a directory the user could use.
    let user = format!("chshare-squat-{}", std::process::id());
    let storage = PathBuf::from(format!("/var/tmp/{user}.ch"));
    let elsewhere = s.dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    chown_to_test_user(&elsewhere);
    let _ = std::fs::remove_file(&storage);
    std::os::unix::fs::symlink(&elsewhere, &storage).unwrap();
    // Storage of the user's choosing (-s): ch-run itself never looks at the squatted name.
    let chosen = s.dir.join("storage");
    std::fs::create_dir(&chosen).unwrap();
    chown_to_test_user(&chosen);
    let out = s.run_env(
        &[
            "-s",
            &arg(&chosen),
            "-m",
            &s.mnt_arg(),
            &arg(&image),
            "--",
            "cat",
            "/marker",
        ],
        &[LINGER, ("USER", &user)],
    );
    std::fs::remove_file(&storage).unwrap();
    assert_eq!((out.code, out.stdout.as_str()), (0, "squatted"), "{out:?}");
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "followed {}: {out:?}",
        storage.display()
    );
    assert!(
        out.stderr
            .contains(&format!("not using {}", storage.display())),
        "{out:?}"
    );
    s.assert_clean();
}

/// `ch-run -v IMAGE -- cat /marker` on the simulated node `host` (`Scratch::command_on_host`:
/// this machine's `/var/tmp` and `/tmp`, a host name of its own), which must print `marker`.
fn marker_on(s: &Scratch, host: &str, image: &Path, marker: &str) -> Outcome {
    let args = ["-v", &arg(image), "--", "cat", "/marker"];
    let out = Outcome::from(s.command_on_host(host, &args, &[LINGER]).output().unwrap());
    assert_eq!((out.code, out.stdout.as_str()), (0, marker), "{out:?}");
    out
}

/// Where a run said (`-v`) its image server's socket is.
fn socket_said(out: &Outcome) -> PathBuf {
    const SAID: &str = "share: image server socket: ";
    out.stderr
        .lines()
        .find_map(|l| l.split_once(SAID).map(|(_, path)| PathBuf::from(path)))
        .unwrap_or_else(|| panic!("no {SAID}…: {out:?}"))
}

/// Asserts that `socket` is there and nobody listens on it.
fn assert_dead(socket: &Path, what: &str) {
    let err = std::os::unix::net::UnixStream::connect(socket).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ECONNREFUSED),
        "{what}: {}: {err}",
        socket.display()
    );
}

/// The sockets of simulated hosts' servers, as (socket, host): removed at the end, with their
/// directory if it is the host's own (nobody on that host comes back to remove them).
struct HostSockets(Vec<(PathBuf, String)>);

impl Drop for HostSockets {
    fn drop(&mut self) {
        for (socket, host) in &self.0 {
            let _ = std::fs::remove_file(socket);
            if let Some(dir) = socket.parent() {
                if dir.to_string_lossy().ends_with(host.as_str()) {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }
}

/// Nodes whose `/var/tmp` is one shared file system: a socket of node B's, dead (its server
/// was killed, as a batch job's end kills it), is not node A's to remove: from node A every
/// socket of node B's refuses connections, live or dead.
#[test]
fn a_run_starting_a_server_leaves_other_hosts_sockets_alone() {
    if !can_run_containers() || !e2e_tests::skip::needs(&[e2e_tests::skip::Need::Root]) {
        return;
    }
    let s = Scratch::new("share-otherhost");
    let theirs = own_image(&s, "theirs", "node B");
    let ours = own_image(&s, "ours", "node A");
    let mut sockets = HostSockets(Vec::new());
    let _servers = (Servers(theirs.clone()), Servers(ours.clone()));
    let pid = std::process::id();
    let (a, b) = (format!("nodeA-{pid}"), format!("nodeB-{pid}"));
    let out = marker_on(&s, &b, &theirs, "node B");
    let dead = socket_said(&out);
    sockets.0.push((dead.clone(), b.clone()));
    let killed = pids(&servers_of(&theirs));
    assert_eq!(killed.len(), 1, "{killed:?}");
    kill(killed[0]);
    wait_until("node B's server is gone", || servers_of(&theirs).is_empty());
    // Its socket stops listening once the last of its threads has exited: the process
    // list leaves it out as soon as the main thread is a zombie, and one CI run's connect
    // right then still found the socket listening (EPROTOTYPE: a stream socket to the
    // server's seqpacket one).
    wait_until("node B's socket refuses connections", || {
        std::os::unix::net::UnixStream::connect(&dead)
            .is_err_and(|e| e.raw_os_error() != Some(libc::EPROTOTYPE))
    });
    assert_dead(
        &dead,
        "node B's killed server left no dead socket: nothing to test",
    );
    let out = marker_on(&s, &a, &ours, "node A");
    assert!(
        out.stderr.contains("share: starting an image server"),
        "{out:?}"
    );
    sockets.0.push((socket_said(&out), a.clone()));
    assert_eq!(servers_of(&ours).len(), 1);
    assert_dead(&dead, "node A's run removed node B's socket");
    s.assert_clean();
}

/// Nodes whose `/var/tmp` is one shared file system: each has a server of its own for an
/// image (a server on one node is of no use on another), and its runs find their own.
#[test]
fn each_host_starts_its_own_server() {
    if !can_run_containers() || !e2e_tests::skip::needs(&[e2e_tests::skip::Need::Root]) {
        return;
    }
    let s = Scratch::new("share-hosts");
    let image = own_image(&s, "hosts", "per host");
    let mut sockets = HostSockets(Vec::new());
    let _servers = Servers(image.clone());
    let pid = std::process::id();
    let (a, b) = (format!("nodeA-{pid}"), format!("nodeB-{pid}"));
    let run = |host: &str| marker_on(&s, host, &image, "per host");
    let first = run(&a);
    assert!(
        first.stderr.contains("share: starting an image server"),
        "{first:?}"
    );
    sockets.0.push((socket_said(&first), a.clone()));
    let other = run(&b);
    sockets.0.push((socket_said(&other), b.clone()));
    assert!(
        other.stderr.contains("share: starting an image server"),
        "node B used node A's server: {other:?}"
    );
    let again = run(&a);
    assert!(
        again
            .stderr
            .contains("share: using the running image server"),
        "{again:?}"
    );
    assert_eq!(socket_said(&again), socket_said(&first));
    assert_ne!(socket_said(&other), socket_said(&first));
    assert_eq!(servers_of(&image).len(), 2, "{:?}", servers_of(&image));
    s.assert_clean();
}

/// What an earlier version, whose directory had no host name (`/var/tmp/$USER.ch/ch-run-share`),
/// left in it: a dead socket of a server that was killed, and one another node's server of
/// that version listens on (the directory may be shared). A run of this version neither uses
/// nor removes them.
#[test]
fn an_earlier_versions_directory_is_left_alone() {
    if !can_run_containers() || !e2e_tests::skip::needs(&[e2e_tests::skip::Need::Root]) {
        return;
    }
    let s = Scratch::new("share-earlier");
    let image = own_image(&s, "earlier", "upgraded");
    let _servers = Servers(image.clone());
    // A user name of the test's own: its directory in /var/tmp is the test's alone.
    let user = format!("chshare-earlier-{}", std::process::id());
    let storage = PathBuf::from(format!("/var/tmp/{user}.ch"));
    let earlier = storage.join("ch-run-share");
    std::fs::create_dir_all(&earlier).unwrap();
    std::fs::set_permissions(
        &earlier,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let dead = earlier.join(format!("img-{:032x}", 1));
    let live = earlier.join(format!("img-{:032x}", 2));
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let _listener = std::os::unix::net::UnixListener::bind(&live).unwrap();
    for path in [&storage, &earlier, &dead, &live] {
        chown_to_test_user(path);
    }
    let out = s.run_env(
        &[
            "-v",
            "-m",
            &s.mnt_arg(),
            &arg(&image),
            "--",
            "cat",
            "/marker",
        ],
        &[LINGER, ("USER", &user)],
    );
    let left: Vec<_> = std::fs::read_dir(&earlier)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    for (pid, _) in servers_of(&image) {
        kill(pid);
    }
    let _ = std::fs::remove_dir_all(&storage);
    assert_eq!((out.code, out.stdout.as_str()), (0, "upgraded"), "{out:?}");
    assert!(
        out.stderr.contains("share: starting an image server"),
        "{out:?}"
    );
    for socket in [&dead, &live] {
        assert!(
            left.iter()
                .any(|name| Some(name.as_os_str()) == socket.file_name()),
            "{} removed: {left:?} left",
            socket.display()
        );
    }
    assert!(!socket_said(&out).starts_with(&earlier), "{out:?}");
    s.assert_clean();
}

//! `--join`: the ranks of one node share one user+mount namespace and one FUSE mount, and
//! the image stays mounted until the last peer exits, whatever order they exit in, even when
//! a peer is killed. `--join-pid` enters a running container. Another user can neither stop
//! nor delay a group by taking the names it meets at first, and a group leaves nothing.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use e2e_tests::container::{
    can_run_containers, escaped_host_name, test_image, test_uid, wait_for_file, wait_for_line,
    Scratch,
};

/// The second unprivileged user, who attacks the test user's groups.
const OTHER_USER: &str = "chtest2";

/// The join timeout is 30 s: a group that waited for it would take longer than this.
const QUICK: Duration = Duration::from_secs(15);

/// The test user's groups meet in one directory in /tmp: tests that take it over, or look
/// at what is in it, run alone (write); the others may run together (read).
static RENDEZVOUS: RwLock<()> = RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    RENDEZVOUS.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    RENDEZVOUS.write().unwrap_or_else(|e| e.into_inner())
}

/// Where the test user's groups meet when nobody is in the way.
fn group_dir() -> PathBuf {
    PathBuf::from(format!(
        "/tmp/ch-run-join.{}.{}",
        test_uid(),
        escaped_host_name()
    ))
}

/// The test user's group directory in a runtime directory (`XDG_RUNTIME_DIR`).
fn runtime_group_dir(xdg: &Path) -> PathBuf {
    xdg.join(format!("ch-run-join.{}", escaped_host_name()))
}

/// The socket of group `tag` in directory `dir`.
fn socket_in(dir: &Path, tag: &str) -> PathBuf {
    dir.join(format!("tag-{tag}"))
}

/// The group directories ch-run would make in the (test) home directory.
fn home_group_dirs(s: &Scratch) -> Vec<PathBuf> {
    std::fs::read_dir(&s.home)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".ch-run-join."))
        .collect()
}

/// Nothing of a group is left: no directory of ours in /tmp or in home.
fn assert_no_group_dirs(s: &Scratch) {
    let dir = group_dir();
    assert!(
        !dir.exists() || owner(&dir) != test_uid(),
        "{} left behind: {:?}",
        dir.display(),
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    assert_eq!(home_group_dirs(s), Vec::<PathBuf>::new(), "left in home");
}

fn owner(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).unwrap().uid()
}

/// Starts `n` of a group of `count` peers; each reports its mount namespace and the number
/// of FUSE mounts it sees, waits for its go file, then checksums the big file and exits with
/// its index.
fn start_peers(s: &Scratch, n: usize, count: usize, tag: &str, env: &[(&str, &str)]) -> Vec<Child> {
    (0..n).map(|i| start_peer(s, i, count, tag, env)).collect()
}

fn start_peer(s: &Scratch, i: usize, count: usize, tag: &str, env: &[(&str, &str)]) -> Child {
    let args = peer_args(s, i, count, tag);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s.spawn(&args, env)
}

/// The arguments of peer `i` (see `start_peers`).
fn peer_args(s: &Scratch, i: usize, count: usize, tag: &str) -> Vec<String> {
    // Mounts of this image only: another program's FUSE mount under /dev (bound in) is none
    // of the group's.
    let script = format!(
        "readlink /proc/self/ns/mnt; grep -c '^{image} [^ ]* fuse.squashfuse ' /proc/mounts; \
         touch /tmp/ready-{i}; while [ ! -e /tmp/go-{i} ]; do sleep 0.02; done; \
         sha256sum /data/big; exit {i}",
        image = test_image().sqfs_arg()
    );
    [
        "-v".to_string(),
        "-m".to_string(),
        s.mnt_arg(),
        format!("--join-ct={count}"),
        format!("--join-tag={tag}"),
        test_image().sqfs_arg(),
        "--".to_string(),
        "sh".to_string(),
        "-c".to_string(),
        script,
    ]
    .to_vec()
}

fn start_group(s: &Scratch, n: usize, tag: &str) -> Vec<Child> {
    start_peers(s, n, n, tag, &[])
}

/// What a group's peers said.
struct Finished {
    winner: usize,
    stderr: Vec<String>,
}

/// Waits until every peer runs its command.
fn wait_until_ready(s: &Scratch, n: usize) {
    for i in 0..n {
        wait_for_file(&s.tmp.join(format!("ready-{i}")));
    }
}

/// Lets the peers finish in `order`, checking each one's output.
fn finish_group(s: &Scratch, mut peers: Vec<Option<Child>>, order: &[usize]) -> Finished {
    wait_until_ready(s, peers.len());
    let mut namespaces = Vec::new();
    let mut winners = Vec::new();
    let mut stderrs = vec![String::new(); peers.len()];
    for &i in order {
        std::fs::write(s.tmp.join(format!("go-{i}")), "").unwrap();
        let child = peers[i].take().unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(i as i32),
            "peer {i}: {stdout} {stderr}"
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 3, "peer {i}: {stdout} {stderr}");
        namespaces.push(lines[0].to_string());
        assert_eq!(lines[1], "1", "peer {i} sees more than one FUSE mount");
        assert!(
            lines[2].starts_with(&test_image().big_sha256),
            "peer {i}: {stdout}"
        );
        if stderr.contains("join: I won") {
            winners.push(i);
        }
        stderrs[i] = stderr.into_owned();
    }
    namespaces.dedup();
    assert_eq!(
        namespaces.len(),
        1,
        "peers in different namespaces: {namespaces:?}"
    );
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    for entry in std::fs::read_dir(&s.tmp).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    s.assert_clean();
    Finished {
        winner: winners[0],
        stderr: stderrs,
    }
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for p in permutations(n - 1) {
        for pos in 0..=p.len() {
            let mut q = p.clone();
            q.insert(pos, n - 1);
            all.push(q);
        }
    }
    all
}

#[test]
fn two_peers_exit_in_either_order() {
    if !can_run_containers() {
        return;
    }
    // Alone, to see that each group leaves nothing in the shared directory.
    let _alone = exclusive();
    let s = Scratch::new("join2");
    for (k, order) in permutations(2).iter().enumerate() {
        let peers = start_group(&s, 2, &format!("two-{k}-{}", std::process::id()));
        finish_group(&s, peers.into_iter().map(Some).collect(), order);
        assert_no_group_dirs(&s);
    }
}

#[test]
fn four_peers_exit_in_every_order() {
    if !can_run_containers() {
        return;
    }
    let _together = shared();
    let s = Scratch::new("join4");
    let mut winners = std::collections::HashSet::new();
    for (k, order) in permutations(4).iter().enumerate() {
        let peers = start_group(&s, 4, &format!("four-{k}-{}", std::process::id()));
        let winner = finish_group(&s, peers.into_iter().map(Some).collect(), order).winner;
        // Where the winner exits in the order matters most: first, last, in between.
        winners.insert(order.iter().position(|&p| p == winner).unwrap());
    }
    assert!(
        winners.len() >= 2,
        "the winner always exited at the same place: {winners:?}"
    );
}

#[test]
fn a_killed_peer_leaves_the_others_working() {
    if !can_run_containers() {
        return;
    }
    let _together = shared();
    let s = Scratch::new("joinkill");
    for victim in 0..3 {
        let mut peers: Vec<Option<Child>> =
            start_group(&s, 3, &format!("kill-{victim}-{}", std::process::id()))
                .into_iter()
                .map(Some)
                .collect();
        wait_until_ready(&s, 3);
        // kill -9 the victim's ch-run: its command dies, the others go on.
        let mut child = peers[victim].take().unwrap();
        let wrapper = child.id();
        let pid = s.ch_run_pid(wrapper);
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let mut err = String::new();
        let _ = child.wait();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        std::fs::remove_file(s.tmp.join(format!("ready-{victim}"))).unwrap();
        let order: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
        for &i in &order {
            std::fs::write(s.tmp.join(format!("go-{i}")), "").unwrap();
            let out = peers[i].take().unwrap().wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(i as i32),
                "peer {i} after killing {victim}: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout
                    .lines()
                    .nth(2)
                    .is_some_and(|l| l.starts_with(&test_image().big_sha256)),
                "{stdout}"
            );
        }
        for entry in std::fs::read_dir(&s.tmp).unwrap().flatten() {
            std::fs::remove_file(entry.path()).unwrap();
        }
        s.assert_clean();
    }
}

#[test]
fn join_pid_enters_a_running_container() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("joinpid");
    let image = test_image().sqfs_arg();
    let mnt = s.mnt_arg();
    let first = s.spawn(
        &["-m", &mnt, &image, "--", "sh", "-c", "echo $$ > /tmp/pid; readlink /proc/self/ns/mnt; while [ ! -e /tmp/go ]; do sleep 0.02; done"],
        &[],
    );
    let pid = wait_for_line(&s.tmp.join("pid"));
    let out = s.run(&[
        &format!("--join-pid={pid}"),
        &image,
        "--",
        "sh",
        "-c",
        "readlink /proc/self/ns/mnt; cat /data/hello",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    std::fs::write(s.tmp.join("go"), "").unwrap();
    let first = first.wait_with_output().unwrap();
    let ns = String::from_utf8_lossy(&first.stdout).to_string();
    assert_eq!(out.stdout, format!("{ns}hello from the image\n"));
    let out = s.run(&["--join-pid=999999999", &image, "--", "true"]);
    assert_eq!(out.code, 31);
    assert!(
        out.stderr
            .contains("error: join: no PID 999999999: /proc/999999999/ns/user not found"),
        "{out:?}"
    );
    for f in ["pid", "go"] {
        std::fs::remove_file(s.tmp.join(f)).unwrap();
    }
    s.assert_clean();
}

#[test]
fn many_groups_started_at_once_all_run() {
    if !can_run_containers() {
        return;
    }
    let _together = shared();
    let s = Scratch::new("joinmany");
    let image = test_image().sqfs_arg();
    let mnt = s.mnt_arg();
    for group in 0..15 {
        let tag = format!("--join-tag=many-{group}-{}", std::process::id());
        // Peers that arrive while the winner is closing its group start another one.
        let peers: Vec<Child> = (0..4)
            .map(|_| {
                s.spawn(
                    &[
                        "-m",
                        &mnt,
                        "--join-ct=4",
                        &tag,
                        &image,
                        "--",
                        "ls",
                        "/proc/self/fd",
                    ],
                    &[],
                )
            })
            .collect();
        for peer in peers {
            let out = peer.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // The winner's command too: no peer connection leaks into it (3 is ls's own).
            assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n1\n2\n3\n");
        }
    }
    s.assert_clean();
}

/// Waits until every peer runs its command; a peer that ends first fails the test with
/// what it said.
fn wait_for_running(s: &Scratch, peers: &mut [Child], first: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for (k, peer) in peers.iter_mut().enumerate() {
        let i = first + k;
        while !s.tmp.join(format!("ready-{i}")).exists() {
            if let Ok(Some(status)) = peer.try_wait() {
                let mut err = String::new();
                let _ = peer.stderr.take().unwrap().read_to_string(&mut err);
                panic!("peer {i} ended before running: {status}: {err}");
            }
            assert!(Instant::now() < deadline, "peer {i} never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid, sig) };
}

/// kill -9 the supervisor of the peer `child` started (the winner's: its socket stays).
fn kill_supervisor(s: &Scratch, child: Child) {
    let ch_run = s.ch_run_pid(child.id());
    kill(s.child_ch_run(ch_run), libc::SIGKILL);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(31), "{out:?}");
}

/// Asserts what connecting to `socket` finds: ECONNREFUSED for a socket nobody listens on.
fn assert_dead_socket(socket: &Path) {
    let err = std::os::unix::net::UnixStream::connect(socket).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ECONNREFUSED),
        "{}: the killed winner did not leave a dead socket ({err}): nothing to test",
        socket.display()
    );
}

/// A group directory of the test user that an earlier, killed run left: removed, as the next
/// group would (the tests here look at that directory).
fn clear_leftovers() {
    let dir = group_dir();
    if dir.exists() && owner(&dir) == test_uid() {
        eprintln!("note: removing {} left by an earlier run", dir.display());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Whether this test can play two users (it runs as root and the second user exists); says
/// why not, and fails where containers are required.
fn can_play_two_users() -> bool {
    let ok = e2e_tests::sys::is_root()
        && Command::new("id")
            .arg(OTHER_USER)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        e2e_tests::skip::skip(&format!(
            "needs root and the user {OTHER_USER} (scripts/setup.sh makes it)"
        ));
    }
    ok
}

/// Another user holding every name the test user's groups could meet at, before they
/// start: the directory in /tmp, with a listening socket for each tag in it; a runtime
/// directory (for `XDG_RUNTIME_DIR`) with the same; the abstract socket names ch-run used
/// before. It tries the test user's home directory too, which it cannot write to.
struct Squatter {
    child: Child,
    dirs: Vec<PathBuf>,
    tags: Vec<String>,
}

const SQUAT: &str = r#"
import os, socket, sys
uid, xdg, home, host, tags = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
held = []
def listen(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(name)
    s.listen(8)
    held.append(s)
def squat(d):
    os.mkdir(d)
    os.chmod(d, 0o777)
    for t in tags:
        listen(f"{d}/tag-{t}")
        os.chmod(f"{d}/tag-{t}", 0o777)
squat(f"/tmp/ch-run-join.{uid}.{host}")
os.mkdir(xdg)
os.chmod(xdg, 0o777)
squat(f"{xdg}/ch-run-join.{host}")
for t in tags:
    listen(f"\0ch-run-join/{uid}/{t}")
try:
    os.mkdir(f"{home}/.ch-run-join.{host}")
    print("made one in home", flush=True)
except PermissionError:
    pass
print("ready", flush=True)
sys.stdin.read()
"#;

impl Squatter {
    fn start(tags: &[&str], xdg: &Path, home: &Path) -> Squatter {
        let mut child = Command::new("runuser")
            .args(["-u", OTHER_USER, "--", "python3", "-c", SQUAT])
            .arg(test_uid().to_string())
            .arg(xdg)
            .arg(home)
            .arg(escaped_host_name())
            .args(tags)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let squatter = Squatter {
            child,
            dirs: vec![group_dir(), xdg.to_path_buf()],
            tags: tags.iter().map(|t| t.to_string()).collect(),
        };
        assert_eq!(line, "ready\n", "{OTHER_USER} could not take the names");
        squatter
    }

    /// What it holds is still its own, as it made it: nothing was removed, taken or added.
    fn assert_untouched(&self) {
        let other = owner(&self.dirs[1]);
        for dir in [self.dirs[0].clone(), runtime_group_dir(&self.dirs[1])] {
            assert_eq!(owner(&dir), other, "{}", dir.display());
            let mut found: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            found.sort();
            let mut expected: Vec<String> = self.tags.iter().map(|t| format!("tag-{t}")).collect();
            expected.sort();
            assert_eq!(found, expected, "{}", dir.display());
        }
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A group of `n` forms while another user holds every name it could meet at: at once (not
/// after the join timeout), in the test user's home directory, saying why; it leaves the
/// other user's things alone and nothing of its own.
fn squatted_group_forms_quickly(n: usize) {
    if !can_run_containers() || !can_play_two_users() {
        return;
    }
    let _alone = exclusive();
    clear_leftovers();
    let s = Scratch::new(&format!("joinsquat{n}"));
    let tag = format!("squat{n}-{}", std::process::id());
    let xdg = PathBuf::from(format!("/tmp/ch-run-test-xdg{n}-{}", std::process::id()));
    let squatter = Squatter::start(&[&tag], &xdg, &s.home);
    let xdg_arg = xdg.to_string_lossy().into_owned();
    let started = Instant::now();
    let mut peers = start_peers(&s, n, n, &tag, &[("XDG_RUNTIME_DIR", &xdg_arg)]);
    wait_for_running(&s, &mut peers, 0);
    let took = started.elapsed();
    let order: Vec<usize> = (0..n).collect();
    let finished = finish_group(&s, peers.into_iter().map(Some).collect(), &order);
    assert!(took < QUICK, "the group took {took:?} to form");
    let home = s.home.to_string_lossy().into_owned();
    for (i, err) in finished.stderr.iter().enumerate() {
        for passed_over in [group_dir(), runtime_group_dir(&xdg)] {
            let warning = format!("warning: join: not using {}", passed_over.display());
            assert!(
                err.contains(&warning),
                "peer {i} did not say {warning}: {err}"
            );
        }
        let used = format!("join: peer group socket: {home}/.ch-run-join.");
        assert!(err.contains(&used), "peer {i} did not say {used}: {err}");
    }
    squatter.assert_untouched();
    assert_no_group_dirs(&s);
}

#[test]
fn another_user_holding_the_names_stops_no_group_of_two() {
    squatted_group_forms_quickly(2);
}

#[test]
fn another_user_holding_the_names_stops_no_group_of_four() {
    squatted_group_forms_quickly(4);
}

#[test]
fn a_killed_winners_socket_neither_stops_nor_delays_the_next_group() {
    if !can_run_containers() {
        return;
    }
    let _alone = exclusive();
    clear_leftovers();
    let s = Scratch::new("joinstale");
    let tag = format!("stale-{}", std::process::id());
    // The winner of a group still waiting for its second peer, killed: its socket stays.
    let mut first = start_peers(&s, 1, 2, &tag, &[]);
    wait_for_running(&s, &mut first, 0);
    kill_supervisor(&s, first.remove(0));
    assert_dead_socket(&socket_in(&group_dir(), &tag));
    std::fs::remove_file(s.tmp.join("ready-0")).unwrap();
    s.assert_clean();
    // The next group with that tag forms at once.
    let started = Instant::now();
    let mut peers = start_group(&s, 2, &tag);
    wait_for_running(&s, &mut peers, 0);
    let took = started.elapsed();
    let finished = finish_group(&s, peers.into_iter().map(Some).collect(), &[0, 1]);
    assert!(took < QUICK, "the group took {took:?} to form");
    let said = &finished.stderr[finished.winner];
    assert!(
        said.contains("join: the last winner was killed; taking its place"),
        "{said}"
    );
    assert_no_group_dirs(&s);
}

#[test]
fn the_last_peer_removes_what_a_killed_winner_left() {
    if !can_run_containers() {
        return;
    }
    let _alone = exclusive();
    clear_leftovers();
    let s = Scratch::new("joinlast");
    let tag = format!("last-{}", std::process::id());
    // Two of a group of three: the winner still listens for the third when it is killed.
    let mut winner = start_peers(&s, 1, 3, &tag, &[]);
    wait_for_running(&s, &mut winner, 0);
    let mut peer = vec![start_peer(&s, 1, 3, &tag, &[])];
    wait_for_running(&s, &mut peer, 1);
    kill_supervisor(&s, winner.remove(0));
    assert_dead_socket(&socket_in(&group_dir(), &tag));
    // The peer ends (its image went with the winner's server) and clears up.
    std::fs::write(s.tmp.join("go-1"), "").unwrap();
    let out = peer.remove(0).wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("join: I lost"), "{said}");
    for entry in std::fs::read_dir(&s.tmp).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    // Its supervisor, which clears up last, outlives the command a little.
    s.assert_clean();
    assert_no_group_dirs(&s);
}

#[test]
fn a_private_runtime_directory_is_used_and_left_empty() {
    if !can_run_containers() {
        return;
    }
    let _together = shared();
    let s = Scratch::new("joinxdg");
    let xdg = s.dir.join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    std::os::unix::fs::chown(&xdg, Some(test_uid()), None).unwrap();
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let xdg_arg = xdg.to_string_lossy().into_owned();
    let tag = format!("xdg-{}", std::process::id());
    let peers = start_peers(&s, 2, 2, &tag, &[("XDG_RUNTIME_DIR", &xdg_arg)]);
    let finished = finish_group(&s, peers.into_iter().map(Some).collect(), &[1, 0]);
    let used = format!(
        "join: peer group socket: {}",
        socket_in(&runtime_group_dir(&xdg), &tag).display()
    );
    for err in &finished.stderr {
        assert!(err.contains(&used), "{err}");
        assert!(!err.contains("warning"), "{err}");
    }
    let left: Vec<_> = std::fs::read_dir(&xdg)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left in XDG_RUNTIME_DIR: {left:?}");
}

/// Peer `i` of a group of `count` on the simulated node `host` (`Scratch::command_on_host`:
/// this machine's `/tmp`, a host name of its own).
fn start_peer_on(s: &Scratch, host: &str, i: usize, count: usize, tag: &str) -> Child {
    let args = peer_args(s, i, count, tag);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s.command_on_host(host, &args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Two nodes whose `/tmp` is one shared file system, and a step with two ranks on each: one
/// user, one tag, one directory. Each node's ranks form a container of their own. (On two
/// kernels a connect to the other node's socket is refused, and each node took the other's
/// live socket for a dead one and replaced it; on one kernel, as here, it succeeds and the
/// groups mix.)
#[test]
fn nodes_sharing_tmp_keep_to_their_own_groups() {
    if !can_run_containers() || !e2e_tests::skip::needs(&[e2e_tests::skip::Need::Root]) {
        return;
    }
    let _together = shared();
    let s = Scratch::new("joinhosts");
    let pid = std::process::id();
    let hosts = [format!("nodeA-{pid}"), format!("nodeB-{pid}")];
    let tag = format!("hosts-{pid}");
    // Rank i runs on hosts[i % 2]. Node A's first rank is waiting for its peer, its socket
    // open, when node B's first rank arrives; then the second rank of each comes.
    let host_of = |i: usize| hosts[i % 2].as_str();
    let mut peers = Vec::new();
    for i in 0..2 {
        let mut peer = vec![start_peer_on(&s, host_of(i), i, 2, &tag)];
        wait_for_running(&s, &mut peer, i);
        peers.extend(peer);
    }
    let mut second: Vec<Child> = (2..4)
        .map(|i| start_peer_on(&s, host_of(i), i, 2, &tag))
        .collect();
    wait_for_running(&s, &mut second, 2);
    peers.extend(second);
    for i in 0..4 {
        std::fs::write(s.tmp.join(format!("go-{i}")), "").unwrap();
    }
    let (mut namespaces, mut stderrs) = (Vec::new(), Vec::new());
    for (i, peer) in peers.into_iter().enumerate() {
        let out = peer.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(i as i32),
            "rank {i}: {stdout} {stderr}"
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 3, "rank {i}: {stdout} {stderr}");
        assert_eq!(lines[1], "1", "rank {i} sees more than one FUSE mount");
        assert!(
            lines[2].starts_with(&test_image().big_sha256),
            "rank {i}: {stdout}"
        );
        namespaces.push(lines[0].to_string());
        stderrs.push(stderr.into_owned());
    }
    assert!(
        namespaces[0] == namespaces[2]
            && namespaces[1] == namespaces[3]
            && namespaces[0] != namespaces[1],
        "ranks 0 and 2 on {}, 1 and 3 on {}, in mount namespaces {namespaces:?}",
        hosts[0],
        hosts[1]
    );
    // Each node met in a directory named for it.
    for (i, stderr) in stderrs.iter().enumerate() {
        let own = format!(".{}/tag-{tag}", host_of(i));
        assert!(
            stderr.contains("join: peer group socket: ") && stderr.contains(&own),
            "rank {i} on {} did not meet at …{own}: {stderr}",
            host_of(i)
        );
    }
    for entry in std::fs::read_dir(&s.tmp).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    s.assert_clean();
    // Each group left nothing.
    for host in &hosts {
        let dir = PathBuf::from(format!("/tmp/ch-run-join.{}.{host}", test_uid()));
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

//! `--join`: the ranks of one node share one user+mount namespace and one FUSE mount, and
//! the image stays mounted until the last peer exits, whatever order they exit in, even when
//! a peer is killed. `--join-pid` enters a running container.

use std::io::Read;
use std::process::Child;
use std::time::Duration;

use e2e_tests::container::{can_run_containers, test_image, wait_for_file, Scratch};

/// Starts `n` peers; each reports its mount namespace and the number of FUSE mounts it
/// sees, waits for its go file, then checksums the big file and exits with its index.
fn start_group(s: &Scratch, n: usize, tag: &str) -> Vec<Child> {
    let image = test_image().sqfs_arg();
    let mnt = s.mnt_arg();
    let count = format!("--join-ct={n}");
    let tag = format!("--join-tag={tag}");
    (0..n)
        .map(|i| {
            let script = format!(
                "readlink /proc/self/ns/mnt; grep -c fuse.squashfuse /proc/mounts; \
                 touch /tmp/ready-{i}; while [ ! -e /tmp/go-{i} ]; do sleep 0.02; done; \
                 sha256sum /data/big; exit {i}"
            );
            s.spawn(
                &[
                    "-v", "-m", &mnt, &count, &tag, &image, "--", "sh", "-c", &script,
                ],
                &[],
            )
        })
        .collect()
}

/// Lets the peers finish in `order`, checking each one's output; returns who won.
fn finish_group(s: &Scratch, mut peers: Vec<Option<Child>>, order: &[usize]) -> usize {
    for i in 0..peers.len() {
        wait_for_file(&s.tmp.join(format!("ready-{i}")));
    }
    let mut namespaces = Vec::new();
    let mut winners = Vec::new();
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
    winners[0]
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
    let s = Scratch::new("join2");
    for (k, order) in permutations(2).iter().enumerate() {
        let peers = start_group(&s, 2, &format!("two-{k}-{}", std::process::id()));
        finish_group(&s, peers.into_iter().map(Some).collect(), order);
    }
}

#[test]
fn four_peers_exit_in_every_order() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("join4");
    let mut winners = std::collections::HashSet::new();
    for (k, order) in permutations(4).iter().enumerate() {
        let peers = start_group(&s, 4, &format!("four-{k}-{}", std::process::id()));
        let winner = finish_group(&s, peers.into_iter().map(Some).collect(), order);
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
    let s = Scratch::new("joinkill");
    for victim in 0..3 {
        let mut peers: Vec<Option<Child>> =
            start_group(&s, 3, &format!("kill-{victim}-{}", std::process::id()))
                .into_iter()
                .map(Some)
                .collect();
        for i in 0..3 {
            wait_for_file(&s.tmp.join(format!("ready-{i}")));
        }
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
    wait_for_file(&s.tmp.join("pid"));
    std::thread::sleep(Duration::from_millis(50));
    let pid = std::fs::read_to_string(s.tmp.join("pid"))
        .unwrap()
        .trim()
        .to_string();
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

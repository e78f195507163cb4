//! How long things live: signals sent to ch-run reach the command, `kill -9` of ch-run ends
//! everything it started, processes the command leaves in the background keep a working
//! image until they exit, and many ch-runs on one image at once all work.

use std::io::Read;
use std::time::{Duration, Instant};

use e2e_tests::container::{can_run_containers, test_image, wait_for_file, Scratch};
use e2e_tests::skip::{needs, Need};

#[test]
fn signals_sent_to_ch_run_reach_the_command() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("signals");
    let mnt = s.mnt_arg();
    for sig in ["TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "ALRM"] {
        let ready = s.tmp.join("ready");
        let script = format!("trap 'echo got-{sig}; exit 3' {sig}; touch /tmp/ready; while true; do sleep 0.05; done");
        let mut child = s.spawn(
            &[
                "-m",
                &mnt,
                &test_image().sqfs_arg(),
                "--",
                "sh",
                "-c",
                &script,
            ],
            &[],
        );
        wait_for_file(&ready);
        let pid = s.ch_run_pid(child.id());
        let signal = format!("-{sig}");
        assert!(std::process::Command::new("kill")
            .args([&signal, &pid.to_string()])
            .status()
            .unwrap()
            .success());
        let status = child.wait().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, format!("got-{sig}\n"), "{sig}");
        assert_eq!(status.code(), Some(3), "{sig}");
        std::fs::remove_file(&ready).unwrap();
        s.assert_clean();
    }
}

#[test]
fn kill_9_of_ch_run_ends_everything() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("kill9");
    let mnt = s.mnt_arg();
    let script = "sleep 1000 & (sleep 1000 &) ; setsid sleep 1000 & touch /tmp/ready; wait";
    let mut child = s.spawn(
        &[
            "-m",
            &mnt,
            &test_image().sqfs_arg(),
            "--",
            "sh",
            "-c",
            script,
        ],
        &[],
    );
    wait_for_file(&s.tmp.join("ready"));
    std::fs::remove_file(s.tmp.join("ready")).unwrap();
    let pid = s.ch_run_pid(child.id());
    assert!(s.processes().len() >= 5, "{:?}", s.processes());
    nix_kill(pid, libc::SIGKILL);
    let _ = child.wait();
    s.assert_clean();
}

fn nix_kill(pid: i32, sig: i32) {
    // SAFETY: kill has no memory preconditions.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

#[test]
fn background_processes_keep_a_working_image() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("background");
    let mnt = s.mnt_arg();
    // The command returns at once; its background job reads the image for a while after.
    // (Its output goes elsewhere: a job holding our stdout would keep the pipe open.) `done`
    // is made only once both results are written: `> /tmp/count` creates an empty file first.
    let script = "(sleep 4; sha256sum /data/big > /tmp/sum; ls /bin | wc -l > /tmp/count; touch /tmp/done) >/dev/null 2>&1 & echo started; exit 5";
    let started = Instant::now();
    let out = s.run(&[
        "-m",
        &mnt,
        &test_image().sqfs_arg(),
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (5, "started\n"), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "ch-run waited for the background job"
    );
    assert!(!s.processes().is_empty(), "the background job is gone");
    wait_for_file(&s.tmp.join("done"));
    let sum = std::fs::read_to_string(s.tmp.join("sum")).unwrap();
    assert!(sum.starts_with(&test_image().big_sha256), "{sum}");
    let count: usize = std::fs::read_to_string(s.tmp.join("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(count > 20, "{count}");
    for f in ["sum", "count", "done"] {
        std::fs::remove_file(s.tmp.join(f)).unwrap();
    }
    s.assert_clean();
}

#[test]
fn sixty_four_concurrent_runs_on_one_image() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("concurrent");
    let mnt = s.mnt_arg();
    let children: Vec<_> = (0..64)
        .map(|_| {
            s.spawn(
                &[
                    "-m",
                    &mnt,
                    &test_image().sqfs_arg(),
                    "--",
                    "sha256sum",
                    "/data/big",
                ],
                &[],
            )
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with(&test_image().big_sha256), "{stdout}");
    }
    s.assert_clean();
}

/// The signals this test process ignores, as /proc shows them.
fn ignored_mask() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
fn the_command_gets_only_stdio_and_keeps_ignored_signals() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("inherit");
    let mnt = s.mnt_arg();
    // (busybox sh keeps descriptors of its own: ask ls about itself; 3 is its listing.)
    let out = s.run(&[
        "-m",
        &mnt,
        &test_image().sqfs_arg(),
        "--",
        "ls",
        "/proc/self/fd",
    ]);
    assert_eq!(
        out.stdout, "0\n1\n2\n3\n",
        "descriptors leaked into the command: {out:?}"
    );
    let out = s.run(&[
        "-m",
        &mnt,
        &test_image().sqfs_arg(),
        "--",
        "grep",
        "-E",
        "Sig(Ign|Blk)",
        "/proc/self/status",
    ]);
    // Signals ch-run blocks or ignores for itself don't reach the command; what the test
    // process was started with (apart from SIGPIPE, which Rust ignores) does, as from a shell.
    let inherited = ignored_mask() & !(1 << (libc::SIGPIPE - 1));
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.contains(&"SigBlk:\t0000000000000000"), "{out:?}");
    let expected = format!("SigIgn:\t{inherited:016x}");
    assert!(lines.contains(&expected.as_str()), "{out:?}");
    // nohup: SIGHUP stays ignored in the command, and a hangup doesn't end the run.
    let mut cmd = s.launched_command(
        &["nohup"],
        &[
            "-m",
            &mnt,
            &test_image().sqfs_arg(),
            "--",
            "sh",
            "-c",
            "grep SigIgn /proc/self/status; touch /tmp/ready; sleep 1",
        ],
        &[],
    );
    let child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    wait_for_file(&s.tmp.join("ready"));
    let pid = s.ch_run_pid(child.id());
    nix_kill(pid, libc::SIGHUP);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "a hangup ended a nohup run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("SigIgn:\t{:016x}\n", inherited | 1)
    );
    std::fs::remove_file(s.tmp.join("ready")).unwrap();
    s.assert_clean();
}

#[test]
fn ch_run_dies_of_the_commands_signal() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("diesof");
    let mnt = s.mnt_arg();
    // (runuser turns a signal death into 128+N: a tiny python parent reports it as is.)
    let report = "import subprocess, sys; print(subprocess.run(sys.argv[1:]).returncode)";
    let out = s
        .launched_command(
            &["python3", "-c", report],
            &[
                "-m",
                &mnt,
                &test_image().sqfs_arg(),
                "--",
                "sh",
                "-c",
                "kill -INT $$",
            ],
            &[],
        )
        .output()
        .unwrap();
    // Killed by SIGINT itself (not exit 130), so a shell loop around it stops at ^C.
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(code, format!("-{}", libc::SIGINT), "{out:?}");
    s.assert_clean();
}

#[test]
fn killing_the_supervisor_ends_the_command() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("killsup");
    let mnt = s.mnt_arg();
    let child = s.spawn(
        &[
            "-m",
            &mnt,
            &test_image().sqfs_arg(),
            "--",
            "sh",
            "-c",
            "touch /tmp/ready; sleep 1000",
        ],
        &[],
    );
    wait_for_file(&s.tmp.join("ready"));
    std::fs::remove_file(s.tmp.join("ready")).unwrap();
    let ch_run = s.ch_run_pid(child.id());
    let supervisor = s.child_ch_run(ch_run);
    nix_kill(supervisor, libc::SIGKILL);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(31));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("error: container supervisor died unexpectedly"),
        "{out:?}"
    );
    s.assert_clean();
}

#[test]
fn a_signal_during_setup_ends_everything() {
    // Root, to run a stuck join winner as the test user.
    if !needs(&[Need::Containers, Need::Root]) {
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    let s = Scratch::new("setupsig");
    let mnt = s.mnt_arg();
    // A "winner" that never lets anyone in: ch-run waits in setup. It listens where the
    // test user's group meets (runtime/src/join/rendezvous.rs).
    let tag = format!("stuck-{}", std::process::id());
    let uid = e2e_tests::container::test_uid();
    let host = e2e_tests::container::escaped_host_name();
    let group_dir = format!("/tmp/ch-run-join.{uid}.{host}");
    let socket = format!("{group_dir}/tag-{tag}");
    let listener = format!(
        "import os,socket,time\nos.makedirs('{group_dir}', 0o700, exist_ok=True)\ns=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\ns.bind('{socket}')\ns.listen(8)\nopen('{}/listening','w').close()\ntime.sleep(60)\n",
        s.tmp.display()
    );
    let mut stuck = std::process::Command::new("runuser")
        .args([
            "-u",
            e2e_tests::container::TEST_USER,
            "--",
            "python3",
            "-c",
            &listener,
        ])
        .spawn()
        .unwrap();
    wait_for_file(&s.tmp.join("listening"));
    std::fs::remove_file(s.tmp.join("listening")).unwrap();
    let join_tag = format!("--join-tag={tag}");
    let child = s.spawn(
        &[
            "-m",
            &mnt,
            "--join-ct=2",
            &join_tag,
            &test_image().sqfs_arg(),
            "--",
            "true",
        ],
        &[],
    );
    std::thread::sleep(Duration::from_millis(500));
    let ch_run = s.ch_run_pid(child.id());
    nix_kill(ch_run, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let _ = stuck.kill();
    let _ = stuck.wait();
    // The stuck winner was no ch-run: nothing cleans up after it.
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_dir(&group_dir);
    // runuser reports its child's death by signal as 128+N.
    assert!(
        out.status.signal() == Some(libc::SIGTERM)
            || out.status.code() == Some(128 + libc::SIGTERM),
        "{out:?}"
    );
    s.assert_clean();
}

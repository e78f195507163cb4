//! How long things live: signals sent to ch-run reach the command, `kill -9` of ch-run ends
//! everything it started, processes the command leaves in the background keep a working
//! image until they exit, and many ch-runs on one image at once all work.

use std::io::Read;
use std::time::{Duration, Instant};

use e2e_tests::container::{can_run_containers, test_image, wait_for_file, Scratch};

fn image() -> String {
    test_image().sqfs.to_string_lossy().into_owned()
}

#[test]
fn signals_sent_to_ch_run_reach_the_command() {
    if !can_run_containers() {
        return;
    }
    let s = Scratch::new("signals");
    let mnt = s.mnt.to_string_lossy().into_owned();
    for sig in ["TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "ALRM"] {
        let ready = s.tmp.join("ready");
        let script = format!("trap 'echo got-{sig}; exit 3' {sig}; touch /tmp/ready; while true; do sleep 0.05; done");
        let mut child = s.spawn(&["-m", &mnt, &image(), "--", "sh", "-c", &script], &[]);
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
    let mnt = s.mnt.to_string_lossy().into_owned();
    let script = "sleep 1000 & (sleep 1000 &) ; setsid sleep 1000 & touch /tmp/ready; wait";
    let mut child = s.spawn(&["-m", &mnt, &image(), "--", "sh", "-c", script], &[]);
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
    let mnt = s.mnt.to_string_lossy().into_owned();
    // The command returns at once; its background job reads the image for a while after.
    // (Its output goes elsewhere: a job holding our stdout would keep the pipe open.)
    let script = "(sleep 2; sha256sum /data/big > /tmp/sum; ls /bin | wc -l > /tmp/count) >/dev/null 2>&1 & echo started; exit 5";
    let started = Instant::now();
    let out = s.run(&["-m", &mnt, &image(), "--", "sh", "-c", script]);
    assert_eq!((out.code, out.stdout.as_str()), (5, "started\n"), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "ch-run waited for the background job"
    );
    assert!(!s.processes().is_empty(), "the background job is gone");
    wait_for_file(&s.tmp.join("count"));
    std::thread::sleep(Duration::from_millis(100));
    let sum = std::fs::read_to_string(s.tmp.join("sum")).unwrap();
    assert!(sum.starts_with(&test_image().big_sha256), "{sum}");
    let count: usize = std::fs::read_to_string(s.tmp.join("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(count > 20, "{count}");
    for f in ["sum", "count"] {
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
    let mnt = s.mnt.to_string_lossy().into_owned();
    let children: Vec<_> = (0..64)
        .map(|_| s.spawn(&["-m", &mnt, &image(), "--", "sha256sum", "/data/big"], &[]))
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

//! ch-run under a real one-node Slurm (`scripts/slurm-up.sh`, which `scripts/setup.sh`
//! starts): `srun` ranks, `--join` with one mount per node, MPI over PMIx, `scancel`, exit
//! codes. Without a running Slurm these tests are recorded skips (`e2e_tests::skip`), and a
//! failure where `CH_TEST_REQUIRE_SLURM`, `CH_TEST_REQUIRE_ALL` or `CI` is set.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use e2e_tests::container::{test_image, Outcome, Scratch};
use e2e_tests::mpi::mpi_image_in;
use e2e_tests::skip::{needs, Need};

/// Whether Slurm is up and ch-run can run; if not, the test is a recorded skip (a failure
/// with `CH_TEST_REQUIRE_SLURM` or `CI` set).
fn slurm_running() -> bool {
    needs(&[Need::Slurm, Need::Containers])
}

/// Held by each test from start to its cleanliness check: the tests run as one user, and
/// one's check would take another's live objects (an MPI rank's `/dev/shm` segment) for
/// ones left behind.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn srun(s: &Scratch, srun_args: &[&str], args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut launcher = vec!["srun"];
    launcher.extend_from_slice(srun_args);
    let mut cmd = s.launched_command(&launcher, args, env);
    Outcome::from(cmd.output().unwrap())
}

#[test]
fn ranks_run_and_exit_codes_come_through() {
    if !slurm_running() {
        return;
    }
    let _serial = one_at_a_time();
    let s = Scratch::new("srun");
    let mnt = s.mnt_arg();
    let out = srun(
        &s,
        &["-n", "4"],
        &[
            "-m",
            &mnt,
            &test_image().sqfs_arg(),
            "--",
            "sh",
            "-c",
            "echo $SLURM_PROCID",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let ranks: BTreeSet<&str> = out.stdout.lines().collect();
    assert_eq!(ranks, BTreeSet::from(["0", "1", "2", "3"]), "{out:?}");
    let out = srun(
        &s,
        &["-n", "3"],
        &[
            "-m",
            &mnt,
            &test_image().sqfs_arg(),
            "--",
            "sh",
            "-c",
            "exit $((SLURM_PROCID == 1 ? 3 : 0))",
        ],
        &[],
    );
    assert_eq!(out.code, 3, "{out:?}");
    s.assert_clean();
}

#[test]
fn join_gives_the_step_one_mount() {
    if !slurm_running() {
        return;
    }
    let _serial = one_at_a_time();
    let s = Scratch::new("srunjoin");
    let mnt = s.mnt_arg();
    // Ranks end at different times; the late ones read the image after the early ones left.
    // Mounts of this image only: another program's FUSE mount under /dev (bound in) is none
    // of the step's.
    let script = format!(
        "echo $(readlink /proc/self/ns/mnt) $(grep -c '^{image} [^ ]* fuse.squashfuse ' /proc/mounts); \
         sleep 0.$((SLURM_PROCID * 2)); sha256sum /data/big",
        image = test_image().sqfs_arg()
    );
    let out = srun(
        &s,
        &["-n", "8"],
        &[
            "--join",
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
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 16, "{out:?}");
    let namespaces: BTreeSet<&str> = lines
        .iter()
        .filter(|l| l.starts_with("mnt:"))
        .copied()
        .collect();
    assert_eq!(
        namespaces.len(),
        1,
        "ranks in different containers: {namespaces:?}"
    );
    assert!(
        namespaces.iter().next().unwrap().ends_with(" 1"),
        "{namespaces:?}"
    );
    let sums = lines
        .iter()
        .filter(|l| l.starts_with(&test_image().big_sha256))
        .count();
    assert_eq!(sums, 8, "{out:?}");
    s.assert_clean();
}

/// The MPI image (`e2e_tests::mpi`), built once per test binary, in `reachable::dir()`
/// (removed at exit).
fn mpi_image() -> &'static PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| mpi_image_in(e2e_tests::reachable::dir()))
}

#[test]
fn mpi_allreduce_across_joined_ranks() {
    if !slurm_running() {
        return;
    }
    let _serial = one_at_a_time();
    let s = Scratch::new("mpi");
    let mnt = s.mnt_arg();
    let image = mpi_image().to_string_lossy().into_owned();
    let out = srun(
        &s,
        &["--mpi=pmix", "-n", "4"],
        &["--join", "-b", "/usr", "-m", &mnt, &image, "--", "/hello"],
        // PMIx's shared-memory store warns about locks it can't take: use its plain one.
        &[("PMIX_MCA_gds", "hash")],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let lines: BTreeSet<&str> = out.stdout.lines().collect();
    let expected: BTreeSet<String> = (0..4).map(|r| format!("rank {r} of 4: sum 6")).collect();
    assert_eq!(
        lines,
        expected.iter().map(String::as_str).collect(),
        "{out:?}"
    );
    // Slurm's PMIx plugin makes spmix_appdir_UID_JOB.STEP in the job's $TMPDIR and the MPI
    // ranks delete it at MPI_Finalize by its host path, which a container (Charliecloud's
    // too) sees at /tmp instead: it stays. Not ch-run's file; everything else must be gone.
    for entry in std::fs::read_dir(&s.tmp).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(name.starts_with("spmix_appdir_"), "temp file left: {name}");
        std::fs::remove_dir_all(entry.path()).unwrap();
    }
    s.assert_clean();
}

#[test]
fn scancel_leaves_nothing_behind() {
    if !slurm_running() {
        return;
    }
    let _serial = one_at_a_time();
    let s = Scratch::new("scancel");
    let mnt = s.mnt_arg();
    let name = format!("chrun-scancel-{}", std::process::id());
    let job_name = format!("--job-name={name}");
    for join in [false, true] {
        let mut args = vec!["-m", &mnt];
        if join {
            args.push("--join");
        }
        let image = test_image().sqfs_arg();
        args.extend_from_slice(&[
            &image,
            "--",
            "sh",
            "-c",
            "sleep 1000 & touch /tmp/ready-$SLURM_PROCID; wait",
        ]);
        let mut child = s
            .launched_command(&["srun", "-n", "2", &job_name], &args, &[])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(s.tmp.join("ready-0").exists() && s.tmp.join("ready-1").exists()) {
            assert!(Instant::now() < deadline, "ranks never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(s.processes().len() >= 4, "{:?}", s.processes());
        let ok = Command::new("scancel")
            .args(["-n", &name])
            .status()
            .unwrap();
        assert!(ok.success());
        let _ = child.wait();
        for r in ["ready-0", "ready-1"] {
            std::fs::remove_file(s.tmp.join(r)).unwrap();
        }
        // Slurm sends SIGTERM, then SIGKILL after KillWait (5 s).
        s.assert_clean_within(Duration::from_secs(20));
    }
}

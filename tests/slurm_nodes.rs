//! ch-run across two Slurm nodes: the partition `two` of `scripts/slurm-up.sh`, chnode1 and
//! chnode2, each simulated on this machine in its own network, UTS and mount namespaces with
//! its own `/tmp`, `/var/tmp`, `/run` and `/dev/shm` (`scripts/slurm-nodes.sh`). The image
//! and `ch-run` are where both nodes see them (`reachable::shared_dir()`), as on a cluster's
//! shared file system; the ranks' `TMPDIR` is the node's own `/tmp`.
//!
//! `--join` makes one mount per node, shared by that node's ranks only, also when the nodes
//! have different numbers of ranks and when the rendezvous falls back to the shared home
//! directory; a node's ranks never wait for the other node's; MPI works across the nodes in
//! joined containers; `scancel` leaves nothing on either node. The tests look into each node
//! through its slurmd's `/proc/PID/root` and `/proc/PID/mounts`, so they need root; without
//! the nodes they are recorded skips (failures where `CH_TEST_REQUIRE_SLURM`, `_ALL` or `CI`
//! is set).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use e2e_tests::container::{test_image, test_uid, Outcome, Scratch};
use e2e_tests::mpi::mpi_image_in;
use e2e_tests::reachable::{shared_binary, shared_dir};
use e2e_tests::skip::{needs, Need};

/// The tests share the nodes' `/tmp`, where they look for leftovers: one at a time.
static NODES: Mutex<()> = Mutex::new(());

/// Generous bound for what a test waits for (a rank starting, a group completing).
const PATIENCE: Duration = Duration::from_secs(60);

/// The name of this process's jobs.
fn job_name() -> String {
    format!("chrun-nodes-{}", std::process::id())
}

/// A test's turn with the nodes; at its end, a job a failed test left running is cancelled.
struct Turn {
    _lock: MutexGuard<'static, ()>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = Command::new("scancel")
            .arg(format!("--name={}", job_name()))
            .status();
    }
}

/// The nodes, if they are up and ch-run can run (else a recorded skip), and this test's turn.
fn nodes_ready() -> Option<Turn> {
    if !needs(&[Need::Root, Need::SlurmNodes, Need::Containers]) {
        return None;
    }
    Some(Turn {
        _lock: NODES.lock().unwrap_or_else(|e| e.into_inner()),
    })
}

/// A simulated node, seen from this machine through its slurmd.
struct Node {
    name: String,
    slurmd: u32,
    /// What its /tmp and /dev/shm held when the test started.
    before: Vec<PathBuf>,
}

impl Node {
    /// `path` as the node sees it.
    fn path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.slurmd))
    }

    fn entries(&self, dir: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.path(dir))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    fn scratch_entries(&self) -> Vec<PathBuf> {
        let mut all = self.entries("/tmp");
        all.extend(self.entries("/dev/shm"));
        all
    }

    /// Whether process `pid` runs on this node (is in its network namespace).
    fn runs(&self, pid: u32) -> bool {
        let ns = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/net")).ok();
        ns(pid).is_some() && ns(pid) == ns(self.slurmd)
    }

    /// The test user's rendezvous directory in the node's /tmp (the node's name is its host
    /// name, `scripts/slurm-nodes.sh`).
    fn group_dir(&self) -> PathBuf {
        self.path(&self.group_dir_in_node())
    }

    /// `group_dir` as the node sees it.
    fn group_dir_in_node(&self) -> String {
        format!("/tmp/ch-run-join.{}.{}", test_uid(), self.name)
    }
}

/// The nodes of the partition `two`, each with its slurmd's pid.
fn nodes() -> Vec<Node> {
    let out = Command::new("sinfo")
        .args(["-h", "-N", "-p", "two", "-o", "%N"])
        .output()
        .unwrap();
    let names: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(names.len(), 2, "partition two: {names:?}");
    names
        .into_iter()
        .map(|name| {
            let slurmd = slurmd_of(&name)
                .unwrap_or_else(|| panic!("no slurmd -N {name} (scripts/slurm-nodes.sh)"));
            let mut node = Node {
                name,
                slurmd,
                before: Vec::new(),
            };
            node.before = node.scratch_entries();
            node
        })
        .collect()
}

/// The slurmd started with `-N name`.
fn slurmd_of(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let named = args
            .windows(2)
            .any(|w| w[0] == b"-N" && w[1] == name.as_bytes());
        (comm.trim() == "slurmd" && named).then_some(pid)
    })
}

/// The test image where both nodes see it.
fn image() -> String {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    let path = IMAGE.get_or_init(|| {
        let copy = shared_dir().join("busybox.sqfs");
        std::fs::copy(&test_image().sqfs, &copy).unwrap();
        copy
    });
    path.to_string_lossy().into_owned()
}

fn mpi_image() -> String {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| mpi_image_in(shared_dir()))
        .to_string_lossy()
        .into_owned()
}

/// `srun -p two SRUN_ARGS ch-run ARGS` as the test user, the ranks' TMPDIR their node's /tmp.
fn srun_command(s: &Scratch, srun_args: &[&str], args: &[&str], env: &[(&str, &str)]) -> Command {
    srun_program(s, srun_args, &shared_binary("ch-run"), args, env)
}

/// `srun -p two SRUN_ARGS PROGRAM ARGS`, as `srun_command`.
fn srun_program(
    s: &Scratch,
    srun_args: &[&str],
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let name = format!("--job-name={}", job_name());
    let mut launcher = vec!["srun", "-p", "two", &name];
    launcher.extend_from_slice(srun_args);
    let mut vars = vec![("TMPDIR", "/tmp")];
    vars.extend_from_slice(env);
    s.launched_command_of(program, &launcher, args, &vars)
}

fn srun(s: &Scratch, srun_args: &[&str], args: &[&str], env: &[(&str, &str)]) -> Outcome {
    Outcome::from(srun_command(s, srun_args, args, env).output().unwrap())
}

fn spawn(s: &Scratch, srun_args: &[&str], args: &[&str]) -> Child {
    srun_command(s, srun_args, args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A directory of the test's, shared by both nodes, bound at /mnt in the containers.
fn shared_mnt(s: &Scratch) -> (PathBuf, String) {
    let dir = s.dir.join("shared");
    std::fs::create_dir_all(&dir).unwrap();
    Command::new("chown")
        .arg(e2e_tests::container::TEST_USER)
        .arg(&dir)
        .status()
        .unwrap();
    let bind = format!("{}:/mnt", dir.display());
    (dir, bind)
}

/// Waits until `done` holds, for at most `PATIENCE`; `what` says what was awaited.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines `started-R` files in `dir` hold, by rank, once `n` ranks wrote theirs.
fn wait_for_ranks(dir: &Path, n: usize) -> BTreeMap<usize, String> {
    wait_until(&format!("{n} ranks started"), || {
        (0..n).all(|r| {
            std::fs::read_to_string(dir.join(format!("started-{r}")))
                .is_ok_and(|t| t.ends_with('\n'))
        })
    });
    (0..n)
        .map(|r| {
            let text = std::fs::read_to_string(dir.join(format!("started-{r}"))).unwrap();
            (r, text.trim().to_string())
        })
        .collect()
}

/// Nothing of the test is left on this machine (`Scratch::assert_clean_within`) or on either
/// node: no mount of ours in its mount table, nothing new of the test user's in its /tmp or
/// /dev/shm. Slurm's PMIx plugin leaves `spmix_appdir_*` in the ranks' TMPDIR (README,
/// "Known interaction"): not ours, removed.
fn assert_nodes_clean(s: &Scratch, nodes: &[Node], patience: Duration) {
    s.assert_clean_within(patience);
    let shared = shared_dir().to_string_lossy().into_owned();
    for node in nodes {
        let mounts = std::fs::read_to_string(format!("/proc/{}/mounts", node.slurmd)).unwrap();
        for line in mounts.lines() {
            assert!(!line.contains(&shared), "{}: mount left: {line}", node.name);
        }
        for path in node.scratch_entries() {
            if node.before.contains(&path) {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("spmix_appdir_") {
                // (Its step's slurmstepd may remove it first.)
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{}", path.display());
                }
                continue;
            }
            if let Ok(md) = std::fs::symlink_metadata(&path) {
                assert_ne!(
                    md.uid(),
                    test_uid(),
                    "{}: left in /tmp or /dev/shm: {name}",
                    node.name
                );
            }
        }
    }
}

/// Per node, the ranks' lines `RANK NODE HOSTNAME MNT_NS FUSE_MOUNTS PEERS`.
fn by_node(lines: &BTreeMap<usize, String>) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut nodes: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for line in lines.values() {
        let fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        assert_eq!(fields.len(), 6, "{line}");
        nodes.entry(fields[1].clone()).or_default().push(fields);
    }
    nodes
}

/// What a rank reports once all `ranks` of the step are in their containers: its rank, node,
/// the host name it sees, its mount namespace, how many FUSE mounts it sees, and its peers:
/// the ranks whose processes it finds in its mount namespace (their `SLURM_PROCID`), over ten
/// looks a tenth of a second apart: in one CI run a single look, taken the moment the last
/// rank had joined, missed it (it saw itself in the namespace; the first rank did not see it
/// there), once in many runs. Then, if
/// `hold`, it waits for `/mnt/release-NODE` (at most 2 minutes); last it reads the image.
fn report_script(ranks: usize, hold: bool) -> String {
    let release = if hold {
        "/mnt/release-$SLURMD_NODENAME"
    } else {
        "/"
    };
    format!(
        "touch /mnt/in-$SLURM_PROCID; i=0; \
         while [ $(ls /mnt | grep -c '^in-') -lt {ranks} ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; \
         me=$(readlink /proc/self/ns/mnt); \
         peers=$(for k in 1 2 3 4 5 6 7 8 9 10; do for p in /proc/[0-9]*; do \
                   [ \"$(readlink $p/ns/mnt 2>/dev/null)\" = \"$me\" ] || continue; \
                   tr '\\0' '\\n' <$p/environ 2>/dev/null | grep '^SLURM_PROCID=' | cut -d= -f2; \
                 done; sleep 0.1; done | sort -nu | tr '\\n' ,); \
         echo $SLURM_PROCID $SLURMD_NODENAME $(cat /proc/sys/kernel/hostname) \
              $me $(grep -c fuse.squashfuse /proc/mounts) $peers >/mnt/started-$SLURM_PROCID; \
         i=0; while [ ! -e {release} ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; \
         sha256sum /data/big"
    )
}

/// Checks that each of the two nodes ran its ranks in one container of its own with one
/// mount, which held that node's ranks only; returns the nodes in the order of their first
/// rank, and how many ranks each ran.
fn assert_one_container_per_node(lines: &BTreeMap<usize, String>) -> (Vec<String>, Vec<usize>) {
    let nodes = by_node(lines);
    assert_eq!(nodes.len(), 2, "{lines:#?}");
    let mut order: Vec<(usize, String)> = Vec::new();
    let mut namespaces = BTreeSet::new();
    for (node, ranks) in &nodes {
        let ids: BTreeSet<usize> = ranks.iter().map(|f| f[0].parse().unwrap()).collect();
        order.push((*ids.iter().next().unwrap(), node.clone()));
        // Slurm's node and the host name the container sees are the node's own.
        for f in ranks {
            assert_eq!(&f[2], node, "{lines:#?}");
        }
        let ns: BTreeSet<&str> = ranks.iter().map(|f| f[3].as_str()).collect();
        assert_eq!(
            ns.len(),
            1,
            "{node}: ranks in different containers: {lines:#?}"
        );
        namespaces.extend(ns);
        for f in ranks {
            assert_eq!(
                f[4], "1",
                "{node}: FUSE mounts in the container: {lines:#?}"
            );
            // The ranks in the container are this node's, all of them.
            let peers: BTreeSet<usize> = f[5]
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().unwrap())
                .collect();
            assert_eq!(
                peers, ids,
                "{node}: rank {} sees these peers: {lines:#?}",
                f[0]
            );
        }
    }
    assert_eq!(namespaces.len(), 2, "a container spans nodes: {lines:#?}");
    order.sort();
    let order: Vec<String> = order.into_iter().map(|(_, n)| n).collect();
    let counts: Vec<usize> = order.iter().map(|n| nodes[n].len()).collect();
    (order, counts)
}

/// Runs `srun -N 2 -n RANKS SRUN_ARGS ch-run --join` with `report_script`, checks the
/// containers, and lets the nodes' ranks end one node after the other (`first` released
/// first): the first node's ranks are all gone while the other's still run. Returns how many
/// ranks each node ran, in the order of their first rank.
fn join_across_nodes(
    s: &Scratch,
    nodes: &[Node],
    ranks: usize,
    srun_args: &[&str],
    first: usize,
) -> Vec<usize> {
    let (dir, bind) = shared_mnt(s);
    let ranks_arg = ranks.to_string();
    let script = report_script(ranks, true);
    let image = image();
    let mut args = vec!["-N", "2", "-n", &ranks_arg];
    args.extend_from_slice(srun_args);
    let child = spawn(
        s,
        &args,
        &["--join", "-b", &bind, &image, "--", "sh", "-c", &script],
    );
    let lines = wait_for_ranks(&dir, ranks);
    let (order, counts) = assert_one_container_per_node(&lines);
    // Every rank is in its container: each node's group is complete, and its winner has
    // removed the socket and the directory it met at (a winner that expects more peers
    // keeps listening).
    for node in nodes {
        wait_until(
            &format!(
                "{}: the group complete ({} gone)",
                node.name,
                node.group_dir().display()
            ),
            || !node.group_dir().exists(),
        );
    }
    // One node's ranks end while the other's still run: they never wait for each other.
    let (early, late) = (&order[first], &order[1 - first]);
    let node = |name: &String| nodes.iter().find(|n| &n.name == name).unwrap();
    std::fs::write(dir.join(format!("release-{early}")), "").unwrap();
    let on = |name: &String| -> usize {
        s.processes()
            .iter()
            .filter(|p| {
                let pid: u32 = p.split(':').next().unwrap().parse().unwrap();
                node(name).runs(pid)
            })
            .count()
    };
    wait_until(&format!("{early}'s ranks all gone"), || on(early) == 0);
    assert!(on(late) > 0, "{late}'s ranks ended before their release");
    std::fs::write(dir.join(format!("release-{late}")), "").unwrap();
    let out = Outcome::from(child.wait_with_output().unwrap());
    assert_eq!(out.code, 0, "{out:?}");
    let sums = out
        .stdout
        .lines()
        .filter(|l| l.starts_with(&test_image().big_sha256))
        .count();
    assert_eq!(sums, ranks, "{out:?}");
    counts
}

#[test]
fn join_makes_one_mount_per_node_shared_by_its_ranks_only() {
    let Some(_turn) = nodes_ready() else { return };
    let nodes = nodes();
    let s = Scratch::new_in(shared_dir(), "nodes-join");
    // -n 8 -N 2 as Slurm splits it (here 7 and 1: SLURM_STEP_TASKS_PER_NODE=7,1, the nodes
    // having 8 CPUs each); the second node's ranks end first.
    let counts = join_across_nodes(&s, &nodes, 8, &[], 1);
    assert_eq!(counts.iter().sum::<usize>(), 8, "{counts:?}");
    assert_nodes_clean(&s, &nodes, Duration::from_secs(5));
}

#[test]
fn uneven_nodes_each_count_their_own_ranks() {
    let Some(_turn) = nodes_ready() else { return };
    let nodes = nodes();
    let s = Scratch::new_in(shared_dir(), "nodes-uneven");
    // -n 5 -N 2, three ranks on the first node and two on the second (Slurm's arbitrary
    // distribution; SLURM_STEP_TASKS_PER_NODE=3,2); the first node's end first. A group size
    // read from the list's first entry keeps the second node's group waiting for a third peer.
    let (first, second) = (&nodes[0].name, &nodes[1].name);
    let hosts = format!("{first},{first},{first},{second},{second}");
    let counts = join_across_nodes(&s, &nodes, 5, &["-m", "arbitrary", "-w", &hosts], 0);
    assert_eq!(counts, [3, 2]);
    assert_nodes_clean(&s, &nodes, Duration::from_secs(5));
}

#[test]
fn the_home_fallback_keeps_nodes_apart() {
    let Some(_turn) = nodes_ready() else { return };
    let nodes = nodes();
    let s = Scratch::new_in(shared_dir(), "nodes-home");
    // Another user holds /tmp/ch-run-join.UID.HOST on both nodes: the groups meet in the home
    // directory, which the nodes share, in a directory named for each node.
    let blockers: Vec<PathBuf> = nodes.iter().map(Node::group_dir).collect();
    for dir in &blockers {
        // (What an earlier failure left there is in the way.)
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir(dir).unwrap();
        let ok = Command::new("chown")
            .arg("chtest2")
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "chown chtest2 (scripts/setup.sh makes the user)"
        );
    }
    let (dir, bind) = shared_mnt(&s);
    let image = image();
    // Two ranks a node; the first node's second rank starts once the second node's ranks are
    // in their containers, so the first node's group is waiting for it, its socket open, when
    // they arrive: a directory both nodes met in would join them to it.
    let script = report_script(4, false);
    let wrapper = format!(
        "if [ $SLURM_PROCID = 1 ]; then i=0; \
           while ! [ -e {d}/in-2 -a -e {d}/in-3 ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; \
         fi; exec {ch_run} -v --join -b {bind} {image} -- sh -c \"$0\"",
        d = dir.display(),
        ch_run = shared_binary("ch-run").display(),
    );
    let out = Outcome::from(
        srun_program(
            &s,
            &["-N", "2", "-n", "4", "--ntasks-per-node=2"],
            Path::new("/bin/sh"),
            &["-c", &wrapper, &script],
            &[],
        )
        .output()
        .unwrap(),
    );
    for dir in &blockers {
        std::fs::remove_dir(dir).unwrap();
    }
    assert_eq!(out.code, 0, "{out:?}");
    let lines: BTreeMap<usize, String> = (0..4)
        .map(|r| {
            let text = std::fs::read_to_string(dir.join(format!("started-{r}"))).unwrap();
            (r, text.trim().to_string())
        })
        .collect();
    let (_, counts) = assert_one_container_per_node(&lines);
    assert_eq!(counts, [2, 2]);
    for node in &nodes {
        let warned = format!("not using {}", node.group_dir_in_node());
        assert!(out.stderr.contains(&warned), "{out:?}");
        let place = format!("{}/.ch-run-join.{}/tag-", s.home.display(), node.name);
        assert!(
            out.stderr.contains(&place),
            "no group met at {place}: {out:?}"
        );
    }
    let left: Vec<PathBuf> = std::fs::read_dir(&s.home)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left in home: {left:?}");
    assert_nodes_clean(&s, &nodes, Duration::from_secs(5));
}

#[test]
fn mpi_allreduce_across_nodes_in_joined_containers() {
    let Some(_turn) = nodes_ready() else { return };
    let nodes = nodes();
    let s = Scratch::new_in(shared_dir(), "nodes-mpi");
    let image = mpi_image();
    // Two ranks per node: shared memory within a node, TCP between the nodes' namespaces.
    let out = srun(
        &s,
        &["--mpi=pmix", "-N", "2", "-n", "4", "--ntasks-per-node=2"],
        &[
            "--join",
            "-b",
            "/usr",
            &image,
            "--",
            "/bin/sh",
            "-c",
            "echo $SLURMD_NODENAME $(/hello)",
        ],
        // PMIx's shared-memory store warns about locks it can't take: use its plain one.
        &[("PMIX_MCA_gds", "hash")],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let got: BTreeSet<&str> = out.stdout.lines().collect();
    let expected: BTreeSet<String> = (0..4)
        .map(|r| format!("{} rank {r} of 4: sum 6", nodes[r / 2].name))
        .collect();
    assert_eq!(
        got,
        expected.iter().map(String::as_str).collect(),
        "{out:?}"
    );
    assert_nodes_clean(&s, &nodes, Duration::from_secs(5));
}

#[test]
fn scancel_leaves_nothing_on_either_node() {
    let Some(_turn) = nodes_ready() else { return };
    let nodes = nodes();
    let s = Scratch::new_in(shared_dir(), "nodes-scancel");
    let (dir, bind) = shared_mnt(&s);
    let image = image();
    let name = job_name();
    for join in [false, true] {
        let mut args = vec!["-b", &bind];
        if join {
            args.push("--join");
        }
        args.extend_from_slice(&[
            &image,
            "--",
            "sh",
            "-c",
            "sleep 1000 & touch /mnt/ready-$SLURM_PROCID; wait",
        ]);
        let srun_args = ["-N", "2", "-n", "4", "--ntasks-per-node=2"];
        let mut child = srun_command(&s, &srun_args, &args, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("4 ranks started", || {
            (0..4).all(|r| dir.join(format!("ready-{r}")).exists())
        });
        // Each node runs two of them.
        for node in &nodes {
            let here = s
                .processes()
                .iter()
                .filter(|p| node.runs(p.split(':').next().unwrap().parse().unwrap()))
                .count();
            assert!(here >= 4, "{}: {:?}", node.name, s.processes());
        }
        let ok = Command::new("scancel")
            .args(["-n", &name])
            .status()
            .unwrap();
        assert!(ok.success());
        let _ = child.wait();
        for r in 0..4 {
            std::fs::remove_file(dir.join(format!("ready-{r}"))).unwrap();
        }
        // Slurm sends SIGTERM, then SIGKILL after KillWait (5 s).
        assert_nodes_clean(&s, &nodes, Duration::from_secs(20));
        for node in &nodes {
            assert!(
                !node.group_dir().exists(),
                "{}: {}",
                node.name,
                node.group_dir().display()
            );
        }
    }
}

#[test]
fn two_jobs_on_one_node_keep_their_own_containers() {
    let Some(_turn) = nodes_ready() else { return };
    let nodes = nodes();
    let s = Scratch::new_in(shared_dir(), "nodes-jobs");
    let (dir, bind) = shared_mnt(&s);
    let image = image();
    let ch_run = shared_binary("ch-run").to_string_lossy().into_owned();
    // Two jobs of the user on one node, each in its step 0 (SLURM_STEP_ID=0). Job A's first
    // rank is in its container, waiting for its peer, when job B's ranks arrive; A's second
    // rank comes after them.
    let job = |name: &str, hold_rank_1: bool| {
        let report = format!(
            "echo $(readlink /proc/self/ns/mnt) >/mnt/{name}-$SLURM_PROCID.tmp; \
             mv /mnt/{name}-$SLURM_PROCID.tmp /mnt/{name}-$SLURM_PROCID; \
             i=0; while [ ! -e /mnt/done ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done"
        );
        let hold = if hold_rank_1 {
            format!(
                "if [ $SLURM_PROCID = 1 ]; then i=0; while [ ! -e {}/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; fi; ",
                dir.display()
            )
        } else {
            String::new()
        };
        let wrapper = format!("{hold}exec {ch_run} --join -b {bind} {image} -- sh -c '{report}'");
        let name = format!("--job-name={}", job_name());
        let launcher = [
            "srun",
            "-p",
            "two",
            &name,
            "-w",
            &nodes[0].name,
            "-N",
            "1",
            "-n",
            "2",
        ];
        s.launched_command_of(
            Path::new("/bin/sh"),
            &launcher,
            &["-c", &wrapper],
            &[("TMPDIR", "/tmp")],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let read = |file: &str| -> String {
        let path = dir.join(file);
        wait_until(&format!("{file} written"), || path.exists());
        std::fs::read_to_string(path).unwrap().trim().to_string()
    };
    let a = job("a", true);
    let a0 = read("a-0");
    let b = job("b", false);
    let (b0, b1) = (read("b-0"), read("b-1"));
    std::fs::write(dir.join("go"), "").unwrap();
    let a1 = read("a-1");
    std::fs::write(dir.join("done"), "").unwrap();
    for child in [a, b] {
        let out = Outcome::from(child.wait_with_output().unwrap());
        assert_eq!(out.code, 0, "{out:?}");
    }
    let what = format!("job a: {a0} {a1}, job b: {b0} {b1}");
    assert!(
        a0 == a1 && b0 == b1 && a0 != b0,
        "jobs share containers: {what}"
    );
    assert_nodes_clean(&s, &nodes, Duration::from_secs(5));
}

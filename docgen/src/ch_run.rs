//! ch-run(1): Charliecloud's options and exit codes, what this one does differently, the
//! environment it reads and sets, and the files it makes.

use runtime::failure::{EXIT_CHRUN, EXIT_EXEC, EXIT_USAGE};

use crate::page::{example, item, para, sub, Page};

pub fn page(date: &str) -> Page {
    let source = format!("ch-run {}", runtime::VERSION);
    let mut page = Page::new(runtime::cli::command(), date, &source);
    page.description = vec![
        para(
            "`ch-run` runs CMD with its arguments in the container image IMAGE, as \
             Charliecloud's `ch-run` does: with its options, messages, rules for the \
             environment and for `/etc/passwd` (those of Charliecloud 0.31), and exit codes \
             (those of later releases). IMAGE is a SquashFS file (known by its contents, \
             whatever its name), a directory holding an unpacked image, or the name of an \
             image in the storage directory (`-s`, else `$CH_IMAGE_STORAGE`, else \
             `/var/tmp/$USER.ch`).",
        ),
        para(
            "It needs no privileges: no setuid helper and no fusermount3. It first checks \
             the command line, the image and the bind sources (a problem is one line on \
             standard error and an exit, before anything else is done). Then a supervisor \
             process enters a new user and mount namespace, mounts a SquashFS image with \
             FUSE, served by its own threads (read-only, nosuid, nodev), binds `/dev`, \
             `/proc`, `/sys`, `/tmp` (the host's `$TMPDIR`), `/etc/hosts`, \
             `/etc/resolv.conf`, `/etc/machine-id`, `$HOME` (with `--home`) and the `-b` \
             binds into it, writes `/etc/passwd` and `/etc/group` on a file system only the \
             container sees (unless `--no-passwd`), makes it the root directory, sets \
             no_new_privs and executes CMD. A bind's destination is looked up inside the \
             image: a symlink in the image that leads out of it is refused, never followed \
             onto the host.",
        ),
        para(
            "The mount exists only in that namespace: nothing of it is left on the host, \
             however the run ends. Signals sent to `ch-run` (TERM, INT, HUP, QUIT, USR1, \
             USR2, ALRM) are passed on to CMD; if `ch-run` is killed, whatever CMD started \
             is killed. `ch-run` returns as soon as CMD exits; processes CMD left in the \
             background keep the image until they exit.",
        ),
        para(
            "Options are read the GNU way: anywhere before `--`, after IMAGE and CMD too, \
             and long options may be abbreviated. Put `--` before CMD when CMD has options \
             of its own.",
        ),
    ];
    page.sections = vec![
        (
            "JOINING",
            vec![
                para(
                    "With `-j` (or `--join-ct` or `--join-tag`), the `ch-run`s of one node \
                     that share a tag form a group of N peers: the first becomes the \
                     group's supervisor, the others join its namespaces, and all share one \
                     mount, which stays until the last peer's processes are gone, whatever \
                     order they exit in. This is one mount per node for the ranks of an MPI \
                     job.",
                ),
                para(
                    "N is `--join-ct`, else the first of `OMPI_COMM_WORLD_LOCAL_SIZE`, \
                     `SLURM_STEP_TASKS_PER_NODE` (its entry for this node, `SLURM_NODEID`) \
                     and `SLURM_CPUS_ON_NODE` that is set. The tag is `--join-tag`, else \
                     `SLURM_JOB_ID` and `SLURM_STEP_ID` (`SLURM_STEP_ID` alone without a job \
                     ID), else the parent process's ID. Peers meet on a Unix socket in a \
                     directory only their user can write to (see FILES).",
                ),
            ],
        ),
        (
            "EXIT STATUS",
            vec![
                item("0, N", "CMD's exit status, when CMD exited."),
                item(
                    "128+N",
                    "CMD was killed by signal N: `ch-run` ends by the same signal (without \
                     a core dump of its own), which a shell reports as 128+N.",
                ),
                item(
                    EXIT_CHRUN.to_string(),
                    "`ch-run` itself failed: a missing or damaged image, a missing bind \
                     source, an unusable storage directory or mount point, no `/dev/fuse`, \
                     a bad option value; also `--feature` with a feature it does not have.",
                ),
                item(
                    EXIT_EXEC.to_string(),
                    "CMD could not be executed (not found, not executable).",
                ),
                item(
                    EXIT_USAGE.to_string(),
                    "The command line could not be read: an unknown option, IMAGE or CMD \
                     missing.",
                ),
                para(
                    "An error of `ch-run` is one line on standard error: \
                     `ch-run[PID]: error:` and what went wrong.",
                ),
            ],
        ),
        (
            "ENVIRONMENT",
            vec![
                sub("Read by ch-run"),
                item(
                    "CH_IMAGE_STORAGE",
                    "The storage directory, when `-s` is not given.",
                ),
                item(
                    "USER",
                    "Must be set: it names the default storage directory and mount point, \
                     and the home directory in the container (`--home`).",
                ),
                item(
                    "HOME",
                    "The host directory bound at /home/$USER with `--home`; also a place \
                     where `--join` peers may meet.",
                ),
                item(
                    "TMPDIR",
                    "The host directory bound at `/tmp` in the container (default: /tmp).",
                ),
                item(
                    "XDG_RUNTIME_DIR",
                    "The first place where `--join` peers meet, when set.",
                ),
                item(
                    "OMPI_COMM_WORLD_LOCAL_SIZE, SLURM_STEP_TASKS_PER_NODE, SLURM_CPUS_ON_NODE",
                    "The size of a `--join` group, without `--join-ct`: the first set; of \
                     `SLURM_STEP_TASKS_PER_NODE`, the entry for this node.",
                ),
                item(
                    "SLURM_NODEID",
                    "This node's place in `SLURM_STEP_TASKS_PER_NODE`.",
                ),
                item(
                    "SLURM_JOB_ID, SLURM_STEP_ID",
                    "The tag of a `--join` group, without `--join-tag`.",
                ),
                sub("Seen by CMD"),
                para(
                    "CMD gets ch-run's environment, changed as Charliecloud changes it: \
                     `HOME` is /home/$USER with `--home`, `/bin` is appended to a `PATH` \
                     without it, `TMPDIR` is removed, then `--set-env`, `--set-env0` and \
                     `--unset-env` apply in the order given, and last `CH_RUNNING` is set \
                     (to \"Weird Al Yankovic\").",
                ),
            ],
        ),
        (
            "FILES",
            vec![
                item("/var/tmp/$USER.ch", "The default storage directory."),
                item(
                    "/var/tmp/$USER.ch/mnt",
                    "The default mount point (`-m` chooses another). It is made when \
                     missing and kept, as Charliecloud does; it must be the user's and \
                     writable by no one else. The image is mounted on it only inside the \
                     container's namespace.",
                ),
                item(
                    "/ch/environment",
                    "In the image: what `--set-env` and `--set-env0` without an argument \
                     read.",
                ),
                item(
                    "$XDG_RUNTIME_DIR/ch-run-join.HOST, /tmp/ch-run-join.UID.HOST, \
                     $HOME/.ch-run-join.HOST",
                    "Where `--join` peers meet: the first of these that is usable (made \
                     with mode 0700 if missing; it must be the user's and closed to \
                     others). HOST is the host name, so that nodes sharing one of these \
                     file systems never meet. It is removed when the group ends.",
                ),
                item("/dev/fuse", "Opened to serve the image's mount."),
            ],
        ),
        (
            "EXAMPLES",
            vec![
                example(
                    "Run a command in an image:",
                    "$ ch-run /data/foo.sqfs -- echo hello\nhello",
                ),
                example(
                    "An image from the storage directory, with a host directory at /mnt:",
                    "ch-run -b /scratch/data:/mnt foo -- ls /mnt",
                ),
                example(
                    "One mount per node, shared by the ranks of a Slurm job:",
                    "srun -n 64 ch-run --join foo.sqfs -- ./app",
                ),
                example(
                    "Whether ch-run mounts SquashFS images itself:",
                    "ch-run --feature=squash && echo yes",
                ),
            ],
        ),
        (
            "SEE ALSO",
            vec![para(
                "`sqfs`(1), `squashfuse-rs`(1); Charliecloud's `ch-image`(1) and \
                 `ch-convert`(1), which build and convert images; `srun`(1), \
                 `user_namespaces`(7)",
            )],
        ),
    ];
    page
}

//! Sharing one image server between a user's containers: containers of the same user, image
//! and ids use one FUSE mount, so what one of them read (libc, the dynamic loader) is in the
//! page cache and the block cache for the next, instead of being decompressed again by
//! every start.
//!
//! Each `ch-run` still gets its own container, made as without sharing: its own user and
//! mount namespace, binds, options and `pivot_root`. Only the image's file system, and the
//! process serving it, are shared: the container attaches a copy of the server's mount
//! where it would have mounted the image.
//!
//! The server ([`server`]) is a process of its own, started by the first `ch-run` that finds
//! none ([`spawn`]): it mounts the image in a user + mount namespace of its own, attached
//! nowhere (`fsmount`, see [`crate::mount_api`]), and listens on a socket named for the
//! image's identity, the ids and the batch job step, in a directory of this host's that only
//! this user can write to ([`SHARE`], found and checked as `--join`'s rendezvous, see
//! `join::rendezvous`). A `ch-run` connects, checks that the server is this user
//! (`SO_PEERCRED`; the server checks the same of it) and serves this very image, and
//! receives a detached copy of the mount ([`wire`]), which it attaches in its container. Its
//! connection stays open until its container is gone; the server exits once the last one
//! has closed and it has been idle for `CH_RUN_SHARE_IDLE` seconds, removing its socket
//! under the directory's lock first, so that nobody can connect to a server that is leaving.
//!
//! Who wins when many start at once, and how a killed server's socket is recognised and
//! taken over, is `--join`'s claim: one lock on the directory, a listener bound under it.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::unistd::getuid;

use crate::cli::Options;
use crate::failure::Failure;
use crate::image::Image;
use crate::join::rendezvous::{self, Place, Purpose, Reached};
use crate::protocol::Message;

pub mod server;
mod spawn;
mod wire;

/// Where servers listen: `/var/tmp/$USER.ch/ch-run-share.HOST` (in ch-run's own directory,
/// where the default mount point is), else as `--join`: `$XDG_RUNTIME_DIR/ch-run-share.HOST`,
/// `/tmp/ch-run-share.UID.HOST` or `$HOME/.ch-run-share.HOST`. Each host has a directory of
/// its own (see `join::rendezvous`): a server serves the containers of its host only (its
/// mount is of no use on another), and a run's sweep sees only its host's sockets.
pub const SHARE: Purpose = Purpose {
    stem: "ch-run-share",
    label: "share",
    what: "image server socket",
    in_storage: true,
};

/// A batch system's job and step: a server is never shared across them. A step's leftover
/// processes are killed when it ends (Slurm's proctrack/cgroup): a server started by one
/// step must not be found by the next.
const JOB_VARIABLES: [&str; 5] = [
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
    "PBS_JOBID",
    "LSB_JOBID",
    "FLUX_JOB_ID",
];

/// `CH_RUN_SHARE=no` (or 0, off, false) turns sharing off, as `--no-share` does.
pub const ENV_SWITCH: &str = "CH_RUN_SHARE";
/// Seconds a server stays after its last container has gone.
pub const ENV_IDLE: &str = "CH_RUN_SHARE_IDLE";
/// Long enough for `ch-run IMG -- true` in a loop (or one rank's ch-runs one after the
/// other) to share; short enough not to keep an image mounted long after its use.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(10);

/// How long a `ch-run` tries to find or start a server and get its mount (then it mounts
/// the image itself).
const ATTACH_TIMEOUT: Duration = crate::join::CLAIM_TIMEOUT;

/// How many times a connection may close unanswered before the run mounts the image itself
/// (once is a server killed at that moment; again and again is one that refuses this run).
const MAX_REFUSED: u32 = 3;

/// A run that uses a shared server.
#[derive(Debug, Clone)]
pub struct Request {
    /// The image, the ids and this build: what a server must match exactly.
    pub identity: String,
    /// The socket's name, from the identity.
    pub entry: String,
    pub idle: Duration,
}

/// Whether this run shares, and with which server; says why not at `-v`.
pub fn plan(
    options: &Options,
    image: &Image,
    ids: (u32, u32),
    env: &dyn Fn(&str) -> Option<String>,
    notes: &mut Vec<String>,
) -> Result<Option<Request>, Failure> {
    let off = |why: &str, notes: &mut Vec<String>| {
        notes.push(format!("share: off ({why})"));
        Ok(None)
    };
    let fingerprint = match image {
        Image::Squash { fingerprint, .. } => fingerprint,
        Image::Directory { .. } => return off("directory image", notes),
    };
    if options.no_share {
        return off("--no-share", notes);
    }
    if env(ENV_SWITCH).is_some_and(|v| {
        ["no", "0", "off", "false"]
            .iter()
            .any(|n| v.trim().eq_ignore_ascii_case(n))
    }) {
        return off(&format!("{ENV_SWITCH}=no"), notes);
    }
    if options.join.enabled || options.join_pid.is_some() {
        // A group already shares one mount; --join-pid makes none.
        return off("--join", notes);
    }
    if options.verbose >= 2 {
        // The FUSE log goes to this run's stderr; a server has none.
        return off("-vv shows this run's own FUSE log", notes);
    }
    let overflow = crate::join::overflow_uid();
    if ids.0 == overflow || getuid().as_raw() == overflow {
        // A server sees anyone it has no mapping for as this uid (SO_PEERCRED): it could not
        // tell this user from another, and refuses everyone (see `join::same_user`).
        return off(&format!("uid {overflow} is the overflow uid"), notes);
    }
    if !crate::mount_api::supported() {
        return off("the kernel has no open_tree(2)", notes);
    }
    let idle = match env(ENV_IDLE) {
        None => DEFAULT_IDLE,
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            // The server is told it in milliseconds, which it reads as a u64.
            .filter(|d| u64::try_from(d.as_millis()).is_ok())
            .ok_or_else(|| {
                Failure::Runtime(format!("{ENV_IDLE}: not a number of seconds: {text}"))
            })?,
    };
    let mut identity = format!("{fingerprint} uid {} gid {}", ids.0, ids.1);
    for var in JOB_VARIABLES {
        if let Some(value) = env(var) {
            identity.push_str(&format!(" {var} {value}"));
        }
    }
    let entry = format!("img-{:032x}", rendezvous::fnv1a_128(identity.as_bytes()));
    notes.push(format!("share: image server {entry}, idle {idle:?}"));
    Ok(Some(Request {
        identity,
        entry,
        idle,
    }))
}

/// This run's share of a server.
pub struct Attached {
    /// A detached copy of the server's mount of the image, to attach in the container.
    pub mount: OwnedFd,
    /// Open while the container lives: the server stays as long as one is.
    pub connection: OwnedFd,
}

/// Finds this image's server, or starts it, and gets a copy of its mount. Runs on the host
/// (before the container's namespaces), in a single-threaded process.
pub fn attach(
    request: &Request,
    image: &Image,
    ids: (u32, u32),
    tell: &mut dyn FnMut(Message),
) -> Result<Attached, Failure> {
    let deadline = Instant::now() + ATTACH_TIMEOUT;
    let mut refused = 0;
    loop {
        let place = Place::choose_for(&SHARE, &mut |w| tell(Message::Warning(w)))?;
        let Some((connection, started)) =
            connect_or_start(&place, request, image, ids, deadline, tell)?
        else {
            // A leaving server removed the directory after we opened it: a new one is made.
            if Instant::now() > deadline {
                return Err(Failure::Runtime("timeout waiting for share lock".into()));
            }
            continue;
        };
        match wire::receive(&connection, deadline)? {
            Some(wire::Answer::Ready { identity, mount }) => {
                if identity != request.identity {
                    return Err(Failure::Runtime(format!(
                        "share: {} serves another image",
                        place.path_of(&request.entry).display()
                    )));
                }
                return Ok(Attached { mount, connection });
            }
            Some(wire::Answer::Failed(failure)) => return Err(failure),
            None if started => {
                return Err(Failure::Runtime(
                    "share: image server died while starting".into(),
                ))
            }
            // The server was killed between our connect and its accept: look again (the
            // next look finds its socket dead). A server that leaves takes what is in its
            // backlog under the lock first, so a live one that closes again refused us.
            None => {
                refused += 1;
                if refused >= MAX_REFUSED {
                    return Err(Failure::Runtime(format!(
                        "share: {} closed the connection without an answer",
                        place.path_of(&request.entry).display()
                    )));
                }
                tell(Message::Info(
                    "share: image server gone; trying again".into(),
                ))
            }
        }
        if Instant::now() > deadline {
            return Err(Failure::Runtime("timeout waiting for share lock".into()));
        }
    }
}

/// A connection to the image's server: an existing one (false) or one this run starts
/// (true) after taking its place under the directory's lock; None if the directory was
/// removed meanwhile (choose again).
fn connect_or_start(
    place: &Place,
    request: &Request,
    image: &Image,
    ids: (u32, u32),
    deadline: Instant,
    tell: &mut dyn FnMut(Message),
) -> Result<Option<(OwnedFd, bool)>, Failure> {
    let socket = place.path_of(&request.entry);
    tell(Message::Info(format!(
        "share: image server socket: {}",
        socket.display()
    )));
    loop {
        let Some(locked) = place.lock(deadline)? else {
            return Ok(None);
        };
        match locked.connect(&request.entry)? {
            Reached::Listener(fd) => {
                drop(locked);
                if !crate::join::same_user(&fd, getuid().as_raw()) {
                    return Err(Failure::Runtime(format!(
                        "share: {} owned by another user",
                        socket.display()
                    )));
                }
                tell(Message::Info(
                    "share: using the running image server".into(),
                ));
                return Ok(Some((fd, false)));
            }
            Reached::Busy => {}
            found @ (Reached::Dead | Reached::Absent) => {
                if matches!(found, Reached::Dead) {
                    locked.remove_dead(&request.entry)?;
                    tell(Message::Info(
                        "share: the last image server was killed; replacing it".into(),
                    ));
                }
                // The sockets of servers a batch job's end killed stay until some run
                // removes them: the one starting a server does, as a leaving one does.
                locked.sweep();
                let listener = locked.listen(&request.entry)?;
                drop(locked);
                tell(Message::Info("share: starting an image server".into()));
                let connection = spawn::start(listener, place, request, image, ids)?;
                return Ok(Some((connection, true)));
            }
        }
        // The server's backlog is full: let it accept.
        drop(locked);
        if Instant::now() > deadline {
            return Err(Failure::Runtime("timeout waiting for share lock".into()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options::default()
    }

    #[test]
    fn directory_images_and_the_switches_turn_sharing_off() {
        let dir = Image::Directory {
            path: "/".into(),
            fd: std::fs::File::open("/").unwrap().into(),
        };
        let none = |_: &str| None;
        let mut notes = Vec::new();
        assert!(plan(&options(), &dir, (1, 1), &none, &mut notes)
            .unwrap()
            .is_none());
        assert_eq!(notes, ["share: off (directory image)"]);
    }

    fn tiny_image() -> Image {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/tiny/tiny-gzip.sqfs"
        );
        let storage = crate::storage::Storage {
            path: "/nonexistent-storage".into(),
            default: false,
        };
        let me = crate::trust::Me::current();
        match crate::image::resolve(path, &storage, &me) {
            Ok(resolved) => resolved.image,
            Err(e) => panic!("{path}: {}", e.message()),
        }
    }

    #[test]
    fn the_server_is_named_for_the_image_and_the_ids_and_idles_as_asked() {
        let image = tiny_image();
        let mut notes = Vec::new();
        let env = |name: &str| (name == ENV_IDLE).then(|| "2.5".to_string());
        let a = plan(&options(), &image, (1, 2), &env, &mut notes)
            .unwrap()
            .unwrap();
        assert_eq!(a.idle, Duration::from_millis(2500));
        assert!(
            a.entry.starts_with("img-") && a.entry.len() == 36,
            "{}",
            a.entry
        );
        assert!(a.identity.contains(crate::VERSION), "{}", a.identity);
        let none = |_: &str| None;
        let b = plan(&options(), &image, (1, 2), &none, &mut notes)
            .unwrap()
            .unwrap();
        assert_eq!((b.entry.as_str(), b.idle), (a.entry.as_str(), DEFAULT_IDLE));
        // Other ids: another server.
        let c = plan(&options(), &image, (0, 2), &none, &mut notes)
            .unwrap()
            .unwrap();
        assert_ne!(c.entry, a.entry);
        for bad in ["-1", "soon", "1e30", "1e17"] {
            let env = |name: &str| (name == ENV_IDLE).then(|| bad.to_string());
            let e = plan(&options(), &image, (1, 2), &env, &mut notes).unwrap_err();
            assert_eq!(
                e.message(),
                format!("{ENV_IDLE}: not a number of seconds: {bad}")
            );
        }
    }

    #[test]
    fn each_step_of_a_batch_job_gets_a_server_of_its_own() {
        let image = tiny_image();
        let mut notes = Vec::new();
        let step = |n: &'static str| {
            move |name: &str| match name {
                "SLURM_JOB_ID" => Some("7".to_string()),
                "SLURM_STEP_ID" => Some(n.to_string()),
                _ => None,
            }
        };
        let first = plan(&options(), &image, (1, 2), &step("0"), &mut notes)
            .unwrap()
            .expect("shares in a batch job");
        let again = plan(&options(), &image, (1, 2), &step("0"), &mut notes)
            .unwrap()
            .unwrap();
        let next = plan(&options(), &image, (1, 2), &step("1"), &mut notes)
            .unwrap()
            .unwrap();
        assert_eq!(first.entry, again.entry);
        assert_ne!(first.entry, next.entry);
    }

    #[test]
    fn a_directory_removed_before_its_lock_means_choose_again_not_give_up() {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir().join(format!("ch-share-gone-{}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&base)
            .unwrap();
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(base.join("d"))
            .unwrap();
        let open = |p: &std::path::Path| OwnedFd::from(std::fs::File::open(p).unwrap());
        let place = Place::from_parts(
            open(&base),
            "d".into(),
            open(&base.join("d")),
            base.join("d"),
            SHARE.label,
        );
        // What a leaving server's tidy does between this run's choice and its lock.
        std::fs::remove_dir(base.join("d")).unwrap();
        let image = tiny_image();
        let none = |_: &str| None;
        let request = plan(&options(), &image, (1, 2), &none, &mut Vec::new())
            .unwrap()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let found = connect_or_start(&place, &request, &image, (1, 2), deadline, &mut |_| {});
        assert!(
            matches!(found, Ok(None)),
            "{:?}",
            found.err().map(|e| e.message().to_string())
        );
        std::fs::remove_dir(&base).unwrap();
    }

    #[test]
    fn the_switches_turn_sharing_off() {
        let image = tiny_image();
        let mut notes = Vec::new();
        for value in ["no", "0", "OFF", "false"] {
            let env = |name: &str| (name == ENV_SWITCH).then(|| value.to_string());
            assert!(plan(&options(), &image, (1, 2), &env, &mut notes)
                .unwrap()
                .is_none());
        }
        let env = |name: &str| (name == ENV_SWITCH).then(|| "yes".to_string());
        assert!(plan(&options(), &image, (1, 2), &env, &mut notes)
            .unwrap()
            .is_some());
        let none = |_: &str| None;
        let off = [
            Options {
                no_share: true,
                ..options()
            },
            Options {
                join_pid: Some(1),
                ..options()
            },
            Options {
                verbose: 2,
                ..options()
            },
        ];
        for o in &off {
            assert!(plan(o, &image, (1, 2), &none, &mut notes)
                .unwrap()
                .is_none());
        }
        // A server could not tell this user from any other.
        let nobody = crate::join::overflow_uid();
        assert!(plan(&options(), &image, (nobody, 2), &none, &mut notes)
            .unwrap()
            .is_none());
    }
}

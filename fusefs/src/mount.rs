//! Mounting: open and check the image first, daemonize (the command returns only once the
//! mount is ready, or has failed, like squashfuse), mount, serve, and unmount on SIGTERM,
//! SIGINT, SIGHUP or after `-o timeout=N` idle seconds.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{fork, pipe, setsid, ForkResult};
use sqfs::{Archive, OpenOptions};

use crate::attr::Owners;
use crate::fs::SquashFs;
use crate::options::MountConfig;

/// Opens the image and finds the mount root: every error a user can fix shows here, before
/// anything is forked or mounted.
pub fn open_image(config: &MountConfig) -> Result<(Arc<Archive>, sqfs::Inode), String> {
    let image = config.image.display();
    let file = File::open(&config.image).map_err(|e| format!("{image}: {e}"))?;
    let options = OpenOptions {
        offset: config.offset,
        ..OpenOptions::default()
    };
    let archive = Archive::open_file(file, &options).map_err(|e| format!("{image}: {e}"))?;
    let root = match &config.subdir {
        None => archive.root(),
        Some(dir) => archive.lookup_path(dir),
    }
    .map_err(|e| {
        format!(
            "{image}: subdir {}: {e}",
            config.subdir.as_deref().unwrap_or("/")
        )
    })?;
    if !root.is_dir() {
        return Err(format!(
            "{image}: subdir {}: not a directory",
            config.subdir.as_deref().unwrap_or("/")
        ));
    }
    Ok((Arc::new(archive), root))
}

fn check_mountpoint(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => Err(format!("{}: not a directory", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The mount options FUSE is given.
fn fuse_config(config: &MountConfig) -> Config {
    let mut options = vec![
        MountOption::RO,
        MountOption::FSName(
            config
                .fsname
                .clone()
                .unwrap_or_else(|| config.image.display().to_string()),
        ),
        // On the mount(2) path only a custom subtype option is honoured.
        MountOption::CUSTOM(format!(
            "subtype={}",
            config.subtype.as_deref().unwrap_or("squashfuse")
        )),
    ];
    options.push(if config.suid {
        MountOption::Suid
    } else {
        MountOption::NoSuid
    });
    options.push(if config.dev {
        MountOption::Dev
    } else {
        MountOption::NoDev
    });
    if config.noexec {
        options.push(MountOption::NoExec);
    }
    if config.noatime {
        options.push(MountOption::NoAtime);
    }
    if config.default_permissions {
        options.push(MountOption::DefaultPermissions);
    }
    let mut cfg = Config::default();
    cfg.mount_options = options;
    cfg.acl = if config.allow_other {
        SessionACL::All
    } else if config.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    cfg.n_threads = Some(if config.single_thread { 1 } else { threads() });
    SquashFs::configure(&mut cfg);
    cfg
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(2)
}

/// Where the outcome of the mount is reported: the parent waiting in daemon mode, and the
/// `notify_pipe` FIFO (`s` for success, `f` for failure, as squashfuse writes).
struct Outcome {
    parent: Option<OwnedFd>,
    notify_pipe: Option<std::path::PathBuf>,
}

impl Outcome {
    fn report(&mut self, result: &Result<(), String>) {
        if let Some(path) = &self.notify_pipe {
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) {
                let _ = f.write_all(if result.is_ok() { b"s" } else { b"f" });
            }
        }
        if let Some(fd) = self.parent.take() {
            let mut f = File::from(fd);
            let _ = match result {
                Ok(()) => f.write_all(b"s"),
                Err(msg) => f.write_all(format!("f{msg}").as_bytes()),
            };
        }
    }
}

/// Mounts and serves until unmounted. In daemon mode the calling process exits inside
/// (0 once the mount is ready, 1 with the error printed if it failed).
pub fn run(config: MountConfig) -> Result<(), String> {
    let mut outcome = Outcome {
        parent: None,
        notify_pipe: config.notify_pipe.clone(),
    };
    let result = (|| {
        let (archive, root) = open_image(&config)?;
        check_mountpoint(&config.mountpoint)?;
        if !config.foreground {
            outcome.parent = Some(daemonize()?);
        }
        mount_and_serve(&config, archive, root, &mut outcome)
    })();
    if result.is_err() {
        outcome.report(&result);
        if DAEMONIZED.load(Ordering::Relaxed) {
            // The waiting parent printed the message; the daemon leaves quietly.
            std::process::exit(1);
        }
    }
    result
}

/// Set in the forked daemon, whose errors go to the waiting parent instead of stderr.
static DAEMONIZED: AtomicBool = AtomicBool::new(false);

/// Forks; the parent waits for the child's word and exits with it. Returns, in the child,
/// the pipe to report on. Must run before any thread is started.
fn daemonize() -> Result<OwnedFd, String> {
    let (read_end, write_end) = pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: no threads exist yet (the image was opened without any), so the child may
    // run arbitrary code.
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            let mut answer = Vec::new();
            let _ = File::from(read_end).read_to_end(&mut answer);
            match answer.split_first() {
                Some((b's', _)) => std::process::exit(0),
                Some((b'f', msg)) => {
                    eprintln!("squashfuse-rs: {}", String::from_utf8_lossy(msg));
                    std::process::exit(1)
                }
                _ => {
                    eprintln!("squashfuse-rs: the mount process died before the mount was ready");
                    std::process::exit(1)
                }
            }
        }
        ForkResult::Child => {
            DAEMONIZED.store(true, Ordering::Relaxed);
            drop(read_end);
            let _ = setsid();
            Ok(write_end)
        }
    }
}

fn mount_and_serve(
    config: &MountConfig,
    archive: Arc<Archive>,
    root: sqfs::Inode,
    outcome: &mut Outcome,
) -> Result<(), String> {
    // Signals go to a thread that unmounts; block them before any thread exists so every
    // thread inherits the mask.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(s);
    }
    signals
        .thread_block()
        .map_err(|e| format!("sigprocmask: {e}"))?;

    if config.debug {
        let _ = env_logger::Builder::new()
            .filter_level(log::LevelFilter::Debug)
            .try_init();
    }
    let owners = Owners {
        uid: config.uid,
        gid: config.gid,
    };
    let mut fs = SquashFs::new(archive, root, owners, threads());
    if config.timeout.is_some() {
        fs = fs.counting_opens();
    }
    let slots = fs.session_slots();
    let monitor = fs.monitor();
    let mut session = Session::new(fs, &config.mountpoint, &fuse_config(config))
        .map_err(|e| format!("mount {}: {e}", config.mountpoint.display()))?;
    slots
        .fill(&session)
        .map_err(|e| format!("/dev/fuse: {e}"))?;
    let unmounter = Arc::new(Mutex::new(session.unmount_callable()));
    let mountpoint = config.mountpoint.clone();

    {
        let (unmounter, mountpoint) = (unmounter.clone(), mountpoint.clone());
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if signals.wait().is_ok() {
                    unmount(&unmounter, &mountpoint);
                }
            })
            .map_err(|e| e.to_string())?;
    }
    if let Some(timeout) = config.timeout {
        let (unmounter, mountpoint) = (unmounter.clone(), mountpoint.clone());
        std::thread::Builder::new()
            .name("idle-timeout".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(250));
                if monitor.idle_secs().is_some_and(|idle| idle >= timeout) {
                    unmount(&unmounter, &mountpoint);
                    break;
                }
            })
            .map_err(|e| e.to_string())?;
    }

    // Ready is said once the readahead window is set, so that files opened by the next
    // line of a script get it (each open file takes the window at open). Setting it needs
    // the session serving (see readahead::set), hence a thread.
    let mut ready = Outcome {
        parent: outcome.parent.take(),
        notify_pipe: outcome.notify_pipe.take(),
    };
    let (foreground, window) = (
        config.foreground,
        config.read_ahead_kb.unwrap_or(crate::readahead::DEFAULT_KB),
    );
    std::thread::Builder::new()
        .name("ready".into())
        .spawn(move || {
            crate::readahead::set(&mountpoint, window);
            ready.report(&Ok(()));
            if !foreground {
                detach_stdio();
            }
        })
        .map_err(|e| e.to_string())?;
    session
        .run()
        .map_err(|e| format!("serving {}: {e}", config.mountpoint.display()))
}

/// Unmounts; a busy mount is detached (it goes once its last user leaves) rather than kept.
fn unmount(unmounter: &Mutex<SessionUnmounter>, mountpoint: &Path) {
    let mut u = unmounter.lock().unwrap_or_else(|e| e.into_inner());
    if u.unmount().is_err() {
        let _ = nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A daemon keeps no terminal: stdin, stdout and stderr go to /dev/null.
pub fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let _ = std::env::set_current_dir("/");
}

//! Mounting: open and check the image first, daemonize (the command returns only once the
//! mount is ready, or has failed, like squashfuse), mount, serve. SIGTERM (as squashfuse
//! does since 0.2.0), SIGINT and SIGHUP (which squashfuse, through libfuse, takes as "exit
//! now", cutting open files off) and `-o timeout=N` idle seconds detach the mount lazily:
//! it leaves the tree at once, and the daemon serves the files still open in it until the
//! last is closed, then exits.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{fork, pipe2, setsid, ForkResult};
use sqfs::{Archive, OpenOptions};

use crate::attr::Owners;
use crate::auto_unmount::Watcher;
use crate::daemon::detach_stdio;
use crate::fuse_mount;
use crate::options::MountConfig;
use crate::server::{self, Access, Admit, Server};

/// Why an image could not be mounted and served; its Display is the one line squashfuse-rs
/// prints.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The image file cannot be opened.
    #[error("{}: {source}", image.display())]
    ImageFile { image: PathBuf, source: io::Error },
    /// The file is not an image this library reads, or it is damaged.
    #[error("{}: {source}", image.display())]
    Image { image: PathBuf, source: sqfs::Error },
    /// The root to mount (`/`, or `-o subdir=`) cannot be found or is not a directory.
    #[error("{}: subdir {subdir}: {source}", image.display())]
    Subdir {
        image: PathBuf,
        subdir: String,
        source: sqfs::Error,
    },
    #[error("{}: not a directory", .0.display())]
    MountPointNotADirectory(PathBuf),
    #[error("{}: {source}", path.display())]
    MountPoint { path: PathBuf, source: io::Error },
    /// A system call of the setup failed (pipe, fork, sigprocmask).
    #[error("{call}: {source}")]
    System { call: &'static str, source: Errno },
    /// The mount (mount(2) or fusermount3), or the auto_unmount watcher, could not be made.
    #[error("{0}")]
    Mount(String),
    #[error("FUSE session on {}: {source}", mountpoint.display())]
    Session {
        mountpoint: PathBuf,
        source: io::Error,
    },
    /// A thread of the daemon could not be started.
    #[error("{0}")]
    Thread(io::Error),
    #[error("serving {}: {source}", mountpoint.display())]
    Serve {
        mountpoint: PathBuf,
        source: io::Error,
    },
}

/// Opens the image and finds the mount root: every error a user can fix shows here, before
/// anything is forked or mounted.
pub fn open_image(config: &MountConfig) -> Result<(Arc<Archive>, sqfs::Inode), MountError> {
    let image = || config.image.clone();
    let file = File::open(&config.image).map_err(|source| MountError::ImageFile {
        image: image(),
        source,
    })?;
    let options = OpenOptions {
        offset: config.offset,
        ..OpenOptions::default()
    };
    let archive = Archive::open_file(file, &options).map_err(|source| MountError::Image {
        image: image(),
        source,
    })?;
    let subdir = |source| MountError::Subdir {
        image: image(),
        subdir: config.subdir.as_deref().unwrap_or("/").to_string(),
        source,
    };
    let root = match &config.subdir {
        None => archive.root(),
        Some(dir) => archive.lookup_path(dir),
    }
    .map_err(subdir)?;
    if !root.is_dir() {
        return Err(subdir(sqfs::Error::NotADirectory));
    }
    Ok((Arc::new(archive), root))
}

fn check_mountpoint(path: &Path) -> Result<(), MountError> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => Err(MountError::MountPointNotADirectory(path.to_path_buf())),
        Err(source) => Err(MountError::MountPoint {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// fuser's settings: the worker threads (the mount itself is made in `fuse_mount`).
/// How the options say the image is served.
fn server(config: &MountConfig, archive: Arc<Archive>, root: sqfs::Inode) -> Server {
    let workers = if config.single_thread {
        1
    } else {
        config.max_threads.unwrap_or_else(server::default_threads)
    };
    // With allow_root the kernel lets everyone through (`allow_other`) and the session turns
    // away all but root and the owner, as libfuse does; then every access must be asked
    // for: with files opened without a request and entries cached, what root left in the
    // caches would be read by anyone. -o timeout counts open files.
    let (admit, access) = if config.allow_other {
        (Admit::All, timeout_access(config))
    } else if config.allow_root {
        (Admit::RootAndOwner, Access::CheckingEveryAccess)
    } else {
        (Admit::Owner, timeout_access(config))
    };
    Server::new(archive, root)
        .owners(Owners {
            uid: config.uid,
            gid: config.gid,
        })
        .workers(workers)
        .admit(admit)
        .access(access)
}

fn timeout_access(config: &MountConfig) -> Access {
    if config.timeout.is_some() {
        Access::CountingOpens
    } else {
        Access::Cached
    }
}

/// Where the outcome of the mount is reported: the parent waiting in daemon mode, and the
/// `notify_pipe` FIFO (`s` for success, `f` for failure, as squashfuse writes).
struct Outcome {
    parent: Option<OwnedFd>,
    notify_pipe: Option<std::path::PathBuf>,
}

impl Outcome {
    fn report(&mut self, result: &Result<(), MountError>) {
        if let Some(path) = &self.notify_pipe {
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) {
                let _ = f.write_all(if result.is_ok() { b"s" } else { b"f" });
            }
        }
        if let Some(fd) = self.parent.take() {
            let mut f = File::from(fd);
            let _ = match result {
                Ok(()) => f.write_all(b"s"),
                Err(e) => f.write_all(format!("f{e}").as_bytes()),
            };
        }
    }
}

/// Mounts and serves until unmounted. In daemon mode the calling process exits inside
/// (0 once the mount is ready, 1 with the error printed if it failed).
pub fn run(config: MountConfig) -> Result<(), MountError> {
    let mut outcome = Outcome {
        parent: None,
        notify_pipe: config.notify_pipe.clone(),
    };
    // In the forked daemon, errors go to the waiting parent instead of stderr.
    let mut daemonized = false;
    let result = (|| {
        let (archive, root) = open_image(&config)?;
        check_mountpoint(&config.mountpoint)?;
        if !config.foreground {
            outcome.parent = Some(daemonize()?);
            daemonized = true;
        }
        mount_and_serve(&config, archive, root, &mut outcome)
    })();
    if result.is_err() {
        outcome.report(&result);
        if daemonized {
            // The waiting parent printed the message; the daemon leaves quietly.
            std::process::exit(1);
        }
    }
    result
}

/// Forks; the parent waits for the child's word and exits with it. Returns, in the child,
/// the pipe to report on. Must run before any thread is started.
pub(crate) fn daemonize() -> Result<OwnedFd, MountError> {
    // Close-on-exec: a helper the daemon starts and that outlives the mount (fusermount3
    // with auto_unmount) must not hold the parent's wait open.
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(system("pipe"))?;
    // SAFETY: no threads exist yet (the image was opened without any), so the child may
    // run arbitrary code.
    match unsafe { fork() }.map_err(system("fork"))? {
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
) -> Result<(), MountError> {
    // Signals go to a thread that detaches the mount; block them before any thread exists
    // so every thread inherits the mask.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(s);
    }
    signals.thread_block().map_err(system("sigprocmask"))?;

    if config.debug {
        let _ = env_logger::Builder::new()
            .filter_level(log::LevelFilter::Debug)
            .try_init();
        for (option, why) in &config.no_effect {
            log::debug!("option {option} has no effect: {why}");
        }
    }
    // mountinfo names mount points with symlinks resolved.
    let mountpoint = config
        .mountpoint
        .canonicalize()
        .map_err(|source| MountError::MountPoint {
            path: config.mountpoint.clone(),
            source,
        })?;
    let mut watcher = if config.auto_unmount {
        Some(Watcher::start(&mountpoint).map_err(MountError::Mount)?)
    } else {
        None
    };
    let (device, mounted) = fuse_mount::mount(config, &mountpoint).map_err(MountError::Mount)?;
    if let Some(watcher) = watcher.as_mut() {
        watcher.mounted(mounted.device);
    }
    let mounted = Arc::new(mounted);
    // The kernel queued INIT when the mount was made; the session answers it once it runs.
    let session = server(config, archive, root)
        .start(device)
        .map_err(|source| MountError::Session {
            mountpoint: mountpoint.clone(),
            source,
        });
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            // Leave no mount behind that nobody serves.
            let _ = mounted.detach();
            return Err(e);
        }
    };

    {
        let mounted = mounted.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                // Every signal asks again: a detach that could not be done (fusermount3
                // missing, say) may be retried by signalling again.
                while let Ok(signal) = signals.wait() {
                    log::debug!("{signal}: detaching the mount");
                    detach(&mounted);
                }
            })
            .map_err(MountError::Thread)?;
    }
    if let Some(timeout) = config.timeout {
        let monitor = session.monitor();
        let mounted = mounted.clone();
        std::thread::Builder::new()
            .name("idle-timeout".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(250));
                // Strictly more than N whole seconds since the last request's second: at
                // least N seconds idle (squashfuse compares the same way).
                if monitor.idle_secs().is_some_and(|idle| idle > timeout) {
                    log::debug!("idle for {timeout} s: detaching the mount");
                    detach(&mounted);
                    break;
                }
            })
            .map_err(MountError::Thread)?;
    }

    // The session answered INIT as it started, so the readahead window can be set now
    // (the kernel clamps it when it takes INIT). Ready is said once it is, so that files
    // opened by the next line of a script get it (each open file takes the window at
    // open); what that line asks waits in the kernel until the serving threads, started
    // right after, read it.
    if let Some(device) = mounted.device {
        crate::readahead::set(device, config.readahead_window_kb());
    }
    let mut ready = Outcome {
        parent: outcome.parent.take(),
        notify_pipe: outcome.notify_pipe.take(),
    };
    ready.report(&Ok(()));
    if !config.foreground {
        detach_stdio();
    }
    // Serves until the kernel ends the session: when the mount is unmounted, or, once it
    // is detached, when the last file open in it is closed. Nothing is unmounted after
    // that: the mount is gone, and whatever is at the path now is not ours.
    let served = session.run().map_err(|source| MountError::Serve {
        mountpoint: mountpoint.clone(),
        source,
    });
    drop(watcher);
    served
}

/// A failed system call of the setup, as a [`MountError`].
fn system(call: &'static str) -> impl FnOnce(Errno) -> MountError {
    move |source| MountError::System { call, source }
}

/// Detaches the mount (see `Mounted::detach`); why it could not is logged with -d.
fn detach(mounted: &fuse_mount::Mounted) {
    if let Err(e) = mounted.detach() {
        log::debug!("not detached: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/tiny/tiny-gzip.sqfs"
    );

    fn open(image: &str, subdir: Option<&str>) -> Result<(), MountError> {
        let config = MountConfig {
            image: image.into(),
            subdir: subdir.map(str::to_string),
            ..MountConfig::default()
        };
        open_image(&config).map(|_| ())
    }

    #[test]
    fn image_errors_say_what_is_wrong_in_kind_and_in_words() {
        assert!(open(TINY, None).is_ok() && open(TINY, Some("/dir/sub")).is_ok());

        let e = open("/nonexistent/image.sqfs", None).unwrap_err();
        assert!(
            matches!(&e, MountError::ImageFile { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "/nonexistent/image.sqfs: No such file or directory (os error 2)"
        );

        let e = open("/dev/null", None).unwrap_err();
        assert!(
            matches!(
                &e,
                MountError::Image {
                    source: sqfs::Error::BadMagic,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "/dev/null: not a SquashFS image (bad magic)");

        let e = open(TINY, Some("hello.txt")).unwrap_err();
        assert!(
            matches!(
                &e,
                MountError::Subdir {
                    source: sqfs::Error::NotADirectory,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("{TINY}: subdir hello.txt: not a directory")
        );
        let e = open(TINY, Some("no/such")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{TINY}: subdir no/such: no such file or directory")
        );
    }
}

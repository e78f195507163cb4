//! squashfuse_ll's command line: `[-f] [-d] [-s] [-o OPT[,OPT…]] IMAGE MOUNTPOINT`, with
//! every option squashfuse_ll takes: its own (`offset`, `timeout`, `uid`, `gid`, `subdir`,
//! `notify_pipe`) and those its libfuse takes (libfuse 3's `lib/helper.c`,
//! `lib/fuse_lowlevel.c` and `lib/mount.c` lists, and libfuse 2.9's, which builds against
//! fuse 2 pass on). Each is applied where it means something for a read-only image; the
//! rest are accepted with no effect, the reason logged with `-d`. Only an option libfuse
//! would not know either is refused.

use std::path::PathBuf;

use clap::Parser;

/// A command line squashfuse-rs refuses; its Display is the one line it prints.
#[derive(Debug, thiserror::Error)]
pub enum OptionError {
    #[error("unknown option '{0}'")]
    Unknown(String),
    #[error("option {key} needs a number, as {key}=N")]
    NotANumber { key: String },
    #[error("option {key} needs {what}, as {key}={}", what.to_uppercase())]
    NoValue { key: String, what: &'static str },
    /// A value an option without effect here still checks (as libfuse would parse it).
    #[error("option {key} has a bad value: '{option}'")]
    BadValue { key: String, option: String },
    #[error("option max_threads needs at least 1")]
    NoThreads,
    #[error("option blkdev needs a block device; squashfuse-rs mounts image files")]
    BlockDevice,
    #[error("allow_other and allow_root are mutually exclusive")]
    AllowOtherAndRoot,
    /// The mount point's path cannot be made absolute.
    #[error("{}: {source}", path.display())]
    MountPoint {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Parser, Debug)]
#[command(
    name = "squashfuse-rs",
    version,
    about = "Mount a SquashFS image with FUSE (a drop-in for squashfuse_ll)",
    after_help = USAGE_OPTIONS
)]
pub struct Args {
    /// The SquashFS image
    #[arg(value_hint = clap::ValueHint::FilePath)]
    pub image: PathBuf,
    /// Where to mount it
    #[arg(value_hint = clap::ValueHint::DirPath)]
    pub mountpoint: PathBuf,
    /// Stay in the foreground
    #[arg(short = 'f')]
    pub foreground: bool,
    /// Debug output (implies -f); also -o debug
    #[arg(short = 'd')]
    pub debug: bool,
    /// Debug output, still going to the background (libfuse's --debug)
    #[arg(long = "debug")]
    pub debug_background: bool,
    /// Single-threaded: one request at a time
    #[arg(short = 's')]
    pub single_thread: bool,
    /// Read-only (always; libfuse's -r)
    #[arg(short = 'r')]
    pub read_only: bool,
    /// No /etc/mtab entry (none is ever written; libfuse's -n)
    #[arg(short = 'n')]
    pub no_mtab: bool,
    /// Mount options, comma-separated (a backslash escapes a comma); may be repeated
    #[arg(short = 'o', value_name = "OPT[,OPT...]", action = clap::ArgAction::Append)]
    pub options: Vec<String>,
}

/// The command line's definition, for the man page and completions.
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// The `-o` options, for `--help` (and the README).
pub const USAGE_OPTIONS: &str = "\
Options for -o (squashfuse_ll's):
  offset=N             the image starts N bytes into the file
  timeout=N            unmount after N idle seconds with no file open
  uid=N, gid=N         every file is owned by uid N / gid N
  subdir=PATH          mount directory PATH of the image as the root
  notify_pipe=PATH     write 's' (mounted) or 'f' (failed) to the FIFO PATH
Options of libfuse, applied:
  debug                as -d
  allow_other          let every user in (root: always; users: user_allow_other in /etc/fuse.conf)
  allow_root           let root in as well as the owner
  default_permissions  the kernel checks file modes
  fsname=NAME          the source shown in /proc/mounts (default: the image path)
  subtype=NAME         the type shown is fuse.NAME (default: fuse.squashfuse)
  max_read=N           READ requests of at most N bytes
  max_readahead=N      caps the kernel's readahead window at N bytes (as root)
  max_threads=N        N worker threads (default: one per CPU, at least 2; -s: one)
  auto_unmount         unmount if the daemon dies (killed, crashed): a watcher process does it
  nosuid, nodev        the default; suid, dev lift them (root only)
  noexec, noatime, sync, dirsync (and exec, atime, async): mount flags
  context=, fscontext=, defcontext=, rootcontext=: SELinux labels, passed to the kernel
  ro                   always read-only; rw is accepted, the mount stays read-only
Accepted with no effect (-d logs why): kernel_cache and auto_cache (pages are kept; the
  image never changes), entry_timeout=, attr_timeout=, negative_timeout=, use_ino,
  readdir_ino, clone_fd, max_idle_threads=, max_background=, congestion_threshold=,
  async_read, sync_read, max_write=, big_writes, atomic_o_trunc, no_remote_lock,
  no_remote_flock, no_remote_posix_lock, splice_read/write/move and no_ forms, nonempty,
  large_read, blksize=, user=.
Ours: read_ahead_kb=N  the kernel's readahead window for the mount, as root (default 1024).
SIGTERM, SIGINT and SIGHUP detach the mount at once (umount -l); files already open stay
readable, and the daemon exits when the last is closed.";

/// Everything a mount needs, parsed and checked.
#[derive(Debug, Clone, Default)]
pub struct MountConfig {
    pub image: PathBuf,
    pub mountpoint: PathBuf,
    pub foreground: bool,
    pub debug: bool,
    pub single_thread: bool,
    pub offset: u64,
    /// Unmount after this many idle seconds with no file open.
    pub timeout: Option<u64>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub subdir: Option<String>,
    pub notify_pipe: Option<PathBuf>,
    pub allow_other: bool,
    pub allow_root: bool,
    pub default_permissions: bool,
    pub fsname: Option<String>,
    pub subtype: Option<String>,
    pub noexec: bool,
    pub noatime: bool,
    pub sync: bool,
    pub dirsync: bool,
    /// nosuid and nodev are the default, as for every FUSE mount; `suid`/`dev` lift them
    /// (root only).
    pub suid: bool,
    pub dev: bool,
    /// The kernel's `max_read=`: no READ request is larger.
    pub max_read: Option<u32>,
    /// libfuse's cap on the readahead window, in bytes.
    pub max_readahead: Option<u32>,
    /// Worker threads.
    pub max_threads: Option<usize>,
    /// Mounted through fusermount3, which unmounts if the daemon dies.
    pub auto_unmount: bool,
    /// Options passed to the kernel as given (SELinux labels).
    pub kernel_options: Vec<String>,
    /// The kernel's readahead window for the mount, in KiB (set when root); None: ours,
    /// `readahead::DEFAULT_KB`.
    pub read_ahead_kb: Option<u32>,
    /// Options accepted that do nothing here, each with the reason.
    pub no_effect: Vec<(String, &'static str)>,
}

fn number<T: std::str::FromStr>(key: &str, value: Option<&str>) -> Result<T, OptionError> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| OptionError::NotANumber { key: key.into() })
}

fn text(key: &str, value: Option<&str>, what: &'static str) -> Result<String, OptionError> {
    value
        .map(str::to_string)
        .ok_or_else(|| OptionError::NoValue {
            key: key.into(),
            what,
        })
}

/// Splits one `-o` argument as libfuse does (`lib/fuse_opt.c`): at commas, a backslash
/// taking the next character as it is (`\,` is a comma in a value) and `\NNN` an octal byte.
fn split_options(arg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let bytes = arg.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b',' => out.push(std::mem::take(&mut current)),
            b'\\' if i + 1 < bytes.len() => {
                let rest = &bytes[i + 1..];
                let octal = rest.len() >= 3
                    && (b'0'..=b'3').contains(&rest[0])
                    && rest[1..3].iter().all(|c| (b'0'..=b'7').contains(c));
                if octal {
                    current.push((rest[0] - b'0') * 64 + (rest[1] - b'0') * 8 + (rest[2] - b'0'));
                    i += 3;
                } else {
                    current.push(rest[0]);
                    i += 1;
                }
            }
            b => current.push(b),
        }
        i += 1;
    }
    out.push(current);
    out.into_iter()
        .filter(|o| !o.is_empty())
        .map(|o| String::from_utf8_lossy(&o).into_owned())
        .collect()
}

/// Options without a value that libfuse takes and that do nothing here, and why (`-d`
/// logs it; the man page lists it).
pub const FLAGS_WITHOUT_EFFECT: &[(&str, &str)] = &[
    (
        "rw",
        "the image is read-only: the mount stays ro (writes fail with EROFS)",
    ),
    ("kernel_cache", "file pages are kept across opens anyway"),
    (
        "auto_cache",
        "the image never changes: there is nothing to invalidate",
    ),
    ("use_ino", "inode numbers are always the image's"),
    ("readdir_ino", "inode numbers are always the image's"),
    (
        "clone_fd",
        "the worker threads share one /dev/fuse descriptor",
    ),
    ("async_read", "reads are asynchronous anyway"),
    ("sync_read", "reads stay asynchronous"),
    ("big_writes", "nothing is written"),
    ("atomic_o_trunc", "nothing is written"),
    ("no_remote_lock", "locks are the kernel's own"),
    ("no_remote_flock", "locks are the kernel's own"),
    ("no_remote_posix_lock", "locks are the kernel's own"),
    ("splice_read", "replies are written from memory"),
    ("no_splice_read", "replies are written from memory"),
    ("splice_write", "replies are written from memory"),
    ("no_splice_write", "replies are written from memory"),
    ("splice_move", "replies are written from memory"),
    ("no_splice_move", "replies are written from memory"),
    (
        "nonempty",
        "a non-empty directory can always be mounted over",
    ),
    ("large_read", "obsolete since Linux 2.4"),
];

/// What the value of an option without effect must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A whole number.
    Number,
    /// Seconds, with a fraction (libfuse's timeouts are doubles).
    Seconds,
    /// Any non-empty text.
    Text,
}

/// Options with a value that libfuse takes and that do nothing here, and why; the value
/// must still be well formed.
pub const VALUES_WITHOUT_EFFECT: &[(&str, ValueKind, &str)] = &[
    (
        "entry_timeout",
        ValueKind::Seconds,
        "entries are cached for ever (the image never changes)",
    ),
    (
        "attr_timeout",
        ValueKind::Seconds,
        "attributes are cached for ever (the image never changes)",
    ),
    (
        "negative_timeout",
        ValueKind::Seconds,
        "misses are cached for ever (the image never changes)",
    ),
    (
        "max_idle_threads",
        ValueKind::Number,
        "the worker threads are a fixed pool",
    ),
    (
        "max_background",
        ValueKind::Number,
        "the kernel's defaults are kept",
    ),
    (
        "congestion_threshold",
        ValueKind::Number,
        "the kernel's defaults are kept",
    ),
    ("max_write", ValueKind::Number, "nothing is written"),
    (
        "blksize",
        ValueKind::Number,
        "only block-device FUSE mounts (blkdev) take it",
    ),
    ("user", ValueKind::Text, "there is no /etc/mtab to write"),
];

fn flag_without_effect(key: &str) -> Option<&'static str> {
    FLAGS_WITHOUT_EFFECT
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, why)| *why)
}

fn value_without_effect(key: &str) -> Option<(ValueKind, &'static str)> {
    VALUES_WITHOUT_EFFECT
        .iter()
        .find(|(name, _, _)| *name == key)
        .map(|(_, kind, why)| (*kind, *why))
}

impl MountConfig {
    pub fn from_args(args: Args) -> Result<Self, OptionError> {
        let mut c = MountConfig {
            image: args.image,
            mountpoint: args.mountpoint,
            foreground: args.foreground || args.debug,
            debug: args.debug || args.debug_background,
            single_thread: args.single_thread,
            ..MountConfig::default()
        };
        for opt in args.options.iter().flat_map(|o| split_options(o)) {
            c.apply(&opt)?;
        }
        // The daemon changes to `/`; libfuse makes the mount point absolute too.
        c.mountpoint =
            std::path::absolute(&c.mountpoint).map_err(|source| OptionError::MountPoint {
                path: c.mountpoint.clone(),
                source,
            })?;
        if c.allow_other && c.allow_root {
            return Err(OptionError::AllowOtherAndRoot);
        }
        Ok(c)
    }

    fn apply(&mut self, opt: &str) -> Result<(), OptionError> {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        let unknown = || Err(OptionError::Unknown(opt.into()));
        if value.is_none() {
            match key {
                "debug" => {
                    self.debug = true;
                    self.foreground = true;
                }
                "ro" => {}
                "allow_other" => self.allow_other = true,
                "allow_root" => self.allow_root = true,
                "default_permissions" => self.default_permissions = true,
                "auto_unmount" => self.auto_unmount = true,
                "noexec" => self.noexec = true,
                "exec" => self.noexec = false,
                "noatime" => self.noatime = true,
                "atime" => self.noatime = false,
                "nosuid" => self.suid = false,
                "suid" => self.suid = true,
                "nodev" => self.dev = false,
                "dev" => self.dev = true,
                "sync" => self.sync = true,
                "async" => self.sync = false,
                "dirsync" => self.dirsync = true,
                "blkdev" => return Err(OptionError::BlockDevice),
                _ => match flag_without_effect(key) {
                    Some(why) => self.no_effect.push((opt.to_string(), why)),
                    None => return unknown(),
                },
            }
            return Ok(());
        }
        match key {
            "offset" => self.offset = number(key, value)?,
            "timeout" => self.timeout = Some(number(key, value)?),
            "uid" => self.uid = Some(number(key, value)?),
            "gid" => self.gid = Some(number(key, value)?),
            "read_ahead_kb" => self.read_ahead_kb = Some(number(key, value)?),
            "max_read" => self.max_read = Some(number(key, value)?),
            "max_readahead" => self.max_readahead = Some(number(key, value)?),
            "max_threads" => {
                let n: usize = number(key, value)?;
                if n == 0 {
                    return Err(OptionError::NoThreads);
                }
                self.max_threads = Some(n);
            }
            "subdir" => self.subdir = Some(text(key, value, "a path")?),
            "notify_pipe" => self.notify_pipe = Some(text(key, value, "a path")?.into()),
            "fsname" => self.fsname = Some(text(key, value, "a name")?),
            "subtype" => self.subtype = Some(text(key, value, "a name")?),
            "context" | "fscontext" | "defcontext" | "rootcontext" => {
                self.kernel_options.push(opt.to_string())
            }
            _ => match value_without_effect(key) {
                Some((kind, why)) => {
                    let well_formed = match (kind, value) {
                        (ValueKind::Number, Some(v)) => v.parse::<u64>().is_ok(),
                        (ValueKind::Seconds, Some(v)) => v.parse::<f64>().is_ok(),
                        (ValueKind::Text, Some(v)) => !v.is_empty(),
                        (_, None) => false,
                    };
                    if !well_formed {
                        return Err(OptionError::BadValue {
                            key: key.into(),
                            option: opt.into(),
                        });
                    }
                    self.no_effect.push((opt.to_string(), why));
                }
                None => return unknown(),
            },
        }
        Ok(())
    }

    /// The kernel's readahead window to set, in KiB: ours (or `read_ahead_kb=`), capped by
    /// `max_readahead=` as libfuse's cap would (the kernel takes the smaller).
    pub fn readahead_window_kb(&self) -> u32 {
        let window = self.read_ahead_kb.unwrap_or(crate::readahead::DEFAULT_KB);
        match self.max_readahead {
            Some(bytes) => window.min(bytes / 1024),
            None => window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<MountConfig, String> {
        let args =
            Args::try_parse_from(std::iter::once("squashfuse-rs").chain(argv.iter().copied()))
                .map_err(|e| e.to_string())?;
        MountConfig::from_args(args).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_squashfuse_ll_options() {
        let c = parse(&[
            "-o",
            "offset=1048576,timeout=5",
            "-ouid=7,gid=8",
            "img",
            "mnt",
            "-o",
            "subdir=a/b",
            "-s",
        ])
        .unwrap();
        assert_eq!(c.offset, 1 << 20);
        assert_eq!(c.timeout, Some(5));
        assert_eq!((c.uid, c.gid), (Some(7), Some(8)));
        assert_eq!(c.subdir.as_deref(), Some("a/b"));
        assert_eq!(c.read_ahead_kb, None);
        assert_eq!(
            parse(&["-o", "read_ahead_kb=128", "i", "m"])
                .unwrap()
                .read_ahead_kb,
            Some(128)
        );
        // The daemon leaves its working directory: the mount point must not be relative.
        assert!(c.mountpoint.is_absolute());
        assert!(c.mountpoint.ends_with("mnt"));
        assert!(c.single_thread && !c.foreground);
        assert_eq!(c.image, PathBuf::from("img"));
        assert!(parse(&["-d", "i", "m"]).unwrap().foreground);
    }

    #[test]
    fn debug_is_d_and_long_debug_stays_in_the_background() {
        for argv in [&["-o", "debug", "i", "m"][..], &["-odebug", "i", "m"]] {
            let c = parse(argv).unwrap();
            assert!(c.debug && c.foreground, "{argv:?}");
        }
        let c = parse(&["--debug", "i", "m"]).unwrap();
        assert!(c.debug && !c.foreground);
        assert!(parse(&["-r", "-n", "i", "m"]).is_ok());
    }

    #[test]
    fn libfuse_options_are_applied() {
        let c = parse(&[
            "-o",
            "allow_root,default_permissions,fsname=x\\,y,subtype=z,max_read=4096",
            "-o",
            "noexec,noatime,sync,dirsync,suid,dev,auto_unmount,max_threads=3,ro",
            "-o",
            "context=system_u:object_r:tmp_t:s0",
            "i",
            "m",
        ])
        .unwrap();
        assert!(c.allow_root && c.default_permissions && c.auto_unmount);
        assert_eq!(c.fsname.as_deref(), Some("x,y"));
        assert_eq!(c.subtype.as_deref(), Some("z"));
        assert_eq!(c.max_read, Some(4096));
        assert_eq!(c.max_threads, Some(3));
        assert!(c.noexec && c.noatime && c.sync && c.dirsync && c.suid && c.dev);
        assert_eq!(c.kernel_options, ["context=system_u:object_r:tmp_t:s0"]);
        assert!(c.no_effect.is_empty());
        // The later of a pair wins, as in libfuse.
        let c = parse(&["-o", "noexec,exec,noatime,atime,sync,async", "i", "m"]).unwrap();
        assert!(!c.noexec && !c.noatime && !c.sync);
    }

    #[test]
    fn options_without_effect_here_are_accepted() {
        let all = "rw,kernel_cache,auto_cache,entry_timeout=1.5,attr_timeout=1,\
                   negative_timeout=0,use_ino,readdir_ino,clone_fd,max_idle_threads=4,\
                   max_background=12,congestion_threshold=9,async_read,sync_read,\
                   max_write=4096,big_writes,atomic_o_trunc,no_remote_lock,\
                   no_remote_flock,no_remote_posix_lock,splice_read,no_splice_read,\
                   splice_write,no_splice_write,splice_move,no_splice_move,nonempty,\
                   large_read,blksize=4096,user=someone";
        let c = parse(&["-o", all, "i", "m"]).unwrap();
        assert_eq!(c.no_effect.len(), all.split(',').count());
        assert!(c.no_effect.iter().all(|(_, why)| !why.is_empty()));
    }

    #[test]
    fn readahead_is_capped_by_max_readahead() {
        let window = |argv: &[&str]| parse(argv).unwrap().readahead_window_kb();
        assert_eq!(window(&["i", "m"]), crate::readahead::DEFAULT_KB);
        assert_eq!(window(&["-o", "max_readahead=65536", "i", "m"]), 64);
        assert_eq!(
            window(&["-o", "max_readahead=8388608", "i", "m"]),
            crate::readahead::DEFAULT_KB
        );
        assert_eq!(
            window(&["-o", "read_ahead_kb=32,max_readahead=65536", "i", "m"]),
            32
        );
    }

    #[test]
    fn splits_as_libfuse_does() {
        assert_eq!(
            split_options(r"a,b\,c,,d\\e,\101"),
            ["a", "b,c", r"d\e", "A"]
        );
        // A backslash at the end is kept, as libfuse keeps it.
        assert_eq!(split_options("x\\"), ["x\\"]);
    }

    #[test]
    fn rejects_bad_options() {
        assert!(parse(&["-o", "offset=x", "i", "m"])
            .unwrap_err()
            .contains("offset=N"));
        assert_eq!(
            parse(&["-o", "frobnicate", "i", "m"]).unwrap_err(),
            "unknown option 'frobnicate'"
        );
        // A flag with a value, or a value option without one, is not libfuse's option.
        for bad in ["ro=1", "debug=yes", "fsname", "max_read", "kernel_cache=1"] {
            let err = parse(&["-o", bad, "i", "m"]).unwrap_err();
            assert!(err.contains(bad.split('=').next().unwrap()), "{bad}: {err}");
        }
        assert!(parse(&["-o", "blksize=big", "i", "m"]).is_err());
        assert!(parse(&["-o", "entry_timeout=soon", "i", "m"]).is_err());
        assert!(parse(&["-o", "max_threads=0", "i", "m"]).is_err());
        assert!(parse(&["-o", "blkdev", "i", "m"])
            .unwrap_err()
            .contains("block device"));
        assert!(parse(&["-o", "allow_other,allow_root", "i", "m"]).is_err());
        assert!(parse(&["i"]).is_err());
    }

    #[test]
    fn errors_are_typed() {
        let config = |opts: &str| {
            MountConfig::from_args(
                Args::try_parse_from(["squashfuse-rs", "-o", opts, "i", "m"]).unwrap(),
            )
        };
        assert!(matches!(config("frobnicate"), Err(OptionError::Unknown(o)) if o == "frobnicate"));
        assert!(matches!(config("uid=me"), Err(OptionError::NotANumber { key }) if key == "uid"));
        assert!(matches!(
            config("max_threads=0"),
            Err(OptionError::NoThreads)
        ));
        assert!(matches!(
            config("allow_other,allow_root"),
            Err(OptionError::AllowOtherAndRoot)
        ));
    }
}

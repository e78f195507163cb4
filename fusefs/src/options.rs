//! squashfuse_ll's command line: `[-f] [-d] [-s] [-o OPT[,OPT…]] IMAGE MOUNTPOINT`.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "squashfuse-rs",
    version,
    about = "Mount a SquashFS image with FUSE (a drop-in for squashfuse_ll)",
    after_help = "Options for -o: offset=N, timeout=N, uid=N, gid=N, subdir=PATH, notify_pipe=PATH,\n\
                  allow_other, allow_root, default_permissions, fsname=NAME, subtype=NAME, ro,\n\
                  nosuid, nodev, noexec, noatime (and their positive forms where FUSE has them),\n\
                  read_ahead_kb=N (the kernel's readahead window, as root; default 1024)."
)]
pub struct Args {
    /// The SquashFS image
    pub image: PathBuf,
    /// Where to mount it
    pub mountpoint: PathBuf,
    /// Stay in the foreground
    #[arg(short = 'f')]
    pub foreground: bool,
    /// Debug output (implies -f)
    #[arg(short = 'd')]
    pub debug: bool,
    /// Single-threaded: one request at a time
    #[arg(short = 's')]
    pub single_thread: bool,
    /// Mount options, comma-separated; may be repeated
    #[arg(short = 'o', value_name = "OPT[,OPT...]", action = clap::ArgAction::Append)]
    pub options: Vec<String>,
}

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
    /// nosuid and nodev are the default, as for every FUSE mount; `suid`/`dev` lift them
    /// (root only).
    pub suid: bool,
    pub dev: bool,
    /// The kernel's readahead window for the mount, in KiB (set when root); None: ours,
    /// `readahead::DEFAULT_KB`.
    pub read_ahead_kb: Option<u32>,
}

fn number<T: std::str::FromStr>(key: &str, value: Option<&str>) -> Result<T, String> {
    value
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("option {key} needs a number, as {key}=N"))
}

impl MountConfig {
    pub fn from_args(args: Args) -> Result<Self, String> {
        let mut c = MountConfig {
            image: args.image,
            mountpoint: args.mountpoint,
            foreground: args.foreground || args.debug,
            debug: args.debug,
            single_thread: args.single_thread,
            ..MountConfig::default()
        };
        for opt in args
            .options
            .iter()
            .flat_map(|o| o.split(','))
            .filter(|o| !o.is_empty())
        {
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            match key {
                "offset" => c.offset = number(key, value)?,
                "timeout" => c.timeout = Some(number(key, value)?),
                "uid" => c.uid = Some(number(key, value)?),
                "gid" => c.gid = Some(number(key, value)?),
                "read_ahead_kb" => c.read_ahead_kb = Some(number(key, value)?),
                "subdir" => {
                    c.subdir = Some(
                        value
                            .ok_or("option subdir needs a path, as subdir=PATH")?
                            .to_string(),
                    )
                }
                "notify_pipe" => {
                    c.notify_pipe = Some(value.ok_or("option notify_pipe needs a path")?.into())
                }
                "fsname" => c.fsname = value.map(str::to_string),
                "subtype" => c.subtype = value.map(str::to_string),
                "allow_other" => c.allow_other = true,
                "allow_root" => c.allow_root = true,
                "default_permissions" => c.default_permissions = true,
                "noexec" => c.noexec = true,
                "exec" => c.noexec = false,
                "noatime" => c.noatime = true,
                "atime" => c.noatime = false,
                "nosuid" => c.suid = false,
                "suid" => c.suid = true,
                "nodev" => c.dev = false,
                "dev" => c.dev = true,
                // A read-only filesystem: `ro` is what it is anyway; options libfuse took
                // for tuning are accepted and have no effect here.
                "ro" | "kernel_cache" | "auto_cache" | "big_writes" | "async_read"
                | "sync_read" | "max_read" | "max_readahead" | "entry_timeout" | "attr_timeout"
                | "negative_timeout" | "use_ino" | "readdir_ino" | "auto_unmount" | "clone_fd"
                | "max_threads" | "max_idle_threads" => {}
                "rw" => return Err("the image is read-only: option rw is not possible".into()),
                _ => return Err(format!("unknown option '{opt}'")),
            }
        }
        // The daemon changes to `/`; libfuse makes the mount point absolute too.
        c.mountpoint = std::path::absolute(&c.mountpoint)
            .map_err(|e| format!("{}: {e}", c.mountpoint.display()))?;
        if c.allow_other && c.allow_root {
            return Err("allow_other and allow_root are mutually exclusive".into());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<MountConfig, String> {
        let args =
            Args::try_parse_from(std::iter::once("squashfuse-rs").chain(argv.iter().copied()))
                .map_err(|e| e.to_string())?;
        MountConfig::from_args(args)
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
    fn rejects_bad_options() {
        assert!(parse(&["-o", "offset=x", "i", "m"])
            .unwrap_err()
            .contains("offset=N"));
        assert!(parse(&["-o", "frobnicate", "i", "m"])
            .unwrap_err()
            .contains("unknown option 'frobnicate'"));
        assert!(parse(&["-o", "allow_other,allow_root", "i", "m"]).is_err());
        assert!(parse(&["-o", "rw", "i", "m"]).is_err());
        assert!(parse(&["i"]).is_err());
    }
}

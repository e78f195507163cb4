//! `sqfs pack`'s command line made into what the walk and the writer take: mksquashfs's
//! option values parsed, owners and times resolved, SOURCE_DATE_EPOCH applied.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use sqfs::{Compression, Fragments, WriteOptions, Xattr};

use super::error::{Error, Result};
use super::source::{self, Stat};
use crate::cli::PackArgs;

#[derive(Debug, Clone)]
pub struct Options {
    pub write: WriteOptions,
    pub force_uid: Option<u32>,
    pub force_gid: Option<u32>,
    pub xattrs: bool,
    /// Paths to leave out, as given (`-e`, and the lines of `-ef` files).
    pub exclude: Vec<PathBuf>,
    /// Every entry's mtime (`-all-time`).
    pub all_time: Option<u32>,
    /// No entry's mtime later than this (SOURCE_DATE_EPOCH).
    pub clamp_time: Option<u32>,
    pub progress: bool,
}

fn bad(why: String) -> Error {
    Error::Options(why)
}

/// `-b`: bytes, or a number with K or M.
pub fn block_size(text: &str) -> Result<u32> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 1 << 10),
        Some((i, 'm' | 'M')) => (&text[..i], 1 << 20),
        _ => (text, 1),
    };
    digits
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| (4096..=1 << 20).contains(&n) && n.is_power_of_two())
        .ok_or_else(|| {
            bad(format!(
                "block size {text} is not a power of two from 4K to 1M"
            ))
        })
}

/// A user or group named by number or by name (`getpwnam`/`getgrnam`).
fn owner(text: &str, group: bool) -> Result<u32> {
    if let Ok(n) = text.parse::<u32>() {
        return Ok(n);
    }
    let what = if group { "group" } else { "user" };
    let name = CString::new(text).map_err(|_| bad(format!("no {what} {text:?}")))?;
    // SAFETY: called before any other thread exists (the command line is read first);
    // the returned record is read at once.
    let id = unsafe {
        if group {
            let g = libc::getgrnam(name.as_ptr());
            (!g.is_null()).then(|| (*g).gr_gid)
        } else {
            let p = libc::getpwnam(name.as_ptr());
            (!p.is_null()).then(|| (*p).pw_uid)
        }
    };
    id.ok_or_else(|| bad(format!("no {what} {text:?}")))
}

impl Options {
    /// The options `args` give, with `source_date_epoch` (the variable's value, if set).
    pub fn from_args(args: &PackArgs, source_date_epoch: Option<&OsStr>) -> Result<Options> {
        let compression = match args.comp.as_str() {
            "gzip" => Compression::Gzip,
            "xz" => Compression::Xz,
            "zstd" => Compression::Zstd,
            "lz4" => Compression::Lz4,
            "lzo" => Compression::Lzo,
            other => return Err(bad(format!("unknown compressor {other}"))),
        };
        let epoch = source_date_epoch
            .map(|v| {
                v.to_str()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "SOURCE_DATE_EPOCH={} is not a time in seconds (0..=4294967295)",
                            v.to_string_lossy()
                        ))
                    })
            })
            .transpose()?;
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs().min(u64::from(u32::MAX)) as u32)
        };
        let fragments = if args.no_fragments {
            Fragments::Never
        } else if args.always_use_fragments {
            Fragments::Always
        } else {
            Fragments::SmallFiles
        };
        let write = WriteOptions {
            compression,
            level: args.level,
            xz_filters: args
                .xz_bcj
                .iter()
                .flat_map(|f| f.split(','))
                .filter(|f| !f.is_empty())
                .map(String::from)
                .collect(),
            lz4_hc: args.lz4_hc,
            block_size: block_size(&args.block_size)?,
            threads: args.processors.map_or(0, usize::from),
            fragments,
            duplicates: !args.no_duplicates,
            exportable: !args.no_exports,
            mkfs_time: args.mkfs_time.or(epoch).unwrap_or_else(now),
        };
        let root = args.all_root.then_some(0);
        let force_uid = match &args.force_uid {
            Some(u) => Some(owner(u, false)?),
            None => root,
        };
        let force_gid = match &args.force_gid {
            Some(g) => Some(owner(g, true)?),
            None => root,
        };
        let mut exclude = args.exclude.clone();
        for file in &args.exclude_file {
            let text = std::fs::read(file).map_err(|e| Error::Source {
                path: file.display().to_string(),
                source: e,
            })?;
            exclude.extend(
                text.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| PathBuf::from(OsStr::from_bytes(l))),
            );
        }
        Ok(Options {
            write,
            force_uid,
            force_gid,
            xattrs: !args.no_xattrs,
            exclude,
            all_time: args.all_time,
            clamp_time: epoch,
            progress: !args.quiet && !args.no_progress,
        })
    }

    /// The excluded paths relative to `source`, as the walk finds them: `a/b`. An absolute
    /// path counts if it lies under `source` (as given or with its symlinks resolved);
    /// others name nothing in the tree and are ignored, as mksquashfs ignores them.
    pub(super) fn excludes(&self, source: &Path) -> Result<HashSet<Vec<u8>>> {
        let bases: Vec<PathBuf> = [std::path::absolute(source).ok(), source.canonicalize().ok()]
            .into_iter()
            .flatten()
            .map(|p| normal(&p))
            .collect();
        let mut set = HashSet::new();
        for path in &self.exclude {
            let relative = if path.is_absolute() {
                let path = normal(path);
                match bases.iter().find_map(|b| path.strip_prefix(b).ok()) {
                    Some(rel) => rel.to_path_buf(),
                    None => continue,
                }
            } else {
                normal(path)
            };
            if relative.as_os_str().is_empty() {
                continue;
            }
            set.insert(relative.as_os_str().as_bytes().to_vec());
        }
        Ok(set)
    }

    /// An entry's meta: owners forced and the time fixed or clamped as asked.
    pub(super) fn meta(&self, st: &Stat, xattrs: Vec<source::Xattr>) -> sqfs::Meta {
        let mtime = match self.all_time {
            Some(t) => t,
            None => {
                let t = st.mtime.clamp(0, i64::from(u32::MAX)) as u32;
                self.clamp_time.map_or(t, |limit| t.min(limit))
            }
        };
        sqfs::Meta {
            permissions: st.permissions,
            uid: self.force_uid.unwrap_or(st.uid),
            gid: self.force_gid.unwrap_or(st.gid),
            mtime,
            xattrs: xattrs
                .into_iter()
                .map(|(name, value)| Xattr { name, value })
                .collect(),
        }
    }
}

/// `path` without `.` components, repeated or trailing slashes (not resolving `..`, which
/// a symlink could make mean something else).
fn normal(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(rest: &[&str]) -> PackArgs {
        let argv = ["sqfs", "pack"].iter().chain(rest).map(OsStr::new);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Pack(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn block_sizes_as_mksquashfs_writes_them() {
        assert_eq!(block_size("128K").unwrap(), 131072);
        assert_eq!(block_size("1M").unwrap(), 1 << 20);
        assert_eq!(block_size("4096").unwrap(), 4096);
        assert_eq!(block_size("64k").unwrap(), 65536);
        for bad in ["3000", "2M", "0", "", "K", "128KB", "-4096", "8388608"] {
            assert!(block_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn excludes_are_paths_below_the_source() {
        let options = Options {
            exclude: ["a/b", "./c/", "/src/tree/d/e", "/elsewhere/f", "g//h", "."]
                .iter()
                .map(PathBuf::from)
                .collect(),
            ..Options::from_args(&args(&["/src/tree", "img"]), None).unwrap()
        };
        let set = options.excludes(Path::new("/src/tree")).unwrap();
        let mut got: Vec<String> = set
            .iter()
            .map(|p| String::from_utf8(p.clone()).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, ["a/b", "c", "d/e", "g/h"]);
    }
}

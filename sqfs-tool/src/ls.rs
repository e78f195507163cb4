//! `sqfs ls`: names, or with `-l` the attributes the kernel would report, one per line.
//!
//! Names and link targets are the image's bytes, which may hold anything but `/` and NUL:
//! to a pipe they go as they are (a script gets the real names), to a terminal with their
//! control characters escaped, as GNU ls does, so that a hostile name cannot clear the
//! screen, retitle the window or forge lines.

use std::io::{IsTerminal, Write};

use sqfs::{Archive, FileType, Inode};

use crate::error::show;
use crate::walk::{describe, lookup, walk};

pub fn run(archive: &Archive, path: &str, long: bool, recursive: bool) -> Result<(), String> {
    let start = lookup(archive, path)?;
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    let mut print = |name: &[u8], inode: &Inode| -> Result<(), String> {
        let shown = |bytes: &[u8]| {
            if terminal {
                show(bytes).into_owned().into_bytes()
            } else {
                bytes.to_vec()
            }
        };
        let line = if long {
            long_line(archive, name, inode, shown)?
        } else {
            shown(name)
        };
        out.write_all(&line)
            .and_then(|_| out.write_all(b"\n"))
            .map_err(|e| format!("standard output: {e}"))
    };
    let base = path.trim_end_matches('/');
    if recursive {
        walk(archive, start, &mut |rel, inode| {
            let mut full = base.as_bytes().to_vec();
            if !rel.is_empty() {
                full.push(b'/');
                full.extend_from_slice(rel);
            } else if full.is_empty() {
                full.push(b'/');
            }
            print(&full, inode)
        })
    } else if start.is_dir() {
        for entry in archive
            .read_dir(&start)
            .map_err(|e| format!("{path}: {e}"))?
        {
            let entry = entry.map_err(|e| format!("{path}: {e}"))?;
            let inode = archive
                .entry_inode(&entry)
                .map_err(|e| describe(&entry.name, e))?;
            print(&entry.name, &inode)?;
        }
        Ok(())
    } else {
        print(path.as_bytes(), &start)
    }
}

fn long_line(
    archive: &Archive,
    name: &[u8],
    inode: &Inode,
    shown: impl Fn(&[u8]) -> Vec<u8>,
) -> Result<Vec<u8>, String> {
    let attr = archive.attr(inode).map_err(|e| describe(name, e))?;
    let size = match inode.device() {
        Some((major, minor)) => format!("{major}, {minor}"),
        None => attr.size.to_string(),
    };
    let mut line = format!(
        "{} {:>3} {:>5}/{:<5} {:>12} {} ",
        mode_string(inode.kind(), attr.mode),
        attr.nlink,
        attr.uid,
        attr.gid,
        size,
        format_time(attr.mtime)
    )
    .into_bytes();
    line.extend_from_slice(&shown(name));
    if let Ok(target) = archive.read_link(inode) {
        line.extend_from_slice(b" -> ");
        line.extend_from_slice(&shown(target));
    }
    Ok(line)
}

/// `drwxr-xr-x`-style mode, with `s`/`S` and `t`/`T` as ls prints them.
pub fn mode_string(kind: FileType, mode: u32) -> String {
    let type_char = match kind {
        FileType::Directory => 'd',
        FileType::File => '-',
        FileType::Symlink => 'l',
        FileType::BlockDevice => 'b',
        FileType::CharDevice => 'c',
        FileType::Fifo => 'p',
        FileType::Socket => 's',
    };
    let mut s = String::with_capacity(10);
    s.push(type_char);
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, (bit, set, unset)) in special.iter().enumerate() {
        let shift = 6 - 3 * i;
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        s.push(match (mode & bit != 0, x) {
            (true, true) => *set,
            (true, false) => *unset,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn format_time(t: u32) -> String {
    format_unix_time(i64::from(t))
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, for any second since 1970 (before it too).
pub fn format_unix_time(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil-from-days (Howard Hinnant's well-known algorithm, public domain).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_as_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(u32::MAX), "2106-02-07 06:28:15");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn formats_modes_like_ls() {
        assert_eq!(mode_string(FileType::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(FileType::Directory, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(FileType::File, 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(FileType::File, 0), "----------");
    }
}

//! Which mount is on top of a path, from `/proc/self/mountinfo`: how the mount we made is
//! told apart from one mounted over it later, or from what is left at the path once ours is
//! gone. Reading the table asks no filesystem anything, so a hung FUSE mount cannot block it.

use std::path::Path;

/// A filesystem's device number (`st_dev`): FUSE gives each mount its own anonymous device.
pub type DeviceId = (u32, u32);

/// One line of mountinfo (proc(5)): `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS…] - TYPE
/// SOURCE SUPEROPTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub device: DeviceId,
    pub mountpoint: Vec<u8>,
    pub fstype: String,
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\134` for a backslash, …).
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| {
            bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    let (major, minor) = fields.nth(2)?.split_once(':')?;
    let mountpoint = unescape(fields.nth(1)?);
    let fstype = fields.skip_while(|f| *f != "-").nth(1)?.to_string();
    Some(MountEntry {
        device: (major.parse().ok()?, minor.parse().ok()?),
        mountpoint,
        fstype,
    })
}

/// The mount visible at `path` (absolute and canonical, as mountinfo spells mount points) in
/// `table`: of mounts stacked on one path the last listed is the one on top.
pub fn top_mount_in(table: &str, path: &Path) -> Option<MountEntry> {
    use std::os::unix::ffi::OsStrExt;
    let wanted = path.as_os_str().as_bytes();
    table
        .lines()
        .rev()
        .filter_map(parse_line)
        .find(|m| m.mountpoint == wanted)
}

/// The mount visible at `path` now; None if nothing is mounted there (or the table can't be
/// read).
pub fn top_mount_at(path: &Path) -> Option<MountEntry> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    top_mount_in(&table, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:51 / /mnt/a\\040b rw,nosuid,nodev,relatime shared:20 - fuse.squashfuse /x.sqfs ro,user_id=0,group_id=0
41 40 0:52 / /mnt/a\\040b ro,nosuid,nodev,relatime - fuse.other y rw,user_id=0,group_id=0
";

    #[test]
    fn the_last_mount_on_a_path_is_on_top() {
        let top = top_mount_in(TABLE, Path::new("/mnt/a b")).unwrap();
        assert_eq!(top.device, (0, 52));
        assert_eq!(top.fstype, "fuse.other");
        assert_eq!(top_mount_in(TABLE, Path::new("/")).unwrap().fstype, "ext4");
        assert!(top_mount_in(TABLE, Path::new("/mnt")).is_none());
    }

    #[test]
    fn escapes_are_undone_and_malformed_lines_skipped() {
        assert_eq!(unescape(r"a\134b\011c\9"), b"a\\b\tc\\9");
        assert!(parse_line("garbage").is_none());
        assert!(parse_line("1 2 x:y / /m rw - t s o").is_none());
    }
}

//! One tar member as packing takes it: its name, what it is, its owners, mode, time and
//! extended attributes, from the header and the PAX records before it (which the tar
//! crate gathers; it applies `size`, `uid` and `gid` itself, `path` and `linkpath` are
//! looked up here so that they win over a GNU long name, as POSIX says).

use std::io;

use sqfs::Special;

use super::pax;
use super::sparse::{self, Sparse};
use crate::error::show;

/// What a member is.
#[derive(Debug)]
pub enum Kind {
    Dir,
    /// A regular file of `size` bytes (holes included), sparse as PAX records say.
    File {
        size: u64,
        sparse: Option<Sparse>,
    },
    Symlink(Vec<u8>),
    /// Another name of the earlier member named so.
    HardLink(Vec<u8>),
    Special(Special),
    /// Nothing to pack (a PAX global header, a volume label).
    Skip,
}

#[derive(Debug)]
pub struct Member {
    pub name: Vec<u8>,
    pub kind: Kind,
    /// `st_mode & 07777`.
    pub permissions: u16,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch (negative before it).
    pub mtime: i64,
    /// `SCHILY.xattr.NAME` records, as GNU tar, star and libarchive write them.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A PAX time: decimal seconds with an optional fraction, maybe negative; the whole
/// seconds at or before it.
fn pax_time(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let below = whole.starts_with('-') && fraction.bytes().any(|b| b != b'0');
    Some(if below {
        seconds.saturating_sub(1)
    } else {
        seconds
    })
}

/// A header's number that must fit in 32 bits (an owner).
fn id(value: io::Result<u64>, what: &str) -> io::Result<u32> {
    let value = value.map_err(|e| {
        bad(format!(
            "a corrupt {what} field ({})",
            show(e.to_string().as_bytes())
        ))
    })?;
    u32::try_from(value).map_err(|_| bad(format!("{what} {value} (ids are 32 bits)")))
}

impl Member {
    /// The member `entry` is, with `pax`, the data of the PAX header before it.
    pub fn read<R: io::Read>(
        entry: &mut ::tar::Entry<R>,
        pax: Option<&[u8]>,
    ) -> io::Result<Member> {
        let header_name = entry.path_bytes().into_owned();
        // A global header's records are not read at all (the tar crate would read them
        // whole, past the bound its headers are read within).
        if matches!(entry.header().entry_type().as_byte(), b'g' | b'V') {
            return Ok(Member {
                name: header_name,
                kind: Kind::Skip,
                permissions: 0,
                uid: 0,
                gid: 0,
                mtime: 0,
                xattrs: Vec::new(),
            });
        }
        let header_link = entry.link_name_bytes().map(|l| l.into_owned());
        let header = entry.header().clone();
        let mut path = None;
        let mut link = None;
        let mut mtime = None;
        let mut uid = None;
        let mut gid = None;
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut sparse = None;
        if let Some(data) = pax {
            let records = pax::records(data).ok_or_else(|| bad("a malformed PAX record".into()))?;
            let number = |value: &[u8], what: &str| {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| bad(format!("a PAX {what} of {:?}", show(value))))
            };
            for &(key, value) in &records {
                match key {
                    b"path" => path = Some(value.to_vec()),
                    b"linkpath" => link = Some(value.to_vec()),
                    b"mtime" => {
                        mtime = Some(
                            pax_time(value)
                                .ok_or_else(|| bad(format!("a PAX mtime of {:?}", show(value))))?,
                        )
                    }
                    b"uid" => uid = Some(number(value, "uid")?),
                    b"gid" => gid = Some(number(value, "gid")?),
                    // The tar crate framed the member by the size it found in these
                    // records: it must be the one they hold.
                    b"size" if header.entry_type().as_byte() != b'S' => {
                        let size = number(value, "size")?;
                        if size != entry.size() {
                            return Err(bad(format!(
                                "PAX records the tar crate reads otherwise (a size of {size}, \
                                 read as {})",
                                entry.size()
                            )));
                        }
                    }
                    _ => {
                        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                            // A name given twice: the later value, as for any record.
                            xattrs.retain(|(n, _)| n != name);
                            xattrs.push((name.to_vec(), value.to_vec()));
                        }
                    }
                }
            }
            sparse = sparse::from_pax(&records).map_err(bad)?;
        }
        let mut name = path.unwrap_or(header_name);
        if let Some(real) = sparse.as_ref().and_then(|s| s.name.clone()) {
            name = real;
        }
        let link = link.or(header_link);
        let device = |which: io::Result<Option<u32>>| -> io::Result<u32> {
            which
                .map_err(|_| bad("a corrupt device number".into()))?
                .ok_or_else(|| bad("a device without a device number (a v7 header)".into()))
        };
        let link_target = || {
            link.clone()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| bad("a link without a target".into()))
        };
        let byte = header.entry_type().as_byte();
        let kind = match byte {
            // An old (v7) archive marks a directory by a trailing slash alone.
            b'0' | b'\0' if name.ends_with(b"/") && entry.size() == 0 => Kind::Dir,
            // Regular, contiguous, old GNU sparse (expanded by the tar crate).
            b'0' | b'\0' | b'7' | b'S' => Kind::File {
                size: sparse.as_ref().map_or(entry.size(), |s| s.size),
                sparse,
            },
            // 'D': GNU's incremental dumps list a directory's names in its data.
            b'5' | b'D' => Kind::Dir,
            b'2' => {
                let target = link_target()?;
                // Linux's symlink(2) takes at most PATH_MAX - 1 bytes, and the kernel's
                // readlink of an image shows no more: a longer target would read as
                // another one.
                if target.len() > 4095 {
                    return Err(bad(format!(
                        "a symlink target of {} bytes (Linux's limit is 4095)",
                        target.len()
                    )));
                }
                Kind::Symlink(target)
            }
            b'1' => Kind::HardLink(link_target()?),
            b'3' => Kind::Special(Special::CharDevice {
                major: device(header.device_major())?,
                minor: device(header.device_minor())?,
            }),
            b'4' => Kind::Special(Special::BlockDevice {
                major: device(header.device_major())?,
                minor: device(header.device_minor())?,
            }),
            b'6' => Kind::Special(Special::Fifo),
            // A PAX global header, a GNU volume label.
            b'g' | b'V' => Kind::Skip,
            _ => {
                let shown = if byte.is_ascii_graphic() {
                    format!("'{}'", byte as char)
                } else {
                    format!("{byte:#04x}")
                };
                return Err(bad(format!(
                    "a member of type {shown}, which sqfs pack does not read"
                )));
            }
        };
        let mode = header
            .mode()
            .map_err(|_| bad("a corrupt mode field".into()))?;
        let mtime = match mtime {
            Some(t) => t,
            None => header
                .mtime()
                .map_err(|_| bad("a corrupt mtime field".into()))?
                .min(i64::MAX as u64) as i64,
        };
        Ok(Member {
            name,
            kind,
            permissions: (mode & 0o7777) as u16,
            uid: id(uid.map_or_else(|| header.uid(), Ok), "uid")?,
            gid: id(gid.map_or_else(|| header.gid(), Ok), "gid")?,
            mtime,
            xattrs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_round_down_to_whole_seconds() {
        assert_eq!(pax_time(b"1796620861.137503561"), Some(1796620861));
        assert_eq!(pax_time(b"42"), Some(42));
        assert_eq!(pax_time(b"-1.5"), Some(-2));
        assert_eq!(pax_time(b"-3.000"), Some(-3));
        assert_eq!(pax_time(b"-0.5"), Some(-1));
        assert_eq!(pax_time(b"x"), None);
        assert_eq!(pax_time(b"1.5x"), None);
        assert_eq!(pax_time(b""), None);
    }
}

//! READDIRPLUS replies built and written here instead of by fuser, for the one entry fuser
//! cannot list right.
//!
//! fuser's `ReplyDirectoryPlus` sends the attributes' `ino` (the node id) as `d_ino` too,
//! but `d_ino` must be the squashfs inode number, as the kernel's driver lists it, and the
//! two differ for the inode numbered 1 (see `nodes`). A reply that starts with that entry
//! is encoded here and written to /dev/fuse directly; its size is the least every kernel
//! asks for, since fuser does not pass on the size the kernel asked for. Every other reply
//! is fuser's (`SquashFs::list_plus`).
//!
//! Layout (include/uapi/linux/fuse.h): `fuse_out_header` {len u32, error i32, unique u64},
//! then per entry a `fuse_direntplus`: `fuse_entry_out` {nodeid, generation, entry_valid,
//! attr_valid u64; entry_valid_nsec, attr_valid_nsec u32; `fuse_attr`} and `fuse_dirent`
//! {ino, off u64; namelen, type u32; name}, padded to 8 bytes. All native-endian.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType};

const OUT_HEADER: usize = 16;
const ENTRY_OUT: usize = 40 + ATTR;
const ATTR: usize = 88;
const DIRENT: usize = 24;

/// The largest reply every kernel accepts: it asks for at least a page (4 KiB on x86-64;
/// more where pages are larger), and fuser does not pass on the size it asked for.
pub const SAFE_SIZE: usize = 4096;

/// One entry of a listing.
pub struct Entry<'a> {
    pub name: &'a [u8],
    /// `d_ino`: the squashfs inode number, as the kernel's driver lists it.
    pub ino: u64,
    pub kind: FileType,
    /// The offset the kernel passes back to continue after this entry.
    pub next: u64,
    /// Attributes (their `ino` is the node id) and how long they stay valid; None lists the
    /// name alone, with node id 0.
    pub linked: Option<(&'a FileAttr, Duration)>,
}

/// A READDIRPLUS reply being filled, at most `limit` bytes of entries.
pub struct DirPlusReply {
    buf: Vec<u8>,
    limit: usize,
}

impl DirPlusReply {
    pub fn new(limit: usize) -> Self {
        let mut buf = Vec::with_capacity(OUT_HEADER + limit);
        buf.resize(OUT_HEADER, 0);
        DirPlusReply { buf, limit }
    }

    /// Adds `entry`; true when it does not fit (it is then not added), as fuser's `add`.
    pub fn add(&mut self, entry: &Entry) -> bool {
        let len = ENTRY_OUT + DIRENT + entry.name.len();
        let padded = len.next_multiple_of(8);
        if self.buf.len() - OUT_HEADER + padded > self.limit {
            return true;
        }
        let b = &mut self.buf;
        match entry.linked {
            Some((attr, ttl)) => {
                put_u64(b, attr.ino.0);
                put_u64(b, 0); // generation: node ids are never reused
                put_u64(b, ttl.as_secs());
                put_u64(b, ttl.as_secs());
                put_u32(b, ttl.subsec_nanos());
                put_u32(b, ttl.subsec_nanos());
                put_attr(b, attr);
            }
            None => b.resize(b.len() + ENTRY_OUT, 0),
        }
        put_u64(b, entry.ino);
        put_u64(b, entry.next);
        put_u32(b, entry.name.len() as u32);
        put_u32(b, mode_type(entry.kind) >> 12);
        b.extend_from_slice(entry.name);
        b.resize(b.len() + padded - len, 0);
        false
    }

    /// The whole reply to request `unique`, header included.
    pub fn finish(mut self, unique: u64) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[4..8].copy_from_slice(&0i32.to_ne_bytes());
        self.buf[8..16].copy_from_slice(&unique.to_ne_bytes());
        self.buf
    }

    /// Answers request `unique` on `device`, the /dev/fuse descriptor it was read from.
    pub fn send(self, device: BorrowedFd, unique: u64) -> io::Result<()> {
        let bytes = self.finish(unique);
        // The kernel takes a reply in one write or not at all.
        nix::unistd::write(device, &bytes)?;
        Ok(())
    }
}

fn put_u64(buf: &mut Vec<u8>, value: u64) {
    buf.extend_from_slice(&value.to_ne_bytes());
}

fn put_u32(buf: &mut Vec<u8>, value: u32) {
    buf.extend_from_slice(&value.to_ne_bytes());
}

/// `fuse_attr`: ino, size, blocks, atime, mtime, ctime (u64); atimensec, mtimensec,
/// ctimensec, mode, nlink, uid, gid, rdev, blksize, flags (u32).
fn put_attr(buf: &mut Vec<u8>, attr: &FileAttr) {
    let times = [attr.atime, attr.mtime, attr.ctime].map(seconds_and_nanos);
    put_u64(buf, attr.ino.0);
    put_u64(buf, attr.size);
    put_u64(buf, attr.blocks);
    for (secs, _) in times {
        put_u64(buf, secs as u64);
    }
    for (_, nanos) in times {
        put_u32(buf, nanos);
    }
    put_u32(buf, mode_type(attr.kind) | u32::from(attr.perm));
    put_u32(buf, attr.nlink);
    put_u32(buf, attr.uid);
    put_u32(buf, attr.gid);
    put_u32(buf, attr.rdev);
    put_u32(buf, attr.blksize);
    // Linux's `flags` (FUSE_ATTR_SUBMOUNT, FUSE_ATTR_DAX), not FileAttr's macOS flags.
    put_u32(buf, 0);
}

/// Seconds may be negative (before 1970), nanoseconds then count forward from them.
fn seconds_and_nanos(time: SystemTime) -> (i64, u32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(before) => {
            let d = before.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

/// The `S_IF*` bits of a mode; `>> 12` gives the `DT_*` value of a dirent.
fn mode_type(kind: FileType) -> libc::mode_t {
    match kind {
        FileType::NamedPipe => libc::S_IFIFO,
        FileType::CharDevice => libc::S_IFCHR,
        FileType::BlockDevice => libc::S_IFBLK,
        FileType::Directory => libc::S_IFDIR,
        FileType::RegularFile => libc::S_IFREG,
        FileType::Symlink => libc::S_IFLNK,
        FileType::Socket => libc::S_IFSOCK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fuser::INodeNo;

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn attr(ino: u64) -> FileAttr {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        FileAttr {
            ino: INodeNo(ino),
            size: 5000,
            blocks: 10,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: UNIX_EPOCH,
            kind: FileType::RegularFile,
            perm: 0o4755,
            nlink: 2,
            uid: 1000,
            gid: 100,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    #[test]
    fn linked_and_unlinked_entries_have_the_kernel_layout() {
        let a = attr(77);
        let mut reply = DirPlusReply::new(SAFE_SIZE);
        let ttl = Duration::new(3, 7);
        assert!(!reply.add(&Entry {
            name: b"passwd",
            ino: 77,
            kind: FileType::RegularFile,
            next: 5,
            linked: Some((&a, ttl)),
        }));
        assert!(!reply.add(&Entry {
            name: b"a-longer-name",
            ino: 78,
            kind: FileType::Symlink,
            next: 6,
            linked: None,
        }));
        let b = reply.finish(0xabcd);
        // Entry sizes: 152 + 6 -> 160, 152 + 13 -> 168.
        assert_eq!(b.len(), 16 + 160 + 168);
        assert_eq!(u32_at(&b, 0) as usize, b.len());
        assert_eq!(u32_at(&b, 4), 0);
        assert_eq!(u64_at(&b, 8), 0xabcd);

        let e = 16;
        assert_eq!(u64_at(&b, e), 77, "node id");
        assert_eq!(u64_at(&b, e + 16), 3, "entry_valid");
        assert_eq!(u32_at(&b, e + 32), 7, "entry_valid_nsec");
        let at = e + 40;
        assert_eq!(u64_at(&b, at), 77, "attr.ino");
        assert_eq!(u64_at(&b, at + 8), 5000, "size");
        assert_eq!(u64_at(&b, at + 16), 10, "blocks");
        assert_eq!(u64_at(&b, at + 32), 1_700_000_000, "mtime");
        assert_eq!(u32_at(&b, at + 60), libc::S_IFREG | 0o4755, "mode");
        assert_eq!(u32_at(&b, at + 64), 2, "nlink");
        assert_eq!(u32_at(&b, at + 68), 1000, "uid");
        assert_eq!(u32_at(&b, at + 72), 100, "gid");
        assert_eq!(u32_at(&b, at + 80), 4096, "blksize");
        let d = e + 128;
        assert_eq!(u64_at(&b, d), 77, "d_ino");
        assert_eq!(u64_at(&b, d + 8), 5, "off");
        assert_eq!(u32_at(&b, d + 16), 6, "namelen");
        assert_eq!(u32_at(&b, d + 20), u32::from(libc::DT_REG), "type");
        assert_eq!(&b[d + 24..d + 30], b"passwd");
        assert_eq!(&b[d + 30..d + 32], &[0, 0], "padding");

        let e = 16 + 160;
        assert!(b[e..e + 128].iter().all(|&x| x == 0), "unlinked: node id 0");
        assert_eq!(u64_at(&b, e + 128), 78, "d_ino of an unlinked entry");
        assert_eq!(u32_at(&b, e + 128 + 20), u32::from(libc::DT_LNK));
    }

    #[test]
    fn an_entry_that_does_not_fit_is_refused_and_not_added() {
        let name = [b'x'; 200]; // 352 bytes an entry: 11 fit in 4096
        let entry = Entry {
            name: &name,
            ino: 1,
            kind: FileType::Directory,
            next: 1,
            linked: None,
        };
        let mut reply = DirPlusReply::new(SAFE_SIZE);
        let added = (0..20).take_while(|_| !reply.add(&entry)).count();
        assert_eq!(added, 11);
        assert_eq!(reply.finish(1).len(), 16 + 11 * 352);
    }

    #[test]
    fn times_before_1970_count_nanoseconds_forward() {
        let t = UNIX_EPOCH - Duration::new(1, 250_000_000);
        assert_eq!(seconds_and_nanos(t), (-2, 750_000_000));
        assert_eq!(
            seconds_and_nanos(UNIX_EPOCH - Duration::from_secs(5)),
            (-5, 0)
        );
    }
}

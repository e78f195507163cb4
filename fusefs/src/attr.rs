//! `sqfs` attributes as FUSE `FileAttr`s, the way the kernel's squashfs driver fills `stat`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType as FuseType, INodeNo};
use sqfs::{Attr, FileType, Inode};

/// Owner overrides from `-o uid=N,gid=N`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Owners {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

pub fn fuse_type(kind: FileType) -> FuseType {
    match kind {
        FileType::Directory => FuseType::Directory,
        FileType::File => FuseType::RegularFile,
        FileType::Symlink => FuseType::Symlink,
        FileType::BlockDevice => FuseType::BlockDevice,
        FileType::CharDevice => FuseType::CharDevice,
        FileType::Fifo => FuseType::NamedPipe,
        FileType::Socket => FuseType::Socket,
    }
}

/// `inode`'s attributes as FUSE carries them; `ino` is the node id (see `nodes`).
pub fn file_attr(inode: &Inode, attr: &Attr, ino: u64, owners: Owners) -> FileAttr {
    // squashfs keeps one time per inode; the kernel shows it as atime, mtime and ctime.
    let time = UNIX_EPOCH + Duration::from_secs(u64::from(attr.mtime));
    FileAttr {
        ino: INodeNo(ino),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: SystemTime::UNIX_EPOCH,
        kind: fuse_type(inode.kind()),
        perm: (attr.mode & 0o7777) as u16,
        nlink: attr.nlink,
        uid: owners.uid.unwrap_or(attr.uid),
        gid: owners.gid.unwrap_or(attr.gid),
        // FUSE carries the kernel's new_encode_dev() form, which is what squashfs stores.
        rdev: inode.device_number(),
        blksize: 4096,
        flags: 0,
    }
}

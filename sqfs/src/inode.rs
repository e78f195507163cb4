//! Inodes: the 14 on-disk inode types, decoded into one `Inode`.

use crate::context::{Context, Limits};
use crate::error::{corrupt, Result};
use crate::fragment::NO_FRAGMENT;
use crate::metadata::{MetaCursor, MetaRef};

/// Longest symlink target accepted (the kernel's PATH_MAX).
pub const MAX_SYMLINK: u32 = 4096;
/// An inode's xattr index meaning "no xattrs".
pub const NO_XATTR: u32 = u32::MAX;

/// Inode type numbers: the basic forms 1..=7 in [`FileType`] order, the extended forms 7
/// more (the kernel's SQUASHFS_DIR_TYPE .. SQUASHFS_LSOCKET_TYPE).
const EXTENDED: u16 = 7;

/// What an inode is: the file types a SquashFS holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Directory,
    File,
    Symlink,
    BlockDevice,
    CharDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// From a basic inode type (1..=7), the kind directory entries use.
    pub(crate) fn from_basic(t: u16) -> Result<Self> {
        Ok(match t {
            1 => FileType::Directory,
            2 => FileType::File,
            3 => FileType::Symlink,
            4 => FileType::BlockDevice,
            5 => FileType::CharDevice,
            6 => FileType::Fifo,
            7 => FileType::Socket,
            _ => return Err(corrupt!("unknown inode type {t}")),
        })
    }

    /// The basic inode type number (1..=7), which directory entries store.
    pub(crate) fn basic(self) -> u16 {
        match self {
            FileType::Directory => 1,
            FileType::File => 2,
            FileType::Symlink => 3,
            FileType::BlockDevice => 4,
            FileType::CharDevice => 5,
            FileType::Fifo => 6,
            FileType::Socket => 7,
        }
    }

    /// The `S_IFMT` bits of this type (as `st_mode` holds them).
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Directory => 0o040000,
            FileType::File => 0o100000,
            FileType::Symlink => 0o120000,
            FileType::BlockDevice => 0o060000,
            FileType::CharDevice => 0o020000,
            FileType::Fifo => 0o010000,
            FileType::Socket => 0o140000,
        }
    }
}

/// Where a directory's listing lives in the directory table.
#[derive(Debug, Clone)]
pub struct DirInfo {
    /// Start of the listing, relative to the directory table.
    pub listing: MetaRef,
    /// The stored size: listing bytes + 3, as the kernel reports it.
    pub size: u32,
    pub parent: u32,
    /// The directory's own inode number (errors about its listing name it).
    pub inode_number: u32,
    pub index_count: u16,
    /// Where the directory index (extended directories) starts, in the inode table.
    pub index_at: MetaRef,
}

/// Where a regular file's bytes live.
#[derive(Debug, Clone)]
pub struct FileInfo {
    pub blocks_start: u64,
    pub size: u64,
    /// (fragment index, offset of the tail inside the fragment block)
    pub fragment: Option<(u32, u32)>,
    /// Number of full or partial blocks stored as blocks (not in the fragment).
    pub block_count: u64,
    /// Where the block size list starts, in the inode table.
    pub block_list_at: MetaRef,
}

/// What an inode holds beyond the fields every inode has.
#[derive(Debug, Clone)]
pub enum InodeBody {
    Directory(DirInfo),
    File(FileInfo),
    Symlink(Vec<u8>),
    /// The encoded device number, as the kernel's `new_decode_dev` takes it.
    Device(u32),
    Ipc,
}

/// One inode of an image: a file, directory, symlink, device, FIFO or socket, as
/// [`Archive::inode`](crate::Archive::inode) and the lookups return it. Its owners, as ids,
/// and its extended attributes are read through the [`Archive`](crate::Archive)
/// ([`attr`](crate::Archive::attr), [`xattrs`](crate::Archive::xattrs)).
#[derive(Debug, Clone)]
pub struct Inode {
    /// Where the inode lives in the inode table (its identity for lookups).
    pub(crate) reference: MetaRef,
    pub(crate) number: u32,
    pub(crate) kind: FileType,
    /// Stored in the extended form of its type (which has more fields).
    pub(crate) extended: bool,
    pub(crate) permissions: u16,
    pub(crate) uid_index: u16,
    pub(crate) gid_index: u16,
    pub(crate) mtime: u32,
    pub(crate) nlink: u32,
    /// Index into the xattr id table, if the inode has xattrs.
    pub(crate) xattr: Option<u32>,
    pub(crate) body: InodeBody,
}

impl Inode {
    /// Reads the inode at `reference` (relative to the inode table).
    pub(crate) fn read(ctx: &Context, reference: MetaRef) -> Result<Self> {
        let mut c = ctx.inodes.cursor(&ctx.reader, reference)?;
        Self::parse(&mut c, reference, &ctx.limits)
    }

    /// Decodes the inode at the cursor (which stands at `reference`).
    pub(crate) fn parse(c: &mut MetaCursor, reference: MetaRef, limits: &Limits) -> Result<Self> {
        let inode_type = c.u16()?;
        let permissions = c.u16()? & 0o7777;
        let uid_index = c.u16()?;
        let gid_index = c.u16()?;
        let mtime = c.u32()?;
        let number = c.u32()?;
        if number == 0 || number > limits.inode_count {
            return Err(corrupt!(
                "inode number {number} outside 1..={}",
                limits.inode_count
            ));
        }
        if uid_index >= limits.id_count || gid_index >= limits.id_count {
            return Err(corrupt!("inode {number}: owner index past the id table"));
        }
        if !(1..=14).contains(&inode_type) {
            return Err(corrupt!("inode {number}: unknown inode type {inode_type}"));
        }
        let extended = inode_type > EXTENDED;
        let kind = FileType::from_basic((inode_type - 1) % EXTENDED + 1)?;
        let mut nlink = 1;
        let mut xattr = NO_XATTR;
        let body = match (kind, extended) {
            (FileType::Directory, false) => {
                let start_block = c.u32()?;
                nlink = c.u32()?;
                let size = u32::from(c.u16()?);
                let offset = c.u16()?;
                let parent = c.u32()?;
                InodeBody::Directory(DirInfo {
                    listing: dir_listing_ref(start_block, offset)?,
                    size,
                    parent,
                    inode_number: number,
                    index_count: 0,
                    index_at: c.position(),
                })
            }
            (FileType::Directory, true) => {
                nlink = c.u32()?;
                let size = c.u32()?;
                let start_block = c.u32()?;
                let parent = c.u32()?;
                let index_count = c.u16()?;
                let offset = c.u16()?;
                xattr = c.u32()?;
                InodeBody::Directory(DirInfo {
                    listing: dir_listing_ref(start_block, offset)?,
                    size,
                    parent,
                    inode_number: number,
                    index_count,
                    index_at: c.position(),
                })
            }
            (FileType::File, false) => {
                let blocks_start = u64::from(c.u32()?);
                let frag = c.u32()?;
                let frag_offset = c.u32()?;
                let size = u64::from(c.u32()?);
                file_info(
                    number,
                    blocks_start,
                    size,
                    (frag, frag_offset),
                    c.position(),
                    limits,
                )?
            }
            (FileType::File, true) => {
                let blocks_start = c.u64()?;
                let size = c.u64()?;
                let _sparse = c.u64()?;
                nlink = c.u32()?;
                let frag = c.u32()?;
                let frag_offset = c.u32()?;
                xattr = c.u32()?;
                file_info(
                    number,
                    blocks_start,
                    size,
                    (frag, frag_offset),
                    c.position(),
                    limits,
                )?
            }
            (FileType::Symlink, _) => {
                nlink = c.u32()?;
                let len = c.u32()?;
                if len == 0 || len > MAX_SYMLINK {
                    return Err(corrupt!("inode {number}: symlink target of {len} bytes"));
                }
                let target = c.bytes(len as usize)?;
                if extended {
                    xattr = c.u32()?;
                }
                InodeBody::Symlink(target)
            }
            (FileType::BlockDevice | FileType::CharDevice, _) => {
                nlink = c.u32()?;
                let dev = c.u32()?;
                if extended {
                    xattr = c.u32()?;
                }
                InodeBody::Device(dev)
            }
            (FileType::Fifo | FileType::Socket, _) => {
                nlink = c.u32()?;
                if extended {
                    xattr = c.u32()?;
                }
                InodeBody::Ipc
            }
        };
        Ok(Inode {
            reference,
            number,
            kind,
            extended,
            permissions,
            uid_index,
            gid_index,
            mtime,
            nlink,
            xattr: (xattr != NO_XATTR).then_some(xattr),
            body,
        })
    }

    /// Where the inode is in the inode table: its identity (two entries that name the same
    /// inode, hard links, have the same reference).
    pub fn reference(&self) -> MetaRef {
        self.reference
    }

    /// The inode number (1..=the image's inode count; `st_ino`).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// What the inode is: a file, a directory, a symlink...
    pub fn kind(&self) -> FileType {
        self.kind
    }

    /// Whether the inode is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileType::Directory
    }

    /// The permission bits, with setuid, setgid and sticky (`st_mode & 07777`).
    pub fn permissions(&self) -> u16 {
        self.permissions
    }

    /// `st_mode`: type bits and permissions.
    pub fn mode(&self) -> u32 {
        self.kind.mode_bits() | u32::from(self.permissions)
    }

    /// The modification time, in seconds since the epoch (the only time an image keeps).
    pub fn mtime(&self) -> u32 {
        self.mtime
    }

    /// `st_nlink`: hard links to a file; for a directory, 2 plus its subdirectories.
    pub fn nlink(&self) -> u32 {
        self.nlink
    }

    /// The inode's index in the xattr id table, if it has extended attributes.
    pub fn xattr_index(&self) -> Option<u32> {
        self.xattr
    }

    /// A directory's parent's inode number as stored (what its `..` names); None for other
    /// inodes.
    pub fn parent(&self) -> Option<u32> {
        match &self.body {
            InodeBody::Directory(d) => Some(d.parent),
            _ => None,
        }
    }

    /// `st_size` as the kernel reports it: file bytes, symlink target length, the stored
    /// directory size, 0 for devices and IPC objects.
    pub fn size(&self) -> u64 {
        match &self.body {
            InodeBody::Directory(d) => u64::from(d.size),
            InodeBody::File(f) => f.size,
            InodeBody::Symlink(t) => t.len() as u64,
            InodeBody::Device(_) | InodeBody::Ipc => 0,
        }
    }

    /// `(major, minor)` of a device inode, decoded as the kernel's `new_decode_dev` does.
    pub fn device(&self) -> Option<(u32, u32)> {
        match self.body {
            InodeBody::Device(dev) => {
                Some(((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00)))
            }
            _ => None,
        }
    }

    /// `st_rdev` in glibc's encoding (`makedev`), 0 for non-devices.
    pub fn rdev(&self) -> u64 {
        self.device()
            .map(|(major, minor)| libc::makedev(major, minor))
            .unwrap_or(0)
    }

    /// A device's number as the image stores it, in the kernel's `new_encode_dev()` form
    /// (the form FUSE's `rdev` carries); 0 for other inodes.
    pub fn device_number(&self) -> u32 {
        match self.body {
            InodeBody::Device(dev) => dev,
            _ => 0,
        }
    }
}

/// An inode as the writer stores it: the fields every inode has, and its type's.
#[derive(Debug, Clone)]
pub(crate) struct NewInode<'a> {
    pub permissions: u16,
    pub uid_index: u16,
    pub gid_index: u16,
    pub mtime: u32,
    pub number: u32,
    pub nlink: u32,
    /// The xattr id table index, or [`NO_XATTR`].
    pub xattr: u32,
    pub body: NewBody<'a>,
}

/// What an inode's type adds, for [`NewInode::encode`].
#[derive(Debug, Clone)]
pub(crate) enum NewBody<'a> {
    Directory {
        listing: MetaRef,
        /// Listing bytes + 3, as [`DirInfo::size`].
        size: u32,
        parent: u32,
        /// The encoded index entries (see `dir::encode_index_entry`), and their count.
        index: &'a [u8],
        index_count: u16,
    },
    File {
        blocks_start: u64,
        size: u64,
        /// Bytes of the file in holes (the extended inode's `sparse`).
        sparse: u64,
        /// Fragment index and offset, or ([`NO_FRAGMENT`], 0).
        fragment: (u32, u32),
        /// The block size words.
        blocks: &'a [u32],
    },
    Symlink(&'a [u8]),
    Device(FileType, u32),
    Ipc(FileType),
}

impl NewInode<'_> {
    fn kind(&self) -> FileType {
        match &self.body {
            NewBody::Directory { .. } => FileType::Directory,
            NewBody::File { .. } => FileType::File,
            NewBody::Symlink(_) => FileType::Symlink,
            NewBody::Device(kind, _) | NewBody::Ipc(kind) => *kind,
        }
    }

    /// Whether the inode needs its type's extended form: the basic one has no room for
    /// what it holds. mksquashfs's rule (create_inode()): xattrs; for a file a size or
    /// start past 32 bits, more than one link, or holes; for a directory an index or a
    /// listing past the 16-bit size.
    pub(crate) fn extended(&self) -> bool {
        self.xattr != NO_XATTR
            || match &self.body {
                NewBody::Directory {
                    size, index_count, ..
                } => *size > u32::from(u16::MAX) || *index_count > 0,
                NewBody::File {
                    blocks_start,
                    size,
                    sparse,
                    ..
                } => {
                    self.nlink != 1
                        || *size > u64::from(u32::MAX)
                        || *blocks_start > u64::from(u32::MAX)
                        || *sparse > 0
                }
                _ => false,
            }
    }

    /// Appends the inode's bytes as [`Inode::parse`] reads them.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let extended = self.extended();
        let kind = self.kind();
        let inode_type = kind.basic() + if extended { EXTENDED } else { 0 };
        let u16s =
            |out: &mut Vec<u8>, v: &[u16]| v.iter().for_each(|x| out.extend(x.to_le_bytes()));
        let u32s =
            |out: &mut Vec<u8>, v: &[u32]| v.iter().for_each(|x| out.extend(x.to_le_bytes()));
        u16s(
            out,
            &[
                inode_type,
                self.permissions & 0o7777,
                self.uid_index,
                self.gid_index,
            ],
        );
        u32s(out, &[self.mtime, self.number]);
        match (&self.body, extended) {
            (
                NewBody::Directory {
                    listing,
                    size,
                    parent,
                    ..
                },
                false,
            ) => {
                u32s(out, &[listing.block as u32, self.nlink]);
                u16s(out, &[*size as u16, listing.offset]);
                u32s(out, &[*parent]);
            }
            (
                NewBody::Directory {
                    listing,
                    size,
                    parent,
                    index,
                    index_count,
                },
                true,
            ) => {
                u32s(out, &[self.nlink, *size, listing.block as u32, *parent]);
                u16s(out, &[*index_count, listing.offset]);
                u32s(out, &[self.xattr]);
                out.extend_from_slice(index);
            }
            (
                NewBody::File {
                    blocks_start,
                    size,
                    fragment,
                    blocks,
                    ..
                },
                false,
            ) => {
                u32s(
                    out,
                    &[*blocks_start as u32, fragment.0, fragment.1, *size as u32],
                );
                u32s(out, blocks);
            }
            (
                NewBody::File {
                    blocks_start,
                    size,
                    sparse,
                    fragment,
                    blocks,
                },
                true,
            ) => {
                for v in [*blocks_start, *size, *sparse] {
                    out.extend(v.to_le_bytes());
                }
                u32s(out, &[self.nlink, fragment.0, fragment.1, self.xattr]);
                u32s(out, blocks);
            }
            (NewBody::Symlink(target), _) => {
                u32s(out, &[self.nlink, target.len() as u32]);
                out.extend_from_slice(target);
            }
            (NewBody::Device(_, rdev), _) => u32s(out, &[self.nlink, *rdev]),
            (NewBody::Ipc(_), _) => u32s(out, &[self.nlink]),
        }
        let trailing_xattr = matches!(
            self.body,
            NewBody::Symlink(_) | NewBody::Device(..) | NewBody::Ipc(_)
        );
        if extended && trailing_xattr {
            u32s(out, &[self.xattr]);
        }
    }
}

/// A device number in the kernel's `new_encode_dev()` form, which inodes store.
pub(crate) fn encode_device(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

fn dir_listing_ref(start_block: u32, offset: u16) -> Result<MetaRef> {
    if usize::from(offset) >= crate::reader::METADATA_SIZE {
        return Err(corrupt!(
            "directory listing offset {offset} past a metadata block"
        ));
    }
    Ok(MetaRef {
        block: u64::from(start_block),
        offset,
    })
}

fn file_info(
    number: u32,
    blocks_start: u64,
    size: u64,
    (frag, frag_offset): (u32, u32),
    list: MetaRef,
    limits: &Limits,
) -> Result<InodeBody> {
    // The kernel looks every fragment index up when it reads the inode
    // (squashfs_read_inode() calls squashfs_frag_lookup(), which fails an index past the
    // fragment count with EIO), whether or not the file has a tail to keep there.
    if frag != NO_FRAGMENT && frag >= limits.fragment_count {
        return Err(corrupt!(
            "inode {number}: fragment {frag} of {}",
            limits.fragment_count
        ));
    }
    let bs = u64::from(limits.block_size);
    let tail = size % bs;
    let (fragment, block_count) = if frag == NO_FRAGMENT {
        (None, size.div_ceil(bs))
    } else if tail == 0 {
        // A fragment for a file with no tail holds nothing of it: the kernel reads such a
        // file from its blocks alone (squashfs_read_folio() uses the fragment only for the
        // block at i_size >> block_log, which is past the end), and so does this reader.
        (None, size / bs)
    } else {
        (Some((frag, frag_offset)), size / bs)
    };
    Ok(InodeBody::File(FileInfo {
        blocks_start,
        size,
        fragment,
        block_count,
        block_list_at: list,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{Compression, Encoding};
    use crate::metadata::{MetaWriter, Table};
    use crate::reader::testing::reader;

    fn new(number: u32, nlink: u32, xattr: u32, body: NewBody) -> NewInode {
        NewInode {
            permissions: 0o4755,
            uid_index: 1,
            gid_index: 2,
            mtime: 0xfedc_ba98,
            number,
            nlink,
            xattr,
            body,
        }
    }

    #[test]
    fn every_inode_form_reads_back() {
        let listing = MetaRef {
            block: 8194,
            offset: 77,
        };
        let index = {
            let mut v = Vec::new();
            crate::dir::encode_index_entry(&mut v, 9000, 8194, b"name");
            v
        };
        let words = [0x0100_1000, 0, 4000];
        let file = |start: u64, size: u64, sparse: u64| NewBody::File {
            blocks_start: start,
            size,
            sparse,
            fragment: (3, 1234),
            blocks: &words,
        };
        let dir = |size: u32, index: &'static [u8], count: u16| NewBody::Directory {
            listing,
            size,
            parent: 9,
            index,
            index_count: count,
        };
        let index: &'static [u8] = Box::leak(index.into_boxed_slice());
        // (inode, extended form expected)
        let cases = [
            (new(1, 2, NO_XATTR, dir(300, &[], 0)), false),
            (new(2, 3, 5, dir(300, &[], 0)), true),
            (new(3, 2, NO_XATTR, dir(70_000, &[], 0)), true),
            (new(4, 2, NO_XATTR, dir(9_100, index, 1)), true),
            (new(5, 1, NO_XATTR, file(96, 3 * 4096 + 10, 0)), false),
            (new(6, 2, NO_XATTR, file(96, 3 * 4096 + 10, 0)), true),
            (new(7, 1, NO_XATTR, file(5 << 32, 3 * 4096 + 10, 0)), true),
            (new(8, 1, 0, file(96, 3 * 4096 + 10, 4096)), true),
            (new(9, 1, NO_XATTR, NewBody::Symlink(b"../target")), false),
            (new(10, 4, 7, NewBody::Symlink(b"t")), true),
            (
                new(
                    11,
                    1,
                    NO_XATTR,
                    NewBody::Device(FileType::CharDevice, encode_device(4095, 0xfffff)),
                ),
                false,
            ),
            (
                new(
                    12,
                    1,
                    1,
                    NewBody::Device(FileType::BlockDevice, encode_device(8, 1)),
                ),
                true,
            ),
            (new(13, 1, NO_XATTR, NewBody::Ipc(FileType::Fifo)), false),
            (new(14, 2, 3, NewBody::Ipc(FileType::Socket)), true),
        ];
        let mut w = MetaWriter::new(Encoding::new(Compression::Zstd, 4096).compressor().unwrap());
        let mut refs = Vec::new();
        let mut bytes = Vec::new();
        for (inode, extended) in &cases {
            assert_eq!(inode.extended(), *extended, "inode {}", inode.number);
            refs.push(w.position());
            bytes.clear();
            inode.encode(&mut bytes);
            w.write(&bytes).unwrap();
        }
        let image = w.finish().unwrap();
        let r = reader(&image, Compression::Zstd, 4096);
        let table = Table {
            start: 0,
            end: image.len() as u64,
        };
        let limits = Limits {
            inode_count: 20,
            id_count: 3,
            block_size: 4096,
            fragment_count: 4,
        };
        for ((new, extended), at) in cases.iter().zip(refs) {
            let mut c = table.cursor(&r, at).unwrap();
            let got = Inode::parse(&mut c, at, &limits).unwrap();
            let n = new.number;
            assert_eq!(got.number, n);
            assert_eq!(got.extended, *extended, "inode {n}");
            assert_eq!(got.kind, new.kind(), "inode {n}");
            assert_eq!(
                (
                    got.permissions,
                    got.uid_index,
                    got.gid_index,
                    got.mtime,
                    got.nlink
                ),
                (0o4755, 1, 2, 0xfedc_ba98, new.nlink),
                "inode {n}"
            );
            assert_eq!(got.xattr, (new.xattr != NO_XATTR).then_some(new.xattr));
            match (&new.body, &got.body) {
                (
                    NewBody::Directory {
                        size, index_count, ..
                    },
                    InodeBody::Directory(d),
                ) => {
                    assert_eq!((d.listing, d.size, d.parent), (listing, *size, 9));
                    assert_eq!(d.index_count, *index_count);
                }
                (
                    NewBody::File {
                        blocks_start, size, ..
                    },
                    InodeBody::File(f),
                ) => {
                    assert_eq!((f.blocks_start, f.size), (*blocks_start, *size));
                    assert_eq!((f.fragment, f.block_count), (Some((3, 1234)), 3));
                    let mut c = table.cursor(&r, f.block_list_at).unwrap();
                    let back: Vec<u32> = (0..3).map(|_| c.u32().unwrap()).collect();
                    assert_eq!(back, words);
                }
                (NewBody::Symlink(t), InodeBody::Symlink(back)) => assert_eq!(t, back),
                (NewBody::Device(_, dev), InodeBody::Device(back)) => assert_eq!(dev, back),
                (NewBody::Ipc(_), InodeBody::Ipc) => {}
                (new, got) => panic!("inode {n}: {new:?} read back as {got:?}"),
            }
        }
    }

    #[test]
    fn device_numbers_round_trip_as_the_kernel_encodes_them() {
        for (major, minor) in [(0, 0), (8, 1), (4095, 0xfffff), (1, 256), (259, 65536)] {
            let inode = Inode {
                reference: MetaRef::from_packed(0),
                number: 1,
                kind: FileType::CharDevice,
                extended: false,
                permissions: 0,
                uid_index: 0,
                gid_index: 0,
                mtime: 0,
                nlink: 1,
                xattr: None,
                body: InodeBody::Device(encode_device(major, minor)),
            };
            assert_eq!(inode.device(), Some((major, minor)));
        }
    }
}

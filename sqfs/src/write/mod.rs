//! The writer: builds a SquashFS 4.0 image from entries a caller adds (`sqfs pack` walks a
//! directory and adds what it finds), compressing on every core, with the same bytes out
//! whatever the thread count.
//!
//! The caller adds directories, files, symlinks, devices, FIFOs, sockets and hard links
//! under a parent [`NodeId`]; a file's content is read and its blocks compressed as it is
//! added (`data.rs`, `pipeline.rs`), everything else is kept in memory and written at
//! [`Writer::finish`] (`tables.rs`), as the reader expects it back (one definition of
//! each structure, in its file beside its decoder).

mod blocklist;
mod data;
mod error;
mod owners;
mod pipeline;
mod tables;
mod tree;
mod xattrs;

use std::fs::File;

pub use data::Content;
pub use error::{WriteError, WriteResult, XattrProblem};

use crate::compress::options::XZ_FILTER_NAMES;
use crate::compress::{Compression, Encoding};
use crate::dir::check_name;
use crate::inode::{encode_device, FileType, NO_XATTR};
use crate::superblock::SUPERBLOCK_SIZE;
use crate::Xattr;
use data::Data;
use error::show;
use owners::Owners;
use pipeline::Pipeline;
use tree::{Attrs, Body, Tree};
use xattrs::Xattrs;

/// Which file contents are packed into fragment blocks (mksquashfs's three choices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fragments {
    /// None: every file's last block is stored as a block of its own (`-no-fragments`).
    Never,
    /// Files smaller than a block (mksquashfs's default).
    #[default]
    SmallFiles,
    /// Files smaller than a block and the tails of larger ones (`-always-use-fragments`).
    Always,
}

/// How to write an image. [`WriteOptions::default`] is mksquashfs's defaults: gzip at
/// level 9, 128 KiB blocks, fragments for small files, duplicates stored once, an export
/// table, a thread per core.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub compression: Compression,
    /// The codec's level (`-Xcompression-level`): gzip 1..=9, xz 0..=9, zstd 1..=22, lz4
    /// 1..=12 with `lz4_hc`; None for the codec's default.
    pub level: Option<i32>,
    /// xz's BCJ filters to try on each block, by the names `-Xbcj` takes (see
    /// [`WriteOptions::XZ_FILTERS`]); the smallest result is kept.
    pub xz_filters: Vec<String>,
    /// lz4's high-compression mode (`-Xhc`).
    pub lz4_hc: bool,
    /// A power of two in 4 KiB..=1 MiB.
    pub block_size: u32,
    /// Threads compressing blocks (0: one per core).
    pub threads: usize,
    pub fragments: Fragments,
    /// Store a file whose content equals an earlier one's as that one's blocks.
    pub duplicates: bool,
    /// Write the export table (NFS export, inode lookup by number).
    pub exportable: bool,
    /// The image's creation time (seconds since the epoch).
    pub mkfs_time: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression: Compression::Gzip,
            level: None,
            xz_filters: Vec::new(),
            lz4_hc: false,
            block_size: 128 << 10,
            threads: 0,
            fragments: Fragments::SmallFiles,
            duplicates: true,
            exportable: true,
            mkfs_time: 0,
        }
    }
}

impl WriteOptions {
    /// The names [`WriteOptions::xz_filters`] takes.
    pub const XZ_FILTERS: &'static [&'static str] = &XZ_FILTER_NAMES;

    fn encoding(&self) -> WriteResult<Encoding> {
        let bs = self.block_size;
        if !(4096..=1 << 20).contains(&bs) || !bs.is_power_of_two() {
            return Err(WriteError::Options(format!(
                "block size {bs} is not a power of two in 4 KiB..=1 MiB"
            )));
        }
        let mut mask = 0;
        for name in &self.xz_filters {
            let bit = XZ_FILTER_NAMES
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| {
                    WriteError::Options(format!(
                        "unknown xz filter {name:?} (known: {})",
                        XZ_FILTER_NAMES.join(", ")
                    ))
                })?;
            mask |= 1 << bit;
        }
        let encoding = Encoding {
            level: self.level,
            xz_filters: mask,
            lz4_hc: self.lz4_hc,
            ..Encoding::new(self.compression, bs)
        };
        encoding
            .check()
            .map_err(|e| WriteError::Options(e.to_string()))?;
        Ok(encoding)
    }

    fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

/// What every entry has: permissions, owners, time and extended attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits with setuid, setgid and sticky (`st_mode & 07777`).
    pub permissions: u16,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch (the only time an image keeps).
    pub mtime: u32,
    /// Full names (`user.`, `trusted.` or `security.` and the rest), in any order.
    pub xattrs: Vec<Xattr>,
}

/// An entry added to a [`Writer`]: the parent of later entries (a directory) or the target
/// of a hard link. The root directory is [`Writer::root`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(u32);

/// A node other than a directory, file or symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    BlockDevice { major: u32, minor: u32 },
    CharDevice { major: u32, minor: u32 },
    Fifo,
    Socket,
}

/// What [`Writer::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSummary {
    /// The image's length (`bytes_used`) and the file's, padded to 4 KiB.
    pub bytes_used: u64,
    pub file_len: u64,
    pub inodes: u32,
    /// Bytes of file content read.
    pub bytes_read: u64,
    /// Files stored as an earlier file's content.
    pub duplicates: u64,
    pub fragments: u32,
    pub ids: u16,
    /// Distinct extended attribute sets stored.
    pub xattr_sets: u32,
}

/// Builds one image. Add entries (each under a directory added before it), then
/// [`Writer::finish`]. A file's content is read while it is added; a file that cannot be
/// read ([`WriteError::Input`], [`WriteError::SizeChanged`]) is left out and the writer
/// goes on; any other error ends it (later calls fail).
pub struct Writer {
    out: File,
    options: WriteOptions,
    encoding: Encoding,
    data: Data,
    tree: Tree,
    owners: Owners,
    xattrs: Xattrs,
    broken: bool,
}

impl Writer {
    /// A writer of an image into `out` (written from its start, truncated at the end),
    /// with a root directory of `root` meta.
    pub fn create(out: File, options: &WriteOptions, root: Meta) -> WriteResult<Writer> {
        let encoding = options.encoding()?;
        let mut data_start = SUPERBLOCK_SIZE as u64;
        if let Some(opts) = encoding.options() {
            data_start += 2 + opts.len() as u64;
        }
        let threads = options.thread_count();
        let copy = out.try_clone().map_err(WriteError::Output)?;
        let pipeline = Pipeline::start(copy, data_start, &encoding, threads)?;
        let data = Data::new(
            pipeline,
            options.block_size,
            options.fragments,
            options.duplicates,
        );
        let mut writer = Writer {
            out,
            options: options.clone(),
            xattrs: Xattrs::new(&encoding)?,
            encoding,
            data,
            tree: Tree::default(),
            owners: Owners::default(),
            broken: false,
        };
        let attrs = writer.attrs(root)?;
        writer.tree.add_root(attrs);
        Ok(writer)
    }

    /// The root directory.
    pub fn root(&self) -> NodeId {
        NodeId(0)
    }

    /// Replaces the meta of `node` (a directory made before its own entry was seen, say).
    pub fn set_meta(&mut self, node: NodeId, meta: Meta) -> WriteResult<()> {
        self.usable()?;
        let attrs = self.attrs(meta)?;
        self.tree.set_attrs(node.0, attrs)
    }

    /// Adds a directory called `name` in `parent`.
    pub fn dir(&mut self, parent: NodeId, name: &[u8], meta: Meta) -> WriteResult<NodeId> {
        self.add(parent, name, meta, |_| Ok(Body::Dir(Vec::new())))
    }

    /// Adds a regular file of `size` bytes, reading its content now. A content that holds
    /// more or fewer bytes is [`WriteError::SizeChanged`].
    pub fn file(
        &mut self,
        parent: NodeId,
        name: &[u8],
        meta: Meta,
        size: u64,
        content: Content,
    ) -> WriteResult<NodeId> {
        self.add(parent, name, meta, |w| {
            let stored = w.data.add(size, content);
            if matches!(stored, Err(ref e) if !e.leaves_writer_usable()) {
                w.broken = true;
            }
            Ok(Body::File(stored?))
        })
    }

    /// Adds a symbolic link to `target` (1..=4096 bytes, stored as they are).
    pub fn symlink(
        &mut self,
        parent: NodeId,
        name: &[u8],
        meta: Meta,
        target: &[u8],
    ) -> WriteResult<NodeId> {
        if target.is_empty() || target.len() > crate::inode::MAX_SYMLINK as usize {
            return Err(WriteError::SymlinkTarget(target.len()));
        }
        self.add(parent, name, meta, |_| Ok(Body::Symlink(target.into())))
    }

    /// Adds a device node, FIFO or socket.
    pub fn special(
        &mut self,
        parent: NodeId,
        name: &[u8],
        meta: Meta,
        special: Special,
    ) -> WriteResult<NodeId> {
        let device = |kind, major: u32, minor: u32| {
            if major > 0xfff || minor > 0xfffff {
                return Err(WriteError::Device { major, minor });
            }
            Ok(Body::Device(kind, encode_device(major, minor)))
        };
        let body = match special {
            Special::BlockDevice { major, minor } => device(FileType::BlockDevice, major, minor)?,
            Special::CharDevice { major, minor } => device(FileType::CharDevice, major, minor)?,
            Special::Fifo => Body::Ipc(FileType::Fifo),
            Special::Socket => Body::Ipc(FileType::Socket),
        };
        self.add(parent, name, meta, |_| Ok(body))
    }

    /// Adds `name` in `parent` as another name of `target` (a hard link: one inode, its
    /// link count the number of names). `target` must not be a directory.
    pub fn link(&mut self, parent: NodeId, name: &[u8], target: NodeId) -> WriteResult<()> {
        self.usable()?;
        check_name(name).map_err(|_| WriteError::BadName(show(name)))?;
        self.tree.link(parent.0, name, target.0)
    }

    /// Takes the entry `name` out of `parent`, so that another entry can be added under
    /// that name (a later tar member replaces an earlier one). A directory goes with
    /// everything under it; a hard-linked file keeps its other names. A file's blocks
    /// stay in the image, unreferenced unless a later file has the same content. The call
    /// costs no search of the directory: it is recorded and applied at [`Writer::finish`]
    /// as if made now, and finish fails with [`WriteError::NotFound`] if `parent` had no
    /// such entry at the time of the call.
    pub fn remove(&mut self, parent: NodeId, name: &[u8]) -> WriteResult<()> {
        self.usable()?;
        self.tree.remove(parent.0, name)
    }

    /// Bytes of file content read so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.data.bytes_read
    }

    /// Writes the metadata and the superblock once every block is written. The image is
    /// complete when this returns Ok (the caller syncs and renames it if it wants).
    pub fn finish(self) -> WriteResult<WriteSummary> {
        self.usable()?;
        let Writer {
            out,
            options,
            encoding,
            data,
            tree,
            owners,
            xattrs,
            ..
        } = self;
        let bytes_read = data.bytes_read;
        let duplicates = data.duplicates;
        let blocks = data.finish()?;
        tables::write(tables::Input {
            out: &out,
            options: &options,
            encoding: &encoding,
            tree,
            owners,
            xattrs,
            blocks,
            bytes_read,
            duplicates,
        })
    }

    fn usable(&self) -> WriteResult<()> {
        if self.broken {
            return Err(WriteError::Stopped);
        }
        Ok(())
    }

    /// The stored form of `meta`: owners by id table index, xattrs by set.
    fn attrs(&mut self, meta: Meta) -> WriteResult<Attrs> {
        let xattr = self.xattrs.intern(meta.xattrs)?.unwrap_or(NO_XATTR);
        Ok(Attrs {
            permissions: meta.permissions & 0o7777,
            uid: self.owners.index(meta.uid)?,
            gid: self.owners.index(meta.gid)?,
            mtime: meta.mtime,
            xattr,
        })
    }

    fn add(
        &mut self,
        parent: NodeId,
        name: &[u8],
        meta: Meta,
        body: impl FnOnce(&mut Self) -> WriteResult<Body>,
    ) -> WriteResult<NodeId> {
        self.usable()?;
        check_name(name).map_err(|_| WriteError::BadName(show(name)))?;
        self.tree.check_parent(parent.0)?;
        let attrs = self.attrs(meta)?;
        let body = body(self)?;
        self.tree.add(parent.0, name, attrs, body).map(NodeId)
    }
}

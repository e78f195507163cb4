//! `Archive`: the one type users of the library hold. It opens an image lazily (superblock
//! and the small table indexes only) and answers lookups, listings, attributes and reads.

use std::fs::File;
use std::ops::Range;
use std::path::Path;

use crate::cache::Block;
use crate::compress::new_decompressor;
use crate::context::{Context, Limits};
use crate::dir::{self, DirEntry, ReadDir};
use crate::error::{corrupt, Error, Result};
use crate::export::ExportTable;
use crate::file::FileData;
use crate::fragment::FragmentTable;
use crate::id::IdTable;
use crate::inode::{Inode, InodeBody};
use crate::metadata::{MetaRef, Table};
use crate::reader::BlockReader;
use crate::sif::Sif;
use crate::source::Source;
use crate::superblock::{flags, Superblock, NO_TABLE, SUPERBLOCK_SIZE};
use crate::table::Chain;
use crate::xattr::{Xattr, XattrTable};

/// How to open an image.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Where the SquashFS starts inside the file (AppImage, `mksquashfs -offset`, a SIF
    /// partition named by hand). At 0, a file that is a SIF ([`crate::sif::is_sif`]) opens
    /// as the SquashFS in its primary system partition ([`crate::Sif::primary`]), bounded
    /// by that partition's size; any other offset is taken as it is, and no SIF header is
    /// looked for.
    pub offset: u64,
    /// Bytes of decompressed blocks to keep cached.
    pub cache_bytes: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            offset: 0,
            cache_bytes: 32 << 20,
        }
    }
}

/// Attributes of an inode as the kernel's squashfs driver reports them: what `stat` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// `st_ino`: the inode number.
    pub ino: u32,
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// `st_size`, as [`Inode::size`].
    pub size: u64,
    /// Seconds since the epoch; also the access and change time.
    pub mtime: u32,
    /// `st_rdev` of a device, as [`Inode::rdev`]; 0 otherwise.
    pub rdev: u64,
}

/// An open SquashFS image. `Send + Sync`: share it between threads behind an `Arc`.
pub struct Archive {
    sb: Superblock,
    ctx: Context,
    compressor_options: Option<Vec<u8>>,
    /// The SIF the image was found in, if it was.
    sif: Option<Box<Sif>>,
}

impl Archive {
    /// Opens the image at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_file(File::open(path)?, &OpenOptions::default())
    }

    /// Opens the image in `file`, starting at `options.offset` (at 0, a SIF's primary
    /// partition: see [`OpenOptions::offset`]).
    pub fn open_file(file: File, options: &OpenOptions) -> Result<Self> {
        if options.offset == 0 {
            if let Some(sif) = Sif::detect(&file)? {
                let source = sif.primary_source(file)?;
                return Self::open_source(source, Some(Box::new(sif)), options);
            }
        }
        Self::open_source(Source::new(file, options.offset), None, options)
    }

    fn open_source(
        mut source: Source,
        sif: Option<Box<Sif>>,
        options: &OpenOptions,
    ) -> Result<Self> {
        let available = source.available()?;
        if available < SUPERBLOCK_SIZE as u64 {
            // Too short for a superblock: say whether it even starts like one.
            let mut magic = [0u8; 4];
            let starts_right = available >= 4
                && source.read_prefix(&mut magic).is_ok()
                && u32::from_le_bytes(magic) == crate::superblock::MAGIC;
            return Err(if starts_right {
                corrupt!("file too short for a superblock (truncated?)")
            } else {
                Error::BadMagic
            });
        }
        let mut raw = [0u8; SUPERBLOCK_SIZE];
        source.read_exact_at(0, &mut raw)?;
        let sb = Superblock::parse(&raw, available)?;
        source.set_len(sb.bytes_used);

        let compressor_options = if sb.has(flags::COMPRESSOR_OPTIONS) {
            Some(read_compressor_options(&source)?)
        } else {
            None
        };
        let decompressor = new_decompressor(sb.compression, compressor_options.as_deref())?;
        let reader = BlockReader::new(source, decompressor, options.cache_bytes, sb.block_size);

        let mut chain = Chain::new(sb.directory_table_start, sb.bytes_used);
        let xattrs = chain.read_if(sb.xattr_id_table_start != NO_TABLE, |bounds| {
            XattrTable::read(&reader, sb.xattr_id_table_start, bounds)
        })?;
        let ids =
            chain.read(|bounds| IdTable::read(&reader, sb.id_table_start, sb.id_count, bounds))?;
        let export = chain.read_if(sb.export_table_start != NO_TABLE, |bounds| {
            ExportTable::read(&reader, sb.export_table_start, sb.inode_count, bounds)
        })?;
        let fragments = chain.read_if(sb.fragment_count != 0, |bounds| {
            FragmentTable::read(&reader, sb.fragment_table_start, sb.fragment_count, bounds)
        })?;
        let next = chain.end();
        if sb.directory_table_start > next {
            return Err(corrupt!(
                "directory table starts after the tables that follow it"
            ));
        }
        let ctx = Context {
            reader,
            inodes: Table {
                start: sb.inode_table_start,
                end: sb.directory_table_start,
            },
            dirs: Table {
                start: sb.directory_table_start,
                end: next,
            },
            limits: Limits {
                inode_count: sb.inode_count,
                id_count: sb.id_count,
                block_size: sb.block_size,
                fragment_count: sb.fragment_count,
            },
            ids,
            fragments,
            export,
            xattrs,
        };
        let archive = Archive {
            sb,
            ctx,
            compressor_options,
            sif,
        };
        archive.check_root()?;
        Ok(archive)
    }

    /// Reads what serving the root needs, so that an image whose root cannot be used is
    /// refused here rather than opened (or mounted) to answer every request with EIO. The
    /// kernel reads the root inode at mount (squashfs_fill_super() calls
    /// squashfs_read_inode(), which also resolves its owners and its xattr id); this reads
    /// the first entry of its listing as well.
    fn check_root(&self) -> Result<()> {
        let root = self
            .root()
            .map_err(|e| within("the root inode cannot be read", e))?;
        if !root.is_dir() {
            return Err(corrupt!("the root inode is not a directory"));
        }
        self.attr(&root)
            .map_err(|e| within("the root inode's owners cannot be read", e))?;
        if let (Some(index), Some(table)) = (root.xattr, &self.ctx.xattrs) {
            table
                .locate(&self.ctx.reader, index)
                .map_err(|e| within("the root inode's xattrs cannot be found", e))?;
        }
        if let Some(Err(e)) = self.read_dir(&root).map(|mut l| l.next()).transpose() {
            return Err(within("the root directory cannot be listed", e));
        }
        Ok(())
    }

    /// The image's superblock: its block size, codec, counts, flags and table positions.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The SIF the image was opened from (its SquashFS is the primary partition), if any.
    pub fn sif(&self) -> Option<&Sif> {
        self.sif.as_deref()
    }

    /// The decompressed compressor options block, when the image stores one.
    pub fn compressor_options(&self) -> Option<&[u8]> {
        self.compressor_options.as_deref()
    }

    /// Bytes the block cache holds now.
    pub fn cached_bytes(&self) -> usize {
        self.ctx.reader.cache().bytes()
    }

    /// Whether the image can find inodes by number ([`Archive::inode_by_number`]).
    pub fn has_export_table(&self) -> bool {
        self.ctx.export.is_some()
    }

    /// How many distinct extended attribute lists the image holds.
    pub fn xattr_id_count(&self) -> u64 {
        self.ctx.xattrs.as_ref().map_or(0, |x| x.count())
    }

    /// The root directory.
    pub fn root(&self) -> Result<Inode> {
        self.inode(MetaRef::from_packed(self.sb.root_inode))
    }

    /// The inode at `reference` (an [`Inode::reference`] or a [`DirEntry::inode`]).
    pub fn inode(&self, reference: MetaRef) -> Result<Inode> {
        Inode::read(&self.ctx, reference)
    }

    /// The inode with number `number`, through the export table.
    pub fn inode_by_number(&self, number: u32) -> Result<Inode> {
        let export = self.ctx.export.as_ref().ok_or(Error::NoExportTable)?;
        let inode = self.inode(export.get(&self.ctx.reader, number)?)?;
        if inode.number != number {
            return Err(corrupt!(
                "export table entry {number} leads to inode {}",
                inode.number
            ));
        }
        Ok(inode)
    }

    fn dir_info<'i>(&self, dir: &'i Inode) -> Result<&'i crate::inode::DirInfo> {
        match &dir.body {
            InodeBody::Directory(d) => Ok(d),
            _ => Err(Error::NotADirectory),
        }
    }

    /// The entry called `name` in `dir`, if there is one. A name longer than any entry can
    /// have is [`Error::NameTooLong`] (ENAMETOOLONG, as the kernel answers).
    pub fn lookup_entry(&self, dir: &Inode, name: &[u8]) -> Result<Option<DirEntry>> {
        let info = self.dir_info(dir)?;
        if name.len() > dir::MAX_NAME {
            return Err(Error::NameTooLong);
        }
        // No listing can hold such a name (empty, ".", "..", a '/' or a NUL).
        if dir::check_name(name).is_err() {
            return Ok(None);
        }
        dir::lookup(&self.ctx, info, name)
    }

    /// The inode an entry names, checked to agree with the entry.
    pub fn entry_inode(&self, entry: &DirEntry) -> Result<Inode> {
        let inode = self.inode(entry.inode)?;
        if inode.kind != entry.kind || inode.number != entry.inode_number {
            return Err(corrupt!(
                "entry {:?} says {:?} #{} but its inode is {:?} #{}",
                String::from_utf8_lossy(&entry.name),
                entry.kind,
                entry.inode_number,
                inode.kind,
                inode.number
            ));
        }
        Ok(inode)
    }

    /// The inode called `name` in `dir`.
    pub fn lookup(&self, dir: &Inode, name: &[u8]) -> Result<Inode> {
        let entry = self.lookup_entry(dir, name)?.ok_or(Error::NotFound)?;
        self.entry_inode(&entry)
    }

    /// The inode at a `/`-separated path from the root; symlinks are not followed.
    pub fn lookup_path(&self, path: &str) -> Result<Inode> {
        let mut inode = self.root()?;
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            inode = self.lookup(&inode, part.as_bytes())?;
        }
        Ok(inode)
    }

    /// The entries of `dir` in on-disk order.
    pub fn read_dir(&self, dir: &Inode) -> Result<ReadDir<'_>> {
        self.read_dir_from(dir, 0)
    }

    /// The entries of `dir` after the one whose cookie is `cookie` (0: all of them).
    pub fn read_dir_from(&self, dir: &Inode, cookie: u64) -> Result<ReadDir<'_>> {
        let info = self.dir_info(dir)?;
        ReadDir::new(&self.ctx, info, cookie)
    }

    /// What `stat` shows of `inode`, its owners read from the id table.
    pub fn attr(&self, inode: &Inode) -> Result<Attr> {
        Ok(Attr {
            ino: inode.number,
            mode: inode.mode(),
            nlink: inode.nlink,
            uid: self.ctx.ids.get(&self.ctx.reader, inode.uid_index)?,
            gid: self.ctx.ids.get(&self.ctx.reader, inode.gid_index)?,
            size: inode.size(),
            mtime: inode.mtime,
            rdev: inode.rdev(),
        })
    }

    /// The block list of a regular file, for repeated reads.
    pub fn file_data(&self, inode: &Inode) -> Result<FileData> {
        match &inode.body {
            InodeBody::File(info) => FileData::load(&self.ctx, info),
            _ => Err(Error::NotAFile),
        }
    }

    /// Reads file bytes at `offset` through an already loaded block list.
    pub fn read_data(&self, data: &FileData, offset: u64, buf: &mut [u8]) -> Result<usize> {
        data.read_at(&self.ctx, offset, buf)
    }

    /// Reads bytes of a regular file at `offset`; returns how many (0 at the end).
    pub fn read_at(&self, inode: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.read_data(&self.file_data(inode)?, offset, buf)
    }

    /// The whole content of a regular file, if it holds at most `limit` bytes (else
    /// [`Error::TooBig`], before anything is read or allocated). The read path for callers
    /// that want a file in memory (a config file in an image, say): the inode's size is
    /// image data, so it is checked against the caller's limit, and the buffer grows only
    /// as bytes are really read, never past `limit`.
    pub fn read_file(&self, inode: &Inode, limit: usize) -> Result<Vec<u8>> {
        if inode.kind != crate::FileType::File {
            return Err(Error::NotAFile);
        }
        let size = inode.size();
        if size > limit as u64 {
            return Err(Error::TooBig {
                size,
                limit: limit as u64,
            });
        }
        let data = self.file_data(inode)?;
        // `size <= limit` here; still, allocate by what arrives, a chunk at a time.
        const CHUNK: usize = 1 << 20;
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let want = (size as usize - start).min(CHUNK);
            if want == 0 {
                break;
            }
            out.resize(start + want, 0);
            let n = self.read_data(&data, start as u64, &mut out[start..])?;
            out.truncate(start + n);
            if n == 0 {
                break;
            }
        }
        if out.len() as u64 != size {
            return Err(corrupt!(
                "inode {}: read {} of its {size} bytes",
                inode.number,
                out.len()
            ));
        }
        Ok(out)
    }

    /// [`Archive::read_file`] of the file at `path` (symlinks are not followed).
    pub fn read_file_at(&self, path: &str, limit: usize) -> Result<Vec<u8>> {
        self.read_file(&self.lookup_path(path)?, limit)
    }

    /// Block `index` of a file, decompressed and shared (None for a sparse hole). For
    /// readers that want whole blocks, e.g. to prefetch or to fill a page cache.
    ///
    /// # Panics
    /// If `index` is not below [`FileData::block_count`].
    pub fn data_block(&self, data: &FileData, index: usize) -> Result<Option<Block>> {
        data.load_block(&self.ctx, index)
    }

    /// Lets the cache drop block `index` of a file now: for a reader that has taken the
    /// block whole and will not ask for it again (a FUSE server, once the block is in the
    /// kernel's page cache), so that a file read from start to end does not fill the
    /// cache with blocks nobody asks for again, and their buffers take the next blocks.
    /// Reading it again decodes it again. An `index` past the file's blocks is ignored.
    pub fn forget_block(&self, data: &FileData, index: usize) {
        data.forget_block(&self.ctx, index);
    }

    /// Block `index` of a file decompressed into `out`, bypassing the cache (for readers
    /// that take each block once); `Some(n)`: the bytes are `out[..n]`; None: a hole.
    ///
    /// # Panics
    /// If `index` is not below [`FileData::block_count`].
    pub fn data_block_into(
        &self,
        data: &FileData,
        index: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>> {
        data.load_block_into(&self.ctx, index, out)
    }

    /// The fragment block holding the end of a file (the bytes after its last block),
    /// decompressed and shared, and where in it those bytes are; None if the file keeps no
    /// tail in a fragment. For readers that hand on whole blocks, as [`Archive::data_block`].
    pub fn tail_block(&self, data: &FileData) -> Result<Option<(Block, Range<usize>)>> {
        data.tail_block(&self.ctx)
    }

    /// For a regular file stored wholly in a fragment block (shorter than a block, no
    /// blocks of its own, not empty): the fragment's index and where in the fragment block
    /// the file starts. The files that share a fragment are decompressed together: a
    /// reader of one may want to hand on the others. As stored, unchecked: reading the
    /// file checks it.
    pub fn fragment_of(&self, inode: &Inode) -> Option<(u32, u32)> {
        match &inode.body {
            InodeBody::File(info) if info.block_count == 0 && info.size > 0 => info.fragment,
            _ => None,
        }
    }

    /// A symbolic link's target, as stored.
    pub fn read_link<'i>(&self, inode: &'i Inode) -> Result<&'i [u8]> {
        match &inode.body {
            InodeBody::Symlink(target) => Ok(target),
            _ => Err(Error::NotASymlink),
        }
    }

    /// The xattr table and list index of `inode`, if it has xattrs.
    fn xattr_list(&self, inode: &Inode) -> Result<Option<(&XattrTable, u32)>> {
        match (inode.xattr, &self.ctx.xattrs) {
            (None, _) => Ok(None),
            (Some(i), Some(table)) => Ok(Some((table, i))),
            (Some(i), None) => Err(corrupt!(
                "inode {} has xattr index {i} but the image has no xattr table",
                inode.number
            )),
        }
    }

    /// All extended attributes of `inode`, in stored order.
    pub fn xattrs(&self, inode: &Inode) -> Result<Vec<Xattr>> {
        match self.xattr_list(inode)? {
            None => Ok(Vec::new()),
            Some((table, i)) => table.list(&self.ctx.reader, i),
        }
    }

    /// The value of the xattr called `name` (with its prefix, as `user.foo`); reads no
    /// other value.
    pub fn xattr(&self, inode: &Inode, name: &[u8]) -> Result<Vec<u8>> {
        match self.xattr_list(inode)? {
            None => Err(Error::NoXattr),
            Some((table, i)) => table.get(&self.ctx.reader, i, name)?.ok_or(Error::NoXattr),
        }
    }
}

/// `e` as a corrupt-image error that says what it kept from working.
fn within(what: &str, e: Error) -> Error {
    match e {
        Error::Corrupt(msg) => corrupt!("{what}: {msg}"),
        e => corrupt!("{what}: {e}"),
    }
}

/// The compressor options block sits right after the superblock, always uncompressed.
fn read_compressor_options(source: &Source) -> Result<Vec<u8>> {
    let mut header = [0u8; 2];
    source.read_exact_at(SUPERBLOCK_SIZE as u64, &mut header)?;
    let word = u16::from_le_bytes(header);
    let len = usize::from(word & 0x7FFF);
    if word & 0x8000 == 0 || len == 0 || len > 64 {
        return Err(Error::CompressorOptions(format!(
            "options block header {word:#06x} is not a small uncompressed block"
        )));
    }
    let mut options = vec![0u8; len];
    source.read_exact_at(SUPERBLOCK_SIZE as u64 + 2, &mut options)?;
    Ok(options)
}

//! Directory listings: runs of entries behind headers, plus the index extended
//! directories carry for fast lookup and for resuming a listing at an offset.
//!
//! The names of a listing are unique and sorted bytewise: mksquashfs and gensquashfs write
//! them so, the kernel's lookup (fs/squashfs/namei.c, squashfs_lookup) stops at the first
//! larger name, and unsquashfs 4.5.1 refuses a directory whose names do not strictly
//! increase (check_directory(), the CVE-2021-41072 fix). Every listing and every lookup here
//! checks each name it reads against the one before, and starts early enough that the name
//! before its first one is read too: a repeated or out-of-order name is refused as corrupt
//! however the directory is read (whole, resumed at a cookie, or looked up in).

use crate::context::Context;
use crate::error::{corrupt, Error, Result};
use crate::inode::{DirInfo, FileType};
use crate::metadata::{MetaCursor, MetaRef};
use crate::reader::METADATA_SIZE;

/// Most entries one header may cover (the kernel's SQUASHFS_DIR_COUNT).
const MAX_HEADER_ENTRIES: u32 = 256;
/// Longest entry name (the kernel's SQUASHFS_NAME_LEN).
pub const MAX_NAME: usize = 256;
const HEADER_SIZE: u64 = 12;
const ENTRY_SIZE: u64 = 8;

/// One name in a directory, without `.` and `..` (which no listing stores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name, as stored (any bytes but `/` and NUL).
    pub name: Vec<u8>,
    /// The entry's inode: pass it to [`crate::Archive::inode`], or the entry to
    /// [`crate::Archive::entry_inode`], which also checks that the two agree.
    pub inode: MetaRef,
    /// The inode's number, as the entry states it.
    pub inode_number: u32,
    /// The inode's type, as the entry states it.
    pub kind: FileType,
    /// Pass this to [`crate::Archive::read_dir_from`] to resume after this entry.
    pub cookie: u64,
}

/// Checks a name as it may appear in a listing: not empty, at most [`MAX_NAME`] bytes, not
/// `.` or `..`, no `/` and no NUL (as strict as unsquashfs 4.5.1's check_name(), the
/// CVE-2021-40153 fix, which refuses `.`, `..`, any `/` and a name cut short by a NUL).
pub(crate) fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || name == b"."
        || name == b".."
        || name.iter().any(|&b| b == b'/' || b == 0)
    {
        return Err(corrupt!(
            "bad directory entry name {:?}",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(())
}

/// Where a listing is read from: a header's position and its offset in the listing.
#[derive(Debug, Clone, Copy)]
struct Start {
    at: MetaRef,
    offset: u64,
}

/// The entries of a directory, in the order they are stored (names sorted bytewise), as
/// [`Archive::read_dir`](crate::Archive::read_dir) returns them. An entry that cannot be read
/// is returned as an error once, and ends the listing.
pub struct ReadDir<'a> {
    cursor: Option<MetaCursor<'a>>,
    /// Listing bytes consumed so far (the cookie space).
    pos: u64,
    len: u64,
    /// The directory's inode number, for errors.
    dir_number: u32,
    inode_count: u32,
    left_in_header: u32,
    header_block: u32,
    header_number: u32,
    /// Entries ending at or before this position are skipped (a resumed listing).
    skip_until: u64,
    /// The name read last: the next one must sort after it.
    prev: Option<Vec<u8>>,
    failed: bool,
}

/// Listing bytes of a directory (its stored size counts 3 more, for "." and "..").
fn listing_len(dir: &DirInfo) -> u64 {
    u64::from(dir.size.saturating_sub(3))
}

impl<'a> ReadDir<'a> {
    /// A listing of `dir`, resumed after the entry whose cookie is `cookie` (0: from the
    /// start).
    pub(crate) fn new(ctx: &'a Context, dir: &DirInfo, cookie: u64) -> Result<Self> {
        // Resuming starts at an index point strictly before the cookie, so the entry that
        // ends at the cookie (the last one returned) is read again and the first one
        // returned is checked against it.
        let start = if cookie > 0 && cookie < listing_len(dir) {
            seek(ctx, dir, |e| e.listing_offset < cookie)
        } else {
            listing_start(dir)
        };
        Self::at(ctx, dir, start, cookie)
    }

    fn at(ctx: &'a Context, dir: &DirInfo, start: Start, skip_until: u64) -> Result<Self> {
        let len = listing_len(dir);
        let cursor = if len == 0 || skip_until >= len {
            None
        } else {
            Some(ctx.dirs.cursor(&ctx.reader, start.at)?)
        };
        Ok(ReadDir {
            cursor,
            pos: start.offset,
            len,
            dir_number: dir.inode_number,
            inode_count: ctx.limits.inode_count,
            left_in_header: 0,
            header_block: 0,
            header_number: 0,
            skip_until,
            prev: None,
            failed: false,
        })
    }

    fn take(&mut self, n: u64) -> Result<()> {
        if self.pos + n > self.len {
            return Err(corrupt!(
                "directory {}: listing runs past its size {}",
                self.dir_number,
                self.len
            ));
        }
        self.pos += n;
        Ok(())
    }

    /// Refuses `name` unless it sorts after the name before it.
    fn check_order(&self, name: &[u8]) -> Result<()> {
        match &self.prev {
            Some(prev) if name <= prev.as_slice() => Err(corrupt!(
                "directory {}: entry {:?} {} {:?} (names must be unique and sorted)",
                self.dir_number,
                String::from_utf8_lossy(name),
                if name == prev.as_slice() {
                    "repeats"
                } else {
                    "is out of order after"
                },
                String::from_utf8_lossy(prev)
            )),
            _ => Ok(()),
        }
    }

    fn next_entry(&mut self) -> Result<Option<DirEntry>> {
        loop {
            if self.pos >= self.len {
                return Ok(None);
            }
            let Some(c) = self.cursor.as_mut() else {
                return Ok(None);
            };
            if self.left_in_header == 0 {
                let count = c.u32()?;
                let block = c.u32()?;
                let number = c.u32()?;
                self.take(HEADER_SIZE)?;
                if count >= MAX_HEADER_ENTRIES {
                    return Err(corrupt!(
                        "directory {}: header with {} entries",
                        self.dir_number,
                        u64::from(count) + 1
                    ));
                }
                self.left_in_header = count + 1;
                self.header_block = block;
                self.header_number = number;
                continue;
            }
            let offset = c.u16()?;
            let delta = c.u16()? as i16;
            let basic_type = c.u16()?;
            let name_len = usize::from(c.u16()?) + 1;
            if name_len > MAX_NAME {
                return Err(corrupt!(
                    "directory {}: entry name of {name_len} bytes",
                    self.dir_number
                ));
            }
            let name = c.bytes(name_len)?;
            self.take(ENTRY_SIZE + name_len as u64)?;
            self.left_in_header -= 1;
            check_name(&name)?;
            self.check_order(&name)?;
            let kind = FileType::from_basic(basic_type)?;
            let number = i64::from(self.header_number) + i64::from(delta);
            if number <= 0 || number > i64::from(self.inode_count) {
                return Err(corrupt!(
                    "directory {}: entry {:?} has inode number {number}",
                    self.dir_number,
                    String::from_utf8_lossy(&name)
                ));
            }
            if usize::from(offset) >= METADATA_SIZE {
                return Err(corrupt!(
                    "directory {}: entry inode offset {offset} past a metadata block",
                    self.dir_number
                ));
            }
            if self.pos <= self.skip_until {
                self.prev = Some(name);
                continue;
            }
            match &mut self.prev {
                Some(prev) => {
                    prev.clear();
                    prev.extend_from_slice(&name);
                }
                None => self.prev = Some(name.clone()),
            }
            return Ok(Some(DirEntry {
                name,
                inode: MetaRef {
                    block: u64::from(self.header_block),
                    offset,
                },
                inode_number: number as u32,
                kind,
                cookie: self.pos,
            }));
        }
    }
}

impl Iterator for ReadDir<'_> {
    type Item = Result<DirEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_entry().transpose();
        if matches!(item, Some(Err(_))) {
            // A corrupt listing ends the iteration after reporting once: no endless loop.
            self.failed = true;
        }
        item
    }
}

/// One entry of an extended directory's index.
pub struct IndexEntry {
    /// Byte offset of a header inside the listing.
    pub listing_offset: u64,
    /// Where that header is, relative to the directory table.
    pub at: MetaRef,
    pub first_name: Vec<u8>,
}

/// Walks an extended directory's index, checking that it only moves forward.
pub struct Index<'a> {
    cursor: MetaCursor<'a>,
    left: u16,
    listing: MetaRef,
    listing_len: u64,
    last: u64,
}

impl<'a> Index<'a> {
    /// The index of `dir` (it lies in the inode table, after the directory's inode).
    pub fn new(ctx: &'a Context, dir: &DirInfo) -> Result<Self> {
        Ok(Index {
            cursor: ctx.inodes.cursor(&ctx.reader, dir.index_at)?,
            left: dir.index_count,
            listing: dir.listing,
            listing_len: listing_len(dir),
            last: 0,
        })
    }

    pub fn next_entry(&mut self) -> Result<Option<IndexEntry>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let c = &mut self.cursor;
        let listing_offset = u64::from(c.u32()?);
        let block = u64::from(c.u32()?);
        let name_len = c.u32()? as usize + 1;
        if name_len > MAX_NAME {
            return Err(corrupt!("directory index name of {name_len} bytes"));
        }
        let first_name = c.bytes(name_len)?;
        if listing_offset < self.last
            || listing_offset >= self.listing_len
            || block < self.listing.block
        {
            return Err(corrupt!(
                "directory index entry out of order or past the listing"
            ));
        }
        self.last = listing_offset;
        // Listing bytes fill metadata blocks back to back, so a header's offset inside its
        // block follows from its offset in the listing.
        let offset =
            ((u64::from(self.listing.offset) + listing_offset) % METADATA_SIZE as u64) as u16;
        Ok(Some(IndexEntry {
            listing_offset,
            at: MetaRef { block, offset },
            first_name,
        }))
    }
}

fn listing_start(dir: &DirInfo) -> Start {
    Start {
        at: dir.listing,
        offset: 0,
    }
}

/// Where to start reading `dir`: at the last index point that `before` accepts (the index
/// is walked while it does), or at the listing's start. The index only saves reading: like
/// the kernel's get_dir_index_using_name() and get_dir_index_using_offset() (fs/squashfs),
/// an index entry that cannot be read ends the walk and what was read before it is used;
/// and a point whose header does not begin with the name the index gives for it is not
/// used at all, so a bad index never hides an entry that reading from the start finds.
fn seek(ctx: &Context, dir: &DirInfo, before: impl Fn(&IndexEntry) -> bool) -> Start {
    if dir.index_count == 0 {
        return listing_start(dir);
    }
    let Ok(mut index) = Index::new(ctx, dir) else {
        return listing_start(dir);
    };
    let mut best = None;
    while let Ok(Some(entry)) = index.next_entry() {
        if !before(&entry) {
            break;
        }
        best = Some(entry);
    }
    match best {
        Some(point) if begins_with(ctx, &point) => Start {
            at: point.at,
            offset: point.listing_offset,
        },
        _ => listing_start(dir),
    }
}

/// Whether the listing at an index point holds a header whose first entry is named as the
/// index says.
fn begins_with(ctx: &Context, point: &IndexEntry) -> bool {
    let first_name = || -> Result<Vec<u8>> {
        let mut c = ctx.dirs.cursor(&ctx.reader, point.at)?;
        // The header, then the entry's inode offset, inode number delta and type.
        c.skip(HEADER_SIZE + 6)?;
        let len = usize::from(c.u16()?) + 1;
        if len != point.first_name.len() {
            return Ok(Vec::new());
        }
        c.bytes(len)
    };
    first_name().is_ok_and(|name| name == point.first_name)
}

/// The writer's side of a listing: entries added in name order become runs behind
/// headers, as [`ReadDir`] reads them. A new header starts at the first entry, every 256
/// entries, when the inode block changes, when the inode number is out of a header's
/// 16-bit reach, and when the listing has grown a metadata block's worth since the last
/// index point; that last kind is also an index point (mksquashfs's rule, in add_dir()),
/// so an index entry is at most a metadata block apart from the next.
#[derive(Default)]
pub(crate) struct ListingWriter {
    bytes: Vec<u8>,
    /// Where the open header is, its entry count, inode block and base number.
    header: Option<(usize, u32, u32, u32)>,
    /// Listing offset of the last index point (0: the listing's start).
    index_point: usize,
    /// (listing offset of a header, its first name): the index, to be placed.
    pub index: Vec<(u32, Vec<u8>)>,
}

impl ListingWriter {
    /// Adds the entry `name` for the inode at `inode` (in the inode table), numbered
    /// `number`, of type `kind`. Names must come sorted, each at most [`MAX_NAME`] bytes.
    pub(crate) fn add(&mut self, name: &[u8], inode: MetaRef, number: u32, kind: FileType) {
        let block = inode.block as u32;
        let entry_len = ENTRY_SIZE as usize + name.len();
        let reach = |base: u32| (i64::from(number) - i64::from(base)).unsigned_abs() <= 32767;
        let full = self.bytes.len() + entry_len - self.index_point > METADATA_SIZE;
        let same_run = matches!(self.header, Some((_, count, b, base))
            if count < MAX_HEADER_ENTRIES && b == block && reach(base));
        if !same_run || full {
            self.close_header();
            if full && !self.bytes.is_empty() {
                self.index.push((self.bytes.len() as u32, name.to_vec()));
                self.index_point = self.bytes.len();
            }
            self.header = Some((self.bytes.len(), 0, block, number));
            self.bytes.extend([0; HEADER_SIZE as usize]);
        }
        let Some((_, count, _, base)) = &mut self.header else {
            unreachable!("a header was just opened")
        };
        *count += 1;
        let delta = (i64::from(number) - i64::from(*base)) as i16;
        for v in [
            inode.offset,
            delta as u16,
            kind.basic(),
            (name.len() - 1) as u16,
        ] {
            self.bytes.extend(v.to_le_bytes());
        }
        self.bytes.extend_from_slice(name);
    }

    /// Writes the open header's fields now that its entry count is known.
    fn close_header(&mut self) {
        if let Some((at, count, block, base)) = self.header.take() {
            let mut h = Vec::with_capacity(HEADER_SIZE as usize);
            for v in [count - 1, block, base] {
                h.extend(v.to_le_bytes());
            }
            self.bytes[at..at + HEADER_SIZE as usize].copy_from_slice(&h);
        }
    }

    /// The listing's bytes (its inode's size is their length + 3).
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        self.close_header();
        std::mem::take(&mut self.bytes)
    }
}

/// Appends a directory index entry as [`Index::next_entry`] reads it: the header's offset
/// in the listing, the directory table block it lies in, and its first name.
pub(crate) fn encode_index_entry(out: &mut Vec<u8>, listing_offset: u32, block: u32, name: &[u8]) {
    for v in [listing_offset, block, (name.len() - 1) as u32] {
        out.extend(v.to_le_bytes());
    }
    out.extend_from_slice(name);
}

/// Finds `name` in a directory: jumps with the index when there is one, then scans.
/// Entries are sorted bytewise, so the scan stops at the first larger name; a match is
/// followed by one more entry, so that a repeat of the name is refused here too.
pub fn lookup(ctx: &Context, dir: &DirInfo, name: &[u8]) -> Result<Option<DirEntry>> {
    // As the kernel's squashfs_lookup().
    if name.len() > MAX_NAME {
        return Err(Error::NameTooLong);
    }
    // An index point whose first name sorts before `name` (strictly: the entry before a
    // point named `name` is read too, and a repeat across the point is seen).
    let start = seek(ctx, dir, |e| e.first_name.as_slice() < name);
    // Starting at a header's own offset skips nothing: every entry read ends after it.
    let mut listing = ReadDir::at(ctx, dir, start, start.offset)?;
    while let Some(entry) = listing.next() {
        let entry = entry?;
        match entry.name.as_slice().cmp(name) {
            std::cmp::Ordering::Equal => {
                if let Some(Err(e)) = listing.next() {
                    return Err(e);
                }
                return Ok(Some(entry));
            }
            std::cmp::Ordering::Greater => return Ok(None),
            std::cmp::Ordering::Less => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{Compression, Encoding};
    use crate::context::Limits;
    use crate::inode::{NewBody, NewInode, NO_XATTR};
    use crate::metadata::{MetaWriter, Table};
    use crate::reader::testing::reader;

    fn names(count: usize) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("e{i:05}-{}", "n".repeat(i % 97)).into_bytes())
            .collect();
        v.sort();
        v
    }

    /// A directory of `count` entries written with a [`ListingWriter`] (and its index),
    /// read back through a listing, resumed listings and lookups.
    fn round_trip(count: usize) {
        let names = names(count);
        let zstd = || Encoding::new(Compression::Zstd, 4096).compressor().unwrap();
        let (mut inodes, mut dirs) = (MetaWriter::new(zstd()), MetaWriter::new(zstd()));
        // Something ahead of the listing, so that it starts inside a block.
        dirs.write(&[7; 1000]).unwrap();
        // Entries' inodes in several inode blocks, with numbers far apart at one point.
        let inode_of = |i: usize| {
            let number = if i < count / 2 { i + 2 } else { i + 40_000 } as u32;
            let at = MetaRef {
                block: (i / 300) as u64 * 8000,
                offset: (i * 37 % METADATA_SIZE) as u16,
            };
            let kind = [FileType::File, FileType::Directory, FileType::Fifo][i % 3];
            (at, number, kind)
        };
        let mut listing = ListingWriter::default();
        for (i, name) in names.iter().enumerate() {
            let (at, number, kind) = inode_of(i);
            listing.add(name, at, number, kind);
        }
        let bytes = listing.finish();
        let start = dirs.stream_len();
        let listing_at = dirs.position();
        dirs.write(&bytes).unwrap();
        let mut index = Vec::new();
        for (offset, name) in &listing.index {
            let block = dirs.reference(start + u64::from(*offset)).block;
            encode_index_entry(&mut index, *offset, block as u32, name);
        }
        let size = bytes.len() as u32 + 3;
        let inode = NewInode {
            permissions: 0o755,
            uid_index: 0,
            gid_index: 0,
            mtime: 0,
            number: 1,
            nlink: 2,
            xattr: NO_XATTR,
            body: NewBody::Directory {
                listing: listing_at,
                size,
                parent: 1,
                index: &index,
                index_count: listing.index.len() as u16,
            },
        };
        let mut raw = Vec::new();
        inode.encode(&mut raw);
        inodes.write(&raw).unwrap();
        let mut image = inodes.finish().unwrap();
        let dirs_start = image.len() as u64;
        image.extend(dirs.finish().unwrap());
        let r = reader(&image, Compression::Zstd, 4096);
        let limits = Limits {
            inode_count: 50_000,
            id_count: 1,
            block_size: 4096,
            fragment_count: 0,
        };
        let tables = (
            Table {
                start: 0,
                end: dirs_start,
            },
            Table {
                start: dirs_start,
                end: image.len() as u64,
            },
        );
        let ctx = Context::of_tables(r, tables.0, tables.1, limits);
        let dir = match crate::inode::Inode::read(&ctx, MetaRef::from_packed(0))
            .unwrap()
            .body
        {
            crate::inode::InodeBody::Directory(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(usize::from(dir.index_count), listing.index.len());
        let all: Vec<DirEntry> = ReadDir::new(&ctx, &dir, 0)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(all.len(), count);
        for (i, e) in all.iter().enumerate() {
            let (at, number, kind) = inode_of(i);
            assert_eq!(
                (&e.name, e.inode, e.inode_number, e.kind),
                (&names[i], at, number, kind)
            );
        }
        // Resumed after any entry, the listing goes on with the next.
        for i in (0..count).step_by(count / 37 + 1) {
            let next = ReadDir::new(&ctx, &dir, all[i].cookie).unwrap().next();
            assert_eq!(next.map(|e| e.unwrap().name), names.get(i + 1).cloned());
        }
        for (i, name) in names.iter().enumerate().step_by(count / 53 + 1) {
            let found = lookup(&ctx, &dir, name).unwrap().expect("found");
            assert_eq!(found.inode_number, inode_of(i).1);
        }
        assert_eq!(lookup(&ctx, &dir, b"zzz").unwrap(), None);
    }

    #[test]
    fn a_small_listing_reads_back() {
        round_trip(5);
    }

    #[test]
    fn a_big_listing_reads_back_through_its_index() {
        round_trip(3000);
    }
}

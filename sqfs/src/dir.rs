//! Directory listings: runs of entries behind headers, plus the index extended
//! directories carry for fast lookup and for resuming a listing at an offset.

use crate::error::{corrupt, Result};
use crate::inode::{DirInfo, FileType};
use crate::metadata::{MetaCursor, MetaRef, Table, METADATA_SIZE};
use crate::reader::BlockReader;

/// Most entries one header may cover (the kernel's SQUASHFS_DIR_COUNT).
const MAX_HEADER_ENTRIES: u32 = 256;
/// Longest entry name (the kernel's SQUASHFS_NAME_LEN).
pub const MAX_NAME: usize = 256;
const HEADER_SIZE: u64 = 12;
const ENTRY_SIZE: u64 = 8;

/// One name in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    /// The entry's inode, relative to the inode table.
    pub inode: MetaRef,
    pub inode_number: u32,
    pub kind: FileType,
    /// Pass this to [`crate::Archive::read_dir_from`] to resume after this entry.
    pub cookie: u64,
}

/// Checks a name as it may appear in a listing.
pub fn check_name(name: &[u8]) -> Result<()> {
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

/// Iterates a listing from some position on. Ends at the listing's stored size.
pub struct ReadDir<'a> {
    cursor: Option<MetaCursor<'a>>,
    /// Listing bytes consumed so far (the cookie space).
    pos: u64,
    len: u64,
    inode_count: u32,
    left_in_header: u32,
    header_block: u32,
    header_number: u32,
    /// Entries ending at or before this position are skipped (a resumed listing).
    skip_until: u64,
    failed: bool,
}

impl<'a> ReadDir<'a> {
    /// A listing of `dir`, resumed after the entry whose cookie is `cookie` (0: from the
    /// start). `inodes` is the inode table, which holds a directory's index.
    pub fn new(
        reader: &'a BlockReader,
        dirs: Table,
        inodes: Table,
        dir: &DirInfo,
        cookie: u64,
        inode_count: u32,
    ) -> Result<Self> {
        let len = u64::from(dir.size.saturating_sub(3));
        let mut start = (dir.listing, 0u64);
        if cookie > 0 && dir.index_count > 0 {
            let mut index = Index::new(reader, inodes, dir)?;
            while let Some(entry) = index.next_entry()? {
                if entry.listing_offset > cookie {
                    break;
                }
                start = (entry.at, entry.listing_offset);
            }
        }
        let cursor = if len == 0 || cookie >= len {
            None
        } else {
            Some(dirs.cursor(reader, start.0)?)
        };
        Ok(ReadDir {
            cursor,
            pos: start.1,
            len,
            inode_count,
            left_in_header: 0,
            header_block: 0,
            header_number: 0,
            skip_until: cookie,
            failed: false,
        })
    }

    fn take(&mut self, n: u64) -> Result<()> {
        if self.pos + n > self.len {
            return Err(corrupt!(
                "directory listing runs past its size {}",
                self.len
            ));
        }
        self.pos += n;
        Ok(())
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
                        "directory header with {} entries",
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
                return Err(corrupt!("directory entry name of {name_len} bytes"));
            }
            let name = c.bytes(name_len)?;
            self.take(ENTRY_SIZE + name_len as u64)?;
            self.left_in_header -= 1;
            check_name(&name)?;
            let kind = FileType::from_basic(basic_type)?;
            let number = i64::from(self.header_number) + i64::from(delta);
            if number <= 0 || number > i64::from(self.inode_count) {
                return Err(corrupt!(
                    "directory entry {:?} has inode number {number}",
                    String::from_utf8_lossy(&name)
                ));
            }
            if usize::from(offset) >= METADATA_SIZE {
                return Err(corrupt!(
                    "directory entry inode offset {offset} past a metadata block"
                ));
            }
            if self.pos <= self.skip_until {
                continue;
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
    pub fn new(reader: &'a BlockReader, inodes: Table, dir: &DirInfo) -> Result<Self> {
        Ok(Index {
            cursor: inodes.cursor(reader, dir.index_at)?,
            left: dir.index_count,
            listing: dir.listing,
            listing_len: u64::from(dir.size.saturating_sub(3)),
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

/// Finds `name` in a directory: jumps with the index when there is one, then scans.
/// Entries are sorted bytewise, so the scan stops at the first larger name.
pub fn lookup(
    reader: &BlockReader,
    dirs: Table,
    inodes: Table,
    dir: &DirInfo,
    name: &[u8],
    inode_count: u32,
) -> Result<Option<DirEntry>> {
    let mut start = 0u64;
    if dir.index_count > 0 {
        let mut index = Index::new(reader, inodes, dir)?;
        while let Some(entry) = index.next_entry()? {
            if entry.first_name.as_slice() > name {
                break;
            }
            start = entry.listing_offset;
        }
    }
    // Starting at a header's own offset skips nothing: every entry read ends after it.
    let listing = ReadDir::new(reader, dirs, inodes, dir, start, inode_count)?;
    for entry in listing {
        let entry = entry?;
        match entry.name.as_slice().cmp(name) {
            std::cmp::Ordering::Equal => return Ok(Some(entry)),
            std::cmp::Ordering::Greater => return Ok(None),
            std::cmp::Ordering::Less => {}
        }
    }
    Ok(None)
}

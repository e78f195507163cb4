//! Lookup tables: arrays of fixed-size entries (ids, fragments, export refs, xattr ids)
//! stored in metadata blocks, found through an index of block positions.

use crate::compress::Compressor;
use crate::error::{corrupt, Result};
use crate::metadata::{MetaCursor, MetaRef, MetaWriter, Table};
use crate::reader::{BlockReader, METADATA_SIZE};

/// A metadata block plus its header can be no longer than this on disk.
const MAX_STORED_BLOCK: u64 = METADATA_SIZE as u64 + 2;

/// Where a lookup table may lie: its entry blocks start at or after `lowest`, and its index
/// ends at (or before, see [`IndexEnd`]) `next`, where the table after it starts.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub lowest: u64,
    pub next: u64,
}

/// Where a table's index must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexEnd {
    /// Right where the next table starts: the kernel refuses an id, export or xattr id
    /// index whose size differs from the distance to the next table (in
    /// squashfs_read_id_index_table(), squashfs_read_inode_lookup_table(),
    /// squashfs_read_xattr_id_table()).
    AtNext,
    /// Anywhere up to the next table's start: all the kernel requires of the fragment
    /// table (squashfs_read_fragment_index_table()).
    ByNext,
}

/// What a lookup table is: its entries, and where its index and entry blocks are.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// What errors call it ("id", "fragment", ...).
    pub name: &'static str,
    pub entry_size: u64,
    pub count: u64,
    /// Where the table starts (the superblock's pointer): its entry blocks end here.
    pub start: u64,
    /// Where its index starts: at `start`, or after a header there.
    pub index_start: u64,
    pub index_end: IndexEnd,
}

#[derive(Debug)]
pub struct LookupTable {
    /// Image position of each metadata block holding entries.
    blocks: Vec<u64>,
    entry_size: u64,
    count: u64,
    table: Table,
}

impl LookupTable {
    /// Reads the index of the table `layout` describes, checked to lie within `bounds`: the
    /// entry blocks run contiguously from `bounds.lowest` or later up to the table's start.
    pub fn read(reader: &BlockReader, layout: &Layout, bounds: Bounds) -> Result<Self> {
        let Layout {
            name,
            entry_size,
            count,
            start,
            index_start,
            index_end,
        } = *layout;
        let next = bounds.next;
        let bytes = count * entry_size;
        let nblocks = bytes.div_ceil(METADATA_SIZE as u64);
        let fits = |end: u64| match index_end {
            IndexEnd::AtNext => end == next,
            IndexEnd::ByNext => end <= next,
        };
        let end = index_start
            .checked_add(nblocks * 8)
            .filter(|&end| fits(end))
            .ok_or_else(|| {
                let how = match index_end {
                    IndexEnd::AtNext => "end at",
                    IndexEnd::ByNext => "end by",
                };
                corrupt!(
                    "{name} table index at {index_start} for {count} entries does not {how} \
                     {next}, where the next table starts"
                )
            })?;
        let mut raw = vec![0u8; (end - index_start) as usize];
        reader.source().read_exact_at(index_start, &mut raw)?;
        let blocks: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        // Blocks must be in order, each no longer than a metadata block can be, the last
        // ending right where the table begins.
        let mut prev = None;
        for &b in blocks.iter().chain(std::iter::once(&start)) {
            if let Some(p) = prev {
                if b <= p || b - p > MAX_STORED_BLOCK {
                    return Err(corrupt!(
                        "{name} table block positions out of order or too far apart"
                    ));
                }
            } else if b < bounds.lowest {
                return Err(corrupt!(
                    "{name} table starts at {b}, before the table ahead of it"
                ));
            }
            prev = Some(b);
        }
        let first = blocks.first().copied().unwrap_or(start);
        Ok(LookupTable {
            blocks,
            entry_size,
            count,
            table: Table {
                start: first,
                end: start,
            },
        })
    }

    /// A table of no entries: every lookup in it is refused as corrupt.
    pub fn empty(entry_size: u64) -> Self {
        LookupTable {
            blocks: Vec::new(),
            entry_size,
            count: 0,
            table: Table { start: 0, end: 0 },
        }
    }

    /// Image position of the first entry block: where the table ahead of it must end.
    pub fn first_block(&self) -> u64 {
        self.table.start
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// A cursor at entry `i`.
    pub fn entry<'a>(&self, reader: &'a BlockReader, i: u64) -> Result<MetaCursor<'a>> {
        if i >= self.count {
            return Err(corrupt!(
                "table index {i} out of range (count {})",
                self.count
            ));
        }
        let byte = i * self.entry_size;
        let block = self.blocks[(byte / METADATA_SIZE as u64) as usize];
        let offset = (byte % METADATA_SIZE as u64) as u16;
        self.table.cursor(
            reader,
            MetaRef {
                block: block - self.table.start,
                offset,
            },
        )
    }
}

/// A table in the chain of lookup tables: where its first block is.
pub trait Chained {
    /// Image position of the table's first block: where the table ahead of it must end.
    fn first_block(&self) -> u64;
}

/// The lookup tables lie back to back between the directory table and the image's end.
/// They are read back to front, each within the bounds the ones read before it leave: its
/// first block is where the table ahead of it must end (the kernel checks the same chain in
/// squashfs_fill_super()).
pub struct Chain {
    bounds: Bounds,
}

impl Chain {
    /// A chain from `lowest` (the directory table's start) to `end` (the image's).
    pub fn new(lowest: u64, end: u64) -> Self {
        Chain {
            bounds: Bounds { lowest, next: end },
        }
    }

    /// Reads the table below the ones read so far with `read`, which gets its bounds.
    pub fn read<T: Chained>(&mut self, read: impl FnOnce(Bounds) -> Result<T>) -> Result<T> {
        let table = read(self.bounds)?;
        self.bounds.next = table.first_block();
        Ok(table)
    }

    /// [`Chain::read`] of a table the image may not have: None, reading nothing, when it
    /// does not.
    pub fn read_if<T: Chained>(
        &mut self,
        present: bool,
        read: impl FnOnce(Bounds) -> Result<T>,
    ) -> Result<Option<T>> {
        present.then(|| self.read(read)).transpose()
    }

    /// Where the lowest table read starts: where the directory table must end.
    pub fn end(&self) -> u64 {
        self.bounds.next
    }
}

/// The writer's side of a lookup table: `entries` (the table's entries, back to back) in
/// metadata blocks placed at image position `at`, then `header` (the xattr id table's; empty
/// for the others), then the index of the blocks' positions, as [`LookupTable::read`] finds
/// them. Returns the bytes and the table's start, which the superblock points at: the
/// header, or the index when there is none.
pub fn encode_lookup_table(
    entries: &[u8],
    at: u64,
    header: &[u8],
    compressor: Box<dyn Compressor>,
) -> Result<(Vec<u8>, u64)> {
    let mut blocks = MetaWriter::new(compressor);
    let mut index = Vec::new();
    for chunk in entries.chunks(METADATA_SIZE) {
        index.push(at + blocks.position().block);
        blocks.write(chunk)?;
    }
    let mut out = blocks.finish()?;
    let start = at + out.len() as u64;
    out.extend_from_slice(header);
    for pos in index {
        out.extend(pos.to_le_bytes());
    }
    Ok((out, start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{Compression, Encoding};
    use crate::id::IdTable;
    use crate::reader::testing::reader;

    #[test]
    fn an_id_table_past_one_block_reads_back() {
        // 3000 ids: 12000 bytes, two metadata blocks.
        let ids: Vec<u32> = (0..3000u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        let mut entries = Vec::new();
        ids.iter()
            .for_each(|&id| IdTable::encode_entry(&mut entries, id));
        let compressor = Encoding::new(Compression::Gzip, 4096).compressor().unwrap();
        let (bytes, start) = encode_lookup_table(&entries, 96, &[], compressor).unwrap();
        let mut image = vec![0; 96];
        image.extend(&bytes);
        let end = image.len() as u64;
        assert_eq!(end - start, 16, "an index of two blocks");
        let r = reader(&image, Compression::Gzip, 4096);
        let bounds = Bounds {
            lowest: 96,
            next: end,
        };
        let table = IdTable::read(&r, start, ids.len() as u16, bounds).unwrap();
        assert_eq!(table.first_block(), 96);
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(table.get(&r, i as u16).unwrap(), id);
        }
    }
}

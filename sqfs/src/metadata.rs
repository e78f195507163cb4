//! Metadata blocks: 8 KiB units, each behind a 2-byte header, that hold the inode,
//! directory, fragment, id, export and xattr tables. Records may span blocks.

use crate::cache::Block;
use crate::error::{corrupt, Result};
use crate::reader::BlockReader;

/// Where a record starts in a metadata table (an inode in the inode table, say): which
/// metadata block, and where in it. Inode references are stored packed in 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetaRef {
    /// The block's position, relative to the table's start.
    pub block: u64,
    /// The record's offset inside the decompressed block.
    pub offset: u16,
}

impl MetaRef {
    /// From the packed form: the block position above the low 16 bits, the offset in them.
    pub fn from_packed(packed: u64) -> Self {
        MetaRef {
            block: packed >> 16,
            offset: (packed & 0xFFFF) as u16,
        }
    }

    /// The packed form (see [`MetaRef::from_packed`]).
    pub fn packed(self) -> u64 {
        (self.block << 16) | u64::from(self.offset)
    }
}

/// A metadata table: where it starts and where it must end, in image bytes.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub start: u64,
    pub end: u64,
}

impl Table {
    /// Reads the metadata block at `pos` (image position), checked to lie in this table.
    /// Returns the decompressed bytes and the position of the next block.
    pub fn block_at(&self, reader: &BlockReader, pos: u64) -> Result<(Block, u64)> {
        if pos < self.start || pos >= self.end {
            return Err(corrupt!(
                "metadata block at {pos} outside its table {}..{}",
                self.start,
                self.end
            ));
        }
        let header = reader.metadata_header(pos)?;
        let next = header.next(pos);
        if next > self.end {
            return Err(corrupt!(
                "metadata block at {pos} has bad length {}",
                header.stored
            ));
        }
        Ok((reader.metadata_block(pos, header)?, next))
    }

    /// A cursor at `at` (a reference relative to this table).
    pub fn cursor<'a>(&self, reader: &'a BlockReader, at: MetaRef) -> Result<MetaCursor<'a>> {
        let pos = self
            .start
            .checked_add(at.block)
            .ok_or_else(|| corrupt!("metadata reference overflows"))?;
        let (block, next) = self.block_at(reader, pos)?;
        if usize::from(at.offset) >= block.len() {
            return Err(corrupt!(
                "metadata offset {} past the end of a {}-byte block",
                at.offset,
                block.len()
            ));
        }
        Ok(MetaCursor {
            reader,
            table: *self,
            block,
            block_start: pos,
            pos: usize::from(at.offset),
            next,
        })
    }
}

/// Reads a byte stream that runs across consecutive metadata blocks of one table.
pub struct MetaCursor<'a> {
    reader: &'a BlockReader,
    table: Table,
    block: Block,
    /// Image position of the current block's header.
    block_start: u64,
    pos: usize,
    next: u64,
}

impl MetaCursor<'_> {
    /// Fills `buf`, moving on to the following blocks as needed.
    pub fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<()> {
        while !buf.is_empty() {
            if self.pos == self.block.len() {
                self.advance()?;
            }
            let n = buf.len().min(self.block.len() - self.pos);
            buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
            self.pos += n;
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, mut n: u64) -> Result<()> {
        while n > 0 {
            if self.pos == self.block.len() {
                self.advance()?;
            }
            let step = n.min((self.block.len() - self.pos) as u64);
            self.pos += step as usize;
            n -= step;
        }
        Ok(())
    }

    fn advance(&mut self) -> Result<()> {
        let (block, next) = self.table.block_at(self.reader, self.next)?;
        self.block = block;
        self.block_start = self.next;
        self.pos = 0;
        self.next = next;
        Ok(())
    }

    /// Where the cursor stands, as a reference relative to the table. A position at the very
    /// end of a block is reported as the start of the next one.
    pub fn position(&self) -> MetaRef {
        if self.pos == self.block.len() {
            MetaRef {
                block: self.next - self.table.start,
                offset: 0,
            }
        } else {
            MetaRef {
                block: self.block_start - self.table.start,
                offset: self.pos as u16,
            }
        }
    }

    pub fn u8(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read_exact(&mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    pub fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    pub fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Reads `len` bytes into a new vector; the caller has bounded `len`.
    pub fn bytes(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read_exact(&mut v)?;
        Ok(v)
    }
}

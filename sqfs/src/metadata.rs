//! Metadata blocks: 8 KiB units, each behind a 2-byte header, that hold the inode,
//! directory, fragment, id, export and xattr tables. Records may span blocks.

use crate::cache::Block;
use crate::compress::Compressor;
use crate::error::{corrupt, Result};
use crate::reader::{BlockReader, MetadataHeader, METADATA_SIZE};

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

/// The writer's side of a metadata table: a byte stream cut into 8 KiB blocks, each
/// compressed (or stored as it is, when that is not smaller) behind its 2-byte header, as a
/// [`MetaCursor`] reads them back. Records may span blocks; a [`MetaRef`] to where the next
/// byte goes is known before it is written.
pub struct MetaWriter {
    compressor: Box<dyn Compressor>,
    /// The stored blocks so far (headers and bytes).
    stored: Vec<u8>,
    /// Bytes of the block being filled (fewer than METADATA_SIZE).
    pending: Vec<u8>,
    /// Where each block was stored, by stream offset / METADATA_SIZE.
    block_starts: Vec<u64>,
    scratch: Vec<u8>,
    /// The last block stored: its bytes as written and whether `scratch` holds them
    /// compressed. A block equal to the one before it is stored the same without
    /// compressing it again: a huge sparse file's block list is millions of equal zero
    /// blocks, each of which would otherwise cost the codec's set-up (for xz, ~0.4 ms).
    last: Option<(Vec<u8>, bool)>,
}

impl MetaWriter {
    pub fn new(compressor: Box<dyn Compressor>) -> Self {
        MetaWriter {
            compressor,
            stored: Vec::new(),
            pending: Vec::with_capacity(METADATA_SIZE),
            block_starts: vec![0],
            scratch: Vec::new(),
            last: None,
        }
    }

    /// Where the next byte written will be.
    pub fn position(&self) -> MetaRef {
        MetaRef {
            block: self.stored.len() as u64,
            offset: self.pending.len() as u16,
        }
    }

    /// Bytes written to the stream so far.
    pub fn stream_len(&self) -> u64 {
        (self.block_starts.len() as u64 - 1) * METADATA_SIZE as u64 + self.pending.len() as u64
    }

    /// The reference of stream byte `offset`: its block's start (relative to the table)
    /// and its place in the block. A block's start is known once the block before it is
    /// stored, so `offset` may be anything up to [`MetaWriter::stream_len`].
    pub fn reference(&self, offset: u64) -> MetaRef {
        MetaRef {
            block: self.block_starts[(offset / METADATA_SIZE as u64) as usize],
            offset: (offset % METADATA_SIZE as u64) as u16,
        }
    }

    pub fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let n = bytes.len().min(METADATA_SIZE - self.pending.len());
            self.pending.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.pending.len() == METADATA_SIZE {
                self.flush()?;
                self.block_starts.push(self.stored.len() as u64);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let compressed = match &mut self.last {
            Some((bytes, compressed)) if *bytes == self.pending => *compressed,
            last => {
                let compressed = self.compressor.compress(&self.pending, &mut self.scratch)?;
                let bytes = match last.take() {
                    Some((mut bytes, _)) => {
                        bytes.clear();
                        bytes.extend_from_slice(&self.pending);
                        bytes
                    }
                    None => self.pending.clone(),
                };
                *last = Some((bytes, compressed));
                compressed
            }
        };
        let body = if compressed {
            &self.scratch
        } else {
            &self.pending
        };
        let header = MetadataHeader {
            stored: body.len() as u16,
            compressed,
        };
        self.stored.extend(header.word().to_le_bytes());
        self.stored.extend_from_slice(body);
        self.pending.clear();
        Ok(())
    }

    /// The table's stored bytes, the last block flushed (an empty stream is no bytes).
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.flush()?;
        Ok(self.stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::tests::{noise, text};
    use crate::compress::{Compression, Encoding};
    use crate::reader::testing::reader;

    #[test]
    fn a_written_stream_reads_back_from_every_reference() {
        // Text, a block's worth of noise (stored as it is), text again.
        let mut stream = text(METADATA_SIZE);
        stream.extend(noise(3, METADATA_SIZE));
        stream.extend(text(5000));
        for codec in [Compression::Gzip, Compression::Zstd, Compression::Lzo] {
            let mut w = MetaWriter::new(Encoding::new(codec, 4096).compressor().unwrap());
            let mut refs = Vec::new();
            for (i, chunk) in stream.chunks(777).enumerate() {
                refs.push((i * 777, w.position()));
                w.write(chunk).unwrap();
            }
            assert_eq!(w.stream_len(), stream.len() as u64);
            assert_eq!(w.reference(w.stream_len()), w.position());
            let bytes = w.finish().unwrap();
            // The table starts 100 bytes into the image: references are relative to it.
            let mut image = vec![0xaa; 100];
            image.extend(&bytes);
            let r = reader(&image, codec, 4096);
            let table = Table {
                start: 100,
                end: image.len() as u64,
            };
            for (offset, at) in refs {
                let mut c = table.cursor(&r, at).unwrap();
                let mut back = vec![0; stream.len() - offset];
                c.read_exact(&mut back).unwrap();
                assert!(back == stream[offset..], "{codec:?} at {offset}");
            }
            let first = r.metadata_header(100).unwrap();
            let second = r.metadata_header(first.next(100)).unwrap();
            assert!(first.compressed, "{codec:?}: text is compressed");
            assert!(!second.compressed, "{codec:?}: noise is stored as it is");
            assert_eq!(usize::from(second.stored), METADATA_SIZE);
        }
    }

    /// Counts the blocks it is asked to compress.
    struct Counting(
        Box<dyn Compressor>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    );

    impl Compressor for Counting {
        fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<bool> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.compress(src, dst)
        }
    }

    #[test]
    fn a_block_equal_to_the_one_before_is_stored_alike_without_compressing_it_again() {
        // Four zero blocks, two equal blocks of noise (stored as they are), a zero block,
        // then a partial block of text.
        let mut stream = vec![0; 4 * METADATA_SIZE];
        stream.extend(noise(3, METADATA_SIZE));
        stream.extend(noise(3, METADATA_SIZE));
        stream.extend(vec![0; METADATA_SIZE]);
        stream.extend(text(5000));
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let codec = Compression::Xz;
        let inner = Encoding::new(codec, 4096).compressor().unwrap();
        let mut w = MetaWriter::new(Box::new(Counting(inner, calls.clone())));
        w.write(&stream).unwrap();
        let bytes = w.finish().unwrap();
        // The zeros, the noise, the zeros again, the text.
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 4);
        let r = reader(&bytes, codec, 4096);
        let table = Table {
            start: 0,
            end: bytes.len() as u64,
        };
        let mut back = vec![0; stream.len()];
        let mut c = table
            .cursor(
                &r,
                MetaRef {
                    block: 0,
                    offset: 0,
                },
            )
            .unwrap();
        c.read_exact(&mut back).unwrap();
        assert!(back == stream);
        // Every block is stored as a fresh compression would store it.
        let mut fresh = MetaWriter::new(Encoding::new(codec, 4096).compressor().unwrap());
        for block in stream.chunks(METADATA_SIZE) {
            fresh.write(block).unwrap();
            fresh.last = None;
        }
        assert!(fresh.finish().unwrap() == bytes);
    }
}

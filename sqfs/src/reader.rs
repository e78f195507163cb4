//! Turns a stored block into decompressed bytes, through the cache: a data or fragment
//! block from its position and size word, a metadata block from its position and the
//! 2-byte header in front of it (read and checked here, as the kernel's block.c reads it in
//! squashfs_read_data()). `metadata.rs` builds tables and cursors on top.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cache::{Block, BlockCache};
use crate::compress::Decompressor;
use crate::error::{corrupt, Result};
use crate::source::Source;

/// Bytes a metadata block holds decompressed, at most (the kernel's SQUASHFS_METADATA_SIZE).
pub const METADATA_SIZE: usize = 8192;
/// Bit 15 of a metadata block's header: the block is stored uncompressed.
const METADATA_UNCOMPRESSED: u16 = 0x8000;
/// Bit 24 of a data block's size word: the block is stored uncompressed.
const DATA_UNCOMPRESSED: u32 = 1 << 24;

/// A metadata block's header, decoded and checked: how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataHeader {
    /// Bytes stored after the header: 1..=[`METADATA_SIZE`].
    pub stored: u16,
    pub compressed: bool,
}

impl MetadataHeader {
    /// The 2-byte header word that [`BlockReader::metadata_header`] decodes into this.
    pub fn word(self) -> u16 {
        if self.compressed {
            self.stored
        } else {
            self.stored | METADATA_UNCOMPRESSED
        }
    }

    /// Image position of the block after the one at `pos`.
    pub fn next(self, pos: u64) -> u64 {
        pos + 2 + u64::from(self.stored)
    }
}

/// A data or fragment block's size word, decoded and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataBlock {
    /// Bytes on disk; 0 for a sparse hole.
    pub stored: u32,
    pub compressed: bool,
}

impl DataBlock {
    pub fn from_word(word: u32, block_size: u32) -> Result<Self> {
        if word & !(DATA_UNCOMPRESSED | (DATA_UNCOMPRESSED - 1)) != 0 {
            return Err(corrupt!(
                "data block size word {word:#x} has unknown high bits"
            ));
        }
        let stored = word & (DATA_UNCOMPRESSED - 1);
        if stored > block_size {
            return Err(corrupt!(
                "data block of {stored} bytes exceeds the block size {block_size}"
            ));
        }
        Ok(DataBlock {
            stored,
            compressed: word & DATA_UNCOMPRESSED == 0,
        })
    }

    /// The size word [`DataBlock::from_word`] decodes into this.
    pub fn word(self) -> u32 {
        if self.compressed {
            self.stored
        } else {
            self.stored | DATA_UNCOMPRESSED
        }
    }

    /// A sparse hole: nothing stored, reads as zeros.
    pub const HOLE: DataBlock = DataBlock {
        stored: 0,
        compressed: true,
    };

    pub fn is_hole(self) -> bool {
        self.stored == 0
    }
}

pub struct BlockReader {
    source: Source,
    decompressor: Box<dyn Decompressor>,
    cache: BlockCache,
    block_size: u32,
    /// Metadata block headers already read, `pos << 16 | header` by a hash of `pos`
    /// (0: empty): every metadata access needs its block's stored length, also when the
    /// block itself is cached, and a pread per lookup would dominate a warm `stat`.
    headers: Box<[AtomicU64]>,
}

/// Slots of the metadata header memo (32 KiB).
const HEADER_SLOTS: usize = 4096;
/// Positions the memo can hold (it packs a position and a 16-bit header in 64 bits).
const HEADER_POS_LIMIT: u64 = 1 << 48;

thread_local! {
    /// Compressed bytes on their way to the decompressor, reused across reads.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Metadata blocks and data blocks never share a cache key, even when a hostile image
/// points both at the same position.
const METADATA_KEY: u64 = 1 << 63;

impl BlockReader {
    pub fn new(
        source: Source,
        decompressor: Box<dyn Decompressor>,
        cache_bytes: usize,
        block_size: u32,
    ) -> Self {
        BlockReader {
            source,
            decompressor,
            cache: BlockCache::new(cache_bytes),
            block_size,
            headers: (0..HEADER_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The header of the metadata block at `pos`, checked to describe a block that can be
    /// (not empty, no longer than a metadata block).
    pub fn metadata_header(&self, pos: u64) -> Result<MetadataHeader> {
        let word = self.metadata_header_word(pos)?;
        let stored = word & !METADATA_UNCOMPRESSED;
        if stored == 0 || usize::from(stored) > METADATA_SIZE {
            return Err(corrupt!("metadata block at {pos} has bad length {stored}"));
        }
        Ok(MetadataHeader {
            stored,
            compressed: word & METADATA_UNCOMPRESSED == 0,
        })
    }

    /// The 2-byte header word at `pos`, read once and then remembered.
    fn metadata_header_word(&self, pos: u64) -> Result<u16> {
        let slot = (pos < HEADER_POS_LIMIT)
            .then(|| &self.headers[((pos ^ (pos >> 12)) as usize) % HEADER_SLOTS]);
        if let Some(slot) = slot {
            let v = slot.load(Ordering::Relaxed);
            if v != 0 && v >> 16 == pos {
                return Ok(v as u16);
            }
        }
        let mut header = [0u8; 2];
        self.source.read_exact_at(pos, &mut header)?;
        let word = u16::from_le_bytes(header);
        if let Some(slot) = slot {
            slot.store(pos << 16 | u64::from(word), Ordering::Relaxed);
        }
        Ok(word)
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    pub fn cache(&self) -> &BlockCache {
        &self.cache
    }

    /// The metadata block behind the header at `pos` (as [`Self::metadata_header`] read it).
    pub fn metadata_block(&self, pos: u64, header: MetadataHeader) -> Result<Block> {
        self.cache
            .get_or_fill(pos | METADATA_KEY, METADATA_SIZE, || {
                let stored = usize::from(header.stored);
                self.load(pos + 2, stored, header.compressed, METADATA_SIZE)
            })
    }

    /// The data or fragment block stored at `pos`, decompressed; callers check its length
    /// against what the file needs.
    pub fn data_block(&self, pos: u64, block: DataBlock) -> Result<Block> {
        let max = self.block_size as usize;
        self.cache.get_or_fill(pos, max, || {
            self.load(pos, block.stored as usize, block.compressed, max)
        })
    }

    /// Reads `len` bytes at `pos` and decompresses them into at most `max` bytes, in an
    /// evicted block's buffer when the cache has one.
    fn load(&self, pos: u64, len: usize, compressed: bool, max: usize) -> Result<Vec<u8>> {
        let mut out = self.cache.spare(max);
        if compressed && out.capacity() == 0 {
            // A new buffer: lz4 and zstd decode into its capacity without zeroing it.
            READ_BUF.with(|buf| {
                let mut input = buf.borrow_mut();
                input.resize(len, 0);
                self.source.read_exact_at(pos, &mut input)?;
                self.decompressor.decompress_vec(&input, &mut out, max)
            })?;
            return Ok(out);
        }
        let n = self.load_into(pos, len, compressed, max, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// Reads `len` bytes at `pos` and decompresses them into `out`, which grows to `max`
    /// once and is reused as is afterwards (no zeroing per block); returns the bytes made.
    fn load_into(
        &self,
        pos: u64,
        len: usize,
        compressed: bool,
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        if out.len() < max {
            out.resize(max, 0);
        }
        if !compressed {
            if len > max {
                return Err(corrupt!("uncompressed block of {len} bytes exceeds {max}"));
            }
            self.source.read_exact_at(pos, &mut out[..len])?;
            return Ok(len);
        }
        READ_BUF.with(|buf| {
            let mut input = buf.borrow_mut();
            input.resize(len, 0);
            self.source.read_exact_at(pos, &mut input)?;
            self.decompressor.decompress(&input, &mut out[..max])
        })
    }

    /// A data block decompressed into the caller's buffer, bypassing the cache: for readers
    /// that take each block once (extraction), where caching would only churn.
    pub fn data_block_into(&self, pos: u64, block: DataBlock, out: &mut Vec<u8>) -> Result<usize> {
        let max = self.block_size as usize;
        self.load_into(pos, block.stored as usize, block.compressed, max, out)
    }
}

/// What the unit tests of the encoders read their output with.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::Write;
    use std::os::fd::FromRawFd;

    use super::BlockReader;
    use crate::compress::{new_decompressor, Compression, Encoding};
    use crate::source::Source;

    /// A reader over `image` (held in a memfd), decompressing with `codec`'s defaults.
    pub(crate) fn reader(image: &[u8], codec: Compression, block_size: u32) -> BlockReader {
        // SAFETY: a fresh descriptor from memfd_create, owned by the File from here on.
        let file = unsafe {
            let fd = libc::memfd_create(c"sqfs-test".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0);
            std::fs::File::from_raw_fd(fd)
        };
        (&file).write_all(image).unwrap();
        let mut source = Source::new(file, 0);
        source.set_len(image.len() as u64);
        let options = Encoding::new(codec, block_size).options();
        let d = new_decompressor(codec, options.as_deref()).unwrap();
        BlockReader::new(source, d, 1 << 20, block_size)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::reader;
    use super::DataBlock;
    use crate::compress::tests::{text, ALL};
    use crate::compress::{Compression, Encoding};

    /// A block decoded into a buffer the cache kept from an evicted one holds exactly its
    /// own bytes, however much more the buffer held before (a full block of 0xA5 here). The
    /// block size is that of metadata blocks, whose buffers data blocks then share.
    #[test]
    fn a_short_block_in_a_reused_buffer_is_exactly_its_own_bytes() {
        let block_size = 8192u32;
        let short = text(3000);
        // Every codec the writer writes (not legacy lzma).
        for codec in ALL.into_iter().filter(|&c| c != Compression::Lzma) {
            let mut stored = Vec::new();
            let mut compressor = Encoding::new(codec, block_size).compressor().unwrap();
            assert!(
                compressor.compress(&short, &mut stored).unwrap(),
                "{codec:?}"
            );
            // The compressed block at 64, the same bytes as they are after it.
            let mut image = vec![0u8; 64];
            image.extend(&stored);
            let raw_at = image.len() as u64;
            image.extend(&short);
            let r = reader(&image, codec, block_size);
            for (pos, stored, compressed) in [
                (64, stored.len() as u32, true),
                (raw_at, short.len() as u32, false),
            ] {
                while r.cache().spare(block_size as usize).capacity() > 0 {}
                let stale = r
                    .cache()
                    .get_or_fill(1 << 40, block_size as usize, || {
                        Ok(vec![0xA5; block_size as usize])
                    })
                    .unwrap();
                let stale_at = stale.as_ptr();
                drop(stale);
                r.cache().forget(1 << 40);
                let block = r.data_block(pos, DataBlock { stored, compressed }).unwrap();
                assert!(*block == short, "{codec:?} compressed={compressed}");
                assert_eq!(block.as_ptr(), stale_at, "{codec:?}: not the kept buffer");
            }
        }
    }
}

//! Regular file contents: the block list, sparse holes, and the tail in a fragment.

use std::ops::Range;

use crate::cache::Block;
use crate::context::Context;
use crate::error::{corrupt, Result};
use crate::inode::FileInfo;
use crate::reader::DataBlock;

/// A block position is remembered every this many blocks; the rest are summed on demand,
/// which keeps the list at about 4 bytes a block for multi-GiB files.
const CHECKPOINT_EVERY: usize = 64;
/// Block size words read from the inode table per step: the list grows only as fast as the
/// image really holds entries, never from an untrusted count alone.
const WORDS_PER_STEP: u64 = 2048;

/// A regular file's block list, read and checked once (see
/// [`Archive::file_data`](crate::Archive::file_data)), for reading the file many times.
#[derive(Debug, Clone)]
pub struct FileData {
    info: FileInfo,
    blocks: Vec<DataBlock>,
    checkpoints: Vec<u64>,
    block_size: u32,
}

impl FileData {
    /// Reads and checks the block list of a file.
    pub(crate) fn load(ctx: &Context, info: &FileInfo) -> Result<Self> {
        let image_len = ctx.reader.source().len();
        let block_size = ctx.reader.block_size();
        let mut blocks = Vec::new();
        let mut checkpoints = Vec::new();
        let mut pos = info.blocks_start;
        if info.block_count > 0 {
            let mut c = ctx.inodes.cursor(&ctx.reader, info.block_list_at)?;
            let mut left = info.block_count;
            let mut raw = Vec::new();
            while left > 0 {
                let n = left.min(WORDS_PER_STEP);
                raw.resize(n as usize * 4, 0);
                c.read_exact(&mut raw)?;
                for w in raw.chunks_exact(4) {
                    if blocks.len() % CHECKPOINT_EVERY == 0 {
                        checkpoints.push(pos);
                    }
                    let b = DataBlock::from_word(
                        u32::from_le_bytes(w.try_into().expect("4")),
                        block_size,
                    )?;
                    pos = pos
                        .checked_add(u64::from(b.stored))
                        .filter(|&end| end <= image_len)
                        .ok_or_else(|| corrupt!("file data runs past the image end"))?;
                    blocks.push(b);
                }
                left -= n;
            }
        }
        Ok(FileData {
            info: info.clone(),
            blocks,
            checkpoints,
            block_size,
        })
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.info.size
    }

    /// Number of blocks stored as blocks: the file's full blocks, and its last partial one
    /// unless that is kept in a fragment. Blocks are indexed from 0 at the file's start.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// The index of the fragment block that holds the file's tail, if it has one there.
    pub fn fragment(&self) -> Option<u32> {
        self.info.fragment.map(|(index, _)| index)
    }

    /// Whether block `i` is a sparse hole (stored as nothing, reads as zeros).
    ///
    /// # Panics
    /// If `i` is not below [`FileData::block_count`].
    pub fn is_hole(&self, i: usize) -> bool {
        self.blocks[i].is_hole()
    }

    /// Image position and size word of block `i`.
    pub(crate) fn block(&self, i: usize) -> (u64, DataBlock) {
        let first = i / CHECKPOINT_EVERY * CHECKPOINT_EVERY;
        let pos = self.checkpoints[i / CHECKPOINT_EVERY]
            + self.blocks[first..i]
                .iter()
                .map(|b| u64::from(b.stored))
                .sum::<u64>();
        (pos, self.blocks[i])
    }

    /// Bytes of block `i` that belong to the file.
    fn block_len(&self, i: usize) -> usize {
        let bs = u64::from(self.block_size);
        (self.info.size - i as u64 * bs).min(bs) as usize
    }

    /// Copies file bytes from `offset` into `buf`; returns how many (0 at or past the end).
    pub(crate) fn read_at(&self, ctx: &Context, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if offset >= self.info.size {
            return Ok(0);
        }
        let total = buf
            .len()
            .min((self.info.size - offset).min(usize::MAX as u64) as usize);
        let bs = u64::from(self.block_size);
        let mut done = 0;
        while done < total {
            let at = offset + done as u64;
            let index = (at / bs) as usize;
            let within = (at % bs) as usize;
            let chunk = if index < self.blocks.len() {
                let want = self.block_len(index);
                let n = (want - within).min(total - done);
                self.copy_block(ctx, index, within, &mut buf[done..done + n])?;
                n
            } else {
                self.copy_tail(ctx, within, &mut buf[done..total])?
            };
            done += chunk;
        }
        Ok(total)
    }

    /// Block `index` decompressed (None for a hole), checked to hold exactly `want` bytes.
    pub(crate) fn load_block(&self, ctx: &Context, index: usize) -> Result<Option<Block>> {
        let (pos, block) = self.block(index);
        if block.is_hole() {
            return Ok(None);
        }
        let want = self.block_len(index);
        let data = ctx.reader.data_block(pos, block)?;
        if data.len() != want {
            return Err(corrupt!(
                "data block at {pos} holds {} bytes, the file needs {want}",
                data.len()
            ));
        }
        Ok(Some(data))
    }

    /// Drops block `index` from the cache (see [`crate::Archive::forget_block`]).
    pub(crate) fn forget_block(&self, ctx: &Context, index: usize) {
        if index >= self.blocks.len() {
            return;
        }
        let (pos, block) = self.block(index);
        if !block.is_hole() {
            ctx.reader.cache().forget(pos);
        }
    }

    /// Block `index` decompressed into `out` without the cache (None for a hole); the
    /// block's bytes are `out[..n]`, checked to be exactly what the file needs.
    pub(crate) fn load_block_into(
        &self,
        ctx: &Context,
        index: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>> {
        let (pos, block) = self.block(index);
        if block.is_hole() {
            return Ok(None);
        }
        let want = self.block_len(index);
        let n = ctx.reader.data_block_into(pos, block, out)?;
        if n != want {
            return Err(corrupt!(
                "data block at {pos} holds {n} bytes, the file needs {want}"
            ));
        }
        Ok(Some(n))
    }

    fn copy_block(&self, ctx: &Context, index: usize, within: usize, out: &mut [u8]) -> Result<()> {
        match self.load_block(ctx, index)? {
            None => out.fill(0),
            Some(data) => out.copy_from_slice(&data[within..within + out.len()]),
        }
        Ok(())
    }

    fn copy_tail(&self, ctx: &Context, within: usize, out: &mut [u8]) -> Result<usize> {
        let (data, tail) = self
            .tail_block(ctx)?
            .ok_or_else(|| corrupt!("file of {} bytes has too few blocks", self.info.size))?;
        let n = out.len().min(tail.len() - within);
        let from = tail.start + within;
        out[..n].copy_from_slice(&data[from..from + n]);
        Ok(n)
    }

    /// The fragment block that holds the file's tail (its bytes after the last block),
    /// decompressed, and where in it the tail lies; None if the file keeps no tail in a
    /// fragment.
    pub(crate) fn tail_block(&self, ctx: &Context) -> Result<Option<(Block, Range<usize>)>> {
        let Some((index, frag_offset)) = self.info.fragment else {
            return Ok(None);
        };
        let fragments = (ctx.fragments.as_ref())
            .ok_or_else(|| corrupt!("file uses a fragment but the image has none"))?;
        let frag = fragments.get(&ctx.reader, index)?;
        let data = ctx.reader.data_block(frag.start, frag.block)?;
        let tail = (self.info.size % u64::from(self.block_size)) as usize;
        let start = frag_offset as usize;
        match start.checked_add(tail).filter(|&end| end <= data.len()) {
            Some(end) => Ok(Some((data, start..end))),
            None => Err(corrupt!(
                "file tail at {start}+{tail} is past its {}-byte fragment",
                data.len()
            )),
        }
    }
}

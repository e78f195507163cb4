//! A quick look at a block before a slow codec works on it. zstd at its default level 15
//! and xz spend as long on a block they cannot shrink (compressed or encrypted data) as on
//! one they can, several times longer than on text. zstd at level 1, a hundred times
//! faster, codes literals by their frequencies and finds repeats: a block it cannot
//! shrink by a byte has neither skewed bytes nor repeats worth the name, so the slow
//! codec is not run and the block is stored as it is. What that can cost is what the slow
//! codec would have saved on such a block beyond level 1: nothing on random bytes, a few
//! bytes at most otherwise.
//!
//! The same look sorts out the blocks that are easy to shrink (text, tables, zero runs):
//! for zstd's default, a block that level 1 shrinks below a quarter of its size is
//! compressed at level 9, not at the tuned level 15 (`zstd.rs`). Measured per 128 KiB
//! block (bench/results/pack-codecs.md): on the big-files tree of bench/pack.sh such blocks
//! took 10% of the CPU for 0.25% more bytes (below about a seventh, level 9 made them no
//! larger); on its Debian rootfs, 12% of the CPU for 0.27% more bytes. Metadata blocks
//! (8 KiB) go through the same rule; whole images, bench/results/pack.md.

use super::zstd::ZstdWriter;
use super::Compressor;
use crate::error::Result;

pub(super) struct Probed {
    probe: ZstdWriter,
    codec: Box<dyn Compressor>,
    /// For blocks that level 1 shrinks below `EASY_RATIO` of their size, if set.
    easy: Option<Box<dyn Compressor>>,
    scratch: Vec<u8>,
}

/// Level 1's output, as a share of the block, below which a block goes to the easy codec:
/// a quarter.
const EASY_RATIO: (usize, usize) = (1, 4);

impl Probed {
    pub(super) fn new(codec: Box<dyn Compressor>) -> Result<Self> {
        Ok(Probed {
            probe: ZstdWriter::new(1)?,
            codec,
            easy: None,
            scratch: Vec::new(),
        })
    }

    /// Blocks that level 1 already shrinks below a quarter of their size go to `easy`.
    pub(super) fn with_easy(codec: Box<dyn Compressor>, easy: Box<dyn Compressor>) -> Result<Self> {
        Ok(Probed {
            easy: Some(easy),
            ..Self::new(codec)?
        })
    }
}

impl Compressor for Probed {
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<bool> {
        if !self.probe.compress(src, &mut self.scratch)? {
            return Ok(false);
        }
        if let Some(easy) = self.easy.as_mut() {
            if self.scratch.len() * EASY_RATIO.1 < src.len() * EASY_RATIO.0 {
                return easy.compress(src, dst);
            }
        }
        self.codec.compress(src, dst)
    }
}

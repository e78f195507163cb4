//! A quick look at a block before a slow codec works on it. zstd at its default level 15
//! and xz spend as long on a block they cannot shrink (compressed or encrypted data) as on
//! one they can, several times longer than on text. zstd at level 1, a hundred times
//! faster, codes literals by their frequencies and finds repeats: a block it cannot
//! shrink by a byte has neither skewed bytes nor repeats worth the name, so the slow
//! codec is not run and the block is stored as it is. What that can cost is what the slow
//! codec would have saved on such a block beyond level 1: nothing on random bytes, a few
//! bytes at most otherwise.

use super::zstd::ZstdWriter;
use super::Compressor;
use crate::error::Result;

pub(super) struct Probed {
    probe: ZstdWriter,
    codec: Box<dyn Compressor>,
    scratch: Vec<u8>,
}

impl Probed {
    pub(super) fn new(codec: Box<dyn Compressor>) -> Result<Self> {
        Ok(Probed {
            probe: ZstdWriter::new(1)?,
            codec,
            scratch: Vec::new(),
        })
    }
}

impl Compressor for Probed {
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<bool> {
        if !self.probe.compress(src, &mut self.scratch)? {
            return Ok(false);
        }
        self.codec.compress(src, dst)
    }
}

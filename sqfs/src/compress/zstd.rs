//! zstd: one zstd frame per block (zstd_wrapper.c uses ZSTD_compress).

use std::cell::RefCell;

use ::zstd::bulk::{Compressor as CCtx, Decompressor as DCtx};

use super::{compress_fail, fail, with_cached, Compression, Compressor, Decompressor};
use crate::error::Result;

pub(super) struct Zstd;

thread_local! {
    // A DCtx holds ~100 KiB of tables; creating one per block would dominate small blocks.
    static DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

/// Decodes one frame into `dst`: a slice, or a Vec's spare capacity (zstd writes it
/// without a zero-fill first). ZSTD_decompressDCtx: a single pass, so no window buffer is
/// allocated whatever window size the frame claims, and a frame larger than `dst` fails
/// with "Destination buffer is too small".
fn decode<C: ::zstd::zstd_safe::WriteBuf + ?Sized>(src: &[u8], dst: &mut C) -> Result<usize> {
    with_cached(
        &DCTX,
        || DCtx::new().map_err(|e| fail(Compression::Zstd, e.to_string())),
        |dctx| {
            // Zero frames are valid to zstd (0 bytes out) but never a squashfs block.
            if src.is_empty() {
                return Err(fail(Compression::Zstd, "empty block"));
            }
            dctx.decompress_to_buffer(src, dst)
                .map_err(|e| fail(Compression::Zstd, e.to_string()))
        },
    )
}

impl Decompressor for Zstd {
    fn decompress(&self, src: &[u8], dst: &mut [u8]) -> Result<usize> {
        decode(src, dst)
    }

    fn decompress_vec(&self, src: &[u8], dst: &mut Vec<u8>, max: usize) -> Result<usize> {
        dst.clear();
        dst.reserve_exact(max);
        let n = decode(src, dst)?;
        // The allocator may have given more capacity than asked: hold to `max`.
        if n > max {
            dst.clear();
            return Err(fail(
                Compression::Zstd,
                format!("output exceeds {max} bytes"),
            ));
        }
        Ok(n)
    }
}

/// The writer's side: one frame per block (ZSTD_compressCCtx, as zstd_wrapper.c), with
/// no checksum and the content size in the header.
pub(super) struct ZstdWriter(CCtx<'static>);

impl ZstdWriter {
    pub(super) fn new(level: i32) -> Result<Self> {
        CCtx::new(level)
            .map(ZstdWriter)
            .map_err(|e| compress_fail(Compression::Zstd, e.to_string()))
    }
}

impl Compressor for ZstdWriter {
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<bool> {
        let Some(room) = src.len().checked_sub(1).filter(|&n| n > 0) else {
            return Ok(false);
        };
        dst.clear();
        dst.reserve_exact(room);
        // zstd writes into the spare capacity; a frame that does not fit is an error
        // ("Destination buffer is too small"), which means the block does not shrink.
        match self.0.compress_to_buffer(src, dst) {
            Ok(_) if dst.len() <= room => Ok(true),
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use ::zstd::bulk::Compressor;
    use ::zstd::zstd_safe::CParameter;

    use super::super::tests::{block, check_block};
    use super::super::{new_decompressor, Compression};

    #[test]
    fn levels() {
        let plain = block();
        for level in [-5, 1, 15, 22] {
            let encoded = ::zstd::bulk::compress(&plain, level).unwrap();
            check_block(Compression::Zstd, None, &encoded, &plain, false);
        }
    }

    #[test]
    fn content_checksum_is_verified() {
        // mksquashfs writes no checksum, but other encoders may: it must be honoured.
        let plain = block();
        let mut c = Compressor::new(3).unwrap();
        c.set_parameter(CParameter::ChecksumFlag(true)).unwrap();
        let mut encoded = c.compress(&plain).unwrap();
        check_block(Compression::Zstd, None, &encoded, &plain, false);
        let last = encoded.len() - 1;
        encoded[last] ^= 1;
        let d = new_decompressor(Compression::Zstd, None).unwrap();
        assert!(d.decompress(&encoded, &mut vec![0; plain.len()]).is_err());
    }
}

//! zstd: one zstd frame per block (zstd_wrapper.c uses ZSTD_compress).

use std::cell::RefCell;

use ::zstd::bulk::{Compressor as CCtx, Decompressor as DCtx};
use ::zstd::zstd_safe::CParameter;

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

/// The default when no level is given: libzstd's level 15 (mksquashfs's default) with a
/// shorter search for matches. At 128 KiB blocks level 15 is the optimal parser (btopt)
/// looking 2^6 candidates deep for matches up to 256 bytes; 2^3 candidates and 24 bytes
/// (between libzstd's levels 13 and 14) took 0.72-0.83x its CPU time on bench/pack.sh's
/// trees for images 0.5-0.6% larger (bench/results/pack.md). Shorter still (searchLog 2,
/// or the block splitter off) makes blocks 1-1.7% larger than level 15's, past the +1%
/// issue 15 allows (bench/results/pack-codecs.md). Blocks past 256 KiB get level 15 as it
/// is: libzstd's level 15 for them is another strategy (btlazy2), not measured with a
/// shorter search. Blocks that level 1 already shrinks below a quarter get level 9
/// (`probe.rs`): below about a seventh it makes them no larger for a fraction of the
/// cost; up to a quarter, a little larger.
pub(super) const DEFAULT_LEVEL: i32 = 15;
const TUNED_UP_TO: u32 = 256 << 10;
const DEFAULT_SEARCH_LOG: u32 = 3;
const DEFAULT_TARGET_LENGTH: u32 = 24;

/// The level for the default's easy blocks (see `probe.rs`).
const EASY_LEVEL: i32 = 9;

impl ZstdWriter {
    /// The default's writer for easy blocks: libzstd's level 9, up to 256 KiB blocks (the
    /// rule was measured at 128 KiB); none past that.
    pub(super) fn easy_level(block_size: u32) -> Result<Option<Self>> {
        if block_size > TUNED_UP_TO {
            return Ok(None);
        }
        Self::new(EASY_LEVEL).map(Some)
    }

    /// libzstd's level `level`, exactly.
    pub(super) fn new(level: i32) -> Result<Self> {
        CCtx::new(level)
            .map(ZstdWriter)
            .map_err(|e| compress_fail(Compression::Zstd, e.to_string()))
    }

    /// The default for blocks of `block_size` bytes: [`DEFAULT_LEVEL`], with a shorter
    /// search up to 256 KiB.
    pub(super) fn default_level(block_size: u32) -> Result<Self> {
        let mut w = Self::new(DEFAULT_LEVEL)?;
        if block_size > TUNED_UP_TO {
            return Ok(w);
        }
        for p in [
            CParameter::SearchLog(DEFAULT_SEARCH_LOG),
            CParameter::TargetLength(DEFAULT_TARGET_LENGTH),
        ] {
            w.0.set_parameter(p)
                .map_err(|e| compress_fail(Compression::Zstd, e.to_string()))?;
        }
        Ok(w)
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

    use super::super::tests::{block, check_block, text};
    use super::super::{new_decompressor, Compression, Encoding};

    #[test]
    fn levels() {
        let plain = block();
        for level in [-5, 1, 15, 22] {
            let encoded = ::zstd::bulk::compress(&plain, level).unwrap();
            check_block(Compression::Zstd, None, &encoded, &plain, false);
        }
    }

    /// 128 KiB that level 1 shrinks, but not below a quarter: runs of four random bits a
    /// byte between pieces of text.
    fn hard_block() -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let words = text(4096);
        let mut plain = Vec::with_capacity(128 << 10);
        for chunk in 0.. {
            if plain.len() >= 128 << 10 {
                break;
            }
            for _ in 0..40 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                plain.push((x & 0x0f) as u8);
            }
            let at = (chunk * 97) % (words.len() - 24);
            plain.extend_from_slice(&words[at..at + 24]);
        }
        plain.truncate(128 << 10);
        let at_1 = ::zstd::bulk::compress(&plain, 1).unwrap().len();
        assert!(at_1 * 4 > plain.len() && at_1 < plain.len(), "{at_1}");
        plain
    }

    #[test]
    fn a_level_given_is_libzstds_level_and_the_default_searches_less() {
        let plain = hard_block();
        let encode = |level: Option<i32>| {
            let mut e = Encoding::new(Compression::Zstd, 128 << 10);
            e.level = level;
            let mut out = Vec::new();
            assert!(e.compressor().unwrap().compress(&plain, &mut out).unwrap());
            check_block(Compression::Zstd, None, &out, &plain, false);
            out
        };
        for level in [3, 15, 19] {
            assert_eq!(
                encode(Some(level)),
                ::zstd::bulk::compress(&plain, level).unwrap(),
                "{level}"
            );
        }
        let mut tuned = Compressor::new(15).unwrap();
        tuned.set_parameter(CParameter::SearchLog(3)).unwrap();
        tuned.set_parameter(CParameter::TargetLength(24)).unwrap();
        let default = encode(None);
        assert_eq!(default, tuned.compress(&plain).unwrap());
        assert_ne!(default, encode(Some(15)));
        let mut big = Encoding::new(Compression::Zstd, 1 << 20);
        let mut out = Vec::new();
        assert!(big
            .compressor()
            .unwrap()
            .compress(&plain, &mut out)
            .unwrap());
        big.level = Some(15);
        let mut at_15 = Vec::new();
        assert!(big
            .compressor()
            .unwrap()
            .compress(&plain, &mut at_15)
            .unwrap());
        assert_eq!(out, at_15, "1 MiB blocks: level 15 as it is");
    }

    #[test]
    fn the_default_gives_easy_blocks_level_9_and_a_level_given_every_block() {
        // Text: level 1 shrinks it below a quarter.
        let plain = text(128 << 10);
        let at_1 = ::zstd::bulk::compress(&plain, 1).unwrap().len();
        assert!(at_1 * 4 < plain.len(), "{at_1}");
        let encode = |block_size: u32, level: Option<i32>| {
            let mut e = Encoding::new(Compression::Zstd, block_size);
            e.level = level;
            let mut out = Vec::new();
            assert!(e.compressor().unwrap().compress(&plain, &mut out).unwrap());
            check_block(Compression::Zstd, None, &out, &plain, false);
            out
        };
        let at_9 = ::zstd::bulk::compress(&plain, 9).unwrap();
        assert_eq!(encode(128 << 10, None), at_9);
        assert_eq!(
            encode(128 << 10, Some(15)),
            ::zstd::bulk::compress(&plain, 15).unwrap()
        );
        // Past 256 KiB blocks the default is level 15 for every block.
        assert_eq!(
            encode(1 << 20, None),
            ::zstd::bulk::compress(&plain, 15).unwrap()
        );
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

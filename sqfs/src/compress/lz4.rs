//! lz4: one raw LZ4 block per block (the "legacy" format of lz4_wrapper.c), no frame.
//!
//! liblz4's LZ4_decompress_safe through the `lz4` crate: 20-40% faster than lz4_flex on
//! real blocks (bench/codecs.md), and the code the kernel's lib/lz4 decoder comes from.
//! It is bounded by the capacity it is given and never reads outside the input.

use lz4::block::CompressionMode;

use super::{compress_fail, fail, too_long, Compression, Compressor, Decompressor};
use crate::error::Result;

pub(super) struct Lz4;

impl Decompressor for Lz4 {
    fn decompress(&self, src: &[u8], dst: &mut [u8]) -> Result<usize> {
        if src.is_empty() {
            // Not a block (the shortest is one zero token); also keeps Rust's dangling
            // empty-slice pointer away from C.
            return Err(fail(Compression::Lz4, "empty block"));
        }
        // A raw block does not record its decoded size: pass dst's length as the capacity
        // and get back how much was decoded. Squashfs blocks are at most 1 MiB, far below
        // the i32 limits of the C API, but say so rather than truncate.
        let (Ok(capacity), Ok(_)) = (i32::try_from(dst.len()), i32::try_from(src.len())) else {
            return Err(fail(Compression::Lz4, "block larger than 2 GiB"));
        };
        lz4::block::decompress_to_buffer(src, Some(capacity), dst).map_err(|_| {
            // LZ4_decompress_safe reports every failure as one negative number; running
            // out of room and malformed input cannot be told apart.
            fail(
                Compression::Lz4,
                format!("corrupt block or {}", too_long(dst)),
            )
        })
    }

    /// Decodes into `dst`'s spare capacity: no zero-fill of `max` bytes first, which cost
    /// a sequential reader about 8% of the daemon's time.
    fn decompress_vec(&self, src: &[u8], dst: &mut Vec<u8>, max: usize) -> Result<usize> {
        if src.is_empty() {
            return Err(fail(Compression::Lz4, "empty block"));
        }
        let (Ok(capacity), Ok(src_len)) = (i32::try_from(max), i32::try_from(src.len())) else {
            return Err(fail(Compression::Lz4, "block larger than 2 GiB"));
        };
        dst.clear();
        dst.reserve_exact(max);
        // SAFETY: dst has room for `max` bytes. LZ4_decompress_safe reads at most `src_len`
        // bytes of src, writes at most `capacity` bytes at dst and reads back only bytes of
        // dst it wrote (matches copy from earlier output); it returns how many it wrote, or
        // a negative number if the block is corrupt or does not fit.
        let n = unsafe {
            lz4::liblz4::LZ4_decompress_safe(
                src.as_ptr().cast(),
                dst.as_mut_ptr().cast(),
                src_len,
                capacity,
            )
        };
        let Ok(n) = usize::try_from(n) else {
            return Err(fail(
                Compression::Lz4,
                format!("corrupt block or output does not fit in {max} bytes"),
            ));
        };
        // SAFETY: the first n <= max bytes were written just now.
        unsafe { dst.set_len(n) };
        Ok(n)
    }
}

/// The writer's side: a raw block, LZ4_compress_default or LZ4_compress_HC at `hc`'s
/// level (lz4_wrapper.c's -Xhc uses the HC default, 9).
pub(super) struct Lz4Writer {
    hc: Option<i32>,
}

impl Lz4Writer {
    pub(super) fn new(hc: Option<i32>) -> Self {
        Lz4Writer { hc }
    }
}

impl Compressor for Lz4Writer {
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<bool> {
        // Never an empty slice to liblz4 (its HC parser reads the source pointer even
        // for 0 bytes); a block of a byte or two cannot shrink anyway.
        let Some(room) = src.len().checked_sub(1).filter(|&n| n > 0) else {
            return Ok(false);
        };
        if i32::try_from(src.len()).is_err() {
            return Err(compress_fail(Compression::Lz4, "block larger than 2 GiB"));
        }
        let mode = match self.hc {
            Some(level) => CompressionMode::HIGHCOMPRESSION(level),
            None => CompressionMode::DEFAULT,
        };
        dst.clear();
        dst.resize(room, 0);
        // A block that does not fit in `room` fails (liblz4 returns 0): no shrink.
        match lz4::block::compress_to_buffer(src, Some(mode), false, dst) {
            Ok(n) if n > 0 && n <= room => {
                dst.truncate(n);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use lz4::block::CompressionMode;

    use super::super::tests::{block, check_block};
    use super::super::Compression;

    /// A raw LZ4 block, high-compression (mksquashfs -Xhc) or default.
    pub(in crate::compress) fn encode(plain: &[u8], hc: bool) -> Vec<u8> {
        if plain.is_empty() {
            // What LZ4_compress_default writes for nothing. (liblz4 1.10's HC optimal
            // parser reads from the source pointer even when the size is 0, which with
            // Rust's dangling empty-slice pointer is a segfault.)
            return vec![0];
        }
        let mode = if hc {
            CompressionMode::HIGHCOMPRESSION(12)
        } else {
            CompressionMode::DEFAULT
        };
        lz4::block::compress(plain, Some(mode), false).expect("lz4 encodes")
    }

    #[test]
    fn default_and_hc_blocks() {
        let plain = block();
        for (hc, options) in [
            (false, [1u8, 0, 0, 0, 0, 0, 0, 0]),
            (true, [1, 0, 0, 0, 1, 0, 0, 0]),
        ] {
            check_block(
                Compression::Lz4,
                Some(&options),
                &encode(&plain, hc),
                &plain,
                false,
            );
        }
        // squashfs-tools after 4.7.5: {version 1, HC | NON_DEFAULT, level 9}.
        let v2 = [1u8, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0];
        check_block(
            Compression::Lz4,
            Some(&v2),
            &encode(&plain, true),
            &plain,
            false,
        );
    }
}

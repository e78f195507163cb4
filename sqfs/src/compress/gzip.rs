//! gzip: a zlib stream (RFC 1950) per block, as mksquashfs' gzip_wrapper.c writes it.
//!
//! libdeflate rather than zlib (flate2): a squashfs block is always decoded whole into a
//! buffer of known size, which is the case libdeflate is built for; on real blocks it runs
//! about twice as fast as flate2's zlib-rs backend (bench/codecs.md). It needs no
//! window, whatever window size mksquashfs' -Xwindow-size chose.

use std::cell::RefCell;

use libdeflater::{
    CompressionLvl, Compressor as Deflater, DecompressionError, Decompressor as Inflater,
};

use super::{compress_fail, fail, too_long, with_cached, Compression, Compressor, Decompressor};
use crate::error::Result;

pub(super) struct Gzip;

thread_local! {
    // Holds the Huffman tables (~10 KiB); per thread because it is used through &mut.
    static INFLATER: RefCell<Option<Inflater>> = const { RefCell::new(None) };
}

impl Decompressor for Gzip {
    fn decompress(&self, src: &[u8], dst: &mut [u8]) -> Result<usize> {
        with_cached(
            &INFLATER,
            || Ok(Inflater::new()),
            // Checks the zlib header and the Adler-32 trailer; never writes past dst.
            |inflater| {
                inflater.zlib_decompress(src, dst).map_err(|e| match e {
                    DecompressionError::InsufficientSpace => fail(Compression::Gzip, too_long(dst)),
                    DecompressionError::BadData => fail(Compression::Gzip, "corrupt zlib stream"),
                })
            },
        )
    }
}

/// The writer's side: a zlib stream per block, by libdeflate (smaller and faster than
/// zlib at the same level; any inflater reads it, the kernel's included).
pub(super) struct GzipWriter(Deflater);

impl GzipWriter {
    pub(super) fn new(level: i32) -> Result<Self> {
        let level = CompressionLvl::new(level)
            .map_err(|_| compress_fail(Compression::Gzip, format!("bad level {level}")))?;
        Ok(GzipWriter(Deflater::new(level)))
    }
}

impl Compressor for GzipWriter {
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<bool> {
        // Room for one byte less than the input: a stream that does not fit does not
        // shrink the block, and libdeflate says so without writing past the room.
        let Some(room) = src.len().checked_sub(1).filter(|&n| n > 0) else {
            return Ok(false);
        };
        dst.clear();
        dst.resize(room, 0);
        match self.0.zlib_compress(src, dst) {
            Ok(n) => {
                dst.truncate(n);
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use libdeflater::{CompressionLvl, Compressor};

    use super::super::tests::{block, check_block, text};
    use super::super::{new_decompressor, Compression};

    /// A zlib stream at `level` (0 = stored blocks only).
    pub(in crate::compress) fn encode(plain: &[u8], level: i32) -> Vec<u8> {
        let mut c = Compressor::new(CompressionLvl::new(level).expect("level"));
        let mut out = vec![0; c.zlib_compress_bound(plain.len())];
        let n = c.zlib_compress(plain, &mut out).expect("fits its bound");
        out.truncate(n);
        out
    }

    #[test]
    fn levels_and_stored_blocks() {
        let plain = block();
        for level in [0, 1, 6, 9, 12] {
            check_block(
                Compression::Gzip,
                None,
                &encode(&plain, level),
                &plain,
                true,
            );
        }
    }

    #[test]
    fn any_window_size_in_the_header() {
        // mksquashfs -Xwindow-size 8 writes CINFO = 0 (a 256-byte window); the data here is
        // stored blocks, valid under any window. 0x08 0x1d: CM 8, CINFO 0, FCHECK ok.
        let plain = text(5000);
        let mut z = encode(&plain, 0);
        z[..2].copy_from_slice(&[0x08, 0x1d]);
        let mut dst = vec![0; plain.len()];
        let d = new_decompressor(Compression::Gzip, None).unwrap();
        assert_eq!(d.decompress(&z, &mut dst).unwrap(), plain.len());
        assert_eq!(dst, plain);
    }

    #[test]
    fn refuses_gzip_framing_and_preset_dictionaries() {
        let plain = text(1000);
        let d = new_decompressor(Compression::Gzip, None).unwrap();
        let mut dst = vec![0; 2000];
        // RFC 1952 framing is not what squashfs stores.
        let mut c = Compressor::new(CompressionLvl::default());
        let mut gz = vec![0; c.gzip_compress_bound(plain.len())];
        let n = c.gzip_compress(&plain, &mut gz).unwrap();
        assert!(d.decompress(&gz[..n], &mut dst).is_err());
        // FDICT set (0x78 0xbb passes the header check): needs a dictionary we never have.
        let mut z = encode(&plain, 6);
        z[..2].copy_from_slice(&[0x78, 0xbb]);
        assert!(d.decompress(&z, &mut dst).is_err());
    }
}

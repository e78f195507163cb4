//! lzma: the legacy LZMA "alone" format (13-byte header) of lzma_xz_wrapper.c.
//!
//! The header's uncompressed size is the real block size (mksquashfs patches it in after
//! encoding; gensquashfs too), while the payload may or may not end with an end-of-payload
//! marker (liblzma writes one, the old LZMA SDK path did not). liblzma's alone decoder
//! accepts both when the size is known, so the header is passed through unchanged.

use liblzma::stream::Stream;

use super::xz::{run, MEMLIMIT};
use super::{fail, too_long, Compression, Decompressor};
use crate::error::Result;

pub(super) struct Lzma;

/// 5 bytes of properties (lc/lp/pb, dictionary size), then a u64 uncompressed size.
const HEADER: usize = 13;

impl Decompressor for Lzma {
    fn decompress(&self, src: &[u8], dst: &mut [u8]) -> Result<usize> {
        let Some(size) = src.get(5..HEADER) else {
            return Err(fail(
                Compression::Lzma,
                "block shorter than the lzma header",
            ));
        };
        let mut le = [0u8; 8];
        le.copy_from_slice(size);
        // u64::MAX means "unknown, look for the end marker"; anything else must fit.
        let size = u64::from_le_bytes(le);
        if size != u64::MAX && size > dst.len() as u64 {
            return Err(fail(Compression::Lzma, too_long(dst)));
        }
        let stream = Stream::new_lzma_decoder(MEMLIMIT)
            .map_err(|e| fail(Compression::Lzma, e.to_string()))?;
        run(Compression::Lzma, stream, src, dst)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::Write;

    use liblzma::stream::{LzmaOptions, Stream};
    use liblzma::write::XzEncoder;

    use super::super::tests::{block, check_block, text};
    use super::super::{new_decompressor, Compression};

    /// What lzma_xz_wrapper.c writes: liblzma's alone encoder (preset 5, block-sized
    /// dictionary, so an end marker) with the real size patched into the header.
    pub(in crate::compress) fn encode(plain: &[u8]) -> Vec<u8> {
        let mut out = encode_unknown_size(plain);
        out[5..13].copy_from_slice(&(plain.len() as u64).to_le_bytes());
        out
    }

    fn encode_unknown_size(plain: &[u8]) -> Vec<u8> {
        let mut opts = LzmaOptions::new_preset(5).unwrap();
        opts.dict_size(128 << 10);
        let mut enc = XzEncoder::new_stream(Vec::new(), Stream::new_lzma_encoder(&opts).unwrap());
        enc.write_all(plain).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn mksquashfs_blocks() {
        let plain = block();
        check_block(Compression::Lzma, None, &encode(&plain), &plain, false);
    }

    #[test]
    fn header_without_size() {
        let plain = block();
        check_block(
            Compression::Lzma,
            None,
            &encode_unknown_size(&plain),
            &plain,
            false,
        );
    }

    #[test]
    fn known_size_without_end_marker() {
        // The LZMA SDK path of old squashfs-tools: no end marker, decoding stops at the
        // header's size. Fixture made by lzma-rust2's encoder from text(40000).
        let fixture = include_bytes!("testdata/text40000.lzma-no-eopm");
        let plain = text(40000);
        check_block(Compression::Lzma, None, fixture, &plain, false);
        // Proof that it has no end marker: with the size erased it does not terminate.
        let mut unknown = fixture.to_vec();
        unknown[5..13].fill(0xff);
        let d = new_decompressor(Compression::Lzma, None).unwrap();
        assert!(d.decompress(&unknown, &mut vec![0; 50000]).is_err());
    }

    #[test]
    fn oversized_header_is_refused_up_front() {
        let mut encoded = encode(b"abc");
        encoded[5..13].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let d = new_decompressor(Compression::Lzma, None).unwrap();
        assert!(d.decompress(&encoded, &mut [0; 4096]).is_err());
        assert!(d.decompress(&encoded[..12], &mut [0; 4096]).is_err());
    }
}

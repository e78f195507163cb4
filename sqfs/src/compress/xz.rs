//! xz: one complete .xz stream per block, with whatever BCJ filter mksquashfs chose for it.

use liblzma::stream::{Action, Status, Stream};

use super::{fail, too_long, Compression, Decompressor};
use crate::error::Result;

pub(super) struct Xz;

/// unsquashfs' limit (xz_wrapper.h MEMLIMIT). mksquashfs dictionaries are at most the block
/// size (1 MiB), so only a hostile block asks for more.
pub(super) const MEMLIMIT: u64 = 32 << 20;

impl Decompressor for Xz {
    fn decompress(&self, src: &[u8], dst: &mut [u8]) -> Result<usize> {
        // The filter chain (BCJ + LZMA2) and check are read from each stream's own headers,
        // so the options block's filter mask is not needed here.
        let stream = Stream::new_stream_decoder(MEMLIMIT, 0)
            .map_err(|e| fail(Compression::Xz, e.to_string()))?;
        run(Compression::Xz, stream, src, dst)
    }
}

/// Drives a liblzma decoder over one whole block: a single call that must end the stream.
pub(super) fn run(
    codec: Compression,
    mut stream: Stream,
    src: &[u8],
    dst: &mut [u8],
) -> Result<usize> {
    let status = stream
        .process(src, dst, Action::Finish)
        .map_err(|e| fail(codec, e.to_string()))?;
    let written = stream.total_out() as usize;
    match status {
        Status::StreamEnd => Ok(written),
        _ if written == dst.len() => Err(fail(codec, too_long(dst))),
        _ => Err(fail(codec, "truncated stream")),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::Write;

    use liblzma::stream::{Check, Filters, LzmaOptions, Stream};
    use liblzma::write::XzEncoder;

    use super::super::tests::{block, check_block};
    use super::super::{new_decompressor, Compression};
    use crate::error::Error;

    /// One .xz stream as mksquashfs writes it: optional BCJ filter, then LZMA2 with the
    /// default preset and a block-sized dictionary, CRC32 check.
    pub(in crate::compress) fn encode(plain: &[u8], bcj: Option<&str>) -> Vec<u8> {
        encode_with(plain, bcj, 128 << 10, Check::Crc32)
    }

    fn encode_with(plain: &[u8], bcj: Option<&str>, dict: u32, check: Check) -> Vec<u8> {
        let mut opts = LzmaOptions::new_preset(6).unwrap();
        opts.dict_size(dict);
        let mut filters = Filters::new();
        match bcj {
            None => &mut filters,
            Some("x86") => filters.x86(),
            Some("powerpc") => filters.powerpc(),
            Some("ia64") => filters.ia64(),
            Some("arm") => filters.arm(),
            Some("armthumb") => filters.arm_thumb(),
            Some("sparc") => filters.sparc(),
            Some("arm64") => filters.arm64(),
            Some("riscv") => filters.riscv(),
            Some(other) => panic!("no filter {other}"),
        };
        filters.lzma2(&opts);
        let stream = Stream::new_stream_encoder(&filters, check).unwrap();
        let mut enc = XzEncoder::new_stream(Vec::new(), stream);
        enc.write_all(plain).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn every_bcj_filter_mksquashfs_can_write() {
        let plain = block();
        check_block(
            Compression::Xz,
            None,
            &encode(&plain, Some("x86")),
            &plain,
            true,
        );
        let d = new_decompressor(Compression::Xz, None).unwrap();
        let mut dst = vec![0; plain.len()];
        for bcj in super::super::options::XZ_FILTER_NAMES {
            let encoded = encode(&plain, Some(bcj));
            dst.fill(0);
            assert_eq!(
                d.decompress(&encoded, &mut dst).unwrap(),
                plain.len(),
                "{bcj}"
            );
            assert!(dst == plain, "{bcj}: wrong bytes");
        }
    }

    #[test]
    fn every_check_type() {
        let plain = block();
        for check in [Check::None, Check::Crc32, Check::Crc64, Check::Sha256] {
            let encoded = encode_with(&plain, None, 1 << 20, check);
            check_block(
                Compression::Xz,
                None,
                &encoded,
                &plain,
                !matches!(check, Check::None),
            );
        }
    }

    #[test]
    fn a_huge_dictionary_is_refused_not_allocated() {
        // 1.5 GiB would be allocated on the first byte of output; the memory limit stops
        // it while reading the block header.
        let encoded = encode_with(b"tiny", None, 3 << 29, Check::Crc32);
        let d = new_decompressor(Compression::Xz, None).unwrap();
        let r = d.decompress(&encoded, &mut [0; 16]);
        assert!(
            matches!(r, Err(Error::Decompress { codec: "xz", .. })),
            "{r:?}"
        );
    }

    #[test]
    fn legacy_lzma_is_not_xz() {
        let plain = block();
        let d = new_decompressor(Compression::Xz, None).unwrap();
        let lzma = super::super::lzma::tests::encode(&plain);
        assert!(d.decompress(&lzma, &mut vec![0; plain.len()]).is_err());
    }
}

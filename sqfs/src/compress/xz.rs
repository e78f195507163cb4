//! xz: one complete .xz stream per block, with whatever BCJ filter mksquashfs chose for it.

use liblzma::stream::{Action, Status, Stream};

use super::xz_encoder::XzEncoder;
use super::{fail, too_long, Compression, Compressor, Decompressor};
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

/// The writer's side: one .xz stream per block (LZMA2 at a preset, the dictionary the
/// size of a block, CRC32 check, as xz_wrapper.c), tried with no filter and with each BCJ
/// filter asked for; the smallest is kept, the first of equals (mksquashfs keeps the
/// smallest too, so the image does not depend on which filter is tried first).
pub(super) struct XzWriter {
    preset: u32,
    dict_size: u32,
    /// Bit positions in [`super::options::XZ_FILTER_NAMES`].
    filters: u32,
    /// LZMA2 alone: kept from block to block, so its buffers are reused.
    plain: XzEncoder,
    /// BCJ + LZMA2, made on the first BCJ try (switching filters starts a new chain).
    bcj: Option<XzEncoder>,
    /// The best stream so far while trying the filters.
    best: Vec<u8>,
}

/// liblzma's id of the BCJ filter at bit `bit` of [`super::options::XZ_FILTER_NAMES`].
fn bcj_filter_id(bit: u32) -> liblzma_sys::lzma_vli {
    use liblzma_sys as sys;
    match bit {
        0 => sys::LZMA_FILTER_X86,
        1 => sys::LZMA_FILTER_POWERPC,
        2 => sys::LZMA_FILTER_IA64,
        3 => sys::LZMA_FILTER_ARM,
        4 => sys::LZMA_FILTER_ARMTHUMB,
        5 => sys::LZMA_FILTER_SPARC,
        6 => sys::LZMA_FILTER_ARM64,
        _ => sys::LZMA_FILTER_RISCV,
    }
}

impl XzWriter {
    pub(super) fn new(preset: u32, block_size: u32, filters: u32) -> Self {
        XzWriter {
            preset,
            dict_size: block_size,
            filters,
            plain: XzEncoder::new(),
            bcj: None,
            best: Vec::new(),
        }
    }
}

impl Compressor for XzWriter {
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<bool> {
        let Some(room) = src.len().checked_sub(1).filter(|&n| n > 0) else {
            return Ok(false);
        };
        let (preset, dict) = (self.preset, self.dict_size);
        let mut found = self.plain.encode(preset, dict, None, src, dst, room)?;
        for bit in 0..super::options::XZ_FILTER_NAMES.len() as u32 {
            if self.filters & (1 << bit) == 0 {
                continue;
            }
            // Only a strictly smaller stream can win: room shrinks to the best so far.
            let limit = if found { dst.len() - 1 } else { room };
            let mut candidate = std::mem::take(&mut self.best);
            let bcj = self.bcj.get_or_insert_with(XzEncoder::new);
            let id = Some(bcj_filter_id(bit));
            if limit > 0 && bcj.encode(preset, dict, id, src, &mut candidate, limit)? {
                std::mem::swap(dst, &mut candidate);
                found = true;
            }
            self.best = candidate;
        }
        Ok(found)
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
    fn a_writer_kept_across_blocks_writes_what_a_new_encoder_writes() {
        use super::super::tests::noise;
        use super::super::Compressor;
        let exe = block();
        // Blocks that differ (and one that does not shrink) go through one writer in
        // turn: each must come out as liblzma's own one-shot encoder writes it, the
        // smaller of plain and x86 BCJ, whatever went through the writer before.
        let mut blocks = vec![
            exe.clone(),
            exe.iter().rev().copied().collect(),
            noise(7, 128 << 10),
        ];
        blocks.push(exe.clone());
        let mut kept = super::XzWriter::new(6, 128 << 10, 1);
        let mut out = Vec::new();
        for (i, b) in blocks.iter().enumerate() {
            let shrinks = kept.compress(b, &mut out).unwrap();
            let (plain, x86) = (encode(b, None), encode(b, Some("x86")));
            let want = if x86.len() < plain.len() { x86 } else { plain };
            if want.len() < b.len() {
                assert!(shrinks, "block {i}");
                assert!(out == want, "block {i}: other bytes than a new encoder's");
            } else {
                assert!(!shrinks, "block {i}");
            }
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

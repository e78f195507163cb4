//! xz: one complete .xz stream per block, with whatever BCJ filter mksquashfs chose for it.

use liblzma::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};

use super::{compress_fail, fail, too_long, Compression, Compressor, Decompressor};
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
    /// The best stream so far while trying the filters.
    best: Vec<u8>,
}

impl XzWriter {
    pub(super) fn new(preset: u32, block_size: u32, filters: u32) -> Self {
        XzWriter {
            preset,
            dict_size: block_size,
            filters,
            best: Vec::new(),
        }
    }

    /// `src` as one stream with `bcj` (a bit position) in front of LZMA2, into `dst`, if
    /// it fits in `room` bytes.
    fn encode(&self, src: &[u8], bcj: Option<u32>, dst: &mut Vec<u8>, room: usize) -> Result<bool> {
        let mut filters = Filters::new();
        match bcj {
            None => &mut filters,
            Some(0) => filters.x86(),
            Some(1) => filters.powerpc(),
            Some(2) => filters.ia64(),
            Some(3) => filters.arm(),
            Some(4) => filters.arm_thumb(),
            Some(5) => filters.sparc(),
            Some(6) => filters.arm64(),
            Some(_) => filters.riscv(),
        };
        // (LzmaOptions holds pointers, so it is not Send: made per block, which is cheap.)
        let mut lzma = LzmaOptions::new_preset(self.preset)
            .map_err(|e| compress_fail(Compression::Xz, e.to_string()))?;
        lzma.dict_size(self.dict_size);
        filters.lzma2(&lzma);
        let mut stream = Stream::new_stream_encoder(&filters, Check::Crc32)
            .map_err(|e| compress_fail(Compression::Xz, e.to_string()))?;
        dst.clear();
        dst.reserve_exact(room);
        // Only `room` bytes of output: a stream that needs more does not end.
        let spare = room.min(dst.capacity());
        let mut out = std::mem::take(dst);
        let status = {
            let before = out.len();
            let r =
                stream.process_uninit(src, &mut out.spare_capacity_mut()[..spare], Action::Finish);
            // SAFETY: liblzma initialised total_out() bytes of the spare capacity.
            unsafe { out.set_len(before + stream.total_out() as usize) };
            r
        };
        *dst = out;
        match status {
            Ok(Status::StreamEnd) => Ok(true),
            // Out of room (MemNeeded is liblzma's LZMA_BUF_ERROR): it does not shrink.
            Ok(_) => Ok(false),
            Err(e) => Err(compress_fail(Compression::Xz, e.to_string())),
        }
    }
}

impl Compressor for XzWriter {
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<bool> {
        let Some(room) = src.len().checked_sub(1).filter(|&n| n > 0) else {
            return Ok(false);
        };
        let mut found = self.encode(src, None, dst, room)?;
        for bit in 0..super::options::XZ_FILTER_NAMES.len() as u32 {
            if self.filters & (1 << bit) == 0 {
                continue;
            }
            // Only a strictly smaller stream can win: room shrinks to the best so far.
            let limit = if found { dst.len() - 1 } else { room };
            let mut candidate = std::mem::take(&mut self.best);
            if limit > 0 && self.encode(src, Some(bit), &mut candidate, limit)? {
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

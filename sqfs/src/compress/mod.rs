//! Decompressors for every codec mksquashfs and gensquashfs write, behind one trait, and
//! compressors for those the kernel reads (all but legacy lzma), behind another.
//!
//! Every block is decoded in one call from a complete input slice into the caller's
//! buffer; nothing here grows a buffer, so a hostile block can cost at most `dst.len()`
//! bytes of output plus a bounded decoder state. Decoders that keep state between calls
//! keep it per thread (see [`with_cached`]), because one decompressor is shared by every
//! reader thread and a lock would serialise them.

mod gzip;
mod lz4;
mod lzma;
mod lzo;
pub mod options;
mod probe;
mod xz;
mod xz_encoder;
mod zstd;

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::error::{Error, Result};

/// The codecs a SquashFS image may be compressed with (the superblock's compressor id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip = 1,
    Lzma = 2,
    Lzo = 3,
    Xz = 4,
    Lz4 = 5,
    Zstd = 6,
}

/// Decompresses one block. Implementations are shared by all reader threads.
pub trait Decompressor: Send + Sync {
    /// Decompresses `src` into `dst` and returns how many bytes were written.
    /// Output that would exceed `dst.len()` is an error, never a reallocation.
    fn decompress(&self, src: &[u8], dst: &mut [u8]) -> Result<usize>;

    /// Decompresses `src` into `dst`, emptied first, making at most `max` bytes; `dst`
    /// ends up holding exactly the output. The default zero-fills `max` bytes before
    /// decoding; a codec that can write into uninitialised capacity skips that fill, which
    /// costs a fast codec several percent of its time.
    fn decompress_vec(&self, src: &[u8], dst: &mut Vec<u8>, max: usize) -> Result<usize> {
        dst.clear();
        dst.resize(max, 0);
        let n = self.decompress(src, dst)?;
        dst.truncate(n);
        Ok(n)
    }
}

/// Compresses one block. Each writer thread owns one (codecs keep state between blocks).
pub trait Compressor: Send {
    /// Compresses `src` into `dst` (emptied first) and returns true, or returns false when
    /// the codec cannot make `src` smaller (then the block is stored as it is, and what
    /// `dst` holds is meaningless). Deterministic: the same input gives the same bytes.
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<bool>;
}

/// How blocks are compressed: the codec and its settings, under mksquashfs's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    pub codec: Compression,
    /// `-Xcompression-level`: gzip 1..=9 (default 9), zstd 1..=22 (default: 15 with a
    /// shorter search, and 9 for easy blocks, see `zstd.rs` and `probe.rs`; 15 given is
    /// libzstd's level 15), xz's preset 0..=9
    /// (default 6), lz4 HC 1..=12 (default 9); lzo takes none.
    pub level: Option<i32>,
    /// `-Xbcj`: the xz BCJ filters to try on each block, as a mask in
    /// [`options::XZ_FILTER_NAMES`] order (the smallest result is kept, as mksquashfs does).
    pub xz_filters: u32,
    /// `-Xhc`: lz4's high-compression mode.
    pub lz4_hc: bool,
    /// The image's block size (xz's dictionary size is the block size).
    pub block_size: u32,
}

impl Encoding {
    /// The codec's defaults (mksquashfs's) at `block_size`.
    pub fn new(codec: Compression, block_size: u32) -> Self {
        Encoding {
            codec,
            level: None,
            xz_filters: 0,
            lz4_hc: false,
            block_size,
        }
    }

    /// Checks that the settings can be written: a codec the kernel reads, a level in its
    /// range, options that belong to the codec.
    pub fn check(&self) -> Result<()> {
        let bad = |why: String| Err(Error::CompressorOptions(why));
        let range = match self.codec {
            Compression::Gzip => 1..=9,
            Compression::Xz => 0..=9,
            Compression::Zstd => 1..=22,
            Compression::Lz4 => 1..=12,
            // lzokay has no levels.
            Compression::Lzo if self.level.is_some() => {
                return bad("lzo takes no compression level here (one lzo1x encoder)".into())
            }
            Compression::Lzo => 0..=0,
            Compression::Lzma => {
                return bad("lzma (legacy, id 2) is not written: the kernel cannot read it".into())
            }
        };
        if let Some(level) = self.level {
            if self.codec == Compression::Lz4 && !self.lz4_hc {
                return bad("lz4 takes a compression level only with -Xhc".into());
            }
            if !range.contains(&level) {
                return bad(format!(
                    "{} compression level {level} not in {}..={}",
                    self.codec.name(),
                    range.start(),
                    range.end()
                ));
            }
        }
        if self.xz_filters != 0 && self.codec != Compression::Xz {
            return bad("-Xbcj is an xz option".into());
        }
        if self.xz_filters >> options::XZ_FILTER_NAMES.len() != 0 {
            return bad(format!(
                "xz filter mask {:#x} has unknown bits",
                self.xz_filters
            ));
        }
        if self.lz4_hc && self.codec != Compression::Lz4 {
            return bad("-Xhc is an lz4 option".into());
        }
        Ok(())
    }

    /// A compressor with these settings (checked first). The slow ones (xz, zstd from
    /// level 10) look at each block with a fast codec first and store a block it cannot
    /// shrink as it is (see `probe.rs`).
    pub fn compressor(&self) -> Result<Box<dyn Compressor>> {
        let codec = self.codec_compressor()?;
        let slow = match self.codec {
            Compression::Xz => true,
            Compression::Zstd => self.level.unwrap_or(15) >= 10,
            _ => false,
        };
        // zstd's default: easy blocks at a cheaper level (see `probe.rs`); a level given is
        // that level for every block.
        let easy = match (self.codec, self.level) {
            (Compression::Zstd, None) => self::zstd::ZstdWriter::easy_level(self.block_size)?,
            _ => None,
        };
        Ok(match (slow, easy) {
            (true, Some(easy)) => Box::new(probe::Probed::with_easy(codec, Box::new(easy))?),
            (true, None) => Box::new(probe::Probed::new(codec)?),
            (false, _) => codec,
        })
    }

    fn codec_compressor(&self) -> Result<Box<dyn Compressor>> {
        self.check()?;
        Ok(match self.codec {
            Compression::Gzip => Box::new(gzip::GzipWriter::new(self.level.unwrap_or(9))?),
            Compression::Xz => Box::new(xz::XzWriter::new(
                self.level.unwrap_or(6) as u32,
                self.block_size,
                self.xz_filters,
            )),
            Compression::Zstd => Box::new(match self.level {
                Some(level) => self::zstd::ZstdWriter::new(level)?,
                None => self::zstd::ZstdWriter::default_level(self.block_size)?,
            }),
            Compression::Lz4 => Box::new(lz4::Lz4Writer::new(
                self.lz4_hc.then(|| self.level.unwrap_or(9)),
            )),
            Compression::Lzo => Box::new(lzo::LzoWriter::new()),
            Compression::Lzma => unreachable!("refused by check()"),
        })
    }

    /// The compressor options block to store after the superblock, when these settings
    /// are not the codec's defaults (lz4 always has one: the kernel requires it). The
    /// layouts are the ones [`options::parse`] reads.
    pub fn options(&self) -> Option<Vec<u8>> {
        let words: Vec<u32> = match self.codec {
            Compression::Gzip => match self.level {
                // {level, window 15 | strategy default << 16}
                Some(level) if level != 9 => vec![level as u32, 15],
                _ => return None,
            },
            Compression::Xz if self.xz_filters != 0 => vec![self.block_size, self.xz_filters],
            Compression::Xz => return None,
            Compression::Zstd => match self.level {
                Some(level) if level != 15 => vec![level as u32],
                _ => return None,
            },
            Compression::Lz4 => vec![1, u32::from(self.lz4_hc)],
            Compression::Lzo | Compression::Lzma => return None,
        };
        Some(words.iter().flat_map(|w| w.to_le_bytes()).collect())
    }
}

/// The error every encoder returns when its library fails.
fn compress_fail(codec: Compression, reason: impl Into<String>) -> Error {
    Error::Compress {
        codec: codec.name(),
        reason: reason.into(),
    }
}

impl Compression {
    /// Maps a superblock compressor id to a codec.
    pub fn from_id(id: u16) -> Result<Self> {
        Ok(match id {
            1 => Self::Gzip,
            2 => Self::Lzma,
            3 => Self::Lzo,
            4 => Self::Xz,
            5 => Self::Lz4,
            6 => Self::Zstd,
            _ => return Err(Error::UnknownCompressor(id)),
        })
    }

    /// The name mksquashfs uses for this codec (`gzip`, `lzma`, `lzo`, `xz`, `lz4`, `zstd`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Lzma => "lzma",
            Self::Lzo => "lzo",
            Self::Xz => "xz",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

/// Builds the decompressor for `codec`. `options` is the decompressed compressor-options
/// metadata block when the superblock's COMPRESSOR_OPTIONS flag is set; it is validated here.
pub fn new_decompressor(
    codec: Compression,
    options: Option<&[u8]>,
) -> Result<Box<dyn Decompressor>> {
    options::parse(codec, options)?;
    Ok(match codec {
        Compression::Gzip => Box::new(gzip::Gzip),
        Compression::Lzma => Box::new(lzma::Lzma),
        Compression::Lzo => Box::new(lzo::Lzo),
        Compression::Xz => Box::new(xz::Xz),
        Compression::Lz4 => Box::new(lz4::Lz4),
        Compression::Zstd => Box::new(self::zstd::Zstd),
    })
}

/// The error every decoder returns for a block it cannot decode.
fn fail(codec: Compression, reason: impl Into<String>) -> Error {
    Error::Decompress {
        codec: codec.name(),
        reason: reason.into(),
    }
}

/// The reason used when a block decodes to more than `dst` holds.
fn too_long(dst: &[u8]) -> String {
    format!("output does not fit in {} bytes", dst.len())
}

/// Runs `f` with this thread's decoder context from `key`, made by `make` on first use.
///
/// Contexts are worth keeping (a zstd DCtx or an inflate state costs tens of KiB to set
/// up) and cannot be shared between threads. A context that is unavailable (the thread
/// is being torn down, or a call is somehow re-entered) is replaced by a fresh one for
/// this call, so this never panics.
fn with_cached<C, R>(
    key: &'static LocalKey<RefCell<Option<C>>>,
    make: impl Fn() -> Result<C>,
    f: impl FnOnce(&mut C) -> Result<R>,
) -> Result<R> {
    let mut f = Some(f);
    let cached = key.try_with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            *slot = Some(make().ok()?);
        }
        let (ctx, f) = (slot.as_mut()?, f.take()?);
        Some(f(ctx))
    });
    if let Ok(Some(result)) = cached {
        return result;
    }
    let mut ctx = make()?;
    match f.take() {
        Some(f) => f(&mut ctx),
        // `f` is only taken by the closure when it also returns its result.
        None => Err(Error::Corrupt("decoder context lost".into())),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Lines of text (the same generator made the committed fixtures in testdata/).
    pub(crate) fn text(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 64);
        let mut i = 0u64;
        while out.len() < len {
            let line = format!("{i:06} squashfs block test line, value {}\n", i * i % 977);
            out.extend_from_slice(line.as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    /// A 128 KiB block like the ones in real images: 96 KiB of this test's own executable
    /// (real x86-64 code, what BCJ filters are for) and 32 KiB of text.
    pub(crate) fn block() -> Vec<u8> {
        let exe =
            std::fs::read(std::env::current_exe().expect("test executable")).expect("readable");
        let start = (exe.len() / 3).min(exe.len().saturating_sub(96 << 10));
        let mut out = exe[start..]
            .iter()
            .copied()
            .take(96 << 10)
            .collect::<Vec<_>>();
        out.extend(text((128 << 10) - out.len()));
        out
    }

    /// Deterministic noise (xorshift64).
    pub(crate) fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Encodes one block the way mksquashfs does (default settings of each codec).
    pub(crate) fn encode(codec: Compression, plain: &[u8]) -> Vec<u8> {
        match codec {
            Compression::Gzip => gzip::tests::encode(plain, 9),
            Compression::Lzma => lzma::tests::encode(plain),
            Compression::Lzo => lzo::tests::encode(plain),
            Compression::Xz => xz::tests::encode(plain, None),
            Compression::Lz4 => lz4::tests::encode(plain, true),
            Compression::Zstd => ::zstd::bulk::compress(plain, 15).expect("zstd encodes"),
        }
    }

    /// Options each codec's decompressor is built with in these tests.
    pub(crate) fn options(codec: Compression) -> Option<&'static [u8]> {
        // Only lz4 requires an options block; mksquashfs -Xhc writes {1, 1}.
        (codec == Compression::Lz4).then_some(&[1, 0, 0, 0, 1, 0, 0, 0][..])
    }

    pub(crate) const ALL: [Compression; 6] = [
        Compression::Gzip,
        Compression::Lzma,
        Compression::Lzo,
        Compression::Xz,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn is_decompress_error(codec: Compression, r: &Result<usize>) -> bool {
        matches!(r, Err(Error::Decompress { codec: c, .. }) if *c == codec.name())
    }

    /// Everything a decoder must do with one good encoded block: decode it into an exact
    /// or larger buffer, refuse a smaller one, and survive truncation and corruption.
    /// `checked`: the format has an end marker and a checksum, so every damaged variant
    /// must be an error; otherwise (lz4, lzo, lzma without a check) it must only not
    /// panic and not claim more than the buffer.
    pub(crate) fn check_block(
        codec: Compression,
        options: Option<&[u8]>,
        encoded: &[u8],
        plain: &[u8],
        checked: bool,
    ) {
        let d = new_decompressor(codec, options).expect("decompressor");
        let mut dst = vec![0u8; plain.len() + 1000];
        assert_eq!(
            d.decompress(encoded, &mut dst[..plain.len()])
                .expect("exact fit"),
            plain.len()
        );
        assert!(dst[..plain.len()] == *plain, "{codec:?}: wrong bytes");
        dst.fill(0xa5);
        assert_eq!(d.decompress(encoded, &mut dst).expect("roomy"), plain.len());
        assert!(
            dst[..plain.len()] == *plain,
            "{codec:?}: wrong bytes in a larger buffer"
        );
        if !plain.is_empty() {
            let r = d.decompress(encoded, &mut dst[..plain.len() - 1]);
            assert!(
                is_decompress_error(codec, &r),
                "{codec:?}: one byte short gave {r:?}"
            );
            let r = d.decompress(encoded, &mut []);
            assert!(
                is_decompress_error(codec, &r),
                "{codec:?}: empty dst gave {r:?}"
            );
        }
        // The Vec path (what the block cache uses) agrees, and holds to its bound.
        let mut v = vec![7u8; 3];
        let n = d.decompress_vec(encoded, &mut v, plain.len()).expect("vec");
        assert!(n == plain.len() && v == *plain, "{codec:?}: decompress_vec");
        if !plain.is_empty() {
            // Into a Vec with room to spare (reused) and into a fresh one (the cache's case).
            for mut v in [v, Vec::new()] {
                let r = d.decompress_vec(encoded, &mut v, plain.len() - 1);
                assert!(
                    is_decompress_error(codec, &r) && v.len() < plain.len(),
                    "{codec:?}: decompress_vec one byte short gave {r:?}"
                );
            }
        }
        let sane = |r: &Result<usize>, dst: &[u8], what: &str| match r {
            Ok(n) => assert!(
                !checked && *n <= dst.len(),
                "{codec:?}: {what} decoded to {n} bytes"
            ),
            Err(_) => assert!(
                is_decompress_error(codec, r),
                "{codec:?}: {what} gave {r:?}"
            ),
        };
        // Truncation: many cut points, including every one of the last 16 bytes.
        let cuts = (0..64)
            .map(|i| i * encoded.len() / 64)
            .chain(encoded.len().saturating_sub(16)..encoded.len());
        for cut in cuts {
            let r = d.decompress(&encoded[..cut], &mut dst);
            if let Ok(n) = r {
                // Without an end marker a cut at an instruction boundary is a shorter block.
                assert!(
                    !checked && n < plain.len(),
                    "{codec:?}: cut at {cut} decoded {n} bytes"
                );
            } else {
                sane(&r, &dst, "truncated input");
            }
        }
        // Corruption: flip one byte at a time at spread positions.
        for i in 0..64 {
            let mut bad = encoded.to_vec();
            let at = i * bad.len() / 64;
            bad[at] ^= 0x5a;
            let r = d.decompress(&bad, &mut dst);
            match &r {
                // A flip inside a literal of an unchecked format changes only the output.
                Ok(_) if !checked => {}
                // A checked format may still decode a flip that changes nothing it reads
                // (padding bits, the code length of a symbol no code uses): then the bytes
                // must be the right ones. The block comes from the test binary, so where such
                // bits fall changes from build to build.
                Ok(n) if *n == plain.len() && dst[..*n] == *plain => {}
                _ => sane(&r, &dst, &format!("flipped byte {at}")),
            }
        }
    }

    #[test]
    fn ids_and_names() {
        for (id, codec, name) in [
            (1, Compression::Gzip, "gzip"),
            (2, Compression::Lzma, "lzma"),
            (3, Compression::Lzo, "lzo"),
            (4, Compression::Xz, "xz"),
            (5, Compression::Lz4, "lz4"),
            (6, Compression::Zstd, "zstd"),
        ] {
            assert_eq!(Compression::from_id(id).unwrap(), codec);
            assert_eq!(codec as u16, id);
            assert_eq!(codec.name(), name);
        }
        for id in [0, 7, 8, 0x100, u16::MAX] {
            assert!(
                matches!(Compression::from_id(id), Err(Error::UnknownCompressor(i)) if i == id)
            );
        }
    }

    #[test]
    fn every_codec_decodes_and_refuses_damage() {
        let plain = block();
        for codec in ALL {
            let checked = matches!(codec, Compression::Gzip | Compression::Xz);
            check_block(
                codec,
                options(codec),
                &encode(codec, &plain),
                &plain,
                checked,
            );
        }
    }

    #[test]
    fn empty_and_tiny_blocks() {
        for codec in ALL {
            for plain in [&b""[..], b"a", b"squashfs"] {
                let encoded = encode(codec, plain);
                let d = new_decompressor(codec, options(codec)).unwrap();
                let mut dst = [0u8; 64];
                assert_eq!(
                    d.decompress(&encoded, &mut dst).unwrap(),
                    plain.len(),
                    "{codec:?}"
                );
                assert_eq!(&dst[..plain.len()], plain);
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in ALL {
            let d = new_decompressor(codec, options(codec)).unwrap();
            let mut dst = vec![0u8; 128 << 10];
            let r = d.decompress(&[], &mut dst);
            assert!(
                is_decompress_error(codec, &r),
                "{codec:?}: empty input gave {r:?}"
            );
            for seed in 0..200u64 {
                let input = noise(seed, (seed as usize * 37) % 5000);
                let r = d.decompress(&input, &mut dst);
                match r {
                    // lz4 and lzo have no header: some noise is a valid short block.
                    Ok(n) => assert!(
                        matches!(codec, Compression::Lz4 | Compression::Lzo) && n <= dst.len()
                    ),
                    Err(_) => assert!(is_decompress_error(codec, &r), "{codec:?}: {r:?}"),
                }
            }
        }
    }

    #[test]
    fn shared_by_many_threads() {
        let plain = block();
        for codec in ALL {
            let encoded = encode(codec, &plain);
            let d = new_decompressor(codec, options(codec)).unwrap();
            std::thread::scope(|s| {
                for t in 0..4 {
                    let (d, encoded, plain) = (&d, &encoded, &plain);
                    s.spawn(move || {
                        let mut dst = vec![0u8; plain.len()];
                        for i in 0..8 {
                            // Interleave failures so a poisoned per-thread context would show.
                            if (i + t) % 3 == 0 {
                                assert!(
                                    d.decompress(&encoded[..encoded.len() / 2], &mut dst)
                                        .is_err()
                                        || codec == Compression::Lz4
                                );
                            }
                            assert_eq!(d.decompress(encoded, &mut dst).unwrap(), plain.len());
                            assert!(dst == *plain);
                        }
                    });
                }
            });
        }
    }

    /// Every setting the writer accepts, one per codec feature.
    fn writable() -> Vec<Encoding> {
        let bs = 128 << 10;
        let mut all = Vec::new();
        for codec in [
            Compression::Gzip,
            Compression::Xz,
            Compression::Zstd,
            Compression::Lz4,
            Compression::Lzo,
        ] {
            all.push(Encoding::new(codec, bs));
        }
        all.push(Encoding {
            level: Some(1),
            ..Encoding::new(Compression::Gzip, bs)
        });
        all.push(Encoding {
            level: Some(3),
            ..Encoding::new(Compression::Zstd, bs)
        });
        all.push(Encoding {
            level: Some(1),
            xz_filters: 0xff,
            ..Encoding::new(Compression::Xz, bs)
        });
        all.push(Encoding {
            lz4_hc: true,
            ..Encoding::new(Compression::Lz4, bs)
        });
        all
    }

    #[test]
    fn every_encoder_round_trips_through_its_decoder() {
        let plain = block();
        for enc in writable() {
            let options = enc.options();
            let d = new_decompressor(enc.codec, options.as_deref())
                .unwrap_or_else(|e| panic!("{enc:?}: its options block is refused: {e}"));
            let mut c = enc.compressor().unwrap();
            let mut packed = Vec::new();
            for input in [plain.clone(), text(5000), vec![0; 4096], b"ab".repeat(64)] {
                assert!(
                    c.compress(&input, &mut packed).unwrap(),
                    "{enc:?} did not shrink"
                );
                assert!(packed.len() < input.len());
                let mut out = vec![0; input.len()];
                assert_eq!(d.decompress(&packed, &mut out).unwrap(), input.len());
                assert!(out == input, "{enc:?}: wrong bytes back");
                // Deterministic: the same block gives the same bytes.
                let mut again = Vec::new();
                c.compress(&input, &mut again).unwrap();
                assert_eq!(again, packed, "{enc:?}");
            }
            // Noise does not shrink; nor do one-byte and empty blocks.
            for input in [noise(9, 128 << 10), vec![7], Vec::new()] {
                assert!(!c.compress(&input, &mut packed).unwrap(), "{enc:?}");
            }
        }
    }

    #[test]
    fn the_slow_codecs_still_shrink_skewed_bytes_without_repeats() {
        // Random bytes from 16 symbols: no repeats to speak of, but 4 bits a byte, which
        // the probe's literal coding sees.
        let skewed: Vec<u8> = noise(5, 128 << 10).iter().map(|b| b & 0x0f).collect();
        for codec in [Compression::Xz, Compression::Zstd] {
            let mut c = Encoding::new(codec, 128 << 10).compressor().unwrap();
            let mut out = Vec::new();
            assert!(c.compress(&skewed, &mut out).unwrap(), "{codec:?}");
            assert!(
                out.len() < skewed.len() * 6 / 10,
                "{codec:?}: {}",
                out.len()
            );
            assert!(!c.compress(&noise(6, 128 << 10), &mut out).unwrap());
        }
    }

    #[test]
    fn xz_keeps_the_filter_that_wins() {
        // x86 calls (E8 rel32) to a few targets, stored pc-relative as real code stores
        // them: the x86 filter makes them absolute, which compresses better.
        let mut plain = Vec::new();
        let mut r = 1u64;
        while plain.len() < 128 << 10 {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let target = ((r >> 33) % 8) as i64 * 4096;
            let rel = (target - (plain.len() as i64 + 5)) as i32;
            plain.push(0xe8);
            plain.extend(rel.to_le_bytes());
            plain.extend([0x90, 0x90, 0x90]);
        }
        let mut without = Vec::new();
        let mut with = Vec::new();
        let mut xz = Encoding::new(Compression::Xz, 128 << 10);
        xz.compressor()
            .unwrap()
            .compress(&plain, &mut without)
            .unwrap();
        xz.xz_filters = 1; // x86
        xz.compressor()
            .unwrap()
            .compress(&plain, &mut with)
            .unwrap();
        assert!(
            with.len() < without.len(),
            "{} vs {}",
            with.len(),
            without.len()
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let bs = 128 << 10;
        for enc in [
            Encoding::new(Compression::Lzma, bs),
            Encoding {
                level: Some(10),
                ..Encoding::new(Compression::Gzip, bs)
            },
            Encoding {
                level: Some(0),
                ..Encoding::new(Compression::Zstd, bs)
            },
            Encoding {
                level: Some(5),
                ..Encoding::new(Compression::Lz4, bs)
            },
            Encoding {
                level: Some(5),
                ..Encoding::new(Compression::Lzo, bs)
            },
            Encoding {
                xz_filters: 1,
                ..Encoding::new(Compression::Gzip, bs)
            },
            Encoding {
                xz_filters: 0x100,
                ..Encoding::new(Compression::Xz, bs)
            },
            Encoding {
                lz4_hc: true,
                ..Encoding::new(Compression::Zstd, bs)
            },
        ] {
            assert!(
                matches!(enc.compressor(), Err(Error::CompressorOptions(_))),
                "{enc:?}"
            );
        }
    }

    #[test]
    fn options_are_checked_when_building() {
        assert!(matches!(
            new_decompressor(Compression::Lz4, None),
            Err(Error::CompressorOptions(_))
        ));
        assert!(matches!(
            new_decompressor(Compression::Lzma, Some(&[0; 4])),
            Err(Error::CompressorOptions(_))
        ));
        assert!(matches!(
            new_decompressor(Compression::Zstd, Some(&[0; 3])),
            Err(Error::CompressorOptions(_))
        ));
        for codec in ALL {
            assert!(new_decompressor(codec, options(codec)).is_ok());
        }
    }
}

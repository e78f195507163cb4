//! Decompressors for every codec mksquashfs and gensquashfs write, behind one trait.
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
mod xz;
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

//! The compressor-options block (superblock flag 0x0400), parsed and validated per codec.
//!
//! Layouts are squashfs-tools' `*_wrapper.h` structs, little endian. None of these fields
//! changes how a block is decoded (every stream describes itself), so they are only checked:
//! a block that does not match what the options promise is refused by the decoder anyway.
//! Everything refused here is refused by unsquashfs, squashfs-tools-ng or the kernel too;
//! the one thing accepted that some of them refuse is the 12-byte LZ4 layout of current
//! squashfs-tools, which the kernel reads fine.

use super::Compression;
use crate::error::{Error, Result};

/// The validated options of an image, for display (e.g. `sqfs info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressorOptions {
    /// No options block: the codec's defaults.
    Default,
    Gzip {
        level: u32,
        window_bits: u16,
        /// Bitmask of zlib strategies tried by mksquashfs (default, filtered, huffman, rle, fixed).
        strategies: u16,
    },
    Xz {
        dictionary_size: u32,
        /// Bitmask of BCJ filters tried by mksquashfs, in [`XZ_FILTER_NAMES`] order.
        filters: u32,
    },
    Lz4 {
        high_compression: bool,
        /// HC level or acceleration, written by squashfs-tools newer than 4.7.5 only.
        tuning: Option<u32>,
    },
    Zstd {
        level: i32,
    },
    Lzo {
        algorithm: u32,
        level: u32,
    },
}

/// mksquashfs `-Xbcj` names by bit position in the xz `filters` mask (xz_wrapper.c `bcj[]`).
/// squashfs-tools-ng uses the same first six bits.
pub const XZ_FILTER_NAMES: [&str; 8] = [
    "x86", "powerpc", "ia64", "arm", "armthumb", "sparc", "arm64", "riscv",
];

/// lzo algorithm numbers (lzo_wrapper.h); only lzo1x_999 takes a level.
const LZO1X_999: u32 = 4;
/// The only LZ4 stream format squashfs has ever used (lz4_wrapper.h `LZ4_LEGACY`).
const LZ4_LEGACY: u32 = 1;
const LZ4_HC: u32 = 1;
/// Set when the 12-byte layout carries a level or acceleration (squashfs-tools > 4.7.5).
const LZ4_NON_DEFAULT: u32 = 2;
/// zlib strategies mksquashfs and gensquashfs know: five bits.
const GZIP_STRATEGIES: u16 = 0x1f;
/// Reject only what zstd itself rejects; mksquashfs writes 1..=22 (ZSTD_minCLevel is -131072).
const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = -(1 << 17)..=22;

/// Parses and validates `options` (the decompressed options metadata block) for `codec`.
pub fn parse(codec: Compression, options: Option<&[u8]>) -> Result<CompressorOptions> {
    let Some(raw) = options else {
        // The kernel and unsquashfs refuse LZ4 images without options: the block tells
        // which LZ4 format is used, and mksquashfs and gensquashfs always write it.
        if codec == Compression::Lz4 {
            return Err(bad("lz4 images must carry compressor options".into()));
        }
        return Ok(CompressorOptions::Default);
    };
    match codec {
        Compression::Gzip => gzip(raw),
        Compression::Xz => xz(raw),
        Compression::Lz4 => lz4(raw),
        Compression::Zstd => zstd(raw),
        Compression::Lzo => lzo(raw),
        // lzma_xz_wrapper.c has no options and squashfs-tools-ng refuses any.
        Compression::Lzma => Err(bad("lzma takes no compressor options".into())),
    }
}

fn gzip(raw: &[u8]) -> Result<CompressorOptions> {
    // {int level; short window_size; short strategy}: the two shorts share the second word.
    let [level, packed] = words::<2>(raw, "gzip")?;
    let (window_bits, strategies) = (packed as u16, (packed >> 16) as u16);
    if !(1..=9).contains(&level) {
        return Err(bad(format!("gzip compression level {level} not in 1..=9")));
    }
    if !(8..=15).contains(&window_bits) {
        return Err(bad(format!("gzip window size {window_bits} not in 8..=15")));
    }
    if strategies & !GZIP_STRATEGIES != 0 {
        return Err(bad(format!(
            "gzip strategies {strategies:#x} has unknown bits"
        )));
    }
    Ok(CompressorOptions::Gzip {
        level,
        window_bits,
        strategies,
    })
}

fn xz(raw: &[u8]) -> Result<CompressorOptions> {
    let [dictionary_size, filters] = words::<2>(raw, "xz")?;
    // The kernel sizes its decoder from this and accepts only 2^n or 2^n + 2^(n+1).
    let low = dictionary_size & dictionary_size.wrapping_neg();
    if dictionary_size == 0
        || (dictionary_size != low && Some(dictionary_size) != low.checked_mul(3))
    {
        return Err(bad(format!(
            "xz dictionary size {dictionary_size} is not 2^n or 3*2^n"
        )));
    }
    if filters >> XZ_FILTER_NAMES.len() != 0 {
        return Err(bad(format!("xz filter mask {filters:#x} has unknown bits")));
    }
    Ok(CompressorOptions::Xz {
        dictionary_size,
        filters,
    })
}

fn lz4(raw: &[u8]) -> Result<CompressorOptions> {
    // squashfs-tools 4.7.5 and earlier, the kernel and squashfs-tools-ng: {version, flags}.
    // squashfs-tools after 4.7.5 writes {version, flags | NON_DEFAULT, level} when a
    // non-default HC level or acceleration is chosen; the block format is the same.
    let (version, flags, tuning) = match raw.len() {
        8 => {
            let [version, flags] = words::<2>(raw, "lz4")?;
            if flags & !LZ4_HC != 0 {
                return Err(bad(format!("lz4 flags {flags:#x} has unknown bits")));
            }
            (version, flags, None)
        }
        12 => {
            let [version, flags, tuning] = words::<3>(raw, "lz4")?;
            if flags & !(LZ4_HC | LZ4_NON_DEFAULT) != 0 || flags & LZ4_NON_DEFAULT == 0 {
                return Err(bad(format!(
                    "lz4 flags {flags:#x} invalid for the 12-byte layout"
                )));
            }
            (version, flags, Some(tuning))
        }
        n => return Err(bad(format!("lz4 options are {n} bytes, expected 8 or 12"))),
    };
    if version != LZ4_LEGACY {
        return Err(bad(format!(
            "lz4 format version {version} unknown (only 1, legacy)"
        )));
    }
    Ok(CompressorOptions::Lz4 {
        high_compression: flags & LZ4_HC != 0,
        tuning,
    })
}

fn zstd(raw: &[u8]) -> Result<CompressorOptions> {
    let [level] = words::<1>(raw, "zstd")?;
    let level = level as i32;
    // Same test as unsquashfs: 0 means "default" to zstd but mksquashfs never writes it.
    if level == 0 || !ZSTD_LEVELS.contains(&level) {
        return Err(bad(format!("zstd compression level {level} invalid")));
    }
    Ok(CompressorOptions::Zstd { level })
}

fn lzo(raw: &[u8]) -> Result<CompressorOptions> {
    let [algorithm, level] = words::<2>(raw, "lzo")?;
    let valid_level = match algorithm {
        0..=3 => level == 0,
        LZO1X_999 => (1..=9).contains(&level),
        _ => return Err(bad(format!("lzo algorithm {algorithm} not in 0..=4"))),
    };
    if !valid_level {
        return Err(bad(format!(
            "lzo compression level {level} invalid for algorithm {algorithm}"
        )));
    }
    Ok(CompressorOptions::Lzo { algorithm, level })
}

/// Reads `raw` as exactly `N` little-endian u32 fields; any other length is refused.
fn words<const N: usize>(raw: &[u8], codec: &str) -> Result<[u32; N]> {
    if raw.len() != 4 * N {
        let n = raw.len();
        return Err(bad(format!(
            "{codec} options are {n} bytes, expected {}",
            4 * N
        )));
    }
    let mut out = [0u32; N];
    for (word, bytes) in out.iter_mut().zip(raw.chunks_exact(4)) {
        *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    Ok(out)
}

fn bad(msg: String) -> Error {
    Error::CompressorOptions(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(codec: Compression, raw: &[u8]) -> CompressorOptions {
        parse(codec, Some(raw)).unwrap_or_else(|e| panic!("{codec:?} {raw:02x?}: {e}"))
    }

    fn refused(codec: Compression, raw: &[u8]) {
        let r = parse(codec, Some(raw));
        assert!(
            matches!(r, Err(Error::CompressorOptions(_))),
            "{codec:?} {raw:02x?}: {r:?}"
        );
    }

    fn le(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn blocks_written_by_mksquashfs_4_5() {
        // Read back from images made by Debian 12's mksquashfs with these options.
        use Compression::*;
        // gzip -Xcompression-level 1 -Xwindow-size 8 -Xstrategy (all five)
        let gzip = [1, 0, 0, 0, 8, 0, 0x1f, 0];
        assert_eq!(
            ok(Gzip, &gzip),
            CompressorOptions::Gzip {
                level: 1,
                window_bits: 8,
                strategies: 0x1f
            }
        );
        // xz -Xbcj x86,arm,armthumb,powerpc,sparc,ia64 ; xz -Xdict-size 75%
        let xz = [0, 0, 2, 0, 0x3f, 0, 0, 0];
        assert_eq!(
            ok(Xz, &xz),
            CompressorOptions::Xz {
                dictionary_size: 1 << 17,
                filters: 0x3f
            }
        );
        let xz = [0, 0x80, 1, 0, 0, 0, 0, 0];
        assert_eq!(
            ok(Xz, &xz),
            CompressorOptions::Xz {
                dictionary_size: 98304,
                filters: 0
            }
        );
        // lz4 ; lz4 -Xhc
        let lz4 = [1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            ok(Lz4, &lz4),
            CompressorOptions::Lz4 {
                high_compression: false,
                tuning: None
            }
        );
        let lz4 = [1, 0, 0, 0, 1, 0, 0, 0];
        assert_eq!(
            ok(Lz4, &lz4),
            CompressorOptions::Lz4 {
                high_compression: true,
                tuning: None
            }
        );
        // zstd -Xcompression-level 19
        assert_eq!(
            ok(Zstd, &[0x13, 0, 0, 0]),
            CompressorOptions::Zstd { level: 19 }
        );
        // lzo -Xalgorithm lzo1x_1 ; lzo -Xcompression-level 3
        assert_eq!(
            ok(Lzo, &[0; 8]),
            CompressorOptions::Lzo {
                algorithm: 0,
                level: 0
            }
        );
        let lzo = [4, 0, 0, 0, 3, 0, 0, 0];
        assert_eq!(
            ok(Lzo, &lzo),
            CompressorOptions::Lzo {
                algorithm: 4,
                level: 3
            }
        );
    }

    #[test]
    fn absent_options_mean_defaults_except_for_lz4() {
        for codec in [
            Compression::Gzip,
            Compression::Lzma,
            Compression::Lzo,
            Compression::Xz,
            Compression::Zstd,
        ] {
            assert_eq!(parse(codec, None).unwrap(), CompressorOptions::Default);
        }
        assert!(matches!(
            parse(Compression::Lz4, None),
            Err(Error::CompressorOptions(_))
        ));
    }

    #[test]
    fn wrong_lengths() {
        for (codec, len) in [
            (Compression::Gzip, 8),
            (Compression::Xz, 8),
            (Compression::Zstd, 4),
            (Compression::Lzo, 8),
            (Compression::Lz4, 8),
        ] {
            for bad in [0, len - 1, len + 1, len + 4] {
                if codec == Compression::Lz4 && bad == 12 {
                    continue; // the newer 12-byte layout
                }
                refused(codec, &vec![1; bad]);
            }
        }
        // lzma has no options at all, whatever their length.
        refused(Compression::Lzma, &[]);
        refused(Compression::Lzma, &le(&[5]));
    }

    #[test]
    fn gzip_fields() {
        let gzip = |level: u32, window: u16, strategies: u16| {
            le(&[level, u32::from(window) | u32::from(strategies) << 16])
        };
        ok(Compression::Gzip, &gzip(9, 15, 0));
        ok(Compression::Gzip, &gzip(1, 8, 0x1f));
        for (level, window, strategies) in [
            (0, 15, 0),
            (10, 15, 0),
            (u32::MAX, 15, 0),
            (9, 7, 0),
            (9, 16, 0),
            (9, 0xffff, 0),
            (9, 15, 0x20),
        ] {
            refused(Compression::Gzip, &gzip(level, window, strategies));
        }
    }

    #[test]
    fn xz_fields() {
        for dict in [8192, 1 << 17, 3 << 15, 1 << 20, 3 << 18, 1 << 31] {
            ok(Compression::Xz, &le(&[dict, 0]));
        }
        ok(Compression::Xz, &le(&[1 << 17, 0xff])); // all eight filters, arm64 and riscv too
        for dict in [0, 5 << 14, 7 << 14, (1 << 17) + 1, u32::MAX] {
            refused(Compression::Xz, &le(&[dict, 0]));
        }
        refused(Compression::Xz, &le(&[1 << 17, 0x100]));
    }

    #[test]
    fn lz4_fields() {
        refused(Compression::Lz4, &le(&[2, 0]));
        refused(Compression::Lz4, &le(&[0, 0]));
        refused(Compression::Lz4, &le(&[1, 2]));
        refused(Compression::Lz4, &le(&[1, 4]));
        // The 12-byte layout: NON_DEFAULT must be set, nothing beyond HC | NON_DEFAULT.
        let v2 = ok(Compression::Lz4, &le(&[1, 3, 9]));
        assert_eq!(
            v2,
            CompressorOptions::Lz4 {
                high_compression: true,
                tuning: Some(9)
            }
        );
        let v2 = ok(Compression::Lz4, &le(&[1, 2, 4]));
        assert_eq!(
            v2,
            CompressorOptions::Lz4 {
                high_compression: false,
                tuning: Some(4)
            }
        );
        refused(Compression::Lz4, &le(&[1, 1, 9]));
        refused(Compression::Lz4, &le(&[1, 7, 9]));
        refused(Compression::Lz4, &le(&[2, 3, 9]));
    }

    #[test]
    fn zstd_fields() {
        for level in [1, 15, 22, -1, -(1 << 17)] {
            ok(Compression::Zstd, &le(&[level as u32]));
        }
        for level in [0, 23, -(1 << 17) - 1, i32::MIN] {
            refused(Compression::Zstd, &le(&[level as u32]));
        }
    }

    #[test]
    fn lzo_fields() {
        for algorithm in 0..4 {
            ok(Compression::Lzo, &le(&[algorithm, 0]));
            refused(Compression::Lzo, &le(&[algorithm, 1]));
        }
        for level in 1..=9 {
            ok(Compression::Lzo, &le(&[4, level]));
        }
        refused(Compression::Lzo, &le(&[4, 0]));
        refused(Compression::Lzo, &le(&[4, 10]));
        refused(Compression::Lzo, &le(&[5, 0]));
    }
}

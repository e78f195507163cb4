//! lzo: one raw lzo1x block per block. Every lzo_wrapper.c algorithm (lzo1x_1, _11, _12,
//! _15, _999) writes the same lzo1x bitstream, so one decoder reads them all.
//!
//! The decoder is our own, in safe Rust, with the checks of liblzo's
//! lzo1x_decompress_safe. The crates.io choices were either GPL (rust-lzo, minilzo-rs:
//! this crate is MIT/Apache), slower (lzo: byte-at-a-time match copies, see
//! bench/codecs.md), or growing a Vec without bound (lzokay-native).
//!
//! The bitstream (as documented in Linux's Documentation/staging/lzo.rst): a sequence of
//! instructions, each a literal run or a back-reference (match) optionally followed by
//! 0..3 literals whose count is carried in the instruction's low two bits ("state"). The
//! meaning of opcodes 0..15 depends on how many literals the previous instruction copied.

use super::{fail, too_long, Compression, Compressor, Decompressor};
use crate::error::Result;

pub(super) struct Lzo;

impl Decompressor for Lzo {
    fn decompress(&self, src: &[u8], dst: &mut [u8]) -> Result<usize> {
        decode(src, dst).map_err(|e| match e {
            Bad::OutputOverrun => fail(Compression::Lzo, too_long(dst)),
            Bad::InputOverrun => fail(Compression::Lzo, "truncated block"),
            Bad::LookBehind => fail(Compression::Lzo, "match distance before the block start"),
            Bad::NotConsumed => fail(Compression::Lzo, "bytes after the end marker"),
            Bad::EndMarker => fail(Compression::Lzo, "malformed end marker"),
        })
    }
}

/// The writer's side: lzokay's lzo1x encoder (MIT; its output is the lzo1x bitstream every
/// lzo1x decoder reads, the kernel's included). Each block it makes is decoded again by
/// the decoder above before it is used: the encoder is a port of C with raw pointers, and
/// a block that would not read back is stored uncompressed instead.
pub(super) struct LzoWriter {
    dict: lzokay_native::Dict,
    check: Vec<u8>,
}

impl LzoWriter {
    pub(super) fn new() -> Self {
        LzoWriter {
            dict: lzokay_native::Dict::new(),
            check: Vec::new(),
        }
    }
}

impl Compressor for LzoWriter {
    fn compress(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<bool> {
        if src.len() < 2 {
            return Ok(false);
        }
        let Ok(encoded) = lzokay_native::compress_with_dict(src, &mut self.dict) else {
            return Ok(false);
        };
        if encoded.len() >= src.len() {
            return Ok(false);
        }
        self.check.clear();
        self.check.resize(src.len(), 0);
        match decode(&encoded, &mut self.check) {
            Ok(n) if n == src.len() && self.check == src => {
                *dst = encoded;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Bad {
    InputOverrun,
    OutputOverrun,
    LookBehind,
    NotConsumed,
    EndMarker,
}

/// Distance base of the 3-byte matches that follow a literal run of four or more.
const M2_FAR: usize = 2049;
/// Distance base of the 16..31 opcodes; an offset of 0 from it is the end marker.
const M4_BASE: usize = 16384;

/// Decodes one lzo1x block into `dst`, returning the decoded length.
fn decode(src: &[u8], dst: &mut [u8]) -> std::result::Result<usize, Bad> {
    let mut r = Reader { src, ip: 0 };
    let mut op = 0;
    // Literals copied by the previous instruction: 0, 1..=3, or 4 for "four or more".
    let mut state = 0;
    // First byte 18..=255: a literal run of byte - 17 with no opcode of its own.
    if let Some(&first) = src.first() {
        if first > 17 {
            r.ip = 1;
            let n = usize::from(first - 17);
            copy_literals(&mut r, dst, &mut op, n)?;
            state = n.min(4);
        }
    }
    loop {
        let t = usize::from(r.byte()?);
        let (distance, length, next);
        if t < 16 {
            match state {
                0 => {
                    // Literal run: 0000LLLL, length 3 + (L or 15 + extension).
                    let n = 3 + if t == 0 { 15 + r.extension()? } else { t };
                    copy_literals(&mut r, dst, &mut op, n)?;
                    state = 4;
                    continue;
                }
                // After 1..3 literals: 2 bytes from within 1 KiB.
                1..=3 => (distance, length) = ((usize::from(r.byte()?) << 2) + (t >> 2) + 1, 2),
                // After a literal run: 3 bytes from 2..3 KiB back.
                _ => (distance, length) = ((usize::from(r.byte()?) << 2) + (t >> 2) + M2_FAR, 3),
            }
            next = t & 3;
        } else if t >= 64 {
            // 01LDDDSS / 1LLDDDSS + one byte: 3..8 bytes from within 2 KiB.
            distance = (usize::from(r.byte()?) << 3) + ((t >> 2) & 7) + 1;
            length = (t >> 5) + 1;
            next = t & 3;
        } else if t >= 32 {
            // 001LLLLL + LE16: length 2 + (L or 31 + extension), within 16 KiB.
            let l = t & 31;
            length = 2 + if l == 0 { 31 + r.extension()? } else { l };
            let word = r.le16()?;
            distance = (word >> 2) + 1;
            next = word & 3;
        } else {
            // 0001HLLL + LE16: length 2 + (L or 7 + extension), 16..48 KiB back.
            let l = t & 7;
            length = 2 + if l == 0 { 7 + r.extension()? } else { l };
            let word = r.le16()?;
            let offset = ((t & 8) << 11) + (word >> 2);
            if offset == 0 {
                // End marker, always written as 0x11 0x00 0x00; the kernel insists on it.
                if length != 3 {
                    return Err(Bad::EndMarker);
                }
                return if r.ip == src.len() {
                    Ok(op)
                } else {
                    Err(Bad::NotConsumed)
                };
            }
            distance = offset + M4_BASE;
            next = word & 3;
        }
        copy_match(dst, &mut op, distance, length)?;
        copy_literals(&mut r, dst, &mut op, next)?;
        state = next;
    }
}

struct Reader<'a> {
    src: &'a [u8],
    ip: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> std::result::Result<u8, Bad> {
        let b = *self.src.get(self.ip).ok_or(Bad::InputOverrun)?;
        self.ip += 1;
        Ok(b)
    }

    fn le16(&mut self) -> std::result::Result<usize, Bad> {
        let b = self
            .src
            .get(self.ip..self.ip + 2)
            .ok_or(Bad::InputOverrun)?;
        self.ip += 2;
        Ok(usize::from(b[0]) | usize::from(b[1]) << 8)
    }

    /// A length extension: each zero byte adds 255, the first non-zero byte ends it.
    /// Bounded by the input length, so it cannot overflow.
    fn extension(&mut self) -> std::result::Result<usize, Bad> {
        let rest = self.src.get(self.ip..).unwrap_or_default();
        let zeros = rest.iter().position(|&b| b != 0).ok_or(Bad::InputOverrun)?;
        self.ip += zeros + 1;
        Ok(zeros * 255 + usize::from(rest[zeros]))
    }
}

fn copy_literals(
    r: &mut Reader,
    dst: &mut [u8],
    op: &mut usize,
    n: usize,
) -> std::result::Result<(), Bad> {
    if n <= 16 && r.ip + 16 <= r.src.len() && *op + 16 <= dst.len() {
        // Most literal runs are short: one fixed 16-byte copy beats a memcpy call. The
        // bytes past the run are overwritten by what follows or lie beyond the result.
        let chunk: [u8; 16] = r.src[r.ip..r.ip + 16].try_into().unwrap_or([0; 16]);
        dst[*op..*op + 16].copy_from_slice(&chunk);
    } else {
        let from = r.src.get(r.ip..r.ip + n).ok_or(Bad::InputOverrun)?;
        let to = dst.get_mut(*op..*op + n).ok_or(Bad::OutputOverrun)?;
        to.copy_from_slice(from);
    }
    r.ip += n;
    *op += n;
    Ok(())
}

/// Copies `length` bytes from `distance` back; overlapping copies repeat the pattern.
fn copy_match(
    dst: &mut [u8],
    op: &mut usize,
    distance: usize,
    length: usize,
) -> std::result::Result<(), Bad> {
    let start = op.checked_sub(distance).ok_or(Bad::LookBehind)?;
    let end = *op + length;
    if end > dst.len() {
        return Err(Bad::OutputOverrun);
    }
    if distance >= 16 && length <= 64 && end + 16 <= dst.len() {
        // Short and middling matches that do not overlap a 16-byte step: fixed 16-byte
        // copies, each of bytes already written (the source runs `distance` >= 16 behind).
        let (mut from, mut to) = (start, *op);
        while to < end {
            let chunk: [u8; 16] = dst[from..from + 16].try_into().unwrap_or([0; 16]);
            dst[to..to + 16].copy_from_slice(&chunk);
            from += 16;
            to += 16;
        }
    } else if distance >= 8 && length <= 8 && *op + 8 <= dst.len() {
        // Most lzo matches are short: one fixed 8-byte copy beats a memmove call. The
        // bytes past `end` are overwritten by what follows or lie beyond the result.
        let chunk: [u8; 8] = dst[start..start + 8].try_into().unwrap_or([0; 8]);
        dst[*op..*op + 8].copy_from_slice(&chunk);
    } else if distance >= length {
        dst.copy_within(start..start + length, *op);
    } else {
        // dst[start..op] is one period of the pattern; doubling it keeps it periodic.
        let mut at = *op;
        while at < end {
            let n = (at - start).min(end - at);
            dst.copy_within(start..start + n, at);
            at += n;
        }
    }
    *op = end;
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::tests::{block, check_block, noise, text};
    use super::super::Compression;
    use super::{decode, Bad};

    /// An lzo1x block from lzokay (an MIT encoder of the same bitstream).
    pub(in crate::compress) fn encode(plain: &[u8]) -> Vec<u8> {
        if plain.is_empty() {
            // liblzo writes a lone end marker for nothing; lzokay writes nothing at all.
            return vec![0x11, 0, 0];
        }
        lzokay_native::compress(plain).expect("lzokay encodes")
    }

    #[test]
    fn lzokay_blocks() {
        for plain in [block(), text(128 << 10), noise(7, 128 << 10)] {
            check_block(Compression::Lzo, None, &encode(&plain), &plain, false);
        }
    }

    #[test]
    fn short_runs_and_matches_of_every_distance_decode_exactly() {
        // Repeats of every period 1..48 cut into pieces of every length 1..70, between
        // short literal runs: the decoder's fixed-size copies for short literal runs and
        // matches (which write past the run) against its exact ones, near the end of the
        // output too (decoded into exactly the plain length and into room to spare).
        let mut x = 12345u32;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut plain = Vec::new();
        for period in 1..48usize {
            for len in 1..70usize {
                let base = plain.len();
                for i in 0..(rand() % 4) {
                    plain.push((rand() >> 8) as u8 ^ i as u8);
                }
                let motif: Vec<u8> = (0..period).map(|_| (rand() >> 16) as u8).collect();
                plain.extend((0..len + period).map(|i| motif[i % period]));
                if plain.len() - base > 200 {
                    break;
                }
            }
        }
        for cut in [plain.len(), 4097, 130, 17, 16, 9] {
            let plain = &plain[..cut.min(plain.len())];
            let encoded = encode(plain);
            let mut exact = vec![0u8; plain.len()];
            assert_eq!(decode(&encoded, &mut exact), Ok(plain.len()), "cut {cut}");
            assert_eq!(exact, plain, "cut {cut}");
            let mut roomy = vec![0u8; plain.len() + 100];
            assert_eq!(decode(&encoded, &mut roomy), Ok(plain.len()), "cut {cut}");
            assert_eq!(&roomy[..plain.len()], plain, "cut {cut}");
        }
    }

    #[test]
    fn liblzo_lzo1x_999_block() {
        // `lzop -9` (liblzo2's lzo1x_999, what mksquashfs -comp lzo uses) of text(40000).
        let fixture = include_bytes!("testdata/text40000.lzo1x_999");
        check_block(Compression::Lzo, None, fixture, &text(40000), false);
    }

    #[test]
    fn hand_made_streams() {
        let mut dst = [0u8; 200];
        // Just the end marker: an empty block.
        assert_eq!(decode(&[0x11, 0, 0], &mut dst), Ok(0));
        // One literal, then a 100-byte match at distance 1 (M3 with a length extension of
        // 67: 2 + 31 + 67), then the end marker: an overlapping copy.
        let rle = [18, b'a', 0x20, 67, 0, 0, 0x11, 0, 0];
        assert_eq!(decode(&rle, &mut dst), Ok(101));
        assert!(dst[..101].iter().all(|&b| b == b'a'));
        assert_eq!(decode(&rle, &mut dst[..100]), Err(Bad::OutputOverrun));
        // A match reaching before the start of the block.
        assert_eq!(
            decode(&[18, b'a', 0x23, 0x14, 0, 0x11, 0, 0], &mut dst),
            Err(Bad::LookBehind)
        );
        // Bytes after the end marker, and an end marker with the wrong length.
        assert_eq!(decode(&[0x11, 0, 0, 0], &mut dst), Err(Bad::NotConsumed));
        assert_eq!(
            decode(&[18, b'a', 0x12, 0, 0], &mut dst),
            Err(Bad::EndMarker)
        );
        // A length extension that runs off the end of the input.
        let mut zeros = vec![0u8; 10_000];
        zeros[0] = 0;
        assert_eq!(decode(&zeros, &mut dst), Err(Bad::InputOverrun));
        assert_eq!(decode(&[], &mut dst), Err(Bad::InputOverrun));
    }
}

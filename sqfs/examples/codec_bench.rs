//! Times the `sqfs` decompressors on the real data blocks of mksquashfs images; driven by
//! bench/codecs.sh, which also times the C command-line tools on the same blocks.
//!
//! usage: codec_bench [--runs N] [--cli-dir DIR] CORPUS IMAGE...
//!
//! Each IMAGE must hold one regular file, CORPUS, stored without fragments
//! (`mksquashfs dir img -no-fragments`). Every data block is decoded and checked against
//! CORPUS, then all blocks are decoded RUNS more times on one thread and the median pass
//! (wall-clock and on-CPU seconds) is reported as one tab-separated line per image. With --cli-dir the same compressed blocks
//! are rewrapped into the container of the codec's command-line tool (concatenated .xz or
//! .zst streams, gzip members, one lz4 frame of independent blocks, an lzop file), so
//! `xz -d`, `zstd -d`, `gzip -d`, `lz4 -d` and `lzop -d` decode exactly the same
//! compressed bytes. The image parsing here is the bare minimum for such images; it is a
//! benchmark tool, not the reader.

use std::io::Write;
use std::time::Instant;

use sqfs::internals::{new_decompressor, Decompressor};
use sqfs::Compression;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1).collect::<Vec<_>>();
    let mut runs = 5usize;
    let mut cli_dir = None;
    while args.first().is_some_and(|a| a.starts_with("--")) {
        let flag = args.remove(0);
        let value = if args.is_empty() {
            return Err(format!("{flag} needs a value").into());
        } else {
            args.remove(0)
        };
        match flag.as_str() {
            "--runs" => runs = value.parse()?,
            "--cli-dir" => cli_dir = Some(std::path::PathBuf::from(value)),
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    if args.len() < 2 {
        return Err("usage: codec_bench [--runs N] [--cli-dir DIR] CORPUS IMAGE...".into());
    }
    let corpus = std::fs::read(&args[0])?;
    println!("image\tcodec\tblocks\tcompressed\tuncompressed\twall_s\tcpu_s\txz_filters");
    for path in &args[1..] {
        let image = Image::open(path)?;
        let blocks = image.blocks(&corpus)?;
        let filters = xz_filter_usage(&image, &blocks);
        let (wall, cpu) = time_decode(&image, &blocks, &corpus, runs)?;
        let packed: usize = blocks.iter().map(|b| b.data.len()).sum();
        println!(
            "{path}\t{}\t{}\t{packed}\t{}\t{wall:.4}\t{cpu:.4}\t{filters}",
            image.codec.name(),
            blocks.len(),
            corpus.len()
        );
        if let Some(dir) = &cli_dir {
            let stem = std::path::Path::new(path)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("img");
            if let Some((ext, bytes)) =
                cli_container(image.codec, &blocks, &corpus, image.block_size)?
            {
                std::fs::write(dir.join(format!("{stem}.{ext}")), bytes)?;
            }
        }
    }
    Ok(())
}

struct Image {
    bytes: Vec<u8>,
    codec: Compression,
    block_size: usize,
    decoder: Box<dyn Decompressor>,
}

/// One data block of the file: its compressed bytes and whether mksquashfs stored it raw.
struct Block<'a> {
    data: &'a [u8],
    stored: bool,
}

impl Image {
    fn open(path: &str) -> Res<Self> {
        let bytes = std::fs::read(path)?;
        let sb = bytes.get(..96).ok_or("image shorter than a superblock")?;
        if le32(sb, 0) != 0x7371_7368 {
            return Err("not a squashfs image".into());
        }
        let codec = Compression::from_id(le16(sb, 20))?;
        let block_size = le32(sb, 12) as usize;
        // Compressor options: one metadata block right after the superblock, stored raw.
        let options = if le16(sb, 24) & 0x0400 != 0 {
            let header = le16(&bytes, 96);
            if header & 0x8000 == 0 {
                return Err("compressed compressor options are not handled here".into());
            }
            Some(bytes[98..98 + (header & 0x7fff) as usize].to_vec())
        } else {
            None
        };
        let decoder = new_decompressor(codec, options.as_deref())?;
        Ok(Self {
            bytes,
            codec,
            block_size,
            decoder,
        })
    }

    /// Reads metadata blocks from `start` until `want` bytes are decoded.
    fn metadata(&self, mut start: usize, want: usize) -> Res<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        while out.len() < want {
            let header = le16(&self.bytes, start);
            let len = (header & 0x7fff) as usize;
            let raw = self
                .bytes
                .get(start + 2..start + 2 + len)
                .ok_or("metadata past the end")?;
            if header & 0x8000 != 0 {
                out.extend_from_slice(raw);
            } else {
                let n = self.decoder.decompress(raw, &mut buf)?;
                out.extend_from_slice(&buf[..n]);
            }
            start += 2 + len;
        }
        Ok(out)
    }

    /// The data blocks of the image's first inode, which must be CORPUS without fragments.
    fn blocks(&self, corpus: &[u8]) -> Res<Vec<Block<'_>>> {
        let inode_table = le64(&self.bytes, 64) as usize;
        let count = corpus.len().div_ceil(self.block_size);
        let table = self.metadata(inode_table, 56 + 4 * count)?;
        let (start, size, list) = match le16(&table, 0) {
            2 => (le32(&table, 16) as u64, le32(&table, 28) as u64, 32),
            9 => (le64(&table, 16), le64(&table, 24), 56),
            t => return Err(format!("first inode has type {t}, not a regular file").into()),
        };
        if size != corpus.len() as u64 {
            return Err("the image's file is not CORPUS".into());
        }
        let mut pos = start as usize;
        (0..count)
            .map(|i| {
                let word = le32(&table, list + 4 * i);
                let len = (word & 0x00ff_ffff) as usize;
                let data = self.bytes.get(pos..pos + len).ok_or("block past the end")?;
                pos += len;
                Ok(Block {
                    data,
                    stored: word & 0x0100_0000 != 0 || len == 0,
                })
            })
            .collect()
    }
}

/// Decodes every block once to check it, then `runs` timed passes; returns the median
/// wall-clock and on-CPU seconds of a pass (0 when `runs` is 0).
fn time_decode(image: &Image, blocks: &[Block], corpus: &[u8], runs: usize) -> Res<(f64, f64)> {
    let mut out = vec![0u8; image.block_size];
    let mut pass = |check: bool| -> Res<()> {
        for (i, (block, want)) in blocks
            .iter()
            .zip(corpus.chunks(image.block_size))
            .enumerate()
        {
            let n = if block.data.is_empty() {
                // A sparse block: mksquashfs stores all-zero blocks as length 0.
                out[..want.len()].fill(0);
                want.len()
            } else if block.stored {
                out[..block.data.len()].copy_from_slice(block.data);
                block.data.len()
            } else {
                image.decoder.decompress(block.data, &mut out)?
            };
            if check && &out[..n] != want {
                return Err(format!("block {i} decodes to different bytes").into());
            }
        }
        Ok(())
    };
    pass(true)?;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (t, c) = (Instant::now(), thread_cpu_ns()?);
        pass(false)?;
        wall.push(t.elapsed().as_secs_f64());
        cpu.push((thread_cpu_ns()? - c) as f64 / 1e9);
    }
    Ok((median(wall), median(cpu)))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Time this thread has spent on a CPU, in ns: on a shared machine this moves much less
/// than wall-clock time when other work competes for the cores.
fn thread_cpu_ns() -> Res<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    Ok(stat
        .split_whitespace()
        .next()
        .ok_or("empty schedstat")?
        .parse()?)
}

/// For xz images: how many blocks start with each filter (BCJ or plain lzma2).
fn xz_filter_usage(image: &Image, blocks: &[Block]) -> String {
    if image.codec != Compression::Xz {
        return "-".into();
    }
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for block in blocks.iter().filter(|b| !b.stored) {
        // Stream header (12 bytes), block header size byte, flags, optional sizes, filters.
        let d = block.data;
        let mut pos = 14;
        let flags = d.get(13).copied().unwrap_or(0);
        for bit in [0x40, 0x80] {
            if flags & bit != 0 {
                while d.get(pos).is_some_and(|b| b & 0x80 != 0) {
                    pos += 1;
                }
                pos += 1;
            }
        }
        let name = match d.get(pos) {
            Some(0x21) => "none",
            Some(0x04) => "x86",
            Some(0x05) => "powerpc",
            Some(0x06) => "ia64",
            Some(0x07) => "arm",
            Some(0x08) => "armthumb",
            Some(0x09) => "sparc",
            Some(0x0a) => "arm64",
            Some(0x0b) => "riscv",
            _ => "other",
        };
        *counts.entry(name).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Rewraps the blocks for the codec's command-line tool; `None` for lzma (no tool reads
/// concatenated .lzma files). Blocks mksquashfs stored raw are re-encoded at the fastest
/// level, which for incompressible data means the codec's own stored blocks.
fn cli_container(
    codec: Compression,
    blocks: &[Block],
    corpus: &[u8],
    bs: usize,
) -> Res<Option<(&'static str, Vec<u8>)>> {
    let mut out = Vec::new();
    let plain = |i: usize| &corpus[i * bs..corpus.len().min((i + 1) * bs)];
    match codec {
        Compression::Lzma => Ok(None),
        Compression::Xz => {
            for (i, b) in blocks.iter().enumerate() {
                if b.stored {
                    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 0);
                    enc.write_all(plain(i))?;
                    out.extend(enc.finish()?);
                } else {
                    out.extend_from_slice(b.data);
                }
            }
            Ok(Some(("xz", out)))
        }
        Compression::Zstd => {
            for (i, b) in blocks.iter().enumerate() {
                if b.stored {
                    out.extend(zstd::bulk::compress(plain(i), 1)?);
                } else {
                    out.extend_from_slice(b.data);
                }
            }
            Ok(Some(("zst", out)))
        }
        Compression::Gzip => {
            // zlib = 2-byte header + deflate + adler32; gzip = 10-byte header + deflate +
            // crc32 + length. The deflate data is kept byte for byte.
            for (i, b) in blocks.iter().enumerate() {
                let zlib = if b.stored {
                    let mut enc = libdeflater::Compressor::new(
                        libdeflater::CompressionLvl::new(0).map_err(|e| format!("{e:?}"))?,
                    );
                    let mut z = vec![0; enc.zlib_compress_bound(plain(i).len())];
                    let n = enc
                        .zlib_compress(plain(i), &mut z)
                        .map_err(|e| format!("{e:?}"))?;
                    z.truncate(n);
                    z
                } else {
                    b.data.to_vec()
                };
                out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
                out.extend_from_slice(&zlib[2..zlib.len() - 4]);
                out.extend_from_slice(&libdeflater::crc32(plain(i)).to_le_bytes());
                out.extend_from_slice(&(plain(i).len() as u32).to_le_bytes());
            }
            Ok(Some(("gz", out)))
        }
        Compression::Lz4 => {
            // One frame: independent blocks, 256 KiB maximum, no checksums.
            let descriptor = [0x60u8, 0x50];
            out.extend_from_slice(&0x184d_2204u32.to_le_bytes());
            out.extend_from_slice(&descriptor);
            out.push((xxh32_short(&descriptor) >> 8) as u8);
            for (i, b) in blocks.iter().enumerate() {
                let (flag, data) = if b.stored {
                    (0x8000_0000u32, plain(i))
                } else {
                    (0, b.data)
                };
                out.extend_from_slice(&(data.len() as u32 | flag).to_le_bytes());
                out.extend_from_slice(data);
            }
            out.extend_from_slice(&0u32.to_le_bytes());
            Ok(Some(("lz4", out)))
        }
        Compression::Lzo => {
            // lzop 1.04 header: version, library version, version needed, method 3
            // (lzo1x_999), level 8, flags 0 (no checksums), mode, mtime, empty name, then
            // its adler32. Blocks: uncompressed and compressed length (big endian); equal
            // lengths mean stored.
            let mut header = Vec::new();
            header.extend_from_slice(&0x1040u16.to_be_bytes());
            header.extend_from_slice(&0x20a0u16.to_be_bytes());
            header.extend_from_slice(&0x0940u16.to_be_bytes());
            header.extend_from_slice(&[3, 8]);
            header.extend_from_slice(&0u32.to_be_bytes());
            header.extend_from_slice(&0o100644u32.to_be_bytes());
            header.extend_from_slice(&[0; 8]);
            header.push(0);
            out.extend_from_slice(&[0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a]);
            out.extend_from_slice(&header);
            out.extend_from_slice(&adler32(&header).to_be_bytes());
            for (i, b) in blocks.iter().enumerate() {
                let data = if b.stored { plain(i) } else { b.data };
                out.extend_from_slice(&(plain(i).len() as u32).to_be_bytes());
                out.extend_from_slice(&(data.len() as u32).to_be_bytes());
                out.extend_from_slice(data);
            }
            out.extend_from_slice(&0u32.to_be_bytes());
            Ok(Some(("lzo", out)))
        }
    }
}

/// XXH32 with seed 0 for inputs shorter than 16 bytes (the LZ4 frame descriptor checksum).
fn xxh32_short(input: &[u8]) -> u32 {
    const P1: u32 = 0x9e37_79b1;
    const P2: u32 = 0x85eb_ca77;
    const P3: u32 = 0xc2b2_ae3d;
    const P4: u32 = 0x27d4_eb2f;
    const P5: u32 = 0x1656_67b1;
    let mut h = P5.wrapping_add(input.len() as u32);
    let mut words = input.chunks_exact(4);
    for w in &mut words {
        let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        h = h
            .wrapping_add(v.wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
    }
    for &b in words.remainder() {
        h = h
            .wrapping_add(u32::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn le16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | u64::from(le32(b, at + 4)) << 32
}

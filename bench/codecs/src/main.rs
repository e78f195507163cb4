//! Per-block codec timing on the same blocks, for bench/results/pack-codecs.md.
//!
//!     codec-bench DIR STEP CONFIG...      (ROUNDS=N: each config N times, the fastest kept)
//!
//! Blocks are cut from DIR's regular files in sorted walk order as `sqfs pack` and
//! mksquashfs cut them (128 KiB blocks; tails and small files packed into 128 KiB
//! fragment blocks) and every STEP-th is kept. Each config compresses every kept block, in
//! rounds that take turns; the table gives the least thread CPU time over the rounds and
//! the total output (a block that does not shrink counts at its own size).
//!
//! Configs: `xz-new` (a new liblzma stream per block, preset 6, dictionary 128 KiB, CRC32,
//! as mksquashfs and sqfs pack before it kept its encoder), `xz-kept` (one lzma_stream
//! re-initialised per block, as sqfs pack now), `zstd:LEVEL[,K=V...]` with K one of S
//! (searchLog), T (targetLength), m (minMatch), C (chainLog), H (hashLog), W (windowLog),
//! B (block splitter: 1 on, 2 off), s (strategy: 5 lazy2, 6 btlazy2, 7 btopt, 8 btultra,
//! 9 btultra2).
use std::path::{Path, PathBuf};
use std::time::Instant;

use liblzma::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};
use liblzma_sys as sys;
use zstd::zstd_safe::{CParameter, ParamSwitch};

const BLOCK: usize = 128 << 10;

fn thread_cpu() -> f64 {
    #[repr(C)]
    struct Timespec {
        s: i64,
        ns: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, t: *mut Timespec) -> i32;
    }
    let mut t = Timespec { s: 0, ns: 0 };
    unsafe { clock_gettime(3, &mut t) }; // CLOCK_THREAD_CPUTIME_ID
    t.s as f64 + t.ns as f64 * 1e-9
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            walk(&e.path(), out)
        } else if kind.is_file() {
            out.push(e.path())
        }
    }
}

fn blocks(dir: &str, step: usize) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    walk(Path::new(dir), &mut files);
    let (mut all, mut fragment) = (Vec::new(), Vec::new());
    for f in files {
        let Ok(data) = std::fs::read(&f) else {
            continue;
        };
        let mut full = data.chunks_exact(BLOCK);
        all.extend((&mut full).map(<[u8]>::to_vec));
        let tail = full.remainder();
        if tail.is_empty() {
            continue;
        }
        if fragment.len() + tail.len() > BLOCK {
            all.push(std::mem::take(&mut fragment))
        }
        fragment.extend_from_slice(tail);
    }
    if !fragment.is_empty() {
        all.push(fragment)
    }
    all.into_iter().step_by(step).collect()
}

fn xz_new(block: &[u8], out: &mut Vec<u8>) -> usize {
    let mut lzma = LzmaOptions::new_preset(6).unwrap();
    lzma.dict_size(BLOCK as u32);
    let mut filters = Filters::new();
    filters.lzma2(&lzma);
    let mut s = Stream::new_stream_encoder(&filters, Check::Crc32).unwrap();
    out.clear();
    out.reserve(block.len());
    match s.process_vec(block, out, Action::Finish).unwrap() {
        Status::StreamEnd if out.len() < block.len() => out.len(),
        _ => block.len(),
    }
}

fn xz_kept(strm: &mut sys::lzma_stream, block: &[u8], out: &mut Vec<u8>) -> usize {
    unsafe {
        let mut lzma: sys::lzma_options_lzma = std::mem::zeroed();
        assert_eq!(sys::lzma_lzma_preset(&mut lzma, 6), 0);
        lzma.dict_size = BLOCK as u32;
        let filters = [
            sys::lzma_filter {
                id: sys::LZMA_FILTER_LZMA2,
                options: (&mut lzma as *mut sys::lzma_options_lzma).cast(),
            },
            sys::lzma_filter {
                id: sys::LZMA_VLI_UNKNOWN,
                options: std::ptr::null_mut(),
            },
        ];
        assert_eq!(
            sys::lzma_stream_encoder(strm, filters.as_ptr(), sys::LZMA_CHECK_CRC32),
            sys::LZMA_OK
        );
        out.clear();
        out.reserve(block.len());
        strm.next_in = block.as_ptr();
        strm.avail_in = block.len();
        strm.next_out = out.as_mut_ptr();
        strm.avail_out = block.len();
        let ret = sys::lzma_code(strm, sys::LZMA_FINISH);
        let n = block.len() - strm.avail_out;
        out.set_len(n);
        if ret == sys::LZMA_STREAM_END && n < block.len() {
            n
        } else {
            block.len()
        }
    }
}

fn zstd_compressor(config: &str) -> zstd::bulk::Compressor<'static> {
    let mut parts = config.trim_start_matches("zstd:").split(',');
    let mut c = zstd::bulk::Compressor::new(parts.next().unwrap().parse().unwrap()).unwrap();
    for kv in parts {
        let (k, v) = kv.split_once('=').unwrap();
        let v: u32 = v.parse().unwrap();
        c.set_parameter(match k {
            "S" => CParameter::SearchLog(v),
            "T" => CParameter::TargetLength(v),
            "m" => CParameter::MinMatch(v),
            "C" => CParameter::ChainLog(v),
            "H" => CParameter::HashLog(v),
            "W" => CParameter::WindowLog(v),
            "s" => CParameter::Strategy(match v {
                6 => zstd::zstd_safe::Strategy::ZSTD_btlazy2,
                7 => zstd::zstd_safe::Strategy::ZSTD_btopt,
                8 => zstd::zstd_safe::Strategy::ZSTD_btultra,
                9 => zstd::zstd_safe::Strategy::ZSTD_btultra2,
                _ => zstd::zstd_safe::Strategy::ZSTD_lazy2,
            }),
            "B" => CParameter::UseBlockSplitter(if v == 1 {
                ParamSwitch::Enable
            } else {
                ParamSwitch::Disable
            }),
            _ => panic!("unknown zstd parameter {k}"),
        })
        .unwrap();
    }
    c
}

/// (thread CPU seconds, output bytes, a hash of the output) of one config over `blocks`.
fn run(config: &str, blocks: &[Vec<u8>]) -> (f64, usize, u64) {
    let mut out = Vec::with_capacity(BLOCK);
    let (mut total, mut hash) = (0, 0u64);
    // Hashes the blocks that shrink: what a block that does not shrink leaves is not kept.
    let mut note = |out: &[u8], shrunk: bool| {
        if shrunk {
            hash = out
                .iter()
                .fold(hash, |h, &x| h.wrapping_mul(31).wrapping_add(x as u64))
        }
    };
    let start = thread_cpu();
    match config {
        "xz-new" => blocks.iter().for_each(|b| {
            let n = xz_new(b, &mut out);
            total += n;
            note(&out, n < b.len())
        }),
        "xz-kept" => {
            let mut strm: sys::lzma_stream = unsafe { std::mem::zeroed() };
            blocks.iter().for_each(|b| {
                let n = xz_kept(&mut strm, b, &mut out);
                total += n;
                note(&out, n < b.len())
            });
            unsafe { sys::lzma_end(&mut strm) };
        }
        _ => {
            let mut c = zstd_compressor(config);
            blocks.iter().for_each(|b| {
                out.clear();
                out.reserve(b.len());
                let n = match c.compress_to_buffer(b, &mut out) {
                    Ok(n) if n < b.len() => n,
                    _ => b.len(),
                };
                total += n;
                note(&out, n < b.len())
            });
        }
    }
    (thread_cpu() - start, total, hash)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, step, configs @ ..] = &args[..] else {
        panic!("usage: codec-bench DIR STEP CONFIG...")
    };
    let blocks = blocks(dir, step.parse().unwrap());
    let raw: usize = blocks.iter().map(Vec::len).sum();
    let rounds: usize = std::env::var("ROUNDS").map_or(1, |r| r.parse().unwrap());
    let mut best = vec![(f64::MAX, 0, 0); configs.len()];
    let wall = Instant::now();
    for round in 0..rounds {
        for (config, best) in configs.iter().zip(&mut best) {
            let (cpu, bytes, hash) = run(config, &blocks);
            eprintln!("round {round}: {config} {cpu:.3} s, {bytes} bytes, output hash {hash:016x}");
            *best = (best.0.min(cpu), bytes, hash);
        }
    }
    println!("{dir}: {} blocks of {raw} bytes, every {step}th block; least CPU of {rounds} rounds ({:.0} s in all)", blocks.len(), wall.elapsed().as_secs_f64());
    println!();
    println!("| config | CPU s | CPU vs first | bytes | bytes vs first |");
    println!("|---|---|---|---|---|");
    for (config, b) in configs.iter().zip(&best) {
        println!(
            "| {config} | {:.3} | {:.3} | {} | {:.4} |",
            b.0,
            b.0 / best[0].0,
            b.1,
            b.1 as f64 / best[0].1 as f64
        );
    }
}

//! Replays the fuzz targets' seeds and every input a fuzzer once crashed on, through the
//! targets' own code (`fuzz/src/lib.rs`, compiled in here by path), so a plain
//! `cargo test` catches a regression without cargo-fuzz or a nightly toolchain.
//!
//! Crashing inputs live in `tests/fuzz_regressions/<target>/`, one file each, named after
//! what they found. With `SQFS_FUZZ_SEEDS=DIR` the seeds are also written to
//! `DIR/<target>/`, the corpus directories `fuzz/ci.sh` starts the fuzzers from.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

/// A run that takes longer than this is a hang (libFuzzer's limit is 10 s, in a build
/// with optimisations; debug builds get slack).
const SLOW: Duration = Duration::from_secs(60);

fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    // Every target has its directory (`.keep` holds an empty one in git): a path that went
    // wrong must fail, not replay nothing.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

fn replay(target: &str) {
    let seeds = targets::seeds(target);
    assert!(!seeds.is_empty(), "no seeds for {target}");
    if let Some(out) = std::env::var_os("SQFS_FUZZ_SEEDS") {
        let dir = Path::new(&out).join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, data) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    }
    let inputs = seeds.into_iter().chain(regressions(target));
    let mut n = 0;
    for (name, data) in inputs {
        let start = Instant::now();
        targets::run(target, &data);
        let took = start.elapsed();
        assert!(took < SLOW, "{target}/{name} took {took:?}");
        n += 1;
    }
    eprintln!("{target}: replayed {n} inputs");
}

#[test]
fn image() {
    replay("image");
}

/// The seeds are valid images: the walk must get into them, or the fuzzer starts blind.
#[test]
fn seed_images_are_walked() {
    for (name, data) in targets::seeds("image") {
        let walked = targets::image_walk(&data).unwrap_or_else(|| panic!("{name} did not open"));
        let least = if name == "tiny-empty" { 1 } else { 5 };
        assert!(
            walked.nodes >= least && walked.dirs >= 1,
            "{name}: only {walked:?}"
        );
        if name != "tiny-empty" {
            assert!(walked.files >= 1, "{name}: {walked:?}");
        }
    }
}

/// The mutate seeds apply no patch: each is a whole, valid tiny image.
#[test]
fn mutate_seeds_are_valid_images() {
    for (name, data) in targets::seeds("mutate") {
        let walked = targets::mutate_walk(&data).unwrap_or_else(|| panic!("{name} did not open"));
        assert!(walked.dirs >= 1, "{name}: only {walked:?}");
    }
}

#[test]
fn decompress() {
    replay("decompress");
}

#[test]
fn metadata() {
    replay("metadata");
}

#[test]
fn mutate() {
    replay("mutate");
}

/// The `sif` target: its seeds (tiny images in SIFs) and committed findings, replayed as
/// [`replay`] does for the others (its body and seeds live in `fuzz/src/sif.rs`).
#[test]
fn sif() {
    let seeds = targets::sif::seeds();
    assert!(!seeds.is_empty(), "no seeds for sif");
    if let Some(out) = std::env::var_os("SQFS_FUZZ_SEEDS") {
        let dir = Path::new(&out).join("sif");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, data) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    }
    let mut n = 0;
    for (name, data) in seeds.into_iter().chain(regressions("sif")) {
        let start = Instant::now();
        targets::sif::run(&data);
        let took = start.elapsed();
        assert!(took < SLOW, "sif/{name} took {took:?}");
        n += 1;
    }
    eprintln!("sif: replayed {n} inputs");
}

/// The SIF seeds open: each tiny image is reached through its SIF and walked as the image
/// itself is, so the fuzzer starts inside the format, not at its first check.
#[test]
fn sif_seeds_open_as_their_images() {
    let mut opened = 0;
    for (name, data) in targets::sif::seeds() {
        let file = targets::memfile(&data);
        match sqfs::Archive::open_file(file, &sqfs::OpenOptions::default()) {
            Ok(archive) => {
                let walked = targets::exercise(&archive, 0);
                assert!(walked.dirs >= 1, "{name}: {walked:?}");
                opened += 1;
            }
            Err(e) => assert!(!name.ends_with(".sif"), "{name}: {e}"),
        }
    }
    assert_eq!(opened, targets::TINY.len());
}

/// The `pack` target: its seeds (programs adding every kind of entry) and committed
/// findings, each a tree packed by the writer and read back (body and seeds in
/// `fuzz/src/pack.rs`).
#[test]
fn pack() {
    let seeds = targets::pack::seeds();
    if let Some(out) = std::env::var_os("SQFS_FUZZ_SEEDS") {
        let dir = Path::new(&out).join("pack");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, data) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    }
    let mut n = 0;
    for (name, data) in seeds.into_iter().chain(regressions("pack")) {
        let start = Instant::now();
        targets::pack::run(&data);
        let took = start.elapsed();
        assert!(took < SLOW, "pack/{name} took {took:?}");
        n += 1;
    }
    eprintln!("pack: replayed {n} inputs");
}

/// The pack seeds are trees of every kind of entry, not programs cut short.
#[test]
fn pack_seeds_build_trees() {
    for (name, data) in targets::pack::seeds() {
        let names = targets::pack::entries(&data);
        let least = if name == "empty" { 0 } else { 5 };
        assert!(names >= least, "{name}: {names} names");
    }
}

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

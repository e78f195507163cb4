//! The fuzz targets' inputs as the end-to-end tests replay them: committed findings, and
//! seeds written where `fuzz/ci.sh` starts the fuzzer from.

use std::path::PathBuf;

/// The inputs the fuzz target `target` once found, committed under
/// `sqfs/tests/fuzz_regressions/TARGET/`, by name.
pub fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = crate::corpus::repo_root()
        .join("sqfs/tests/fuzz_regressions")
        .join(target);
    // The directory exists (`.keep` holds it in git): a path gone wrong must fail, not
    // replay nothing.
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
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

/// With `SQFS_FUZZ_SEEDS=DIR` set, writes `seeds` to `DIR/TARGET/seed-NAME`.
pub fn write_seeds(target: &str, seeds: &[(String, Vec<u8>)]) {
    if let Some(out) = std::env::var_os("SQFS_FUZZ_SEEDS") {
        let dir = PathBuf::from(out).join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, data) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    }
}

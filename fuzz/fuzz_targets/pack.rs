#![no_main]

// The body lives in the library, shared with sqfs/tests/fuzz_regressions.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| sqfs_fuzz::pack::run(data));

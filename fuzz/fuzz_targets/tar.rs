#![no_main]

// The body is shared with tests/pack_tar.rs, which replays the seeds through it.
#[path = "tar_check.rs"]
#[allow(dead_code)]
mod tar_check;

use std::sync::OnceLock;

static SCRATCH: OnceLock<tar_check::Scratch> = OnceLock::new();

/// libFuzzer leaves by exit(): statics are not dropped, so the scratch is removed here.
extern "C" fn remove_scratch() {
    if let Some(scratch) = SCRATCH.get() {
        scratch.remove();
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let scratch = SCRATCH.get_or_init(|| {
        // SAFETY: atexit takes a function that takes and returns nothing, as this one.
        unsafe { libc::atexit(remove_scratch) };
        tar_check::Scratch::new("fuzz")
    });
    let _ = scratch.pack(data);
});

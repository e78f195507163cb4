#![no_main]

// The body is shared with tests/extract_hostile.rs, which replays the seeds through it.
#[path = "extract_check.rs"]
#[allow(dead_code)]
mod extract_check;

use std::sync::OnceLock;

static SANDBOX: OnceLock<extract_check::Sandbox> = OnceLock::new();

/// libFuzzer leaves by exit(): statics are not dropped, so the sandbox is removed here.
extern "C" fn remove_sandbox() {
    if let Some(sandbox) = SANDBOX.get() {
        sandbox.remove();
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let sandbox = SANDBOX.get_or_init(|| {
        // SAFETY: atexit takes a function that takes and returns nothing, as this one.
        unsafe { libc::atexit(remove_sandbox) };
        extract_check::Sandbox::new("extract")
    });
    sandbox.extract(data);
});

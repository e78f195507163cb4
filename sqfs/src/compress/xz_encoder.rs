//! One liblzma .xz stream encoder kept from block to block.
//!
//! Starting an encoder allocates its match finder (for LZMA2 at preset 6 with a 128 KiB
//! dictionary, about 1.5 MiB of hash table, binary tree and window) and freeing it at the
//! end of the block gives the pages back, so every block paid for fresh pages and their
//! faults: 7-9% of xz's CPU time on 128 KiB blocks. `lzma_stream_encoder` on a stream that
//! already holds an encoder with the same filter chain keeps those buffers and resets their
//! contents (liblzma's lz_encoder.c clears the hash table on every init), so the output is
//! the same bytes as from a new encoder (a test below checks it). The `liblzma` crate makes
//! a new `lzma_stream` per `Stream`, hence the raw calls here.

use liblzma_sys as sys;

use super::{compress_fail, Compression};
use crate::error::Result;

/// A `lzma_stream` owned by one compressor; it holds no pointer into the caller's buffers
/// between calls (`next_in`/`next_out` are set and used within [`XzEncoder::encode`]).
pub(super) struct XzEncoder {
    raw: sys::lzma_stream,
}

// SAFETY: a lzma_stream is plain memory owned by this value (liblzma keeps no thread-local
// state and takes no locks for a single-threaded encoder); it is used by one thread at a
// time (`&mut self`), so moving it to another thread is sound.
unsafe impl Send for XzEncoder {}

impl Drop for XzEncoder {
    fn drop(&mut self) {
        // SAFETY: `raw` was zero-initialised (LZMA_STREAM_INIT) and only ever passed to
        // liblzma's init and code functions; lzma_end accepts a stream in any such state.
        unsafe { sys::lzma_end(&mut self.raw) }
    }
}

impl XzEncoder {
    pub(super) fn new() -> Self {
        XzEncoder {
            // SAFETY: LZMA_STREAM_INIT is all zeros and null pointers.
            raw: unsafe { std::mem::zeroed() },
        }
    }

    /// `src` as one .xz stream (CRC32 check) through `bcj` (a liblzma filter id, or none)
    /// and LZMA2 at `preset` with a `dict_size` dictionary, into `dst` (emptied first):
    /// true if it fits in `room` bytes.
    pub(super) fn encode(
        &mut self,
        preset: u32,
        dict_size: u32,
        bcj: Option<sys::lzma_vli>,
        src: &[u8],
        dst: &mut Vec<u8>,
        room: usize,
    ) -> Result<bool> {
        // SAFETY: lzma_options_lzma is plain data; lzma_lzma_preset fills every field.
        let mut lzma: sys::lzma_options_lzma = unsafe { std::mem::zeroed() };
        if unsafe { sys::lzma_lzma_preset(&mut lzma, preset) } != 0 {
            return Err(compress_fail(
                Compression::Xz,
                format!("no preset {preset}"),
            ));
        }
        lzma.dict_size = dict_size;
        let lzma2 = sys::lzma_filter {
            id: sys::LZMA_FILTER_LZMA2,
            options: (&mut lzma as *mut sys::lzma_options_lzma).cast(),
        };
        let end = sys::lzma_filter {
            id: sys::LZMA_VLI_UNKNOWN,
            options: std::ptr::null_mut(),
        };
        // A BCJ filter with null options: start offset 0, as mksquashfs's xz_wrapper.c.
        let chain = match bcj {
            None => [lzma2, end, end],
            Some(id) => [
                sys::lzma_filter {
                    id,
                    options: std::ptr::null_mut(),
                },
                lzma2,
                end,
            ],
        };
        // SAFETY: `chain` and the options it points to outlive the call (liblzma copies
        // what it needs at init); `raw` is a valid stream as above.
        let ret = unsafe {
            sys::lzma_stream_encoder(&mut self.raw, chain.as_ptr(), sys::LZMA_CHECK_CRC32)
        };
        if ret != sys::LZMA_OK {
            return Err(compress_fail(Compression::Xz, describe(ret)));
        }
        dst.clear();
        dst.reserve_exact(room);
        // Only `room` bytes of output: a stream that needs more does not end.
        let spare = room.min(dst.capacity());
        self.raw.next_in = src.as_ptr();
        self.raw.avail_in = src.len();
        self.raw.next_out = dst.as_mut_ptr();
        self.raw.avail_out = spare;
        // SAFETY: next_in/avail_in describe `src`, next_out/avail_out the first `spare`
        // bytes of `dst`'s capacity, both valid for the whole call.
        let ret = unsafe { sys::lzma_code(&mut self.raw, sys::LZMA_FINISH) };
        let written = spare - self.raw.avail_out;
        // Leave no pointer into the caller's buffers behind.
        self.raw.next_in = std::ptr::null();
        self.raw.avail_in = 0;
        self.raw.next_out = std::ptr::null_mut();
        self.raw.avail_out = 0;
        // SAFETY: liblzma wrote `written` bytes from the start of the spare capacity.
        unsafe { dst.set_len(written) };
        match ret {
            sys::LZMA_STREAM_END => Ok(true),
            // Out of room: the block does not shrink.
            sys::LZMA_OK | sys::LZMA_BUF_ERROR => Ok(false),
            other => Err(compress_fail(Compression::Xz, describe(other))),
        }
    }
}

/// liblzma's meaning of an encoder's return code (lzma/base.h).
fn describe(ret: sys::lzma_ret) -> String {
    match ret {
        sys::LZMA_MEM_ERROR => "cannot allocate memory".into(),
        sys::LZMA_OPTIONS_ERROR => "unsupported options".into(),
        sys::LZMA_UNSUPPORTED_CHECK => "unsupported check".into(),
        sys::LZMA_PROG_ERROR => "programming error".into(),
        other => format!("liblzma error {other}"),
    }
}

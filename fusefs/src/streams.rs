//! Where a file's sequential readers are, so that the blocks ahead of each are
//! decompressed on other cores before the kernel asks for them.
//!
//! A file can have several readers at once (MPI ranks reading their slices of one input,
//! two `cat`s), and the kernel sends one reader's READs several at a time, served by
//! different threads in any order; so a read continues a stream when it lands near where
//! that stream has got to, not only exactly at its end.

use std::sync::Mutex;

/// Streams remembered per file; a new one replaces the least recently used.
const SLOTS: usize = 4;

#[derive(Clone, Copy, Default)]
struct Stream {
    /// The furthest byte this stream has read up to.
    end: u64,
    /// Blocks kept decompressed ahead; doubles per read that continues the stream.
    window: u64,
    /// When it was last read (0: slot unused).
    used: u64,
}

#[derive(Default)]
pub struct Streams {
    slots: Mutex<([Stream; SLOTS], u64)>,
}

impl Streams {
    /// Records a read of `[offset, end)` and returns how many blocks after it to
    /// decompress ahead. A read within `reach` bytes of a stream's end continues it (its
    /// window doubles, up to `most` blocks); any other read starts a stream, which gets one
    /// block ahead if it starts the file (a program reading a little of many files, like
    /// python's start-up, never pays for megabytes it does not read) and none elsewhere
    /// (random reads decompress nothing extra).
    pub fn on_read(&self, offset: u64, end: u64, reach: u64, most: u64) -> u64 {
        let mut guard = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let (slots, clock) = &mut *guard;
        *clock += 1;
        let now = *clock;
        let near = |s: &Stream| {
            s.used != 0 && offset >= s.end.saturating_sub(reach) && offset <= s.end + reach
        };
        if let Some(s) = slots.iter_mut().find(|s| near(s)) {
            s.end = s.end.max(end);
            s.window = (s.window * 2).clamp(1, most.max(1));
            s.used = now;
            return s.window;
        }
        let oldest = slots.iter_mut().min_by_key(|s| s.used).expect("SLOTS > 0");
        let window = u64::from(offset == 0);
        *oldest = Stream {
            end,
            window,
            used: now,
        };
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_sequential_reader_ramps_up_and_random_reads_get_nothing() {
        let s = Streams::default();
        assert_eq!(s.on_read(0, MIB, 4 * MIB, 32), 1);
        assert_eq!(s.on_read(MIB, 2 * MIB, 4 * MIB, 32), 2);
        assert_eq!(s.on_read(2 * MIB, 3 * MIB, 4 * MIB, 32), 4);
        // Out of order (the kernel had two READs in flight): still the same stream.
        assert_eq!(s.on_read(4 * MIB, 5 * MIB, 4 * MIB, 32), 8);
        assert_eq!(s.on_read(3 * MIB, 4 * MIB, 4 * MIB, 32), 16);
        assert_eq!(s.on_read(5 * MIB, 6 * MIB, 4 * MIB, 32), 32);
        assert_eq!(s.on_read(6 * MIB, 7 * MIB, 4 * MIB, 32), 32, "capped");
        // Far away: a new stream, nothing ahead until it continues.
        assert_eq!(s.on_read(900 * MIB, 900 * MIB + 4096, 4 * MIB, 32), 0);
        assert_eq!(
            s.on_read(900 * MIB + 4096, 900 * MIB + 8192, 4 * MIB, 32),
            1
        );
    }

    #[test]
    fn interleaved_readers_of_one_file_keep_their_own_windows() {
        let s = Streams::default();
        let (a, b) = (0, 512 * MIB);
        s.on_read(a, a + MIB, 4 * MIB, 32);
        s.on_read(b, b + MIB, 4 * MIB, 32);
        let mut last = (0, 0);
        for i in 1..6 {
            last = (
                s.on_read(a + i * MIB, a + (i + 1) * MIB, 4 * MIB, 32),
                s.on_read(b + i * MIB, b + (i + 1) * MIB, 4 * MIB, 32),
            );
        }
        assert_eq!(last, (32, 16), "a started at 0 with one block, b with none");
    }
}

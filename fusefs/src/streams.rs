//! Where a file's sequential readers are, so that the blocks ahead of each are
//! decompressed on other cores before the kernel asks for them.
//!
//! A file can have several readers at once (MPI ranks reading their slices of one input,
//! two `cat`s), and the kernel sends one reader's READs several at a time, served by
//! different threads in any order; so a read continues a stream when it lands near where
//! that stream has got to, not only exactly at its end: at most one read ahead of it, or
//! two behind. Nothing is decompressed ahead until a stream has read `EVIDENCE` blocks' worth
//! of the file: the reads of a program's start (an ELF header, the page faults of a mapped
//! library, which the kernel answers with READs around each fault, a module's source)
//! jump about or stop early, and decompressing blocks ahead of them was CPU spent on
//! blocks nobody read (measured: 14% of the CPU of a `ch-run IMG -- true`).

use std::ops::Range;
use std::sync::Mutex;

/// Streams remembered per file; a new one replaces the least recently used.
const SLOTS: usize = 4;
/// Blocks' worth of a file a stream reads before blocks ahead of it are decompressed.
const EVIDENCE: u64 = 4;

#[derive(Clone, Copy, Default)]
struct Stream {
    /// Where the stream started.
    start: u64,
    /// The furthest byte this stream has read up to.
    end: u64,
    /// Blocks kept decompressed ahead; doubles per read that continues the stream.
    window: u64,
    /// The first block not yet asked for: each read asks only for the blocks of its window
    /// that no earlier read of the stream asked for.
    asked: u64,
    /// When it was last read (0: slot unused).
    used: u64,
}

#[derive(Default)]
pub struct Streams {
    slots: Mutex<([Stream; SLOTS], u64)>,
}

impl Streams {
    /// Records a read of `[offset, end)` and returns the blocks (of `unit` bytes) after it
    /// to decompress ahead, leaving out those the stream asked for already. A read that
    /// starts at most one read (or one unit, if larger) past a stream's end, or at most two
    /// behind it, continues the stream; any other read starts one. Once a stream has read
    /// `EVIDENCE` units of the file, its window opens at one block and doubles with each
    /// read that continues it, up to `most` blocks; before that it is 0.
    pub fn on_read(&self, offset: u64, end: u64, unit: u64, most: u64) -> Range<u64> {
        let mut guard = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let (slots, clock) = &mut *guard;
        *clock += 1;
        let now = *clock;
        let step = (end - offset).max(unit);
        let near = |s: &Stream| {
            s.used != 0
                && offset >= s.end.saturating_sub(2 * step)
                && offset <= s.end.saturating_add(step)
        };
        let stream = match slots.iter_mut().find(|s| near(s)) {
            Some(s) => {
                s.start = s.start.min(offset);
                s.end = s.end.max(end);
                s
            }
            None => {
                let oldest = slots.iter_mut().min_by_key(|s| s.used).expect("SLOTS > 0");
                *oldest = Stream {
                    start: offset,
                    end,
                    window: 0,
                    asked: 0,
                    used: 0,
                };
                oldest
            }
        };
        stream.used = now;
        if stream.end - stream.start >= EVIDENCE.saturating_mul(unit) {
            stream.window = (stream.window * 2).clamp(1, most.max(1));
        }
        let next = end.div_ceil(unit.max(1));
        let from = next.max(stream.asked);
        let to = next.saturating_add(stream.window);
        stream.asked = stream.asked.max(to);
        from..to.max(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const BLOCK: u64 = 128 << 10;

    #[test]
    fn a_sequential_reader_ramps_up_once_it_has_read_enough() {
        let s = Streams::default();
        let read = |from: u64, to: u64| s.on_read(from * MIB, to * MIB, BLOCK, 32);
        // 1 MiB reads are 8 blocks each: the window opens at once and doubles.
        assert_eq!(read(0, 1), 8..9);
        assert_eq!(read(1, 2), 16..18);
        assert_eq!(read(2, 3), 24..28);
        // Out of order (the kernel had two READs in flight): still the same stream, and
        // what was asked for already is not asked again.
        assert_eq!(read(4, 5), 40..48);
        assert_eq!(read(3, 4), 48..48);
        assert_eq!(read(5, 6), 48..80);
        assert_eq!(read(6, 7), 80..88, "capped at 32 ahead");
        // Far away, in 128 KiB reads: a new stream, nothing ahead until it has read 512 KiB.
        let lens: Vec<u64> = (0..6)
            .map(|i| {
                let at = 900 * MIB + i * BLOCK;
                let r = s.on_read(at, at + BLOCK, BLOCK, 32);
                r.end - r.start
            })
            .collect();
        assert_eq!(lens, [0, 0, 0, 1, 2, 3]);
    }

    #[test]
    fn the_page_faults_of_a_mapped_library_are_not_a_stream() {
        // READs around the faults of a program's start in a 1.9 MB libc (as traced).
        let s = Streams::default();
        let faults = [
            (1851392, 74840),
            (131072, 73728),
            (720896, 131072),
            (1372160, 131072),
            (1036288, 131072),
            (868352, 131072),
        ];
        for (offset, len) in faults {
            assert!(
                s.on_read(offset, offset + len, BLOCK, 32).is_empty(),
                "{offset}"
            );
        }
        // Nor is a program's read of the start of a file (its ELF header, say).
        assert!(s.on_read(0, 16384, BLOCK, 32).is_empty());
    }

    #[test]
    fn interleaved_readers_of_one_file_keep_their_own_windows() {
        let s = Streams::default();
        let (a, b) = (0, 512 * MIB);
        let mut asked = (Vec::new(), Vec::new());
        for i in 0..6 {
            asked
                .0
                .extend(s.on_read(a + i * MIB, a + (i + 1) * MIB, BLOCK, 32));
            asked
                .1
                .extend(s.on_read(b + i * MIB, b + (i + 1) * MIB, BLOCK, 32));
        }
        // Each reader's window, 32 blocks ahead of its last read, asked for once.
        let (first_b, last_b) = (b / BLOCK, b / BLOCK + 6 * 8 + 32);
        assert_eq!(asked.0.last(), Some(&(6 * 8 + 32 - 1)));
        assert_eq!(asked.1.last(), Some(&(last_b - 1)));
        assert!(asked.1.iter().all(|&k| k >= first_b));
        for list in [&asked.0, &asked.1] {
            let mut sorted = list.clone();
            sorted.dedup();
            assert_eq!(&sorted, list, "no block asked for twice");
        }
    }
}

//! File contents, in the caller's thread: cut into blocks, holes found, tails packed into
//! fragment blocks, duplicates recognised, and everything submitted to the pipeline.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use super::blocklist::HoleRuns;
use super::error::{WriteError, WriteResult};
use super::pipeline::{Buffer, Item, Pipeline, Written};
use super::Fragments;
use crate::fragment::NO_FRAGMENT;

/// Where a file's content comes from.
pub enum Content<'a> {
    /// A regular file, read with `pread` at its offsets; where it is sparse (`SEEK_DATA`
    /// finds no data in a block) the block is not read at all.
    File(&'a File),
    /// Any stream (a tar member), read in order.
    Stream(&'a mut dyn Read),
}

/// How a file's content is stored: blocks the pipeline placed (by id), a tail in a
/// fragment, and the bytes in holes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stored {
    pub size: u64,
    pub sparse: u64,
    /// The id of its blocks in the pipeline's [`super::pipeline::Written::files`] and of
    /// its holes in [`Blocks::holes`].
    pub blocks: Option<usize>,
    /// (fragment index, offset in it), or (NO_FRAGMENT, 0).
    pub fragment: (u32, u32),
}

/// The caller's side of the data: the pipeline, the open fragment block, the content
/// hashes of the files stored so far.
pub(super) struct Data {
    pipeline: Pipeline,
    block_size: u64,
    fragments: Fragments,
    dedup: bool,
    /// The fragment block being filled, and its index.
    open_fragment: Option<(Buffer, u32)>,
    fragment_count: u32,
    /// Block ids handed out.
    block_files: usize,
    /// The holes of the files stored with some, by block id.
    holes: HashMap<usize, HoleRuns>,
    seen: HashMap<ContentKey, Stored>,
    /// The sizes of the files in `seen`: only a file of one of them can be a duplicate.
    sizes: HashSet<u64>,
    /// Bytes read so far (for progress).
    pub bytes_read: u64,
    /// Files found to be duplicates.
    pub duplicates: u64,
}

/// What identifies a file's content: its size and the BLAKE3 hash of its blocks.
type ContentKey = (u64, [u8; 32]);

/// Marks holes in the content hash (data blocks hash their bytes; each run of holes its
/// length in bytes, so the hash is the same however the run was found).
const HOLE_MARK: &[u8] = b"\0hole";

/// Every file's blocks, once all are written: where the pipeline put each file's data
/// blocks, and each file's holes.
pub(super) struct Blocks {
    pub written: Written,
    pub holes: HashMap<usize, HoleRuns>,
}

impl Data {
    pub(super) fn new(
        pipeline: Pipeline,
        block_size: u32,
        fragments: Fragments,
        dedup: bool,
    ) -> Self {
        Data {
            pipeline,
            block_size: u64::from(block_size),
            fragments,
            dedup,
            open_fragment: None,
            fragment_count: 0,
            block_files: 0,
            holes: HashMap::new(),
            seen: HashMap::new(),
            sizes: HashSet::new(),
            bytes_read: 0,
            duplicates: 0,
        }
    }

    /// Reads and submits a file of `size` bytes. A file that cannot be read is taken back
    /// (its blocks discarded) and the error returned: the pipeline goes on.
    pub(super) fn add(&mut self, size: u64, mut content: Content) -> WriteResult<Stored> {
        let mut started = false;
        match self.read(size, &mut content, &mut started) {
            Ok(stored) => Ok(stored),
            Err(WriteError::Stopped) => Err(self.pipeline.failure()),
            Err(e) => {
                if started
                    && self
                        .pipeline
                        .submit(Item::FileEnd { discard: true })
                        .is_err()
                {
                    return Err(self.pipeline.failure());
                }
                Err(e)
            }
        }
    }

    /// How a file of `size` bytes is cut: its blocks, and whether its tail goes into a
    /// fragment.
    fn layout(&self, size: u64) -> (u64, bool) {
        let bs = self.block_size;
        let to_fragment = !size.is_multiple_of(bs)
            && match self.fragments {
                Fragments::Never => false,
                Fragments::SmallFiles => size < bs,
                Fragments::Always => true,
            };
        let blocks = if to_fragment {
            size / bs
        } else {
            size.div_ceil(bs)
        };
        (blocks, to_fragment)
    }

    fn read(
        &mut self,
        size: u64,
        content: &mut Content,
        started: &mut bool,
    ) -> WriteResult<Stored> {
        let (block_count, to_fragment) = self.layout(size);
        // A file the size of one stored before may be its duplicate: a pass that only
        // hashes tells, before any of it is compressed. (A stream cannot be read twice: its
        // blocks are compressed, then dropped if it is a duplicate.)
        let rereadable = matches!(content, Content::File(_));
        if self.dedup && rereadable && self.sizes.contains(&size) {
            let key = self.pass(size, content, None)?.0;
            if let Some(&earlier) = self.seen.get(&key) {
                self.duplicates += 1;
                self.bytes_read += size;
                return Ok(earlier);
            }
        }
        let mut stored = Stored {
            size,
            sparse: 0,
            blocks: None,
            fragment: (NO_FRAGMENT, 0),
        };
        if block_count > 0 {
            let id = self.block_files;
            self.block_files += 1;
            stored.blocks = Some(id);
            self.pipeline.submit(Item::FileStart(id))?;
            *started = true;
        }
        let (key, tail, holes) = self.pass(size, content, Some(&mut stored))?;
        self.bytes_read += size;
        let earlier = self.dedup.then(|| self.seen.get(&key)).flatten().copied();
        if block_count > 0 {
            self.pipeline.submit(Item::FileEnd {
                discard: earlier.is_some(),
            })?;
            *started = false;
        }
        if let Some(earlier) = earlier {
            self.duplicates += 1;
            return Ok(earlier);
        }
        if let (Some(id), false) = (stored.blocks, holes.is_empty()) {
            self.holes.insert(id, holes);
        }
        if to_fragment {
            stored.fragment = self.pack_tail(&tail)?;
        }
        if self.dedup && size > 0 {
            self.seen.insert(key, stored);
            self.sizes.insert(size);
        }
        Ok(stored)
    }

    /// Reads a file of `size` bytes once: its content key (size and hash, holes hashed as
    /// runs) and its tail if that goes to a fragment. With `stored`, its blocks are
    /// submitted, its hole bytes counted there and its holes returned; without, they are
    /// only hashed.
    fn pass(
        &mut self,
        size: u64,
        content: &mut Content,
        mut stored: Option<&mut Stored>,
    ) -> WriteResult<(ContentKey, Vec<u8>, HoleRuns)> {
        let bs = self.block_size;
        let (block_count, to_fragment) = self.layout(size);
        let mut hasher = blake3::Hasher::new();
        let mut reader = Reader::new(content);
        let mut scratch = Vec::new();
        let mut holes = HoleRuns::default();
        // The bytes of the run of holes not hashed yet.
        let mut hole_bytes = 0u64;
        let mut i = 0;
        while i < block_count {
            let offset = i * bs;
            // Blocks the source does not store are taken a run at a time, unread.
            let mut run = reader.hole_blocks(offset, bs, block_count - i, size)?;
            let mut buf = None;
            if run == 0 {
                let len = (size - offset).min(bs) as usize;
                if stored.is_some() {
                    buf = Some(self.pipeline.buffer()?);
                }
                let bytes: &mut Vec<u8> = buf.as_deref_mut().unwrap_or(&mut scratch);
                if !reader.block(offset, len, bytes, size)? {
                    run = 1;
                }
            }
            if run > 0 {
                holes.add(i, run);
                i += run;
                hole_bytes += (i * bs).min(size) - offset;
                continue;
            }
            end_hole_run(&mut hasher, &mut stored, std::mem::take(&mut hole_bytes));
            match buf {
                Some(buf) => {
                    hasher.update(&buf);
                    self.pipeline.submit(Item::Block(buf))?;
                }
                None => {
                    hasher.update(&scratch);
                }
            }
            i += 1;
        }
        end_hole_run(&mut hasher, &mut stored, hole_bytes);
        let mut tail = Vec::new();
        if to_fragment {
            let len = (size % bs) as usize;
            reader.read_tail(block_count * bs, len, &mut tail, size)?;
            hasher.update(&tail);
        }
        reader.check_end(size)?;
        Ok(((size, *hasher.finalize().as_bytes()), tail, holes))
    }

    /// Puts `tail` into the open fragment block (submitting it first if `tail` does not
    /// fit): its index and offset.
    fn pack_tail(&mut self, tail: &[u8]) -> WriteResult<(u32, u32)> {
        if let Some((block, _)) = &self.open_fragment {
            if block.len() + tail.len() > self.block_size as usize {
                self.flush_fragment()?;
            }
        }
        if self.open_fragment.is_none() {
            let buf = self.pipeline.buffer()?;
            self.open_fragment = Some((buf, self.fragment_count));
            self.fragment_count += 1;
        }
        let Some((block, index)) = &mut self.open_fragment else {
            unreachable!("opened above")
        };
        let offset = block.len() as u32;
        block.extend_from_slice(tail);
        Ok((*index, offset))
    }

    fn flush_fragment(&mut self) -> WriteResult<()> {
        if let Some((block, _)) = self.open_fragment.take() {
            self.pipeline.submit(Item::Fragment(block))?;
        }
        Ok(())
    }

    /// Submits the last fragment block and waits for everything to be written.
    pub(super) fn finish(mut self) -> WriteResult<Blocks> {
        let written = match self.flush_fragment() {
            Ok(()) => self.pipeline.finish()?,
            Err(_) => return Err(self.pipeline.failure()),
        };
        Ok(Blocks {
            written,
            holes: self.holes,
        })
    }
}

/// Hashes the run of holes that ended (`bytes` long, if any) and counts it in `stored`.
fn end_hole_run(hasher: &mut blake3::Hasher, stored: &mut Option<&mut Stored>, bytes: u64) {
    if bytes > 0 {
        hasher.update(HOLE_MARK);
        hasher.update(&bytes.to_le_bytes());
        if let Some(stored) = stored {
            stored.sparse += bytes;
        }
    }
}

/// Reads a content's blocks, checking it holds exactly the size it was listed with.
struct Reader<'c, 'a> {
    content: &'c mut Content<'a>,
    /// For a file: where its next data starts and where that data ends (SEEK_DATA and
    /// SEEK_HOLE), when known.
    data: Option<(u64, u64)>,
}

impl<'c, 'a> Reader<'c, 'a> {
    fn new(content: &'c mut Content<'a>) -> Self {
        Reader {
            content,
            data: None,
        }
    }

    /// Reads the block of `len` bytes at `offset` into `buf`; false if it is all zeros.
    fn block(
        &mut self,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
        size: u64,
    ) -> WriteResult<bool> {
        buf.resize(len, 0);
        self.read_exact(offset, buf, size)?;
        Ok(!is_zero(buf))
    }

    fn read_tail(
        &mut self,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
        size: u64,
    ) -> WriteResult<()> {
        buf.resize(len, 0);
        self.read_exact(offset, buf, size)
    }

    /// How many of the next `blocks` blocks (from `offset`, `bs` bytes each, the last
    /// ending at `size` at most) lie wholly in a hole of the source, by SEEK_DATA /
    /// SEEK_HOLE: none for a stream, which shows its holes only as zeros read.
    fn hole_blocks(&mut self, offset: u64, bs: u64, blocks: u64, size: u64) -> WriteResult<u64> {
        let Content::File(f) = *self.content else {
            return Ok(0);
        };
        let (data, data_end) = match self.data {
            Some((data, data_end)) if offset < data_end || data_end == u64::MAX => (data, data_end),
            _ => {
                let data = match seek(f, offset, libc::SEEK_DATA) {
                    Ok(d) => d,
                    // ENXIO: no data from `offset` on (the rest is a hole, or the file
                    // shrank: reading tells which).
                    Err(e) if e.raw_os_error() == Some(libc::ENXIO) => u64::MAX,
                    // A file system without SEEK_DATA: everything is data.
                    Err(_) => offset,
                };
                let data_end = if data == u64::MAX {
                    u64::MAX
                } else {
                    seek(f, data, libc::SEEK_HOLE).unwrap_or(u64::MAX)
                };
                self.data = Some((data, data_end));
                (data, data_end)
            }
        };
        let hole_end = if data == u64::MAX {
            // Nothing more is stored: a hole to the file's end, which is `size` unless the
            // file shrank (then the read of the block past its end finds it).
            f.metadata().map_err(WriteError::Input)?.len().min(size)
        } else if data_end == u64::MAX {
            // Data without an end SEEK_HOLE can find: read everything from here.
            return Ok(0);
        } else {
            data.min(size)
        };
        if hole_end <= offset {
            return Ok(0);
        }
        // Blocks before the last are whole; the last ends at `size` at most.
        Ok(if hole_end >= size {
            blocks
        } else {
            ((hole_end - offset) / bs).min(blocks)
        })
    }

    fn read_exact(&mut self, offset: u64, buf: &mut [u8], size: u64) -> WriteResult<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = match self.content {
                Content::File(f) => f.read_at(&mut buf[done..], offset + done as u64),
                Content::Stream(r) => r.read(&mut buf[done..]),
            };
            match n {
                Ok(0) => {
                    return Err(WriteError::SizeChanged {
                        expected: size,
                        found: offset + done as u64,
                    })
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(WriteError::Input(e)),
            }
        }
        Ok(())
    }

    /// Checks that nothing follows the `size` bytes read (a file that grew while it was
    /// read). A stream must end there too.
    fn check_end(&mut self, size: u64) -> WriteResult<()> {
        let mut byte = [0u8; 1];
        let n = loop {
            let r = match self.content {
                Content::File(f) => f.read_at(&mut byte, size),
                Content::Stream(r) => r.read(&mut byte),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r.map_err(WriteError::Input)?,
            }
        };
        if n > 0 {
            let found = match self.content {
                Content::File(f) => f.metadata().map_or(size + 1, |m| m.len().max(size + 1)),
                Content::Stream(_) => size + 1,
            };
            return Err(WriteError::SizeChanged {
                expected: size,
                found,
            });
        }
        Ok(())
    }
}

/// Whether every byte is zero. Runs once per block read (a tar member's content has no
/// other way to show its holes): an OR over 64-byte chunks, which the compiler turns into
/// vector instructions, checks 128 KiB at ~60 GB/s where `iter().any(|&b| b != 0)`, a
/// byte at a time with a branch each, took 1-3 GB/s (`zero_check_speed` below).
fn is_zero(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(64);
    chunks
        .by_ref()
        .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
        && chunks.remainder().iter().all(|&b| b == 0)
}

fn seek(f: &File, offset: u64, whence: libc::c_int) -> io::Result<u64> {
    let Ok(offset) = libc::off_t::try_from(offset) else {
        return Err(io::Error::from_raw_os_error(libc::ENXIO));
    };
    // SAFETY: lseek on a descriptor we own a reference to; it only moves its offset,
    // which nothing here uses (reads are positioned).
    let r = unsafe { libc::lseek(f.as_raw_fd(), offset, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_zero_only_if_every_byte_is() {
        for len in [0, 1, 63, 64, 65, 4096, 4096 + 37, 128 << 10] {
            let mut bytes = vec![0u8; len];
            assert!(is_zero(&bytes), "{len} zeros");
            for at in 0..len {
                // Every position of short ones, around the chunk edges of long ones.
                if len > 200 && at % 64 > 1 && at % 64 < 63 && at + 70 < len {
                    continue;
                }
                bytes[at] = 0x80;
                assert!(!is_zero(&bytes), "{len} bytes, one set at {at}");
                bytes[at] = 0;
            }
        }
    }

    /// Not a check (timing decides nothing): prints the zero check's speed against the
    /// byte-at-a-time one it replaced. `cargo test --release -p sqfs --lib
    /// zero_check_speed -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, run by hand"]
    fn zero_check_speed() {
        use std::hint::black_box;
        use std::time::Instant;
        let block = vec![0u8; 128 << 10];
        let rounds = 20_000;
        let speed = |check: &dyn Fn(&[u8]) -> bool| {
            let started = Instant::now();
            for _ in 0..rounds {
                assert!(black_box(check(black_box(&block))));
            }
            (block.len() * rounds) as f64 / started.elapsed().as_secs_f64() / 1e9
        };
        let before = speed(&|b| !b.iter().any(|&b| b != 0));
        let after = speed(&is_zero);
        eprintln!("zero check of 128 KiB blocks: {before:.1} GB/s before, {after:.1} GB/s now");
    }
}

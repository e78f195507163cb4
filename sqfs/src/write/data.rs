//! File contents, in the caller's thread: cut into blocks, holes found, tails packed into
//! fragment blocks, duplicates recognised, and everything submitted to the pipeline.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

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
    /// The id of its blocks in the pipeline's [`super::pipeline::Written::files`].
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
    seen: HashMap<(u64, [u8; 32]), Stored>,
    /// Bytes read so far (for progress).
    pub bytes_read: u64,
    /// Files found to be duplicates.
    pub duplicates: u64,
}

/// Marks a hole in the content hash (data blocks hash their bytes; a hole its length).
const HOLE_MARK: &[u8] = b"\0hole";

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
            seen: HashMap::new(),
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

    fn read(
        &mut self,
        size: u64,
        content: &mut Content,
        started: &mut bool,
    ) -> WriteResult<Stored> {
        let bs = self.block_size;
        let tail = size % bs;
        let to_fragment = tail > 0
            && match self.fragments {
                Fragments::Never => false,
                Fragments::SmallFiles => size < bs,
                Fragments::Always => true,
            };
        let block_count = if to_fragment {
            size / bs
        } else {
            size.div_ceil(bs)
        };
        let mut hasher = blake3::Hasher::new();
        let mut reader = Reader::new(content);
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
            let mut holes = 0u32;
            for i in 0..block_count {
                let offset = i * bs;
                let len = (size - offset).min(bs) as usize;
                let mut buf = self.pipeline.buffer()?;
                let data = reader.block(offset, len, &mut buf, size)?;
                self.bytes_read += len as u64;
                if !data {
                    hasher.update(HOLE_MARK);
                    hasher.update(&(len as u64).to_le_bytes());
                    stored.sparse += len as u64;
                    holes += 1;
                    continue;
                }
                hasher.update(&buf);
                if holes > 0 {
                    self.pipeline.submit(Item::Holes(holes))?;
                    holes = 0;
                }
                self.pipeline.submit(Item::Block(buf))?;
            }
            if holes > 0 {
                self.pipeline.submit(Item::Holes(holes))?;
            }
        }
        let mut tail_bytes = Vec::new();
        if to_fragment {
            reader.read_tail(block_count * bs, tail as usize, &mut tail_bytes, size)?;
            self.bytes_read += tail;
            hasher.update(&tail_bytes);
        }
        reader.check_end(size)?;
        let key = (size, *hasher.finalize().as_bytes());
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
        if to_fragment {
            stored.fragment = self.pack_tail(&tail_bytes)?;
        }
        if self.dedup && size > 0 {
            self.seen.insert(key, stored);
        }
        Ok(stored)
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
    pub(super) fn finish(mut self) -> WriteResult<Written> {
        match self.flush_fragment() {
            Ok(()) => self.pipeline.finish(),
            Err(_) => Err(self.pipeline.failure()),
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

    /// Reads the block of `len` bytes at `offset` into `buf`; false if it is a hole (not
    /// stored at all in the source, or all zeros).
    fn block(
        &mut self,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
        size: u64,
    ) -> WriteResult<bool> {
        if let Content::File(f) = *self.content {
            if self.is_hole(f, offset, len as u64)? {
                return Ok(false);
            }
        }
        buf.resize(len, 0);
        self.read_exact(offset, buf, size)?;
        Ok(buf.iter().any(|&b| b != 0))
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

    /// Whether `len` bytes at `offset` of `f` lie in a hole, by SEEK_DATA / SEEK_HOLE.
    fn is_hole(&mut self, f: &File, offset: u64, len: u64) -> WriteResult<bool> {
        let end = offset + len;
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
        if data == u64::MAX {
            // Nothing more is stored: a hole, unless the file is shorter than listed,
            // which a read finds.
            return Ok(f.metadata().map_err(WriteError::Input)?.len() >= end);
        }
        Ok(data >= end && data_end != u64::MAX)
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

//! The threads behind the writer: workers that compress blocks in any order, and one
//! thread that writes them to the image in the order they were submitted.
//!
//! Every item gets a sequence number when it is submitted. Blocks and fragment blocks go
//! to the workers; events (a file starts, a file ends) go straight to the
//! writer thread. The writer thread holds what arrives early until its turn, so the image
//! is the same whatever the number of workers and however they are scheduled. Memory is
//! bounded by the buffer pool: a block can only be submitted in a [`Buffer`] taken from
//! it, and a buffer goes back to the pool when it is dropped (its block written, a hole
//! found, a read failed), so at most the pool's buffers, raw and compressed, exist at once.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use super::error::{WriteError, WriteResult};
use crate::compress::Encoding;
use crate::fragment::Fragment;
use crate::reader::DataBlock;

/// Where a file's data blocks went: the position of the first, and each one's size word
/// (its holes are not the pipeline's: `data.rs` keeps them).
#[derive(Debug, Clone, Default)]
pub(super) struct Placed {
    pub start: u64,
    pub words: Vec<u32>,
}

/// A block's bytes, on loan from the pool: dropping it gives it back.
pub(super) struct Buffer {
    bytes: Vec<u8>,
    pool: Sender<Vec<u8>>,
}

impl Deref for Buffer {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // The pool has room for every buffer it lent.
        let _ = self.pool.try_send(std::mem::take(&mut self.bytes));
    }
}

/// What the caller submits, in order.
pub(super) enum Item {
    /// A file's blocks follow; `id` names them in [`Written::files`].
    FileStart(usize),
    /// A data block of the current file.
    Block(Buffer),
    /// The current file is complete. `discard`: it is not to be kept (it duplicates an
    /// earlier file, or could not be read), so the position moves back over its blocks.
    FileEnd { discard: bool },
    /// A fragment block (packed tails), the next index of the fragment table.
    Fragment(Buffer),
}

/// A block for a worker: its sequence number, bytes, and whether it is a fragment block.
type Job = (u64, Buffer, bool);

/// An item ready to write: events as they were, blocks compressed.
enum Ready {
    Event(Item),
    /// A block's raw bytes and what the worker made of them: the packed bytes if they
    /// are smaller (else the raw bytes are stored).
    Data {
        raw: Buffer,
        packed: Option<Vec<u8>>,
        fragment: bool,
    },
    Failed(crate::Error),
}

/// What the writer thread leaves: the end of the data, each file's blocks, the fragments.
pub(super) struct Written {
    pub end: u64,
    pub files: Vec<Placed>,
    pub fragments: Vec<Fragment>,
}

/// The submitting side of the pipeline, held by the caller's thread.
pub(super) struct Pipeline {
    next_seq: u64,
    jobs: Option<Sender<Job>>,
    ready: Option<Sender<(u64, Ready)>>,
    pool: Receiver<Vec<u8>>,
    pool_home: Sender<Vec<u8>>,
    failed: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<WriteResult<Written>>>,
    block_size: usize,
}

impl Pipeline {
    /// Starts `threads` workers compressing with `encoding`, and the writer thread, which
    /// writes to `out` from `start`.
    pub(super) fn start(
        out: File,
        start: u64,
        encoding: &Encoding,
        threads: usize,
    ) -> WriteResult<Self> {
        let block_size = encoding.block_size as usize;
        let threads = threads.max(1);
        // 32 MiB of blocks in flight (256 at 128 KiB), a few per worker at least, at most
        // 64 MiB: the workers have a second or so of work queued, so they go on while the
        // caller's thread waits for a CPU on a busy machine (with 12 blocks, 2 workers ran
        // dry: 0.7-1 of 2 cores busy packing big files under load). Raw and compressed
        // buffers together stay within twice that.
        let window = ((32 << 20) / block_size)
            .max(4 * threads + 4)
            .min((64 << 20) / block_size)
            .max(4);
        let (pool_home, pool) = bounded(window);
        for _ in 0..window {
            let _ = pool_home.send(Vec::with_capacity(block_size));
        }
        let (jobs_tx, jobs_rx) = bounded::<Job>(window);
        let (ready_tx, ready_rx) = unbounded::<(u64, Ready)>();
        let (packed_tx, packed_rx) = bounded::<Vec<u8>>(window);
        let failed = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for _ in 0..threads {
            let mut compressor = encoding.compressor()?;
            let (jobs, ready, spare) = (jobs_rx.clone(), ready_tx.clone(), packed_rx.clone());
            workers.push(std::thread::spawn(move || {
                for (seq, raw, fragment) in jobs {
                    let mut packed = spare.try_recv().unwrap_or_default();
                    let done = match compressor.compress(&raw, &mut packed) {
                        Ok(shrunk) => Ready::Data {
                            raw,
                            packed: shrunk.then_some(packed),
                            fragment,
                        },
                        Err(e) => Ready::Failed(e),
                    };
                    if ready.send((seq, done)).is_err() {
                        return;
                    }
                }
            }));
        }
        let writer_failed = failed.clone();
        let writer = std::thread::spawn(move || {
            let mut w = WriterThread {
                out,
                pos: start,
                current: None,
                written: Written {
                    end: start,
                    files: Vec::new(),
                    fragments: Vec::new(),
                },
                error: None,
                spare: packed_tx,
            };
            let mut early = BTreeMap::new();
            let mut next = 0u64;
            for (seq, ready) in ready_rx {
                early.insert(seq, ready);
                while let Some(ready) = early.remove(&next) {
                    w.take(ready);
                    next += 1;
                    if w.error.is_some() {
                        writer_failed.store(true, Ordering::Relaxed);
                    }
                }
            }
            match w.error {
                Some(e) => Err(e),
                None if !early.is_empty() => Err(WriteError::Stopped),
                None => {
                    w.written.end = w.pos;
                    Ok(w.written)
                }
            }
        });
        Ok(Pipeline {
            next_seq: 0,
            jobs: Some(jobs_tx),
            ready: Some(ready_tx),
            pool,
            pool_home,
            failed,
            workers,
            writer: Some(writer),
            block_size,
        })
    }

    /// An empty buffer to fill with a block (waits while the window is full).
    pub(super) fn buffer(&mut self) -> WriteResult<Buffer> {
        let mut bytes = self.pool.recv().map_err(|_| WriteError::Stopped)?;
        bytes.clear();
        bytes.reserve(self.block_size);
        Ok(Buffer {
            bytes,
            pool: self.pool_home.clone(),
        })
    }

    /// Submits the next item.
    pub(super) fn submit(&mut self, item: Item) -> WriteResult<()> {
        if self.failed.load(Ordering::Relaxed) {
            // The writer thread's error is what failure() reports; stop feeding it.
            return Err(WriteError::Stopped);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let sent = match item {
            Item::Block(raw) => self
                .jobs
                .as_ref()
                .map(|j| j.send((seq, raw, false)).is_ok()),
            Item::Fragment(raw) => self.jobs.as_ref().map(|j| j.send((seq, raw, true)).is_ok()),
            event => self
                .ready
                .as_ref()
                .map(|r| r.send((seq, Ready::Event(event))).is_ok()),
        };
        match sent {
            Some(true) => Ok(()),
            _ => Err(WriteError::Stopped),
        }
    }

    /// Waits for every item to be written; the writer thread's result.
    pub(super) fn finish(mut self) -> WriteResult<Written> {
        self.stop()
    }

    /// Why a submission was refused: stops the threads and returns the writer thread's
    /// error. The pipeline takes nothing more afterwards.
    pub(super) fn failure(&mut self) -> WriteError {
        match self.stop() {
            Err(e) => e,
            Ok(_) => WriteError::Stopped,
        }
    }

    fn stop(&mut self) -> WriteResult<Written> {
        self.jobs = None;
        self.ready = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(WriteError::Stopped),
        }
    }
}

impl Drop for Pipeline {
    /// A writer given up on (an error in the caller) still stops its threads.
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.stop();
        }
    }
}

/// The writer thread's state.
struct WriterThread {
    out: File,
    pos: u64,
    /// The file whose blocks are being written: its id and where they started.
    current: Option<(usize, Placed)>,
    written: Written,
    error: Option<WriteError>,
    spare: Sender<Vec<u8>>,
}

impl WriterThread {
    fn take(&mut self, ready: Ready) {
        match ready {
            Ready::Failed(e) => self.fail(WriteError::Compress(e)),
            Ready::Event(Item::FileStart(id)) => {
                let placed = Placed {
                    start: self.pos,
                    words: Vec::new(),
                };
                self.current = Some((id, placed));
            }
            Ready::Event(Item::FileEnd { discard }) => {
                if let Some((id, placed)) = self.current.take() {
                    if discard {
                        self.pos = placed.start;
                    } else {
                        if self.written.files.len() <= id {
                            self.written.files.resize_with(id + 1, Placed::default);
                        }
                        self.written.files[id] = placed;
                    }
                }
            }
            Ready::Event(Item::Block(_) | Item::Fragment(_)) => {
                unreachable!("blocks go through the workers")
            }
            Ready::Data {
                raw,
                packed,
                fragment,
            } => {
                let bytes = packed.as_deref().unwrap_or(&raw);
                let block = DataBlock {
                    stored: bytes.len() as u32,
                    compressed: packed.is_some(),
                };
                if self.error.is_none() {
                    if let Err(e) = self.out.write_all_at(bytes, self.pos) {
                        self.fail(WriteError::Output(e));
                    }
                }
                if fragment {
                    self.written.fragments.push(Fragment {
                        start: self.pos,
                        block,
                    });
                } else if let Some((_, placed)) = &mut self.current {
                    placed.words.push(block.word());
                }
                self.pos += u64::from(block.stored);
                if let Some(p) = packed {
                    let _ = self.spare.try_send(p);
                }
            }
        }
    }

    fn fail(&mut self, e: WriteError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}

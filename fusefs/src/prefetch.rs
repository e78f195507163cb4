//! Work done off the request path, on other cores: decompressing the blocks a sequential
//! reader will want next (so one reader is not bound to one core's codec speed), and
//! pushing whole decompressed blocks into the kernel's page cache (FUSE notify-store), so
//! a block is decompressed once however it is read, as the kernel's own driver does.

use std::sync::{Arc, OnceLock};

use crossbeam_channel::{bounded, Sender, TrySendError};
use fuser::{INodeNo, Notifier};
use sqfs::cache::Block;
use sqfs::Archive;

use crate::handles::OpenFile;

enum Job {
    /// Decompress block `index` of a file into the block cache.
    Prefetch(Arc<OpenFile>, usize),
    /// Store `block` at `offset` of node `node` in the page cache.
    Store(u64, u64, Block, usize),
}

pub struct Background {
    jobs: Sender<Job>,
    stores: Sender<Job>,
}

impl Background {
    /// Starts `threads` prefetch workers and one page-cache writer. Request threads never
    /// wait on them: a full queue drops the job (it is only ever an optimisation).
    pub fn start(archive: Arc<Archive>, notifier: Arc<OnceLock<Notifier>>, threads: usize) -> Self {
        let (jobs, rx) = bounded::<Job>(256);
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let archive = archive.clone();
            std::thread::Builder::new()
                .name(format!("prefetch-{i}"))
                .spawn(move || {
                    for job in rx {
                        if let Job::Prefetch(file, index) = job {
                            let _ = archive.data_block(&file.data, index);
                        }
                    }
                })
                .expect("spawn prefetch thread");
        }
        // One writer: a store waits for pages that a pending read holds locked, and that
        // read is served by a request thread, which never waits here.
        let (stores, rx) = bounded::<Job>(64);
        std::thread::Builder::new()
            .name("page-store".into())
            .spawn(move || {
                for job in rx {
                    if let (Job::Store(node, offset, block, len), Some(n)) = (job, notifier.get()) {
                        let _ = n.store(INodeNo(node), offset, &block[..len]);
                    }
                }
            })
            .expect("spawn page-store thread");
        Background { jobs, stores }
    }

    pub fn prefetch(&self, file: &Arc<OpenFile>, index: usize) {
        match self.jobs.try_send(Job::Prefetch(file.clone(), index)) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Pushes the first `len` bytes of `block` into the page cache at `offset`.
    pub fn store(&self, node: u64, offset: u64, block: Block, len: usize) {
        let _ = self.stores.try_send(Job::Store(node, offset, block, len));
    }
}

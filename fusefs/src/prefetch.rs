//! Work done off the request path, on other cores: decompressing the blocks a sequential
//! reader will want next (so one reader is not bound to one core's codec speed), and
//! pushing whole decompressed blocks into the kernel's page cache (FUSE notify-store), so
//! a block is decompressed once however it is read, as the kernel's own driver does.

use std::sync::{Arc, OnceLock};

use crossbeam_channel::{bounded, Sender};
use fuser::{INodeNo, Notifier};
use sqfs::{Archive, Block};

use crate::handles::OpenFile;

/// Decompress block `.1` of file `.0` into the block cache.
struct Prefetch(Arc<OpenFile>, usize);
/// Store block `.1` of file `.0` (decompressed: `.3`) at offset `.2` in the page cache.
struct Store(Arc<OpenFile>, usize, u64, Block);

pub struct Background {
    jobs: Sender<Prefetch>,
    stores: Sender<Store>,
}

impl Background {
    /// Starts `threads` prefetch workers and one page-cache writer. Request threads never
    /// wait on them: a full queue drops the job (it is only ever an optimisation).
    pub fn start(archive: Arc<Archive>, notifier: Arc<OnceLock<Notifier>>, threads: usize) -> Self {
        let (jobs, rx) = bounded::<Prefetch>(256);
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let archive = archive.clone();
            std::thread::Builder::new()
                .name(format!("prefetch-{i}"))
                .spawn(move || {
                    for Prefetch(file, index) in rx {
                        let _ = archive.data_block(&file.data, index);
                    }
                })
                .expect("spawn prefetch thread");
        }
        // One writer: a store waits for pages that a pending read holds locked, and that
        // read is served by a request thread, which never waits here.
        let (stores, rx) = bounded::<Store>(64);
        std::thread::Builder::new()
            .name("page-store".into())
            .spawn(move || {
                for Store(file, index, offset, block) in rx {
                    if let Some(n) = notifier.get() {
                        let _ = n.store(INodeNo(file.node), offset, &block);
                    }
                    file.end_push(index);
                }
            })
            .expect("spawn page-store thread");
        Background { jobs, stores }
    }

    pub fn prefetch(&self, file: &Arc<OpenFile>, index: usize) {
        let _ = self.jobs.try_send(Prefetch(file.clone(), index));
    }

    /// Pushes `block`, block `index` of `file`, into the page cache at `offset`, unless a
    /// push of it is already in flight.
    pub fn store(&self, file: &Arc<OpenFile>, index: usize, offset: u64, block: Block) {
        if file.start_push(index) {
            if let Err(e) = self
                .stores
                .try_send(Store(file.clone(), index, offset, block))
            {
                file.end_push(e.into_inner().1);
            }
        }
    }
}

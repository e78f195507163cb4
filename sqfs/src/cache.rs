//! A bounded, sharded cache of decompressed blocks (data, fragment and metadata blocks).
//!
//! Two threads that miss the same block decompress it once: the first inserts a slot and
//! fills it outside the shard lock, the second waits on that slot. Eviction is CLOCK
//! (second chance) per shard, bounded by bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::Result;

/// A decompressed block of an image, shared by the cache and every reader that holds it:
/// cloning it copies no bytes. [`Archive::data_block`](crate::Archive::data_block) returns a
/// file's blocks this way, for readers that keep or hand on whole blocks.
//
// The decompressor's own buffer is kept (no second allocation and copy into an
// `Arc<[u8]>`): one allocation per block, of the size the cache is charged for, keeps the
// heap from fragmenting.
pub type Block = Arc<Vec<u8>>;

/// A fill's outcome, for the threads that waited on it: they get the filler's error (a
/// copy), so an I/O error stays an I/O error for them too.
type Filled = Result<Block>;

const SHARDS: usize = 16;

/// Bytes of evicted blocks' buffers kept for the next fills (see [`BlockCache::spare`]):
/// two 1 MiB blocks, sixteen of 128 KiB.
const SPARE_BYTES: usize = 2 << 20;

struct Entry {
    slot: Arc<OnceLock<Filled>>,
    charge: usize,
    referenced: bool,
}

#[derive(Default)]
struct Shard {
    map: HashMap<u64, Entry>,
    clock: VecDeque<u64>,
    bytes: usize,
}

pub struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    shard_capacity: usize,
    spare: Mutex<Spare>,
}

/// Buffers of evicted blocks no reader held, each with the charge it was filled for.
#[derive(Default)]
struct Spare {
    bufs: Vec<(usize, Vec<u8>)>,
    /// Their capacities added up: at most `SPARE_BYTES`.
    bytes: usize,
}

impl BlockCache {
    /// A cache holding about `capacity` bytes of decompressed blocks.
    pub fn new(capacity: usize) -> Self {
        BlockCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity: capacity / SHARDS,
            spare: Mutex::new(Spare::default()),
        }
    }

    fn shard(&self, key: u64) -> &Mutex<Shard> {
        // Block positions are spread but aligned; mix the bits before picking a shard.
        let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
        &self.shards[h as usize % SHARDS]
    }

    /// A buffer for a block of `charge` bytes at most: an evicted block's, or a new empty
    /// one. Why: a decoder writing into a reused buffer has no need to zero it first
    /// (zeroing every new 128 KiB buffer was 9% of decoding lzo, which writes into
    /// initialised bytes only), and the allocator no longer hands out and takes back a
    /// block-sized chunk for every block. Whatever the buffer holds is stale bytes.
    pub fn spare(&self, charge: usize) -> Vec<u8> {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        match spare.bufs.iter().rposition(|(c, _)| *c == charge) {
            Some(i) => {
                let (_, buf) = spare.bufs.swap_remove(i);
                spare.bytes -= buf.capacity();
                buf
            }
            None => Vec::new(),
        }
    }

    /// Drops the block at `key` now, before its turn to be evicted: for a reader that has
    /// taken it whole and will not ask again. Its buffer goes to the next fill.
    pub fn forget(&self, key: u64) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        // A block still being filled is left to its filler.
        if shard.map.get(&key).is_some_and(|e| e.slot.get().is_some()) {
            let entry = shard.map.remove(&key).expect("present");
            shard.bytes -= entry.charge;
            // Blocks are forgotten soon after they come in: look from the newest end.
            if let Some(at) = shard.clock.iter().rposition(|&k| k == key) {
                shard.clock.remove(at);
            }
            self.keep_spare(entry);
        }
    }

    /// Keeps the buffer of an evicted entry for [`Self::spare`], if no reader holds the
    /// block and there is room.
    fn keep_spare(&self, entry: Entry) {
        let Ok(slot) = Arc::try_unwrap(entry.slot) else {
            return;
        };
        let Some(Ok(block)) = slot.into_inner() else {
            return;
        };
        let Ok(buf) = Arc::try_unwrap(block) else {
            return;
        };
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.bytes + buf.capacity() <= SPARE_BYTES {
            spare.bytes += buf.capacity();
            spare.bufs.push((entry.charge, buf));
        }
    }

    /// Returns the block at `key`, calling `fill` to produce it on a miss. `charge` is the
    /// number of bytes the block will hold at most, accounted before it is filled.
    pub fn get_or_fill(
        &self,
        key: u64,
        charge: usize,
        fill: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Block> {
        let slot = {
            let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = shard.map.get_mut(&key) {
                entry.referenced = true;
                entry.slot.clone()
            } else {
                let slot = Arc::new(OnceLock::new());
                shard.map.insert(
                    key,
                    Entry {
                        slot: slot.clone(),
                        charge,
                        referenced: false,
                    },
                );
                shard.clock.push_back(key);
                shard.bytes += charge;
                self.evict(&mut shard, key);
                slot
            }
        };
        // The filler keeps its own error (with its source); waiters get the stored copy.
        let mut own_error = None;
        let filled = slot.get_or_init(|| {
            fill()
                .map(Block::new)
                .inspect_err(|e| own_error = Some(e.clone()))
        });
        match filled {
            Ok(block) => Ok(block.clone()),
            Err(stored) => {
                // Forget the failure so a later read tries again (the file may be fixed).
                let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
                if shard
                    .map
                    .get(&key)
                    .is_some_and(|e| Arc::ptr_eq(&e.slot, &slot))
                {
                    let entry = shard.map.remove(&key).expect("present");
                    shard.bytes -= entry.charge;
                    shard.clock.retain(|&k| k != key);
                }
                Err(own_error.unwrap_or_else(|| stored.clone()))
            }
        }
    }

    fn evict(&self, shard: &mut Shard, keep: u64) {
        // Each key is looked at most twice per pass: once to clear its bit, once to evict.
        let mut budget = shard.clock.len() * 2;
        while shard.bytes > self.shard_capacity && budget > 0 {
            budget -= 1;
            let Some(key) = shard.clock.pop_front() else {
                break;
            };
            let entry = shard.map.get_mut(&key).expect("clock and map agree");
            if entry.referenced || key == keep {
                entry.referenced = false;
                shard.clock.push_back(key);
            } else {
                let entry = shard.map.remove(&key).expect("present");
                shard.bytes -= entry.charge;
                self.keep_spare(entry);
            }
        }
    }

    /// Bytes currently accounted to cached blocks.
    pub fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn stays_within_its_capacity() {
        let cache = BlockCache::new(16 * 4 * 1024);
        for key in 0..1000u64 {
            cache
                .get_or_fill(key * 4096, 1024, || Ok(vec![1; 1024]))
                .unwrap();
        }
        assert!(
            cache.bytes() <= 16 * 4 * 1024,
            "{} bytes cached",
            cache.bytes()
        );
    }

    /// Fills `keys` blocks of `len` bytes each and drops them; the fresh buffers' addresses.
    fn fill_and_drop(cache: &BlockCache, keys: std::ops::Range<u64>, len: usize) -> Vec<usize> {
        keys.map(|key| {
            let block = cache
                .get_or_fill(key * 4096, len, || Ok(vec![7; len]))
                .unwrap();
            block.as_ptr() as usize
        })
        .collect()
    }

    #[test]
    fn an_evicted_blocks_buffer_goes_to_the_next_fill_of_its_size() {
        let cache = BlockCache::new(16 * 2 * 1024);
        let filled = fill_and_drop(&cache, 0..200, 1024);
        assert!(cache.bytes() <= 16 * 2 * 1024);
        let buf = cache.spare(1024);
        assert!(buf.capacity() >= 1024, "no evicted buffer was kept");
        assert!(
            filled.contains(&(buf.as_ptr() as usize)),
            "not an evicted block's buffer"
        );
        // What it holds is the evicted block's bytes, to be overwritten.
        assert!(buf.iter().all(|&b| b == 7));
        // Blocks of another size do not get it.
        assert_eq!(cache.spare(1000).capacity(), 0);
    }

    #[test]
    fn a_block_a_reader_holds_is_never_reused() {
        let cache = BlockCache::new(16 * 2 * 1024);
        let held: Vec<Block> = (0..200)
            .map(|key| {
                cache
                    .get_or_fill(key * 4096, 1024, || Ok(vec![7; 1024]))
                    .unwrap()
            })
            .collect();
        assert_eq!(cache.spare(1024).capacity(), 0);
        drop(held);
    }

    #[test]
    fn a_forgotten_block_leaves_at_once_and_its_buffer_is_reused() {
        let cache = BlockCache::new(1 << 20);
        let block = cache.get_or_fill(4096, 1024, || Ok(vec![7; 1024])).unwrap();
        let at = block.as_ptr() as usize;
        drop(block);
        cache.forget(8192); // not cached: nothing happens
        assert_eq!(cache.bytes(), 1024);
        cache.forget(4096);
        assert_eq!(cache.bytes(), 0);
        let reused = cache.spare(1024);
        assert_eq!(reused.as_ptr() as usize, at);
        // Asked again, it is filled again.
        let again = cache.get_or_fill(4096, 1024, || Ok(vec![8; 1024])).unwrap();
        assert_eq!(again[0], 8);
    }

    #[test]
    fn the_buffers_kept_are_bounded() {
        let cache = BlockCache::new(16 << 20);
        fill_and_drop(&cache, 0..100, 1 << 20);
        let mut kept = 0;
        loop {
            let buf = cache.spare(1 << 20);
            if buf.capacity() == 0 {
                break;
            }
            kept += buf.capacity();
        }
        assert!(kept > 0 && kept <= SPARE_BYTES, "{kept} bytes kept");
    }

    #[test]
    fn a_hit_does_not_refill() {
        let cache = BlockCache::new(1 << 20);
        let fills = AtomicUsize::new(0);
        for _ in 0..3 {
            let b = cache
                .get_or_fill(7, 3, || {
                    fills.fetch_add(1, Ordering::SeqCst);
                    Ok(vec![1, 2, 3])
                })
                .unwrap();
            assert_eq!(&*b, &[1, 2, 3]);
        }
        assert_eq!(fills.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn concurrent_misses_fill_once() {
        let cache = BlockCache::new(1 << 20);
        let fills = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let b = cache
                        .get_or_fill(42, 4, || {
                            fills.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(vec![9; 4])
                        })
                        .unwrap();
                    assert_eq!(&*b, &[9; 4]);
                });
            }
        });
        assert_eq!(fills.load(Ordering::SeqCst), 1);
    }

    /// How many hold the slot of `key` (the cache and every reader filling or waiting).
    fn holders(cache: &BlockCache, key: u64) -> usize {
        let shard = cache.shard(key).lock().unwrap();
        shard
            .map
            .get(&key)
            .map_or(0, |e| Arc::strong_count(&e.slot))
    }

    #[test]
    fn a_waiter_gets_the_fillers_error_kind() {
        let eio = || crate::Error::Io(std::io::Error::from_raw_os_error(libc::EIO));
        let corrupt = || crate::error::corrupt!("bad block");
        for make in [eio, corrupt] {
            let cache = BlockCache::new(1 << 20);
            let results = std::thread::scope(|s| {
                let filler = s.spawn(|| {
                    cache.get_or_fill(5, 4, || {
                        // Fail only once the other thread waits on this fill: the cache,
                        // this thread and the waiter hold the slot.
                        let deadline =
                            std::time::Instant::now() + std::time::Duration::from_secs(60);
                        while holders(&cache, 5) < 3 {
                            assert!(std::time::Instant::now() < deadline, "no waiter came");
                            std::thread::yield_now();
                        }
                        Err(make())
                    })
                });
                while holders(&cache, 5) < 2 {
                    std::thread::yield_now();
                }
                let waiter = s.spawn(|| {
                    cache.get_or_fill(5, 4, || Err(crate::error::corrupt!("the waiter filled")))
                });
                [filler.join().unwrap(), waiter.join().unwrap()]
            });
            let expected = make();
            for result in results {
                let e = result.unwrap_err();
                match (&e, &expected) {
                    (crate::Error::Io(a), crate::Error::Io(b)) => {
                        assert_eq!(a.raw_os_error(), b.raw_os_error(), "{e}")
                    }
                    (crate::Error::Corrupt(a), crate::Error::Corrupt(b)) => assert_eq!(a, b),
                    _ => panic!("{expected:?} came back as {e:?}"),
                }
            }
        }
    }

    #[test]
    fn a_failed_fill_is_retried() {
        let cache = BlockCache::new(1 << 20);
        let err = cache.get_or_fill(1, 4, || Err(crate::error::corrupt!("bad")));
        assert!(err.is_err());
        let ok = cache.get_or_fill(1, 4, || Ok(vec![1])).unwrap();
        assert_eq!(&*ok, &[1]);
        assert_eq!(cache.bytes(), 4);
    }
}

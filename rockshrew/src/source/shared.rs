//! One block source for several indexers: a block that one indexer fetches is kept for the
//! others, so that indexers at the same height fetch and read each block from the node once.
//!
//! Blocks are kept in memory up to a budget in bytes, least recently used first out. An
//! indexer further behind than the budget reaches fetches its blocks from the source again,
//! so memory stays bounded however far apart the indexers are. Two indexers asking for one
//! block at once cause one fetch: the second waits for the first's.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use lru::LruCache;
use metashrew_storage::BlockHash;

use super::{Block, BlockSource, SourceError};

/// A [`BlockSource`] whose blocks are fetched once for every indexer that reads it.
pub(crate) struct SharedSource {
    inner: Arc<dyn BlockSource>,
    budget_bytes: usize,
    kept: Mutex<Kept>,
    /// Signalled when a fetch in flight ends.
    fetched: Condvar,
    /// Blocks fetched from the source.
    fetches: AtomicU64,
    /// Blocks answered from memory.
    reuses: AtomicU64,
}

struct Kept {
    blocks: LruCache<BlockHash, Block>,
    bytes: usize,
    /// Blocks being fetched now.
    in_flight: HashSet<BlockHash>,
}

impl SharedSource {
    /// Shares `inner`, keeping up to `budget_bytes` of blocks.
    pub(crate) fn new(inner: Arc<dyn BlockSource>, budget_bytes: usize) -> Self {
        Self {
            inner,
            budget_bytes,
            kept: Mutex::new(Kept {
                blocks: LruCache::unbounded(),
                bytes: 0,
                in_flight: HashSet::new(),
            }),
            fetched: Condvar::new(),
            fetches: AtomicU64::new(0),
            reuses: AtomicU64::new(0),
        }
    }

    /// Blocks fetched from the source, and blocks answered from memory, so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.fetches.load(Ordering::Relaxed),
            self.reuses.load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `block`, dropping the least recently used blocks past the budget.
    fn keep(&self, kept: &mut Kept, hash: BlockHash, block: Block) {
        if block.len() > self.budget_bytes {
            return;
        }
        kept.bytes += block.len();
        if let Some(old) = kept.blocks.put(hash, block) {
            kept.bytes -= old.len();
        }
        while kept.bytes > self.budget_bytes {
            match kept.blocks.pop_lru() {
                Some((_, dropped)) => kept.bytes -= dropped.len(),
                None => break,
            }
        }
    }
}

impl BlockSource for SharedSource {
    fn tip_height(&self) -> Result<u32, SourceError> {
        self.inner.tip_height()
    }

    fn block_hash(&self, height: u32) -> Result<BlockHash, SourceError> {
        self.inner.block_hash(height)
    }

    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        let mut kept = self.lock();
        loop {
            if let Some(block) = kept.blocks.get(hash) {
                let block = block.clone();
                drop(kept);
                self.reuses.fetch_add(1, Ordering::Relaxed);
                return Ok(block);
            }
            if kept.in_flight.insert(*hash) {
                break;
            }
            // Another indexer is fetching it: wait for its outcome (on a failure, fetch it here).
            kept = self.fetched.wait(kept).unwrap_or_else(|p| p.into_inner());
        }
        drop(kept);
        let fetched = self.inner.block(hash);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.lock();
        kept.in_flight.remove(hash);
        if let Ok(block) = &fetched {
            self.keep(&mut kept, *hash, block.clone());
        }
        drop(kept);
        self.fetched.notify_all();
        fetched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of `size` bytes whose content is their hash's first byte; counts its fetches.
    struct Counting {
        size: usize,
        fetches: AtomicU64,
    }

    impl BlockSource for Counting {
        fn tip_height(&self) -> Result<u32, SourceError> {
            Ok(100)
        }
        fn block_hash(&self, height: u32) -> Result<BlockHash, SourceError> {
            Ok(BlockHash::from_bytes([height as u8; 32]))
        }
        fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            Ok(Block::new(vec![hash.as_bytes()[0]; self.size]))
        }
    }

    #[test]
    fn indexers_at_one_height_fetch_each_block_once_and_memory_stays_in_budget() {
        let inner = Arc::new(Counting {
            size: 1000,
            fetches: AtomicU64::new(0),
        });
        let fetches = || inner.fetches.load(Ordering::SeqCst);
        let shared = Arc::new(SharedSource::new(inner.clone(), 20_000));
        let read = |h: u32| {
            let hash = shared.block_hash(h).expect("hash");
            assert_eq!(
                shared.block(&hash).expect("block").as_slice(),
                [h as u8; 1000]
            );
        };
        // Three readers of blocks 0..20 at once: one fetch per block, whatever the timing.
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| (0..20).for_each(read));
            }
        });
        assert_eq!(fetches(), 20);
        assert_eq!(shared.counts(), (20, 40));
        // Twenty more blocks: the first twenty are dropped, memory stays within the budget.
        (20..40).for_each(read);
        let kept = shared.lock();
        assert_eq!((kept.bytes, kept.blocks.len()), (20_000, 20));
        drop(kept);
        // A reader far behind fetches again: block 0 was dropped.
        read(0);
        assert_eq!(fetches(), 41);
        read(39);
        assert_eq!(fetches(), 41, "block 39 is still kept");
    }
}

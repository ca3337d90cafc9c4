//! The blocks this daemon rolled back in reorganisations, by hash: a view pinned to one of them
//! is told it was reorganised away, not that its block is unknown. Kept in memory, for the most
//! recent [`REMEMBERED`] blocks (a restart forgets them).

use std::sync::Mutex;

use lru::LruCache;
use metashrew_storage::BlockHash;

/// Rolled-back blocks remembered at most.
pub const REMEMBERED: usize = 10_000;

/// Hashes of rolled-back blocks with their heights, the most recent [`REMEMBERED`].
pub struct Abandoned(Mutex<LruCache<BlockHash, u32>>);

impl Default for Abandoned {
    fn default() -> Self {
        Self(Mutex::new(LruCache::new(
            std::num::NonZeroUsize::new(REMEMBERED).unwrap_or(std::num::NonZeroUsize::MIN),
        )))
    }
}

impl Abandoned {
    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<BlockHash, u32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers that the block `hash` at `height` was rolled back.
    pub fn record(&self, hash: BlockHash, height: u32) {
        self.lock().put(hash, height);
    }

    /// The height of `hash` if it is a block this daemon rolled back.
    pub fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        self.lock().peek(hash).copied()
    }
}

//! The storage behind `__get` / `__flush`: versioned by height, committed one block at a time.
//!
//! Every key has a history of `(height, value)` entries. A read at height H returns the value
//! of the newest entry at or below H (empty when there is none: absent and empty are the same
//! thing). A block's writes, the list of keys it touched, its hash, its state root and the new
//! tip are committed as one atomic unit ([`Storage::commit_block`]); rolling back to height r
//! removes exactly the entries above r, using the touched-key lists, so it costs time in
//! proportion to what was written above r, not to the size of the store.
//!
//! [`MemStore`] implements it in memory; the daemon's RocksDB store is another implementation.
//! [`CachedStore`] (a read cache) and [`PipelinedStore`] (background writes of large blocks)
//! wrap any of them without changing what a read answers.

mod background;
mod cached;
mod memory;
mod pipelined;

pub use cached::CachedStore;
pub use memory::MemStore;
pub use pipelined::{PIPELINE_MIN_WRITES, PipelinedStore};

use std::sync::Arc;

/// The 32-byte hash of a block, in internal byte order (as `sha256d(header)` produces it).
pub type BlockHash = [u8; 32];

/// A state root: see [`crate::state_root`].
pub type StateRoot = [u8; 32];

/// Key/value pairs.
pub type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything one block changes, committed atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCommit {
    pub height: u32,
    pub block_hash: BlockHash,
    pub state_root: StateRoot,
    /// The block's canonical write set: one entry per key (its last value), sorted by key.
    pub writes: KeyValues,
}

impl BlockCommit {
    /// The value this block writes to `key`, if it writes it (a binary search: the writes are
    /// sorted).
    pub fn written(&self, key: &[u8]) -> Option<&[u8]> {
        self.writes
            .binary_search_by(|(k, _)| k.as_slice().cmp(key))
            .ok()
            .map(|i| self.writes[i].1.as_slice())
    }
}

/// A storage failure: the backend's own error, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The cause is part of the message (and not a `source`), so it is printed once however
    /// the error is reported.
    #[error("storage backend failed while {action}: {cause}")]
    Backend {
        action: &'static str,
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("block {height} does not follow the tip {tip:?}")]
    NotNextHeight { height: u32, tip: Option<u32> },
    #[error("cannot roll back to {target}: the tip is {tip:?}")]
    BadRollback { target: u32, tip: Option<u32> },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A versioned key/value store. Implementations must be safe to read from many threads while
/// one thread commits: a read at height H never sees anything committed above H.
pub trait Storage: Send + Sync + 'static {
    /// The value of `key` as of `height` (the newest entry at or below it), if any.
    fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError>;

    /// Commits one block atomically. `commit.height` must be the tip + 1, or any height when
    /// the store is empty (indexing may start above genesis).
    fn commit_block(&self, commit: &BlockCommit) -> Result<(), StorageError>;

    /// [`Storage::commit_block`] for a caller that can hand over the commit, so a store that
    /// keeps it (see [`PipelinedStore`]) need not copy it.
    fn commit_shared(&self, commit: Arc<BlockCommit>) -> Result<(), StorageError> {
        self.commit_block(&commit)
    }

    /// The highest committed height.
    fn tip(&self) -> Result<Option<u32>, StorageError>;

    /// The lowest committed height (where indexing started).
    fn first_height(&self) -> Result<Option<u32>, StorageError>;

    /// The hash of the block committed at `height`.
    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, StorageError>;

    /// The state root after the block at `height`.
    fn state_root(&self, height: u32) -> Result<Option<StateRoot>, StorageError>;

    /// The keys the block at `height` wrote, sorted.
    fn touched_keys(&self, height: u32) -> Result<Vec<Vec<u8>>, StorageError>;

    /// Removes every block above `height`, leaving `height` as the tip. Rolling back to below
    /// the first height empties the store.
    fn rollback_to(&self, height: u32) -> Result<(), StorageError>;
}

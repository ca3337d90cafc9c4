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
//! wrap any of them without changing what a read answers. [`state_root`] defines the chained
//! commitment to everything written.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod background;
mod cached;
pub mod hashes;
mod memory;
mod pipelined;
pub mod state_root;

pub use cached::CachedStore;
pub use hashes::{BlockHash, ParseHashError, StateRoot};
pub use memory::MemStore;
pub use pipelined::{PIPELINE_MIN_WRITES, PipelinedStore};

use std::sync::Arc;

/// Key/value pairs.
pub type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything one block changes, committed atomically. Its writes are always canonical (one
/// entry per key, sorted by key), which [`BlockCommit::written`] and every store rely on: the
/// constructors make them so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCommit {
    height: u32,
    block_hash: BlockHash,
    state_root: StateRoot,
    writes: KeyValues,
}

/// From this many pairs on, [`canonical_writes`] sorts the two halves of a block's writes on
/// two threads: for a large block (AssemblyScript guests flush 50,000+ pairs) the sort is most
/// of the commit's time, and the guest is done with the core it ran on.
pub const PARALLEL_SORT_MIN: usize = 8192;

/// `pairs` as a canonical write set: sorted by key, one entry per key holding the last value
/// given for it.
pub fn canonical_writes(mut pairs: KeyValues) -> KeyValues {
    let by_key = |a: &(Vec<u8>, Vec<u8>), b: &(Vec<u8>, Vec<u8>)| a.0.cmp(&b.0);
    let mut writes: KeyValues = Vec::with_capacity(pairs.len());
    // Each sort is stable, and a merge takes the first half's pair on equal keys: pairs of one
    // key stay in write order, so the last of each run is the newest.
    let mut push = |(key, value): (Vec<u8>, Vec<u8>)| match writes.last_mut() {
        Some(last) if last.0 == key => last.1 = value,
        _ => writes.push((key, value)),
    };
    if pairs.len() < PARALLEL_SORT_MIN {
        pairs.sort_by(by_key);
        pairs.into_iter().for_each(push);
        return writes;
    }
    let mut second = pairs.split_off(pairs.len() / 2);
    let mut first = pairs;
    let helped = std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("sort-writes".into())
            .spawn_scoped(scope, || second.sort_by(by_key));
        first.sort_by(by_key);
        match helper {
            Ok(helper) => {
                if let Err(panic) = helper.join() {
                    std::panic::resume_unwind(panic);
                }
                true
            }
            Err(_) => false,
        }
    });
    if !helped {
        // No thread to be had: sort it here.
        second.sort_by(by_key);
    }
    let (mut a, mut b) = (first.into_iter().peekable(), second.into_iter().peekable());
    loop {
        let take_second = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => y.0 < x.0,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => break,
        };
        let next = if take_second { b.next() } else { a.next() };
        next.into_iter().for_each(&mut push);
    }
    writes
}

impl BlockCommit {
    /// A commit of `pairs` (in write order; made canonical here) with a given state root.
    pub fn new(
        height: u32,
        block_hash: BlockHash,
        state_root: StateRoot,
        pairs: KeyValues,
    ) -> Self {
        Self {
            height,
            block_hash,
            state_root,
            writes: canonical_writes(pairs),
        }
    }

    /// A commit of `pairs` whose state root is chained from `parent_root`
    /// ([`state_root::next_root`]).
    pub fn chained(
        height: u32,
        block_hash: BlockHash,
        parent_root: &StateRoot,
        pairs: KeyValues,
    ) -> Self {
        let writes = canonical_writes(pairs);
        let state_root = state_root::next_root(parent_root, height, &block_hash, &writes);
        Self {
            height,
            block_hash,
            state_root,
            writes,
        }
    }

    /// The block's height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The block's hash (internal byte order).
    pub fn block_hash(&self) -> &BlockHash {
        &self.block_hash
    }

    /// The state root after this block.
    pub fn state_root(&self) -> &StateRoot {
        &self.state_root
    }

    /// The canonical write set: one entry per key (its last value), sorted by key.
    pub fn writes(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.writes
    }

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
    /// The backend (RocksDB, the disk) failed. The cause is part of the message (and not a
    /// `source`), so it is printed once however the error is reported.
    #[error("storage backend failed while {action}: {cause}")]
    Backend {
        /// What was being done ("reading history").
        action: &'static str,
        /// The backend's error.
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A commit at a height other than the tip + 1.
    #[error("block {height} does not follow the tip {tip:?}")]
    NotNextHeight {
        /// The commit's height.
        height: u32,
        /// The store's tip.
        tip: Option<u32>,
    },
    /// A rollback to a height above the tip.
    #[error("cannot roll back to {target}: the tip is {tip:?}")]
    BadRollback {
        /// The height asked for.
        target: u32,
        /// The store's tip.
        tip: Option<u32>,
    },
    /// Stored bytes do not decode (a damaged or foreign database).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Implements the block-metadata reads of [`Storage`] (`tip`, `first_height`, `block_hash`,
/// `state_root`, `touched_keys`) by forwarding them to another store: for a store that wraps
/// one and changes only reads of values, commits or rollbacks. `forward_block_metadata!(self =>
/// EXPR)` inside `impl Storage for ..`, where `EXPR` is the wrapped store (it may use `?`).
#[macro_export]
macro_rules! forward_block_metadata {
    ($this:ident => $inner:expr) => {
        fn tip(&$this) -> Result<Option<u32>, $crate::StorageError> {
            $inner.tip()
        }

        fn first_height(&$this) -> Result<Option<u32>, $crate::StorageError> {
            $inner.first_height()
        }

        fn block_hash(&$this, height: u32) -> Result<Option<$crate::BlockHash>, $crate::StorageError> {
            $inner.block_hash(height)
        }

        fn state_root(&$this, height: u32) -> Result<Option<$crate::StateRoot>, $crate::StorageError> {
            $inner.state_root(height)
        }

        fn touched_keys(&$this, height: u32) -> Result<Vec<Vec<u8>>, $crate::StorageError> {
            $inner.touched_keys(height)
        }
    };
}

/// A versioned key/value store. Implementations must be safe to read from many threads while
/// one thread commits: a read at height H never sees anything committed above H.
pub trait Storage: Send + Sync + 'static {
    /// The value of `key` as of `height` (the newest entry at or below it), if any.
    fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError>;

    /// [`Storage::get_at`] for a view or a preview: the same answer, read without taking any
    /// lock the indexer also takes, so that a view thread the scheduler sets aside while it
    /// reads (views run at idle priority) never holds up indexing. A layer may skip its cache
    /// for it ([`CachedStore`] does). Heights above the tip are never asked for.
    fn get_at_for_view(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_at(key, height)
    }

    /// [`Storage::get_at`] answered only from memory: `Some(value)` when the store holds the
    /// answer without reading the disk, `None` when it would have to: for a caller that must
    /// never wait for the disk. The default knows nothing in memory.
    fn get_in_memory(
        &self,
        key: &[u8],
        height: u32,
    ) -> Result<Option<Option<Vec<u8>>>, StorageError> {
        let _ = (key, height);
        Ok(None)
    }

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

/// A shared store is a store: the daemon keeps a handle on the RocksDB store (for snapshots
/// and the final flush) under the layers that wrap it.
impl<S: Storage> Storage for Arc<S> {
    fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        (**self).get_at(key, height)
    }

    fn get_at_for_view(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        (**self).get_at_for_view(key, height)
    }

    fn get_in_memory(
        &self,
        key: &[u8],
        height: u32,
    ) -> Result<Option<Option<Vec<u8>>>, StorageError> {
        (**self).get_in_memory(key, height)
    }

    fn commit_block(&self, commit: &BlockCommit) -> Result<(), StorageError> {
        (**self).commit_block(commit)
    }

    fn commit_shared(&self, commit: Arc<BlockCommit>) -> Result<(), StorageError> {
        (**self).commit_shared(commit)
    }

    crate::forward_block_metadata!(self => (**self));

    fn rollback_to(&self, height: u32) -> Result<(), StorageError> {
        (**self).rollback_to(height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical set by the plain definition: stable sort, last value per key.
    fn reference(mut pairs: KeyValues) -> KeyValues {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: KeyValues = Vec::new();
        for (k, v) in pairs {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        out
    }

    #[test]
    fn canonical_writes_are_sorted_and_keep_the_last_value_at_every_size() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for n in [
            0,
            1,
            7,
            PARALLEL_SORT_MIN - 1,
            PARALLEL_SORT_MIN,
            3 * PARALLEL_SORT_MIN + 5,
        ] {
            // Few distinct keys, so most keys repeat, across both halves.
            let pairs: KeyValues = (0..n)
                .map(|i| {
                    let key = (next() % (n as u64 / 3 + 1)).to_be_bytes()[5..].to_vec();
                    (key, (i as u32).to_le_bytes().to_vec())
                })
                .collect();
            let got = canonical_writes(pairs.clone());
            assert_eq!(got, reference(pairs), "{n} pairs");
            assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}

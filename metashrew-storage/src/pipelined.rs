//! [`PipelinedStore`]: writes a large block to the store on a background thread while the next
//! block already runs.
//!
//! A commit of at least [`PIPELINE_MIN_WRITES`] writes is handed to a writer thread and becomes
//! the *pending* block at once: the tip, its hash, its root, its touched keys and its values (a
//! binary search in its sorted writes) are answered from it until the store has it. At most one
//! block is pending: the next commit, a rollback, and dropping the store first wait for it.
//! Smaller commits are written directly (after any pending one), where a thread hand-off would
//! cost more than it saves.
//!
//! The store's own commit stays atomic, so a crash loses at most the pending block, which is
//! indexed again on restart. If the background write fails, the pending block is dropped and
//! every later call fails with that error: the caller stops cleanly, with the store holding
//! exactly the blocks before it.

use std::sync::Arc;

use super::background::Background;
use super::{BlockCommit, BlockHash, StateRoot, Storage, StorageError};

/// Commits with at least this many writes are written in the background.
pub const PIPELINE_MIN_WRITES: usize = 1024;

/// The store `S` with large blocks written on a background thread while the next block runs;
/// reads answer from the block being written meanwhile.
pub struct PipelinedStore<S: Storage> {
    /// Dropped first: waits for the pending block.
    writer: Option<Background>,
    inner: Arc<S>,
}

impl<S: Storage> PipelinedStore<S> {
    /// Wraps `inner`, starting the writer thread (without one, commits are synchronous).
    pub fn new(inner: S) -> Self {
        let inner = Arc::new(inner);
        let store = inner.clone();
        let writer = Background::spawn(
            "metashrew-commit",
            "writing an earlier block in the background",
            move |commit| store.commit_shared(commit),
        );
        let writer = match writer {
            Ok(writer) => Some(writer),
            // Without a writer thread every commit is written directly.
            Err(err) => {
                log::warn!("no background commit thread ({err}): commits are synchronous");
                None
            }
        };
        Self { writer, inner }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Waits until no block is pending; fails if a background write failed.
    pub fn settle(&self) -> Result<(), StorageError> {
        self.writer.as_ref().map_or(Ok(()), Background::settle)
    }

    /// The pending block, if any (fails if a background write failed).
    fn pending(&self) -> Result<Option<Arc<BlockCommit>>, StorageError> {
        self.writer.as_ref().map_or(Ok(None), Background::pending)
    }

    /// `key`'s value as of `height` if the pending block wrote it (read without a lock: see
    /// `Background`). Otherwise its value equals the store's at the tip below.
    fn written_by_pending(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .pending()?
            .filter(|p| height >= p.height)
            .and_then(|p| p.written(key).map(<[u8]>::to_vec)))
    }

    fn pending_at(&self, height: u32) -> Result<Option<Arc<BlockCommit>>, StorageError> {
        Ok(self.pending()?.filter(|p| p.height == height))
    }
}

impl<S: Storage> Storage for PipelinedStore<S> {
    fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        match self.written_by_pending(key, height)? {
            Some(value) => Ok(Some(value)),
            None => self.inner.get_at(key, height),
        }
    }

    fn get_at_for_view(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        match self.written_by_pending(key, height)? {
            Some(value) => Ok(Some(value)),
            None => self.inner.get_at_for_view(key, height),
        }
    }

    fn get_in_memory(
        &self,
        key: &[u8],
        height: u32,
    ) -> Result<Option<Option<Vec<u8>>>, StorageError> {
        match self.written_by_pending(key, height)? {
            Some(value) => Ok(Some(Some(value))),
            None => self.inner.get_in_memory(key, height),
        }
    }

    fn commit_block(&self, commit: &BlockCommit) -> Result<(), StorageError> {
        if commit.writes.len() >= PIPELINE_MIN_WRITES && self.writer.is_some() {
            self.commit_shared(Arc::new(commit.clone()))
        } else {
            self.settle()?;
            self.inner.commit_block(commit)
        }
    }

    fn commit_shared(&self, commit: Arc<BlockCommit>) -> Result<(), StorageError> {
        let Some(writer) = self
            .writer
            .as_ref()
            .filter(|_| commit.writes.len() >= PIPELINE_MIN_WRITES)
        else {
            self.settle()?;
            return self.inner.commit_block(&commit);
        };
        self.settle()?;
        let tip = self.inner.tip()?;
        if tip.is_some() && Some(commit.height) != tip.and_then(|t| t.checked_add(1)) {
            return Err(StorageError::NotNextHeight {
                height: commit.height,
                tip,
            });
        }
        writer.hand_over(commit)
    }

    fn tip(&self) -> Result<Option<u32>, StorageError> {
        match self.pending()? {
            Some(p) => Ok(Some(p.height)),
            None => self.inner.tip(),
        }
    }

    fn first_height(&self) -> Result<Option<u32>, StorageError> {
        let pending = self.pending()?;
        Ok(self.inner.first_height()?.or(pending.map(|p| p.height)))
    }

    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, StorageError> {
        match self.pending_at(height)? {
            Some(p) => Ok(Some(p.block_hash)),
            None => self.inner.block_hash(height),
        }
    }

    fn state_root(&self, height: u32) -> Result<Option<StateRoot>, StorageError> {
        match self.pending_at(height)? {
            Some(p) => Ok(Some(p.state_root)),
            None => self.inner.state_root(height),
        }
    }

    fn touched_keys(&self, height: u32) -> Result<Vec<Vec<u8>>, StorageError> {
        match self.pending_at(height)? {
            Some(p) => Ok(p.writes.iter().map(|(k, _)| k.clone()).collect()),
            None => self.inner.touched_keys(height),
        }
    }

    fn rollback_to(&self, height: u32) -> Result<(), StorageError> {
        self.settle()?;
        self.inner.rollback_to(height)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::MemStore;

    /// A store whose commits wait while `held` is set, and fail once `fail` is set.
    struct Flaky {
        inner: MemStore,
        fail: AtomicBool,
        held: std::sync::Mutex<bool>,
        released: std::sync::Condvar,
    }

    impl Flaky {
        fn hold(&self, held: bool) {
            *self.held.lock().unwrap() = held;
            self.released.notify_all();
        }
    }

    impl Storage for Flaky {
        fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
            self.inner.get_at(key, height)
        }
        fn commit_block(&self, commit: &BlockCommit) -> Result<(), StorageError> {
            let mut held = self.held.lock().unwrap();
            while *held {
                held = self.released.wait(held).unwrap();
            }
            drop(held);
            if self.fail.load(Ordering::SeqCst) {
                return Err(StorageError::Backend {
                    action: "committing",
                    cause: "disk full".into(),
                });
            }
            self.inner.commit_block(commit)
        }
        crate::forward_block_metadata!(self => self.inner);
        fn rollback_to(&self, height: u32) -> Result<(), StorageError> {
            self.inner.rollback_to(height)
        }
    }

    /// A block writing `n` keys `k0000..`, each to `value`, plus `shared` = `value`.
    fn block(height: u32, n: usize, value: &[u8]) -> Arc<BlockCommit> {
        let mut writes: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
            .map(|i| (format!("k{i:05}").into_bytes(), value.to_vec()))
            .collect();
        writes.push((b"shared".to_vec(), value.to_vec()));
        writes.sort();
        Arc::new(BlockCommit {
            height,
            block_hash: BlockHash::from_bytes([height as u8; 32]),
            state_root: StateRoot::from_bytes([height as u8 + 100; 32]),
            writes,
        })
    }

    fn flaky() -> PipelinedStore<Flaky> {
        PipelinedStore::new(Flaky {
            inner: MemStore::new(),
            fail: AtomicBool::new(false),
            held: std::sync::Mutex::new(false),
            released: std::sync::Condvar::new(),
        })
    }

    #[test]
    fn a_pending_block_reads_as_committed() {
        let s = flaky();
        s.commit_shared(block(0, 10, b"a")).unwrap();
        s.inner().hold(true);
        s.commit_shared(block(1, PIPELINE_MIN_WRITES, b"b"))
            .unwrap();
        // The writer is held: block 1 is pending until released.
        assert_eq!(s.inner().tip().unwrap(), Some(0));
        assert_eq!(s.tip().unwrap(), Some(1));
        assert_eq!(s.first_height().unwrap(), Some(0));
        assert_eq!(
            s.block_hash(1).unwrap(),
            Some(BlockHash::from_bytes([1; 32]))
        );
        assert_eq!(
            s.state_root(1).unwrap(),
            Some(StateRoot::from_bytes([101; 32]))
        );
        assert_eq!(s.touched_keys(1).unwrap().len(), PIPELINE_MIN_WRITES + 1);
        assert_eq!(s.get_at(b"k00003", 1).unwrap(), Some(b"b".to_vec()));
        assert_eq!(s.get_at(b"k00003", 0).unwrap(), Some(b"a".to_vec()));
        assert_eq!(s.get_at(b"k01000", 0).unwrap(), None);
        assert_eq!(s.get_at(b"absent", 1).unwrap(), None);
        s.inner().hold(false);
        s.settle().unwrap();
        assert_eq!(s.inner().tip().unwrap(), Some(1));
        assert_eq!(s.inner().get_at(b"k00003", 1).unwrap(), Some(b"b".to_vec()));
        // Small commits go straight to the store, after the pending one.
        s.commit_shared(block(2, 3, b"c")).unwrap();
        assert_eq!(s.inner().tip().unwrap(), Some(2));
        assert!(matches!(
            s.commit_shared(block(5, PIPELINE_MIN_WRITES, b"x")),
            Err(StorageError::NotNextHeight { .. })
        ));
        s.commit_shared(block(3, PIPELINE_MIN_WRITES, b"d"))
            .unwrap();
        s.rollback_to(1).unwrap();
        assert_eq!(s.tip().unwrap(), Some(1));
        assert_eq!(s.get_at(b"shared", 1).unwrap(), Some(b"b".to_vec()));
    }

    #[test]
    fn a_failed_background_write_stops_everything_and_keeps_the_blocks_before() {
        let s = flaky();
        s.commit_shared(block(0, PIPELINE_MIN_WRITES, b"a"))
            .unwrap();
        s.settle().unwrap();
        s.inner().fail.store(true, Ordering::SeqCst);
        s.commit_shared(block(1, PIPELINE_MIN_WRITES, b"b"))
            .unwrap();
        let err = s.settle().unwrap_err().to_string();
        assert!(err.contains("disk full"), "{err}");
        assert!(s.tip().is_err());
        assert!(s.get_at(b"shared", 0).is_err());
        assert!(s.commit_shared(block(1, 1, b"b")).is_err());
        assert_eq!(s.inner().tip().unwrap(), Some(0));
        assert_eq!(s.inner().get_at(b"shared", 0).unwrap(), Some(b"a".to_vec()));
    }
}

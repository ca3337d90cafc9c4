//! [`CachedStore`]: a memory-bounded read cache in front of any [`Storage`].
//!
//! Each entry holds a key's latest value as of the tip and the height `w` from which that value
//! holds; a read at height H is answered from the cache only when `H >= w`, otherwise it goes to
//! the store. Commits write through: each written key gets its new value with `w` = the block's
//! height, before the store commits; meanwhile the block itself answers reads of its keys at its
//! height. A read that misses caches what it read only when it read at the tip, with `w` = that
//! tip, and only if no commit or rollback happened or is happening meanwhile (a generation
//! counter and the block being committed); a rollback empties the cache. So the cache can only
//! answer what the store would answer: it is invisible to the guest and to the state roots. Its
//! memory is bounded by `metashrew-support`'s [`MemoryBoundedLru`].

use std::sync::{Arc, Mutex, MutexGuard};

use metashrew_support::MemoryBoundedLru;

use super::{BlockCommit, BlockHash, StateRoot, Storage, StorageError};

struct Cache {
    entries: MemoryBoundedLru,
    /// Bumped by every commit and rollback.
    generation: u64,
    /// The block being written through, if any: it answers reads of its keys at its height,
    /// and reads do not cache what they read meanwhile.
    committing: Option<Arc<BlockCommit>>,
}

/// Cache writes done per hold of the lock during a commit, so reads are never held up long.
const WRITES_PER_LOCK: usize = 512;

/// See the module documentation.
pub struct CachedStore<S> {
    inner: S,
    cache: Option<Mutex<Cache>>,
}

/// `u32 BE w ++ present (0/1) ++ value`.
fn encode(valid_from: u32, value: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + value.map_or(0, <[u8]>::len));
    out.extend_from_slice(&valid_from.to_be_bytes());
    out.push(u8::from(value.is_some()));
    out.extend_from_slice(value.unwrap_or_default());
    out
}

fn decode(entry: &[u8]) -> Option<(u32, Option<Vec<u8>>)> {
    let valid_from = u32::from_be_bytes(entry.get(..4)?.try_into().ok()?);
    let value = match entry.get(4)? {
        0 => None,
        _ => Some(entry.get(5..)?.to_vec()),
    };
    Some((valid_from, value))
}

impl<S: Storage> CachedStore<S> {
    /// Wraps `inner` with a cache of at most `budget_bytes` (0: no cache).
    pub fn new(inner: S, budget_bytes: usize) -> Self {
        let cache = (budget_bytes > 0).then(|| {
            Mutex::new(Cache {
                entries: MemoryBoundedLru::new(budget_bytes),
                generation: 0,
                committing: None,
            })
        });
        Self { inner, cache }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn lock(&self) -> Option<MutexGuard<'_, Cache>> {
        self.cache
            .as_ref()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Hits, misses, inserts, evictions and bytes of the cache.
    pub fn stats(&self) -> Option<metashrew_support::CacheStats> {
        self.lock().map(|c| c.entries.stats())
    }
}

impl<S: Storage> CachedStore<S> {
    /// Puts the block's writes into the cache, then commits them to the store. The entries have
    /// `w` = the block's height, so they answer nothing below it; at its height, the block
    /// itself answers its keys until the store has it. So writing the cache first is safe,
    /// and reads never wait for (or bypass the cache during) a commit.
    fn write_through(&self, commit: Arc<BlockCommit>) -> Result<(), StorageError> {
        match self.lock() {
            None => return self.inner.commit_shared(commit),
            Some(mut cache) => {
                cache.generation += 1;
                cache.committing = Some(commit.clone());
            }
        }
        for chunk in commit.writes.chunks(WRITES_PER_LOCK) {
            if let Some(mut cache) = self.lock() {
                for (k, v) in chunk {
                    cache.entries.put(k, &encode(commit.height, Some(v)));
                }
            }
        }
        let result = self.inner.commit_shared(commit);
        if let Some(mut cache) = self.lock() {
            if result.is_err() {
                // Entries of a block that is not in the store must not answer a retry.
                cache.entries.clear();
            }
            cache.generation += 1;
            cache.committing = None;
        }
        result
    }
}

impl<S: Storage> Storage for CachedStore<S> {
    fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(mut cache) = self.lock() else {
            return self.inner.get_at(key, height);
        };
        // A key of the block being committed: its value at that height is the block's.
        if let Some(block) = &cache.committing
            && height >= block.height
            && let Some(value) = block.written(key)
        {
            return Ok(Some(value.to_vec()));
        }
        if let Some((valid_from, value)) = cache.entries.get(key).and_then(decode)
            && height >= valid_from
        {
            return Ok(value);
        }
        let generation = cache.generation;
        drop(cache);
        let value = self.inner.get_at(key, height)?;
        if self.inner.tip()? == Some(height)
            && let Some(mut cache) = self.lock()
            && cache.generation == generation
            && cache.committing.is_none()
        {
            cache.entries.put(key, &encode(height, value.as_deref()));
        }
        Ok(value)
    }

    fn commit_block(&self, commit: &BlockCommit) -> Result<(), StorageError> {
        self.write_through(Arc::new(commit.clone()))
    }

    fn commit_shared(&self, commit: Arc<BlockCommit>) -> Result<(), StorageError> {
        self.write_through(commit)
    }

    fn tip(&self) -> Result<Option<u32>, StorageError> {
        self.inner.tip()
    }

    fn first_height(&self) -> Result<Option<u32>, StorageError> {
        self.inner.first_height()
    }

    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, StorageError> {
        self.inner.block_hash(height)
    }

    fn state_root(&self, height: u32) -> Result<Option<StateRoot>, StorageError> {
        self.inner.state_root(height)
    }

    fn touched_keys(&self, height: u32) -> Result<Vec<Vec<u8>>, StorageError> {
        self.inner.touched_keys(height)
    }

    fn rollback_to(&self, height: u32) -> Result<(), StorageError> {
        // Held across the rollback, so that no read caches a value being removed.
        let cache = self.lock();
        let result = self.inner.rollback_to(height);
        if let Some(mut cache) = cache {
            cache.generation += 1;
            cache.entries.clear();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStore;

    fn commit(height: u32, writes: &[(&[u8], &[u8])]) -> BlockCommit {
        BlockCommit {
            height,
            block_hash: [0; 32],
            state_root: [0; 32],
            writes: writes
                .iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn answers_exactly_what_the_store_answers() {
        for budget in [0, 150, 1 << 20] {
            let s = CachedStore::new(MemStore::new(), budget);
            s.commit_block(&commit(0, &[(b"a", b"0")])).unwrap();
            assert_eq!(s.get_at(b"b", 0).unwrap(), None, "absent at the tip");
            s.commit_block(&commit(1, &[(b"a", b"1"), (b"b", b"x")]))
                .unwrap();
            for _ in 0..2 {
                assert_eq!(s.get_at(b"a", 0).unwrap(), Some(b"0".to_vec()), "{budget}");
                assert_eq!(s.get_at(b"a", 1).unwrap(), Some(b"1".to_vec()));
                assert_eq!(s.get_at(b"b", 0).unwrap(), None);
                assert_eq!(s.get_at(b"b", 1).unwrap(), Some(b"x".to_vec()));
            }
            s.rollback_to(0).unwrap();
            assert_eq!(s.get_at(b"a", 0).unwrap(), Some(b"0".to_vec()));
            assert_eq!(s.get_at(b"b", 0).unwrap(), None);
            s.commit_block(&commit(1, &[(b"b", b"y")])).unwrap();
            assert_eq!(s.get_at(b"b", 1).unwrap(), Some(b"y".to_vec()));
            assert_eq!(s.get_at(b"a", 1).unwrap(), Some(b"0".to_vec()));
        }
        let s = CachedStore::new(MemStore::new(), 1 << 20);
        s.commit_block(&commit(0, &[(b"k", b"v")])).unwrap();
        s.get_at(b"k", 0).unwrap();
        assert!(s.stats().unwrap().hits >= 1);
    }
}

//! [`CachedStore`]: a memory-bounded read cache in front of any [`Storage`].
//!
//! Each entry holds a key's latest value as of the tip and the height `w` from which that value
//! holds; a read at height H is answered from the cache only when `H >= w`, otherwise it goes to
//! the store. Commits write through: each written key that the cache holds gets its new value
//! with `w` = the block's height (a key it does not hold has no entry to go stale, and is cached
//! when a read at the tip first asks for it); meanwhile the block itself answers reads of its
//! keys at its height. A read that misses caches what it read only when it read at the tip, with `w` = that
//! tip, and only if no commit or rollback happened meanwhile (a generation counter) and no
//! block above the tip is being committed; a rollback empties the cache. So the cache can only
//! answer what the store would answer: it is invisible to the guest and to the state roots. Its
//! memory is bounded by `metashrew-support`'s [`MemoryBoundedLru`].
//!
//! A block of at least [`PIPELINE_MIN_WRITES`] writes is put into the cache on a background
//! thread, after the store has it (tens of thousands of cache insertions cost a heavy block
//! ~10 ms): until that is done the block stays the one being committed, so it answers its own
//! keys, and the next commit or a rollback first waits for it.

use std::sync::{Arc, Mutex, MutexGuard};

use metashrew_support::MemoryBoundedLru;

use super::background::Background;
use super::{BlockCommit, PIPELINE_MIN_WRITES, Storage, StorageError};

struct Cache {
    entries: MemoryBoundedLru,
    /// Bumped by every commit and rollback.
    generation: u64,
    /// The block being written through, if any: it answers reads of its keys at its height,
    /// and reads do not cache what they read meanwhile.
    committing: Option<Arc<BlockCommit>>,
}

impl Cache {
    /// What the cache answers for `key` at `height`, if anything: the block being committed for
    /// its own keys at or above its height, else an entry valid at `height`.
    fn answer(&mut self, key: &[u8], height: u32) -> Option<Option<Vec<u8>>> {
        if let Some(block) = &self.committing
            && height >= block.height
            && let Some(value) = block.written(key)
        {
            return Some(Some(value.to_vec()));
        }
        self.entries
            .get(key)
            .and_then(decode)
            .filter(|(valid_from, _)| height >= *valid_from)
            .map(|(_, value)| value)
    }
}

/// Cache writes done per hold of the lock during a commit, so reads are never held up long.
const WRITES_PER_LOCK: usize = 64;

/// A memory-bounded read cache in front of the store `S`, written through on every commit; it
/// only ever answers what `S` would.
pub struct CachedStore<S> {
    inner: S,
    cache: Option<Arc<Mutex<Cache>>>,
    /// Puts large blocks into the cache in the background (none without a cache, or when no
    /// thread could be started: then it happens inline).
    filler: Option<Background>,
}

fn lock_cache(cache: &Mutex<Cache>) -> MutexGuard<'_, Cache> {
    cache.lock().unwrap_or_else(|p| p.into_inner())
}

/// Updates the entries of `commit`'s keys that the cache holds, a chunk per hold of the lock.
/// Keys it does not hold are left out: a block's writes are mostly keys no read has asked for
/// yet, and putting them in evicted the entries that reads were using (docs/performance.md,
/// "Speed as the database grows"). Only the few entries updated are encoded.
fn fill(cache: &Mutex<Cache>, commit: &BlockCommit) {
    for chunk in commit.writes.chunks(WRITES_PER_LOCK) {
        let mut cache = lock_cache(cache);
        for (k, v) in chunk {
            if cache.entries.peek(k).is_some() {
                cache.entries.put(k, &encode(commit.height, Some(v)));
            }
        }
    }
}

/// Ends the commit in progress; `failed`: the store does not have the block, so no entry of
/// it may answer a retry.
fn finish(cache: &Mutex<Cache>, failed: bool) {
    let mut cache = lock_cache(cache);
    if failed {
        cache.entries.clear();
    }
    cache.generation += 1;
    let done = cache.committing.take();
    // Freed after the lock is let go (see `Background`): reads must not wait for it.
    drop(cache);
    drop(done);
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
            Arc::new(Mutex::new(Cache {
                entries: MemoryBoundedLru::new(budget_bytes),
                generation: 0,
                committing: None,
            }))
        });
        let filler = cache.clone().and_then(|cache| {
            let job = move |commit: Arc<BlockCommit>| {
                fill(&cache, &commit);
                finish(&cache, false);
                Ok(())
            };
            Background::spawn("metashrew-cache", "filling the read cache", job)
                .inspect_err(|err| log::warn!("no cache filler thread ({err}): fills are inline"))
                .ok()
        });
        Self {
            inner,
            cache,
            filler,
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn lock(&self) -> Option<MutexGuard<'_, Cache>> {
        self.cache.as_deref().map(lock_cache)
    }

    /// Waits until the block being put into the cache in the background (if any) is in.
    fn settle(&self) -> Result<(), StorageError> {
        self.filler.as_ref().map_or(Ok(()), Background::settle)
    }

    /// Hits, misses, inserts, evictions and bytes of the cache.
    pub fn stats(&self) -> Option<metashrew_support::CacheStats> {
        self.lock().map(|c| c.entries.stats())
    }
}

impl<S: Storage> CachedStore<S> {
    /// Puts the block's writes into the cache and commits them to the store. The entries have
    /// `w` = the block's height, so they answer nothing below it; at its height, the block
    /// itself answers its keys until they are all in. So filling the cache before, or (large
    /// blocks) after and in the background, is safe, and reads never wait for a commit.
    fn write_through(&self, commit: Arc<BlockCommit>) -> Result<(), StorageError> {
        let Some(cache) = self.cache.as_deref() else {
            return self.inner.commit_shared(commit);
        };
        self.settle()?;
        {
            let mut cache = lock_cache(cache);
            cache.generation += 1;
            cache.committing = Some(commit.clone());
        }
        let filler = self
            .filler
            .as_ref()
            .filter(|_| commit.writes.len() >= PIPELINE_MIN_WRITES);
        let Some(filler) = filler else {
            fill(cache, &commit);
            let result = self.inner.commit_shared(commit);
            finish(cache, result.is_err());
            return result;
        };
        if let Err(err) = self.inner.commit_shared(commit.clone()) {
            finish(cache, true);
            return Err(err);
        }
        if filler.hand_over(commit.clone()).is_err() {
            fill(cache, &commit);
            finish(cache, false);
        }
        Ok(())
    }
}

impl<S: Storage> Storage for CachedStore<S> {
    /// Past the cache: its lock is the indexer's too. A view reads at or below the tip, which
    /// the store below has in full (the block being committed is above it).
    fn get_at_for_view(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get_at_for_view(key, height)
    }

    fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(mut cache) = self.lock() else {
            return self.inner.get_at(key, height);
        };
        if let Some(value) = cache.answer(key, height) {
            return Ok(value);
        }
        let generation = cache.generation;
        drop(cache);
        let value = self.inner.get_at(key, height)?;
        // Cached only at the tip, with no commit or rollback since the lookup. While a block is
        // being committed, only a read at its own height once the store has it (then the key is
        // not the block's: the block would have answered it).
        if self.inner.tip()? == Some(height)
            && let Some(mut cache) = self.lock()
            && cache.generation == generation
            && cache.committing.as_ref().is_none_or(|c| c.height == height)
        {
            cache.entries.put(key, &encode(height, value.as_deref()));
        }
        Ok(value)
    }

    /// What the block being committed or a valid entry answers, else the store below's.
    fn get_in_memory(
        &self,
        key: &[u8],
        height: u32,
    ) -> Result<Option<Option<Vec<u8>>>, StorageError> {
        if let Some(value) = self.lock().and_then(|mut cache| cache.answer(key, height)) {
            return Ok(Some(value));
        }
        self.inner.get_in_memory(key, height)
    }

    fn commit_block(&self, commit: &BlockCommit) -> Result<(), StorageError> {
        self.write_through(Arc::new(commit.clone()))
    }

    fn commit_shared(&self, commit: Arc<BlockCommit>) -> Result<(), StorageError> {
        self.write_through(commit)
    }

    crate::forward_block_metadata!(self => self.inner);

    fn rollback_to(&self, height: u32) -> Result<(), StorageError> {
        self.settle()?;
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
    use crate::{BlockHash, MemStore, StateRoot};

    fn commit(height: u32, writes: &[(&[u8], &[u8])]) -> BlockCommit {
        BlockCommit {
            height,
            block_hash: BlockHash::ZERO,
            state_root: StateRoot::ZERO,
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
        s.commit_block(&commit(0, &[(b"k", b"v"), (b"unread", b"w")]))
            .unwrap();
        // A commit puts no key the cache does not hold: the first read misses and caches it.
        assert_eq!(s.stats().unwrap().inserts, 0);
        s.get_at(b"k", 0).unwrap();
        s.get_at(b"k", 0).unwrap();
        let stats = s.stats().unwrap();
        assert_eq!((stats.hits, stats.misses, stats.inserts), (1, 1, 1));
        // The next block updates the cached key in place, and still leaves the other out.
        s.commit_block(&commit(1, &[(b"k", b"v2"), (b"unread", b"w2")]))
            .unwrap();
        assert_eq!(s.get_at(b"k", 1).unwrap(), Some(b"v2".to_vec()));
        let stats = s.stats().unwrap();
        assert_eq!((stats.hits, stats.inserts), (2, 2));
    }

    /// A store whose reads, while `hold` is set, take their value and then wait to return it
    /// until released: a read ahead still in flight when the next block commits.
    #[derive(Default)]
    struct SlowReads {
        inner: MemStore,
        hold: std::sync::Mutex<bool>,
        released: std::sync::Condvar,
        waiting: std::sync::atomic::AtomicBool,
    }

    impl SlowReads {
        fn hold(&self, hold: bool) {
            *self.hold.lock().unwrap() = hold;
            self.released.notify_all();
        }
    }

    impl Storage for SlowReads {
        fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
            let value = self.inner.get_at(key, height);
            let mut hold = self.hold.lock().unwrap();
            while *hold {
                self.waiting
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                hold = self.released.wait(hold).unwrap();
            }
            value
        }
        fn commit_block(&self, commit: &BlockCommit) -> Result<(), StorageError> {
            self.inner.commit_block(commit)
        }
        crate::forward_block_metadata!(self => self.inner);
        fn rollback_to(&self, height: u32) -> Result<(), StorageError> {
            self.inner.rollback_to(height)
        }
    }

    /// Read-ahead's invariant (`rockshrew::read_ahead`): a key read ahead at the tip while the
    /// next block is committed, and the block writes it, is never answered with the value read
    /// ahead at the block's height, neither by a read nor from memory. It would be, were the
    /// value cached at the height the read finished at, or without the generation check.
    #[test]
    fn a_read_ahead_that_raced_a_commit_never_answers_for_the_blocks_height() {
        for pipelined in [false, true] {
            let inner = std::sync::Arc::new(SlowReads::default());
            let s: std::sync::Arc<dyn Storage> = if pipelined {
                std::sync::Arc::new(CachedStore::new(
                    crate::PipelinedStore::new(inner.clone()),
                    1 << 20,
                ))
            } else {
                std::sync::Arc::new(CachedStore::new(inner.clone(), 1 << 20))
            };
            s.commit_block(&commit(0, &[(b"k", b"old")])).unwrap();
            inner.hold(true);
            std::thread::scope(|threads| {
                let ahead = threads.spawn(|| s.get_at(b"k", 0).unwrap());
                while !inner.waiting.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                // The read has its value (block 0's) and has not returned yet.
                s.commit_block(&commit(1, &[(b"k", b"new")])).unwrap();
                inner.hold(false);
                assert_eq!(ahead.join().unwrap(), Some(b"old".to_vec()));
            });
            assert_eq!(s.get_at(b"k", 1).unwrap(), Some(b"new".to_vec()));
            assert_ne!(
                s.get_in_memory(b"k", 1).unwrap(),
                Some(Some(b"old".to_vec())),
                "nothing in memory answers block 1 with the value read ahead"
            );
            assert_eq!(s.get_at(b"k", 0).unwrap(), Some(b"old".to_vec()));
        }
    }

    /// A block of `n` keys `k00000..`, each written to `value`.
    fn large(height: u32, n: usize, value: &[u8]) -> BlockCommit {
        let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i:05}").into_bytes()).collect();
        let writes: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_slice(), value)).collect();
        commit(height, &writes)
    }

    #[test]
    fn large_blocks_filled_in_the_background_answer_the_same() {
        let n = PIPELINE_MIN_WRITES * 3;
        let s = CachedStore::new(MemStore::new(), 1 << 20);
        s.commit_block(&large(0, n, b"a")).unwrap();
        for round in 0..3u32 {
            // Reads at the tip cache old values; the next block must shadow every one of them,
            // whether its own fill has finished or not.
            for i in (0..n).step_by(7) {
                let key = format!("k{i:05}").into_bytes();
                assert_eq!(s.get_at(&key, 0).unwrap(), Some(b"a".to_vec()));
            }
            let value = [b'b' + round as u8];
            s.commit_block(&large(1, n, &value)).unwrap();
            for i in (0..n).rev().step_by(5) {
                let key = format!("k{i:05}").into_bytes();
                assert_eq!(s.get_at(&key, 1).unwrap(), Some(value.to_vec()), "{i}");
                assert_eq!(s.get_at(&key, 0).unwrap(), Some(b"a".to_vec()), "{i}");
            }
            // A rollback right after the commit waits for the fill, then empties the cache.
            s.rollback_to(0).unwrap();
            assert_eq!(s.get_at(b"k00001", 0).unwrap(), Some(b"a".to_vec()));
            assert_eq!(s.tip().unwrap(), Some(0));
        }
        s.settle().unwrap();
        // The reads found entries in the cache (those they cached, and those fills updated).
        assert!(s.stats().unwrap().hits > 0);
    }

    #[test]
    fn view_reads_answer_the_same_and_never_wait_for_the_cache() {
        let n = PIPELINE_MIN_WRITES * 2;
        let s = CachedStore::new(crate::PipelinedStore::new(MemStore::new()), 1 << 20);
        s.commit_block(&large(0, n, b"a")).unwrap();
        // Written and filled in the background: pending in both layers for a while.
        s.commit_block(&large(1, n, b"b")).unwrap();
        for height in [0, 1] {
            for i in (0..n).step_by(97) {
                let key = format!("k{i:05}").into_bytes();
                assert_eq!(
                    s.get_at_for_view(&key, height).unwrap(),
                    s.get_at(&key, height).unwrap(),
                    "{i} at {height}"
                );
            }
        }
        assert_eq!(s.get_at_for_view(b"absent", 1).unwrap(), None);
        // A view reads while another thread holds the cache's lock (a view thread set aside by
        // the scheduler while it held it would otherwise stall the indexer).
        let held = s.lock().unwrap();
        let (sent, answer) = std::sync::mpsc::channel();
        std::thread::scope(|threads| {
            threads.spawn(|| sent.send(s.get_at_for_view(b"k00003", 1).unwrap()));
            let value = answer.recv_timeout(std::time::Duration::from_secs(10));
            drop(held);
            assert_eq!(
                value,
                Ok(Some(b"b".to_vec())),
                "the view read waited for the lock"
            );
        });
    }
}

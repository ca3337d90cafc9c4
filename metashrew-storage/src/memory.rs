//! An in-memory [`Storage`], for tests, previews and embedding.

use std::collections::{BTreeMap, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{BlockCommit, BlockHash, StateRoot, Storage, StorageError};

#[derive(Default)]
struct Inner {
    /// Per key: `(height, value)` entries in increasing height.
    history: HashMap<Vec<u8>, Vec<(u32, Vec<u8>)>>,
    /// Per height: hash, root and the keys written.
    blocks: BTreeMap<u32, (BlockHash, StateRoot, Vec<Vec<u8>>)>,
}

/// A [`Storage`] held in memory. Cloning is not offered: share it behind an `Arc`.
#[derive(Default)]
pub struct MemStore {
    inner: RwLock<Inner>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // The data is never left half-updated (updates are computed first), so a poisoned lock
        // still guards consistent data.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Every key with its value at `height` (non-empty values only), sorted: a full dump.
    pub fn dump_at(&self, height: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let inner = self.read();
        inner
            .history
            .iter()
            .filter_map(|(k, entries)| {
                value_at(entries, height)
                    .filter(|v| !v.is_empty())
                    .map(|v| (k.clone(), v.to_vec()))
            })
            .collect()
    }
}

fn value_at(entries: &[(u32, Vec<u8>)], height: u32) -> Option<&[u8]> {
    let idx = entries.partition_point(|(h, _)| *h <= height);
    idx.checked_sub(1).map(|i| entries[i].1.as_slice())
}

impl Storage for MemStore {
    fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        let inner = self.read();
        Ok(inner
            .history
            .get(key)
            .and_then(|entries| value_at(entries, height))
            .map(<[u8]>::to_vec))
    }

    /// Everything is in memory.
    fn get_in_memory(
        &self,
        key: &[u8],
        height: u32,
    ) -> Result<Option<Option<Vec<u8>>>, StorageError> {
        self.get_at(key, height).map(Some)
    }

    fn commit_block(&self, commit: &BlockCommit) -> Result<(), StorageError> {
        let mut inner = self.write();
        let tip = inner.blocks.keys().next_back().copied();
        if let Some(tip) = tip
            && commit.height != tip.wrapping_add(1)
        {
            return Err(StorageError::NotNextHeight {
                height: commit.height,
                tip: Some(tip),
            });
        }
        let mut keys = Vec::with_capacity(commit.writes.len());
        for (k, v) in &commit.writes {
            inner
                .history
                .entry(k.clone())
                .or_default()
                .push((commit.height, v.clone()));
            keys.push(k.clone());
        }
        keys.sort();
        keys.dedup();
        inner
            .blocks
            .insert(commit.height, (commit.block_hash, commit.state_root, keys));
        Ok(())
    }

    fn tip(&self) -> Result<Option<u32>, StorageError> {
        Ok(self.read().blocks.keys().next_back().copied())
    }

    fn first_height(&self) -> Result<Option<u32>, StorageError> {
        Ok(self.read().blocks.keys().next().copied())
    }

    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, StorageError> {
        Ok(self.read().blocks.get(&height).map(|b| b.0))
    }

    fn state_root(&self, height: u32) -> Result<Option<StateRoot>, StorageError> {
        Ok(self.read().blocks.get(&height).map(|b| b.1))
    }

    fn touched_keys(&self, height: u32) -> Result<Vec<Vec<u8>>, StorageError> {
        Ok(self
            .read()
            .blocks
            .get(&height)
            .map(|b| b.2.clone())
            .unwrap_or_default())
    }

    fn rollback_to(&self, height: u32) -> Result<(), StorageError> {
        let mut inner = self.write();
        let above: Vec<u32> = inner
            .blocks
            .range(height.saturating_add(1)..)
            .map(|(h, _)| *h)
            .collect();
        if inner
            .blocks
            .keys()
            .next()
            .is_some_and(|first| *first > height)
        {
            // Rolling back below the first block empties the store.
            *inner = Inner::default();
            return Ok(());
        }
        for h in above.into_iter().rev() {
            let Some((_, _, keys)) = inner.blocks.remove(&h) else {
                continue;
            };
            for key in keys {
                let now_empty = match inner.history.get_mut(&key) {
                    Some(entries) => {
                        entries.retain(|(eh, _)| *eh < h);
                        entries.is_empty()
                    }
                    None => false,
                };
                if now_empty {
                    inner.history.remove(&key);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(height: u32, writes: &[(&[u8], &[u8])]) -> BlockCommit {
        BlockCommit {
            height,
            block_hash: BlockHash::from_bytes([height as u8; 32]),
            state_root: StateRoot::from_bytes([height as u8 + 100; 32]),
            writes: writes
                .iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn historical_reads_see_the_newest_entry_at_or_below_the_height() {
        let s = MemStore::new();
        s.commit_block(&commit(5, &[(b"k", b"a")])).unwrap();
        s.commit_block(&commit(6, &[(b"other", b"x")])).unwrap();
        s.commit_block(&commit(7, &[(b"k", b"b")])).unwrap();
        assert_eq!(s.get_at(b"k", 4).unwrap(), None);
        assert_eq!(s.get_at(b"k", 5).unwrap(), Some(b"a".to_vec()));
        assert_eq!(s.get_at(b"k", 6).unwrap(), Some(b"a".to_vec()));
        assert_eq!(s.get_at(b"k", 7).unwrap(), Some(b"b".to_vec()));
        assert_eq!(s.get_at(b"k", 1000).unwrap(), Some(b"b".to_vec()));
        assert_eq!(s.tip().unwrap(), Some(7));
        assert_eq!(s.first_height().unwrap(), Some(5));
        assert_eq!(
            s.block_hash(6).unwrap(),
            Some(BlockHash::from_bytes([6; 32]))
        );
        assert_eq!(s.touched_keys(7).unwrap(), vec![b"k".to_vec()]);
    }

    #[test]
    fn keys_that_are_prefixes_of_others_stay_distinct() {
        let s = MemStore::new();
        s.commit_block(&commit(0, &[(b"ab", b"1"), (b"a", b"2"), (b"abc", b"3")]))
            .unwrap();
        assert_eq!(s.get_at(b"a", 0).unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.get_at(b"ab", 0).unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get_at(b"abc", 0).unwrap(), Some(b"3".to_vec()));
        assert_eq!(s.get_at(b"abcd", 0).unwrap(), None);
    }

    #[test]
    fn commits_must_follow_the_tip() {
        let s = MemStore::new();
        s.commit_block(&commit(3, &[])).unwrap();
        assert!(matches!(
            s.commit_block(&commit(5, &[])),
            Err(StorageError::NotNextHeight {
                height: 5,
                tip: Some(3)
            })
        ));
    }

    #[test]
    fn rollback_removes_exactly_what_came_after() {
        let s = MemStore::new();
        s.commit_block(&commit(0, &[(b"k", b"0")])).unwrap();
        s.commit_block(&commit(1, &[(b"k", b"1"), (b"new", b"n")]))
            .unwrap();
        s.commit_block(&commit(2, &[(b"k", b"2")])).unwrap();
        let before = s.dump_at(0);
        s.rollback_to(0).unwrap();
        assert_eq!(s.tip().unwrap(), Some(0));
        assert_eq!(s.get_at(b"k", 100).unwrap(), Some(b"0".to_vec()));
        assert_eq!(s.get_at(b"new", 100).unwrap(), None);
        assert_eq!(s.block_hash(1).unwrap(), None);
        assert_eq!(s.dump_at(100), before);
        // The chain continues from the rollback point.
        s.commit_block(&commit(1, &[(b"k", b"1b")])).unwrap();
        assert_eq!(s.get_at(b"k", 1).unwrap(), Some(b"1b".to_vec()));
    }
}

//! Looking inside a namespace: a key's value at a height, its history, the keys under a prefix
//! and the writes of one block (what `rockshrew inspect` prints).
//!
//! Each reads about what it returns, whatever the size of the database: a value is one reverse
//! seek in history, a history is one reverse walk over the key's own entries, a block's writes
//! are its touched list and one lookup each. A prefix listing walks the latest-value family,
//! whose keys sort by length first ([`crate::keys::history_prefix`]): it reads the keys it
//! returns plus one seek for each distinct key length that holds none of them.

use metashrew_storage::{Storage, StorageError};
use rocksdb::ReadOptions;

use crate::{Family, RocksStore, backend, keys};

/// One version of a key: the height that wrote it and the value (empty: deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The height whose block wrote it.
    pub height: u32,
    /// The value written.
    pub value: Vec<u8>,
}

impl RocksStore {
    /// The version of `key` in force at `height`: the newest written at or below it.
    pub fn version_at(&self, key: &[u8], height: u32) -> Result<Option<Version>, StorageError> {
        Ok(self
            .history_entry_at(&keys::history_prefix(key), height)?
            .map(|(height, value)| Version { height, value }))
    }

    /// The versions of `key` written at or below `height`, newest first, at most `limit`.
    pub fn key_history(
        &self,
        key: &[u8],
        height: u32,
        limit: usize,
    ) -> Result<Vec<Version>, StorageError> {
        let prefix = keys::history_prefix(key);
        let mut read = ReadOptions::default();
        read.set_prefix_same_as_start(true);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(Family::History)?, read);
        it.seek_for_prev(keys::history_key(key, height));
        let mut out = Vec::new();
        while out.len() < limit && it.valid() {
            let (Some(entry), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            if entry.len() != prefix.len() + 4 || !entry.starts_with(&prefix) {
                break;
            }
            out.push(Version {
                height: crate::be_u32(&entry[prefix.len()..])?,
                value: value.to_vec(),
            });
            it.prev();
        }
        it.status().map_err(|e| backend("reading history", e))?;
        Ok(out)
    }

    /// The keys that start with `prefix` and have a value at the tip, with their newest
    /// version, after `after` (exclusive; `None`: from the first), at most `limit`. Keys come
    /// shortest first, then in byte order: pass the last key returned as `after` for the next
    /// page.
    pub fn keys_under(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Version)>, StorageError> {
        let mut read = ReadOptions::default();
        read.set_total_order_seek(true);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(Family::Latest)?, read);
        let seek_length = |it: &mut rocksdb::DBRawIterator<'_>, len: usize| {
            let mut target = (len as u32).to_be_bytes().to_vec();
            target.extend_from_slice(prefix);
            it.seek(target);
        };
        match after {
            Some(after) if after.starts_with(prefix) => {
                let start = keys::history_prefix(after);
                it.seek(&start);
                if it.key() == Some(start.as_slice()) {
                    it.next();
                }
            }
            _ => seek_length(&mut it, prefix.len()),
        }
        let mut out = Vec::new();
        while out.len() < limit && it.valid() {
            let (Some(entry), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            let (len, key) = (crate::be_u32(&entry[..4.min(entry.len())])?, &entry[4..]);
            if key.len() != len as usize {
                return Err(StorageError::Corrupt("malformed latest-value key".into()));
            }
            let head = &key[..prefix.len().min(key.len())];
            // Not under the prefix: on to where this length's keys under it would be, or to
            // the next length.
            let jump = if key.len() < prefix.len() || head < prefix {
                Some(key.len().max(prefix.len()))
            } else if head > prefix {
                Some(key.len() + 1)
            } else {
                None
            };
            if let Some(len) = jump {
                if u32::try_from(len).is_err() {
                    break;
                }
                seek_length(&mut it, len);
                continue;
            }
            let (height, value) = keys::split_latest_value(value)
                .ok_or_else(|| StorageError::Corrupt("malformed latest value".into()))?;
            if !value.is_empty() {
                out.push((
                    key.to_vec(),
                    Version {
                        height,
                        value: value.to_vec(),
                    },
                ));
            }
            it.next();
        }
        it.status().map_err(|e| backend("listing keys", e))?;
        Ok(out)
    }

    /// What the block at `height` wrote, in key order (an empty value is a deletion): how many
    /// keys, and the first `limit` of them with their values (the others' values are not read).
    /// `None` when the height is not indexed.
    pub fn block_writes(
        &self,
        height: u32,
        limit: usize,
    ) -> Result<Option<(usize, metashrew_storage::KeyValues)>, StorageError> {
        if self.block_hash(height)?.is_none() {
            return Ok(None);
        }
        let history = self.cf(Family::History)?;
        let keys = self.touched_keys(height)?;
        let mut out = Vec::with_capacity(keys.len().min(limit));
        for key in keys.iter().take(limit) {
            let value = self
                .db
                .get_cf(history, keys::history_key(key, height))
                .map_err(|e| backend("reading history", e))?
                .ok_or_else(|| {
                    StorageError::Corrupt(format!(
                        "block {height} lists key 0x{} but history has no entry for it there",
                        hex::encode(key)
                    ))
                })?;
            out.push((key.clone(), value));
        }
        Ok(Some((keys.len(), out)))
    }
}

//! `verify`: recomputes every state root of a namespace from its stored history.
//!
//! Every block's writes are in the store (its touched list names them, each history entry at
//! the block's height holds a value), so the chain of roots can be recomputed from genesis of
//! the index to its tip without the indexer. A snapshot from elsewhere is trusted by checking
//! that its roots chain and end where a trusted node's do (`--expect-root`); a disk that
//! changed a value is found at the first block whose writes no longer give its root.
//!
//! Checks, in order of height:
//! - every height from the first to the tip has a block entry (hash and root) and a touched
//!   list, and nothing is stored above the tip;
//! - every listed key has an entry at exactly that height, whose value matches the check
//!   recorded at commit (lists written before checks existed have none);
//! - the history holds no entry the touched lists do not name;
//! - `root(h) = next_root(root(h - 1), h, hash(h), writes(h))`, from zeros before the first;
//! - the roots given as expected;
//! - the latest-value family holds exactly the newest history entry of every key, and nothing
//!   else (the first key where they differ is named).

use metashrew_storage::state_root::{GENESIS_PARENT_ROOT, next_root};
use metashrew_storage::{BlockHash, KeyValues, StateRoot, Storage, StorageError};
use rocksdb::ReadOptions;

use crate::{Family, RocksStore, backend, keys};

/// A root the caller trusts: `HEIGHT:HEX` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The height.
    pub height: u32,
    /// The root it must have.
    pub root: StateRoot,
}

impl std::str::FromStr for Expected {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (height, root) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?} is not HEIGHT:ROOT"))?;
        let height = height
            .trim()
            .parse()
            .map_err(|e| format!("height {height:?}: {e}"))?;
        let root = root
            .trim()
            .parse()
            .map_err(|e| format!("root {root:?}: {e}"))?;
        Ok(Self { height, root })
    }
}

/// A namespace that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The first indexed height.
    pub first: u32,
    /// The tip.
    pub tip: u32,
    /// Its block hash.
    pub tip_hash: BlockHash,
    /// Its state root.
    pub tip_root: StateRoot,
    /// History entries checked.
    pub entries: u64,
}

/// The first thing found wrong, or why the check could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Nothing is indexed.
    #[error("nothing is indexed in this namespace")]
    Empty,
    /// A height between the first and the tip has no block entry or no touched list.
    #[error("block {height}: its {what} is missing")]
    MissingBlock {
        /// The height.
        height: u32,
        /// "block entry" or "touched list".
        what: &'static str,
    },
    /// A block lists a key that has no entry at its height.
    #[error("block {height}: key 0x{} has no history entry at this height", hex::encode(.key))]
    MissingEntry {
        /// The height.
        height: u32,
        /// The key.
        key: Vec<u8>,
    },
    /// A stored value is not the one committed (its check differs).
    #[error("block {height}: key 0x{} holds 0x{}, which is not the value committed", hex::encode(.key), hex::encode(.value))]
    ValueChanged {
        /// The height.
        height: u32,
        /// The key.
        key: Vec<u8>,
        /// The value found.
        value: Vec<u8>,
    },
    /// A history entry that no touched list names.
    #[error("key 0x{} has an entry at height {height} (value 0x{}) that no block wrote", hex::encode(.key), hex::encode(.value))]
    UnlistedEntry {
        /// The entry's height.
        height: u32,
        /// The key.
        key: Vec<u8>,
        /// Its value.
        value: Vec<u8>,
    },
    /// The stored writes of a block do not give its stored root.
    #[error(
        "block {height}: the root recomputed from its stored writes is {computed}, the stored root is {stored}"
    )]
    RootMismatch {
        /// The height.
        height: u32,
        /// Recomputed from the parent's root and the stored writes.
        computed: StateRoot,
        /// Stored.
        stored: StateRoot,
    },
    /// A root differs from the one the caller expected.
    #[error("block {height}: the root is {found}, expected {expected}")]
    UnexpectedRoot {
        /// The height.
        height: u32,
        /// The (verified) root stored.
        found: StateRoot,
        /// The root expected.
        expected: StateRoot,
    },
    /// An expected root's height is not indexed here.
    #[error("no block {height} to compare with the expected root (indexed: {first}..={tip})")]
    ExpectedOutOfRange {
        /// The height.
        height: u32,
        /// The first indexed height.
        first: u32,
        /// The tip.
        tip: u32,
    },
    /// Something is stored above the tip.
    #[error("{what} at height {height}, above the tip {tip}")]
    AboveTip {
        /// What: "block entry" or "touched list".
        what: &'static str,
        /// Its height.
        height: u32,
        /// The tip.
        tip: u32,
    },
    /// The latest-value family and history disagree about a key's newest version.
    #[error("key 0x{}: the latest-value family holds {}, history's newest entry is {}", hex::encode(.key), describe(.latest), describe(.history))]
    LatestDiffers {
        /// The key.
        key: Vec<u8>,
        /// (height, value) in the latest-value family.
        latest: Option<(u32, Vec<u8>)>,
        /// (height, value) of history's newest entry.
        history: Option<(u32, Vec<u8>)>,
    },
    /// A read failed, or a stored record does not decode.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A version for a message: `0xVALUE at H`, or `nothing`.
fn describe(version: &Option<(u32, Vec<u8>)>) -> String {
    version.as_ref().map_or_else(
        || "nothing".to_string(),
        |(h, v)| format!("0x{} at {h}", hex::encode(v)),
    )
}

/// Verifies the namespace of `store` and the roots in `expected`. Logs progress every
/// `progress_every` blocks (0: never).
pub fn verify(
    store: &RocksStore,
    expected: &[Expected],
    progress_every: u32,
) -> Result<Verified, VerifyError> {
    let (Some(first), Some(tip)) = (store.first_height()?, store.tip()?) else {
        return Err(VerifyError::Empty);
    };
    if let Some(e) = expected.iter().find(|e| e.height < first || e.height > tip) {
        return Err(VerifyError::ExpectedOutOfRange {
            height: e.height,
            first,
            tip,
        });
    }
    let counts = history_counts(store, first, tip)?;
    check_nothing_above(store, tip)?;
    let mut parent = GENESIS_PARENT_ROOT;
    let mut tip_hash = BlockHash::ZERO;
    let mut entries = 0u64;
    for height in first..=tip {
        let (hash, stored) = store
            .block_entry(height)?
            .ok_or(VerifyError::MissingBlock {
                height,
                what: "block entry",
            })?;
        let writes = block_writes(store, height)?;
        if writes.len() as u64 != counts[(height - first) as usize] {
            return Err(unlisted_entry(store, height, &writes)?);
        }
        let computed = next_root(&parent, height, &hash, &writes);
        if computed != stored {
            return Err(VerifyError::RootMismatch {
                height,
                computed,
                stored,
            });
        }
        if let Some(e) = expected
            .iter()
            .find(|e| e.height == height && e.root != stored)
        {
            return Err(VerifyError::UnexpectedRoot {
                height,
                found: stored,
                expected: e.root,
            });
        }
        entries += writes.len() as u64;
        parent = stored;
        tip_hash = hash;
        if progress_every > 0 && (height - first) % progress_every == progress_every - 1 {
            log::info!("verified up to block {height} of {tip}");
        }
    }
    check_latest(store)?;
    Ok(Verified {
        first,
        tip,
        tip_hash,
        tip_root: parent,
        entries,
    })
}

/// The writes of block `height` as its touched list names them, each value read at exactly
/// that height and checked.
fn block_writes(store: &RocksStore, height: u32) -> Result<KeyValues, VerifyError> {
    let listed = store
        .db
        .get_pinned_cf(store.cf(crate::Family::Touched)?, keys::height_key(height))
        .map_err(|e| backend("reading a touched-key list", e))?
        .ok_or(VerifyError::MissingBlock {
            height,
            what: "touched list",
        })?;
    let listed = keys::decode_touched_checked(&listed)
        .ok_or_else(|| StorageError::Corrupt(format!("touched list of {height}")))?;
    let history = store.cf(crate::Family::History)?;
    let mut writes = Vec::with_capacity(listed.len());
    for (key, check) in listed {
        let value = store
            .db
            .get_cf(history, keys::history_key(&key, height))
            .map_err(|e| backend("reading history", e))?
            .ok_or_else(|| VerifyError::MissingEntry {
                height,
                key: key.clone(),
            })?;
        if check.is_some_and(|c| c != keys::value_check(&value)) {
            return Err(VerifyError::ValueChanged { height, key, value });
        }
        writes.push((key, value));
    }
    Ok(writes)
}

/// Runs `visit` on every history entry, in key order, until it returns an error to report.
fn scan_history(
    store: &RocksStore,
    mut visit: impl FnMut(&[u8], u32, &[u8]) -> Option<VerifyError>,
) -> Result<(), VerifyError> {
    let mut it = store.history_scan()?;
    it.seek_to_first();
    while let (Some(entry), Some(value)) = (it.key(), it.value()) {
        let (key, height) = keys::split_history_key(entry)
            .ok_or_else(|| StorageError::Corrupt("malformed history key".into()))?;
        if let Some(found) = visit(key, height, value) {
            return Err(found);
        }
        it.next();
    }
    it.status().map_err(|e| backend("scanning history", e))?;
    Ok(())
}

fn unlisted(key: &[u8], height: u32, value: &[u8]) -> VerifyError {
    VerifyError::UnlistedEntry {
        height,
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

/// History entries per height, `first..=tip`, from one scan of the whole history; an entry
/// outside that range is an error.
fn history_counts(store: &RocksStore, first: u32, tip: u32) -> Result<Vec<u64>, VerifyError> {
    let mut counts = vec![0u64; (tip - first) as usize + 1];
    scan_history(store, |key, height, value| {
        match height
            .checked_sub(first)
            .and_then(|i| counts.get_mut(i as usize))
        {
            Some(count) => {
                *count += 1;
                None
            }
            None => Some(unlisted(key, height, value)),
        }
    })?;
    Ok(counts)
}

/// The history entry at `height` that the block's list does not name.
fn unlisted_entry(
    store: &RocksStore,
    height: u32,
    writes: &[(Vec<u8>, Vec<u8>)],
) -> Result<VerifyError, VerifyError> {
    match scan_history(store, |key, h, value| {
        let listed = writes
            .binary_search_by(|(k, _)| k.as_slice().cmp(key))
            .is_ok();
        (h == height && !listed).then(|| unlisted(key, h, value))
    }) {
        Err(found) => Ok(found),
        Ok(()) => Err(StorageError::Corrupt(format!(
            "the entry count of block {height} changed during the check"
        ))
        .into()),
    }
}

/// Compares the latest-value family with the newest history entry of every key, merging the
/// two scans (both are in the order of `u32 BE len ++ key`).
fn check_latest(store: &RocksStore) -> Result<(), VerifyError> {
    let mut read = ReadOptions::default();
    read.set_total_order_seek(true);
    let mut latest = store
        .db
        .raw_iterator_cf_opt(store.cf(Family::Latest)?, read);
    latest.seek_to_first();
    let mut pending: Option<Version> = None;
    scan_history(store, |key, height, value| {
        if pending
            .as_ref()
            .is_some_and(|(k, _, _)| k.as_slice() != key)
            && let Some(found) = latest_mismatch(&mut latest, pending.take())
        {
            return Some(found);
        }
        pending = Some((key.to_vec(), height, value.to_vec()));
        None
    })?;
    for newest in [pending, None] {
        if let Some(found) = latest_mismatch(&mut latest, newest) {
            return Err(found);
        }
    }
    latest
        .status()
        .map_err(|e| backend("scanning latest values", e))?;
    Ok(())
}

/// A key's newest history entry: (key, height, value).
type Version = (Vec<u8>, u32, Vec<u8>);

/// Compares history's newest version of one key (`None`: the end of history) with the
/// latest-value entry at `latest`, stepping past it when it is that key's.
fn latest_mismatch(
    latest: &mut rocksdb::DBRawIterator,
    newest: Option<Version>,
) -> Option<VerifyError> {
    let stored = latest.key().zip(latest.value()).map(|(k, v)| {
        let version = keys::split_latest_value(v).map(|(h, v)| (h, v.to_vec()));
        (k.to_vec(), version)
    });
    let wanted = newest.as_ref().map(|(key, _, _)| keys::history_prefix(key));
    let order = match (&stored, &wanted) {
        (None, None) => return None,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some((k, _)), Some(prefix)) => k.cmp(prefix),
    };
    match order {
        // A latest value of a key that history does not have.
        std::cmp::Ordering::Less => {
            let (k, version) = stored?;
            Some(VerifyError::LatestDiffers {
                key: k.get(4..).unwrap_or_default().to_vec(),
                latest: version,
                history: None,
            })
        }
        std::cmp::Ordering::Greater => {
            let (key, h, value) = newest?;
            Some(VerifyError::LatestDiffers {
                key,
                latest: None,
                history: Some((h, value)),
            })
        }
        std::cmp::Ordering::Equal => {
            latest.next();
            let ((_, version), (key, h, value)) = (stored?, newest?);
            (version.as_ref() != Some(&(h, value.clone()))).then_some(VerifyError::LatestDiffers {
                key,
                latest: version,
                history: Some((h, value)),
            })
        }
    }
}

/// No block entry or touched list above the tip.
fn check_nothing_above(store: &RocksStore, tip: u32) -> Result<(), VerifyError> {
    for (cf, what) in [
        (Family::Blocks, "a block entry"),
        (Family::Touched, "a touched list"),
    ] {
        let mut it = store.db.raw_iterator_cf(store.cf(cf)?);
        it.seek_to_last();
        if let Some(key) = it.key() {
            let height = crate::be_u32(key)?;
            if height > tip {
                return Err(VerifyError::AboveTip { what, height, tip });
            }
        }
        it.status()
            .map_err(|e| backend("reading the last block", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use metashrew_storage::{BlockCommit, Storage};

    use super::*;
    use crate::tests::identity;

    /// A store of 6 chained blocks; returns it with its roots.
    fn chained(dir: &std::path::Path) -> (RocksStore, Vec<StateRoot>) {
        let store = RocksStore::open(dir, None, &identity(1), false).unwrap();
        let mut roots = Vec::new();
        let mut parent = GENESIS_PARENT_ROOT;
        for h in 10..16u32 {
            let writes = vec![
                (b"k".to_vec(), vec![h as u8]),
                (format!("x{h}").into_bytes(), b"v".to_vec()),
            ];
            let commit =
                BlockCommit::chained(h, BlockHash::from_bytes([h as u8; 32]), &parent, writes);
            store.commit_block(&commit).unwrap();
            parent = *commit.state_root();
            roots.push(parent);
        }
        (store, roots)
    }

    #[test]
    fn a_sound_store_verifies_and_meets_its_expected_roots() {
        let dir = tempfile::tempdir().unwrap();
        let (store, roots) = chained(dir.path());
        let expected = [Expected {
            height: 12,
            root: roots[2],
        }];
        let ok = verify(&store, &expected, 0).unwrap();
        assert_eq!(
            (ok.first, ok.tip, ok.tip_root, ok.entries),
            (10, 15, roots[5], 12)
        );
        let wrong = [Expected {
            height: 12,
            root: roots[3],
        }];
        assert!(matches!(
            verify(&store, &wrong, 0),
            Err(VerifyError::UnexpectedRoot { height: 12, .. })
        ));
        let outside = [Expected {
            height: 16,
            root: roots[3],
        }];
        assert!(matches!(
            verify(&store, &outside, 0),
            Err(VerifyError::ExpectedOutOfRange { height: 16, .. })
        ));
        let parsed: Expected = format!("12:0x{}", roots[2]).parse().unwrap();
        assert_eq!(parsed, expected[0]);
        assert!("12".parse::<Expected>().is_err());
        assert!("x:00".parse::<Expected>().is_err());
    }

    #[test]
    fn a_changed_value_is_named_with_its_block_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = chained(dir.path());
        let history = store.cf(crate::Family::History).unwrap();
        store
            .db
            .put_cf(history, keys::history_key(b"k", 13), [0x99])
            .unwrap();
        match verify(&store, &[], 0) {
            Err(VerifyError::ValueChanged { height, key, value }) => {
                assert_eq!((height, key, value), (13, b"k".to_vec(), vec![0x99]));
            }
            other => panic!("expected a changed value, got {other:?}"),
        }
    }

    #[test]
    fn a_latest_value_that_differs_from_history_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = chained(dir.path());
        let latest = store.cf(Family::Latest).unwrap();
        let put = |key: &[u8], h: u32, v: &[u8]| {
            store
                .db
                .put_cf(latest, keys::history_prefix(key), keys::latest_value(h, v))
                .unwrap()
        };
        put(b"x12", 12, b"w");
        match verify(&store, &[], 0) {
            Err(VerifyError::LatestDiffers {
                key,
                latest,
                history,
            }) => {
                assert_eq!(key, b"x12");
                assert_eq!(latest, Some((12, b"w".to_vec())));
                assert_eq!(history, Some((12, b"v".to_vec())));
            }
            other => panic!("expected a differing latest value, got {other:?}"),
        }
        put(b"x12", 12, b"v");
        put(b"stray", 3, b"s");
        assert!(matches!(
            verify(&store, &[], 0),
            Err(VerifyError::LatestDiffers { key, history: None, .. }) if key == b"stray"
        ));
        store
            .db
            .delete_cf(latest, keys::history_prefix(b"stray"))
            .unwrap();
        store
            .db
            .delete_cf(latest, keys::history_prefix(b"k"))
            .unwrap();
        let err = verify(&store, &[], 0).unwrap_err();
        assert!(
            matches!(&err, VerifyError::LatestDiffers { key, latest: None, history: Some((15, _)) } if key == b"k"),
            "{err}"
        );
        put(b"k", 15, &[15]);
        verify(&store, &[], 0).unwrap();
    }

    #[test]
    fn missing_extra_and_stray_entries_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = chained(dir.path());
        let history = store.cf(crate::Family::History).unwrap();
        store
            .db
            .delete_cf(history, keys::history_key(b"x12", 12))
            .unwrap();
        assert!(matches!(
            verify(&store, &[], 0),
            Err(VerifyError::MissingEntry { height: 12, key }) if key == b"x12"
        ));
        store
            .db
            .put_cf(history, keys::history_key(b"x12", 12), b"v")
            .unwrap();
        store
            .db
            .put_cf(history, keys::history_key(b"extra", 14), b"e")
            .unwrap();
        assert!(matches!(
            verify(&store, &[], 0),
            Err(VerifyError::UnlistedEntry { height: 14, key, .. }) if key == b"extra"
        ));
        store
            .db
            .delete_cf(history, keys::history_key(b"extra", 14))
            .unwrap();
        store
            .db
            .put_cf(history, keys::history_key(b"late", 20), b"e")
            .unwrap();
        assert!(matches!(
            verify(&store, &[], 0),
            Err(VerifyError::UnlistedEntry { height: 20, .. })
        ));
        store
            .db
            .delete_cf(history, keys::history_key(b"late", 20))
            .unwrap();
        let blocks = store.cf(crate::Family::Blocks).unwrap();
        let mut entry = [0u8; 64];
        entry[..32].copy_from_slice(&[13; 32]);
        store
            .db
            .put_cf(blocks, keys::height_key(13), entry)
            .unwrap();
        assert!(matches!(
            verify(&store, &[], 0),
            Err(VerifyError::RootMismatch { height: 13, .. })
        ));
    }
}

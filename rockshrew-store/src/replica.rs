//! Read replicas: the database of a running daemon, opened as a RocksDB secondary instance.
//!
//! A secondary shares the primary's SST files, MANIFEST and WAL read-only and keeps its own
//! small directory (its info logs). [`RocksStore::catch_up`] replays what the primary wrote
//! since the last call. Every block is one write batch on the primary, and a secondary applies
//! batches whole, so a replica's store only ever holds whole blocks: its tip's block with all
//! of its writes, and a rollback as a whole.
//!
//! One RocksDB flaw shapes [`Replica`]: a secondary keeps the entries it replayed from the WAL
//! in its memtable after the primary flushed them, and reads consult that memtable first. A key
//! the primary rewrote and flushed before the secondary replayed the rewrite (the tip, or an
//! entry a reorganisation replaced) then reads stale until the next write to its column family
//! reaches the secondary (facebook/rocksdb#14444, #15051). So a [`Replica`] never serves an
//! instance that has seen a flush: when the primary's directory holds an SST file newer than
//! any its instance knows, it opens a fresh instance (which replays only the WAL not yet
//! flushed) and swaps it in whole.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime};

use metashrew_storage::{BlockCommit, Storage, StorageError};
use rocksdb::DB;

use crate::{
    COMMITTED_AT, OpenError, RocksStore, backend, db_options, descriptors, existing_namespace,
    rocks_error,
};

impl RocksStore {
    /// Opens the database at `primary` (the `--db-path` of a daemon, running or not) as a
    /// secondary instance keeping its own files in `secondary_dir` (created if missing). It
    /// never writes the primary's files; commits and rollbacks through it fail. It sees what
    /// the primary had written when opened; [`RocksStore::catch_up`] brings it forward.
    pub fn open_secondary(
        primary: &Path,
        secondary_dir: &Path,
        label: Option<&str>,
    ) -> Result<Self, OpenError> {
        let (namespace, names) = existing_namespace(primary, label)?;
        std::fs::create_dir_all(secondary_dir).map_err(|e| OpenError::Storage(io(e)))?;
        let tuning = crate::Tuning::default();
        let mut opts = db_options(&tuning);
        // A secondary keeps every SST file it uses open, so that it can still read the files
        // the primary's compactions delete before it catches up.
        opts.set_max_open_files(-1);
        let db = DB::open_cf_descriptors_as_secondary(
            &opts,
            primary,
            secondary_dir,
            descriptors(&names, &tuning),
        )
        .map_err(|source| rocks_error(primary, source))?;
        let store = Self::from_db(std::sync::Arc::new(db), namespace, tuning)?;
        store.check_format(primary, false)?;
        Ok(store)
    }

    /// Applies what the primary committed since the last catch-up (or the open), then reloads
    /// the tip and first height. Returns the new tip.
    pub fn catch_up(&self) -> Result<Option<u32>, StorageError> {
        self.db
            .try_catch_up_with_primary()
            .map_err(|e| backend("catching up with the primary", e))?;
        self.reload_heights()?;
        Ok(Self::cached(self.tip.load(Ordering::SeqCst)))
    }

    /// When the primary committed the tip this store holds (`None`: nothing committed yet, or
    /// committed by a version that did not record it).
    pub fn tip_committed_at(&self) -> Result<Option<SystemTime>, StorageError> {
        let value = self
            .db
            .get_pinned_cf(self.cf(crate::Family::Meta)?, COMMITTED_AT)
            .map_err(|e| backend("reading metadata", e))?;
        Ok(value.and_then(|v| {
            let micros = u64::from_be_bytes(v.as_ref().try_into().ok()?);
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_micros(micros))
        }))
    }
}

/// A read replica of a primary's database: a [`Storage`] that serves what the primary has
/// committed, as of its last [`Replica::refresh`], and refuses every write.
///
/// Reads made while holding [`Replica::pin`] all see one state: a refresh waits for them, and
/// the next readers wait for the refresh. Hold it across a whole view so that no answer mixes
/// two states (two branches, during a reorganisation).
pub struct Replica {
    primary: PathBuf,
    dir: PathBuf,
    label: Option<String>,
    current: RwLock<Arc<RocksStore>>,
    /// Held by readers for a whole call; a refresh takes it exclusively.
    gate: RwLock<()>,
    /// The highest SST file number the current instance knows of.
    newest_sst: AtomicU64,
    /// Set when the current instance may be stale and a fresh one could not be opened.
    must_reopen: AtomicBool,
    /// Set when a refresh failed: the next one opens a fresh instance (reads go on meanwhile).
    refresh_failed: AtomicBool,
    /// Fresh instances opened so far (the first included).
    opens: AtomicU64,
}

/// What one [`Replica::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refresh {
    /// The tip before.
    pub before: Option<u32>,
    /// The tip after.
    pub after: Option<u32>,
    /// Whether a fresh instance replaced the old one (the primary had flushed).
    pub reopened: bool,
}

impl Replica {
    /// Opens a replica of the database at `primary`, keeping its own files under `dir`.
    pub fn open(primary: &Path, dir: &Path, label: Option<&str>) -> Result<Self, OpenError> {
        if dir.join("CURRENT").exists() || same_dir(dir, primary) {
            return Err(OpenError::Storage(StorageError::Corrupt(format!(
                "{} is a database: a replica's own directory must be a separate, empty or replica directory",
                dir.display()
            ))));
        }
        remove_instance_dirs(dir);
        let newest = newest_sst(primary);
        let store = RocksStore::open_secondary(primary, &dir.join("0"), label)?;
        Ok(Self {
            primary: primary.to_path_buf(),
            dir: dir.to_path_buf(),
            label: label.map(str::to_string),
            current: RwLock::new(Arc::new(store)),
            gate: RwLock::new(()),
            newest_sst: AtomicU64::new(newest),
            must_reopen: AtomicBool::new(false),
            refresh_failed: AtomicBool::new(false),
            opens: AtomicU64::new(1),
        })
    }

    /// Holds the current state for the caller's reads: no refresh happens until it is dropped.
    pub fn pin(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The instance reads go to now.
    pub fn store(&self) -> Arc<RocksStore> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Brings the replica up to what the primary has committed: replays the primary's WAL
    /// into the current instance, or, when the primary has flushed since that instance
    /// opened or the last refresh failed, replaces it with a fresh one. Readers never see a
    /// state that may be stale.
    pub fn refresh(&self) -> Result<Refresh, StorageError> {
        let refreshed = self.try_refresh();
        // After a failure the primary's files may have changed under the instance in a way
        // catching up cannot follow (a power cut took back what it had not synced, the disk
        // was remounted): the next refresh starts from a fresh instance.
        self.refresh_failed
            .store(refreshed.is_err(), Ordering::SeqCst);
        refreshed
    }

    fn try_refresh(&self) -> Result<Refresh, StorageError> {
        let before = self.store().tip()?;
        let seen = self.newest_sst.load(Ordering::SeqCst);
        if self.must_reopen.load(Ordering::SeqCst)
            || self.refresh_failed.load(Ordering::SeqCst)
            || newest_sst(&self.primary) > seen
        {
            // Opened while readers go on with the current state; swapped in whole.
            let (fresh, newest) = self.open_fresh()?;
            let _exclusive = self.gate.write().unwrap_or_else(|p| p.into_inner());
            return self.install(fresh, newest, before);
        }
        let _exclusive = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let after = self.store().catch_up()?;
        if newest_sst(&self.primary) > seen {
            // A flush landed while catching up: the instance may hold stale entries. Replace
            // it before any reader sees it; if that fails, reads fail (a storage error) until
            // a later refresh opens a fresh instance.
            self.must_reopen.store(true, Ordering::SeqCst);
            let (fresh, newest) = self.open_fresh()?;
            return self.install(fresh, newest, before);
        }
        Ok(Refresh {
            before,
            after,
            reopened: false,
        })
    }

    /// A fresh secondary instance, and the newest SST number at the time it was opened.
    fn open_fresh(&self) -> Result<(RocksStore, u64), StorageError> {
        let generation = self.opens.fetch_add(1, Ordering::SeqCst);
        let newest = newest_sst(&self.primary);
        // The old instance serves while the new one opens: each has a directory of its own.
        let dir = self.dir.join(generation.to_string());
        let fresh = RocksStore::open_secondary(&self.primary, &dir, self.label.as_deref())
            .map_err(|e| match e {
                OpenError::Storage(err) => err,
                other => StorageError::Backend {
                    action: "reopening the replica",
                    cause: Box::new(other),
                },
            })?;
        Ok((fresh, newest))
    }

    /// Makes `fresh` the instance reads go to. The caller holds the gate exclusively.
    fn install(
        &self,
        fresh: RocksStore,
        newest: u64,
        before: Option<u32>,
    ) -> Result<Refresh, StorageError> {
        let after = fresh.tip()?;
        let old = {
            let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *current, Arc::new(fresh))
        };
        self.newest_sst.store(newest, Ordering::SeqCst);
        self.must_reopen.store(false, Ordering::SeqCst);
        // The old instance's directory goes with it, unless a reader still holds it.
        if let Ok(old) = Arc::try_unwrap(old) {
            let old_dir = old.secondary_dir.clone();
            drop(old);
            if let Some(dir) = old_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        Ok(Refresh {
            before,
            after,
            reopened: true,
        })
    }

    /// Fresh instances opened so far, the first included.
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::SeqCst)
    }
}

/// Removes the numbered instance directories a previous run left in `dir` (nothing else).
fn remove_instance_dirs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let numbered = entry
            .file_name()
            .to_str()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if numbered && entry.path().is_dir() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The highest number of an `NNNNNN.sst` file in `dir` (0 if none or unreadable). Files only
/// get higher numbers, so a new one means a flush or a compaction since the last look.
fn newest_sst(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?.strip_suffix(".sst")?.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
}

impl Replica {
    /// The instance to read from, unless it may be stale.
    fn live(&self) -> Result<Arc<RocksStore>, StorageError> {
        if self.must_reopen.load(Ordering::SeqCst) {
            return Err(StorageError::Backend {
                action: "reading the replica",
                cause: "the primary flushed and the replica could not reopen yet".into(),
            });
        }
        Ok(self.store())
    }
}

fn read_only(action: &'static str) -> StorageError {
    StorageError::Backend {
        action,
        cause: "a read replica never writes".into(),
    }
}

impl Storage for Replica {
    fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        self.live()?.get_at(key, height)
    }

    fn commit_block(&self, _commit: &BlockCommit) -> Result<(), StorageError> {
        Err(read_only("committing a block"))
    }

    metashrew_storage::forward_block_metadata!(self => self.live()?);

    fn rollback_to(&self, _height: u32) -> Result<(), StorageError> {
        Err(read_only("rolling back"))
    }
}

fn io(err: std::io::Error) -> StorageError {
    StorageError::Backend {
        action: "creating the replica's directory",
        cause: Box::new(err),
    }
}

#[cfg(test)]
mod tests {
    use metashrew_storage::Storage;

    use super::Replica;
    use crate::RocksStore;
    use crate::tests::{commit, identity};

    #[test]
    fn a_secondary_follows_commits_and_rollbacks_of_a_live_primary() {
        let dir = tempfile::tempdir().unwrap();
        let (primary_dir, replica_dir) = (dir.path().join("db"), dir.path().join("replica"));
        let primary = RocksStore::open(&primary_dir, None, &identity(1), false).unwrap();
        primary.commit_block(&commit(0, &[(b"a", b"0")])).unwrap();
        let replica = RocksStore::open_secondary(&primary_dir, &replica_dir, None).unwrap();
        assert_eq!(replica.tip().unwrap(), Some(0));
        for h in 1..=5u32 {
            let writes: &[(&[u8], &[u8])] = &[(b"a", &[h as u8]), (b"b", b"x")];
            primary.commit_block(&commit(h, writes)).unwrap();
        }
        // Nothing new until it catches up.
        assert_eq!(replica.tip().unwrap(), Some(0));
        assert_eq!(replica.get_at(b"a", 5).unwrap(), Some(b"0".to_vec()));
        assert_eq!(replica.catch_up().unwrap(), Some(5));
        assert_eq!(replica.get_at(b"a", 5).unwrap(), Some(vec![5]));
        assert_eq!(
            replica.state_root(5).unwrap(),
            primary.state_root(5).unwrap()
        );
        assert!(replica.tip_committed_at().unwrap().is_some());
        // A rollback and a new branch, seen whole.
        primary.rollback_to(2).unwrap();
        assert_eq!(replica.catch_up().unwrap(), Some(2));
        assert_eq!(replica.get_at(b"a", 5).unwrap(), Some(vec![2]));
        assert_eq!(replica.block_hash(3).unwrap(), None);
        primary.commit_block(&commit(3, &[(b"a", b"new")])).unwrap();
        assert_eq!(replica.catch_up().unwrap(), Some(3));
        assert_eq!(replica.get_at(b"a", 3).unwrap(), Some(b"new".to_vec()));
        assert_eq!(replica.dump_at(3).unwrap(), primary.dump_at(3).unwrap());
        // It never writes.
        assert!(replica.rollback_to(1).is_err());
        // A replica's own directory is never the primary's.
        assert!(Replica::open(&primary_dir, &primary_dir, None).is_err());
        assert_eq!(primary.tip().unwrap(), Some(3));
    }

    #[test]
    fn a_replica_never_serves_entries_the_primary_replaced_and_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let (primary_dir, replica_dir) = (dir.path().join("db"), dir.path().join("replica"));
        let primary = RocksStore::open(&primary_dir, None, &identity(1), false).unwrap();
        for h in 0..=3u32 {
            primary
                .commit_block(&commit(h, &[(b"a", &[h as u8])]))
                .unwrap();
        }
        let replica = Replica::open(&primary_dir, &replica_dir, None).unwrap();
        assert_eq!(replica.tip().unwrap(), Some(3));
        // A reorganisation of blocks 2 and 3 that reaches SST files before the replica
        // replays it: a bare secondary would go on reading the old branch from its memtable.
        primary.rollback_to(1).unwrap();
        for h in 2..=4u32 {
            primary
                .commit_block(&commit(h, &[(b"a", &[h as u8 + 100])]))
                .unwrap();
        }
        primary.flush().unwrap();
        let refresh = replica.refresh().unwrap();
        assert_eq!((refresh.after, refresh.reopened), (Some(4), true));
        assert_eq!(replica.get_at(b"a", 3).unwrap(), Some(vec![103]));
        assert_eq!(
            replica.store().dump_at(4).unwrap(),
            primary.dump_at(4).unwrap()
        );
        assert_eq!(replica.opens(), 2);
        // Without a flush, the WAL is replayed into the same instance.
        primary.commit_block(&commit(5, &[(b"a", b"5")])).unwrap();
        let refresh = replica.refresh().unwrap();
        assert_eq!((refresh.after, refresh.reopened), (Some(5), false));
        assert!(replica.commit_block(&commit(6, &[])).is_err());
    }
}

//! The RocksDB store of rockshrew: implements [`Storage`] over versioned history.
//!
//! One namespace (the `--label`, or `default`) is five column families, listed in [`Family`],
//! and its layout version is checked at open ([`FORMAT_VERSION`]).
//!
//! A block is one `WriteBatch` (history entries, latest values, touched list, hash and root,
//! tip): it is in the database whole or not at all, whatever happens to the process. A read at
//! the tip (what a block reads) is one point lookup in the latest-value family, whose cost does
//! not grow with the history; a read at an older height is one reverse seek in history. A
//! rollback reads the touched lists of the blocks above the target, deletes exactly their
//! history entries and puts back the latest value of each key they touched, in one batch. All
//! tuning is in [`tuning`].

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod diff;
mod engine_stats;
mod families;
mod file_reads;
mod format;
mod identity;
pub mod inspect;
pub mod keys;
mod modules;
mod replica;
pub mod snapshot;
pub mod tuning;
pub mod verify;

pub use engine_stats::EngineStats;
pub use families::Family;
pub use file_reads::FileReads;
pub use format::{FORMAT_VERSION, Migrated};
pub use identity::IndexIdentity;
pub use modules::{ChangeError, ModuleRange, Upgraded};
pub use replica::{Refresh, Replica};
pub use tuning::{IngestMode, Tuning};
use tuning::{db_options, descriptors};

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metashrew_storage::{BlockCommit, BlockHash, KeyValues, StateRoot, Storage, StorageError};
use rocksdb::{ColumnFamily, DB, Options, ReadOptions, WriteBatch, WriteOptions};

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open RocksDB at {path}: {source}")]
    /// RocksDB failed.
    Rocks {
        /// The database directory.
        path: String,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
    #[error(
        "the database namespace `{namespace}` was written by another indexer ({stored}); this run is {ours}. To index with this module from a height H on, stop the daemon and run `rockshrew upgrade --db-path DB --label {namespace} --indexer MODULE.wasm --height H` (docs/operations.md, \"Upgrading an indexer\"); or use another --db-path or --label"
    )]
    /// The namespace was written by another module or other settings.
    IdentityMismatch {
        /// The namespace (label).
        namespace: String,
        /// The identity stored there.
        stored: String,
        /// The identity of this run.
        ours: String,
    },
    #[error(
        "the database {path}, namespace `{namespace}`, has layout version {found}; this rockshrew reads version {}. Index again into a new --db-path, or (version 1, no daemon running) convert it in place with `rockshrew migrate --db-path {path}` (add --label for a labelled namespace)",
        FORMAT_VERSION
    )]
    /// The namespace was written with another on-disk layout.
    Layout {
        /// The database directory.
        path: String,
        /// The namespace (label).
        namespace: String,
        /// Its layout version.
        found: u32,
    },
    #[error("two indexers name the namespace `{0}`: each needs a label of its own")]
    /// [`RocksStore::open_namespaces`] was given one namespace twice.
    DuplicateNamespace(String),
    #[error(transparent)]
    /// A store operation failed.
    Storage(#[from] StorageError),
}

/// The namespace of an index without a label.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The namespace `label` names: the label, or [`DEFAULT_NAMESPACE`].
pub fn namespace_of(label: Option<&str>) -> &str {
    label.unwrap_or(DEFAULT_NAMESPACE)
}

const TIP: &[u8] = b"tip";
const FIRST: &[u8] = b"first";
const IDENTITY: &[u8] = b"identity";
/// Prefix of the block headers kept for the daemon's proof-of-work checks: `header/ ++ u32 BE
/// height` -> the 80-byte header.
const HEADER: &[u8] = b"header/";
/// When the tip was committed: u64 BE microseconds since the Unix epoch. Not part of the state
/// (no root covers it); replicas use it to measure how far behind they are.
const COMMITTED_AT: &[u8] = b"committed_at";
/// `tip` cache value meaning "nothing indexed".
const NO_TIP: u64 = u64::MAX;

/// One index namespace of a RocksDB database: versioned history, the latest-value family,
/// per-block hashes, roots and touched keys, and its metadata ([`Family`]).
pub struct RocksStore {
    /// The database; shared by the namespaces opened together ([`RocksStore::open_namespaces`]).
    db: Arc<DB>,
    namespace: String,
    /// The settings it was opened with.
    tuning: Tuning,
    /// The column family names of the namespace, by [`Family::index`].
    families: [String; Family::ALL.len()],
    /// The tip as a u64 (`NO_TIP` when empty): read on every block and view without a disk read.
    tip: AtomicU64,
    first: AtomicU64,
    /// Serialises commits and rollbacks (readers never take it).
    writer: Mutex<()>,
    write_options: WriteOptions,
    /// A secondary instance's own directory.
    secondary_dir: Option<std::path::PathBuf>,
}

fn rocks_error(path: &Path, source: rocksdb::Error) -> OpenError {
    OpenError::Rocks {
        path: path.display().to_string(),
        source,
    }
}

/// The namespace `label` names and the column families of the database at `path`; an error
/// unless the database exists and holds that namespace.
fn existing_namespace(
    path: &Path,
    label: Option<&str>,
) -> Result<(String, Vec<String>), OpenError> {
    let namespace = namespace_of(label).to_string();
    let names =
        DB::list_cf(&Options::default(), path).map_err(|source| rocks_error(path, source))?;
    if !names.contains(&Family::Meta.name_in(&namespace)) {
        return Err(OpenError::Storage(StorageError::Corrupt(format!(
            "{} has no index namespace `{namespace}` (it has: {})",
            path.display(),
            RocksStore::namespaces(path).join(", ")
        ))));
    }
    Ok((namespace, names))
}

/// Makes the entry of the database directory in its parent durable. RocksDB syncs what it
/// creates inside the directory, not the directory's own entry: without this, a power cut
/// soon after the database was created can take the whole directory, synced blocks and all.
fn sync_parent(path: &Path) -> Result<(), OpenError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| {
            OpenError::Storage(StorageError::Backend {
                action: "syncing the database directory's parent",
                cause: Box::new(e),
            })
        })
}

fn backend(action: &'static str, err: rocksdb::Error) -> StorageError {
    StorageError::Backend {
        action,
        cause: Box::new(err),
    }
}

/// Now, in microseconds since the Unix epoch (0 if the clock is before it).
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn header_key(height: u32) -> Vec<u8> {
    [HEADER, &height.to_be_bytes()].concat()
}

fn be_u32(bytes: &[u8]) -> Result<u32, StorageError> {
    bytes
        .try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| StorageError::Corrupt(format!("expected 4 bytes, found {}", bytes.len())))
}

impl RocksStore {
    /// Opens (or creates) the database at `path` and the namespace `label` in it, checking that
    /// the namespace belongs to `identity` (or adopting it when `allow_change`).
    pub fn open(
        path: &Path,
        label: Option<&str>,
        identity: &IndexIdentity,
        allow_change: bool,
    ) -> Result<Self, OpenError> {
        Self::open_tuned(path, label, identity, allow_change, &Tuning::default())
    }

    /// [`RocksStore::open`] with other settings than the defaults.
    pub fn open_tuned(
        path: &Path,
        label: Option<&str>,
        identity: &IndexIdentity,
        allow_change: bool,
        tuning: &Tuning,
    ) -> Result<Self, OpenError> {
        let mut stores = Self::open_namespaces(path, &[(label, identity)], allow_change, tuning)?;
        stores.pop().ok_or_else(|| {
            OpenError::Storage(StorageError::Corrupt("no namespace was opened".into()))
        })
    }

    /// Opens (or creates) the database at `path` once, with one store per `(label, identity)`
    /// in `indexers`, each checked as [`RocksStore::open`] checks its one: several indexers in
    /// one database, each in its own namespace, sharing the database's caches, write-ahead log
    /// and open-file budget. The stores come back in the order of `indexers`.
    pub fn open_namespaces(
        path: &Path,
        indexers: &[(Option<&str>, &IndexIdentity)],
        allow_change: bool,
        tuning: &Tuning,
    ) -> Result<Vec<Self>, OpenError> {
        let opts = db_options(tuning);
        let mut names: Vec<String> = DB::list_cf(&opts, path).unwrap_or_default();
        let namespaces: Vec<String> = indexers
            .iter()
            .map(|(label, _)| namespace_of(*label).to_string())
            .collect();
        for (i, namespace) in namespaces.iter().enumerate() {
            if namespaces[..i].contains(namespace) {
                return Err(OpenError::DuplicateNamespace(namespace.clone()));
            }
            for family in Family::ALL {
                let name = family.name_in(namespace);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        let db = Arc::new(
            DB::open_cf_descriptors(&opts, path, descriptors(&names, tuning))
                .map_err(|source| rocks_error(path, source))?,
        );
        sync_parent(path)?;
        let mut stores = Vec::with_capacity(indexers.len());
        for (namespace, (_, identity)) in namespaces.into_iter().zip(indexers) {
            let store = Self::from_db(db.clone(), namespace, tuning.clone())?;
            store.check_format(path, true)?;
            store.check_identity(identity, allow_change)?;
            stores.push(store);
        }
        Ok(stores)
    }

    /// Opens an existing database and namespace for writing, without an identity check: for
    /// tools that act on a database no daemon holds (`rockshrew snapshot`).
    pub fn open_existing(path: &Path, label: Option<&str>) -> Result<Self, OpenError> {
        let (namespace, names) = existing_namespace(path, label)?;
        let tuning = Tuning::default();
        let db = DB::open_cf_descriptors(&db_options(&tuning), path, descriptors(&names, &tuning))
            .map_err(|source| rocks_error(path, source))?;
        let store = Self::from_db(Arc::new(db), namespace, tuning)?;
        store.check_format(path, false)?;
        Ok(store)
    }

    /// Opens an existing database read-only, for inspection (`rockshrew-diff`, `verify`): no
    /// identity check, no writes; it may be open in a running daemon at the same time (it then
    /// sees what the daemon had written when it opened).
    pub fn open_read_only(path: &Path, label: Option<&str>) -> Result<Self, OpenError> {
        let (namespace, names) = existing_namespace(path, label)?;
        let tuning = Tuning::default();
        let db = DB::open_cf_for_read_only(&db_options(&tuning), path, &names, false)
            .map_err(|source| rocks_error(path, source))?;
        let store = Self::from_db(Arc::new(db), namespace, tuning)?;
        store.check_format(path, false)?;
        Ok(store)
    }

    /// The store over an open database: loads the cached tip and first height.
    fn from_db(db: Arc<DB>, namespace: String, tuning: Tuning) -> Result<Self, StorageError> {
        let mut write_options = WriteOptions::default();
        // By default the WAL is written on every commit but not fsynced: a killed process
        // loses nothing (the kernel has the data); a power failure loses the blocks committed
        // since RocksDB last synced (at each memtable switch), which are then indexed again.
        // `sync_commits` fsyncs it at every commit instead.
        write_options.set_sync(tuning.sync_commits);
        let store = Self {
            db,
            tuning,
            families: Family::ALL.map(|f| f.name_in(&namespace)),
            namespace,
            tip: AtomicU64::new(NO_TIP),
            first: AtomicU64::new(NO_TIP),
            writer: Mutex::new(()),
            write_options,
            secondary_dir: None,
        };
        store.reload_heights()?;
        Ok(store)
    }

    /// Reads the tip and first height from the metadata into their cached copies.
    pub(crate) fn reload_heights(&self) -> Result<(), StorageError> {
        let tip = self.meta_u32(TIP)?;
        let first = self.meta_u32(FIRST)?;
        self.tip
            .store(tip.map_or(NO_TIP, u64::from), Ordering::SeqCst);
        self.first
            .store(first.map_or(NO_TIP, u64::from), Ordering::SeqCst);
        Ok(())
    }

    /// Namespaces (labels) present in the database at `path`.
    pub fn namespaces(path: &Path) -> Vec<String> {
        let mut out: Vec<String> = DB::list_cf(&Options::default(), path)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| n.strip_suffix("/meta").map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// Switches the history and latest-value families to `mode`'s memtable and compaction
    /// settings ([`Tuning`] holds them), from the next memtable on.
    pub fn set_ingest_mode(&self, mode: IngestMode) -> Result<(), StorageError> {
        let options = tuning::mode_options(&self.tuning, mode);
        let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for family in [Family::History, Family::Latest] {
            self.db
                .set_options_cf(self.cf(family)?, &options)
                .map_err(|e| backend("changing the ingest settings", e))?;
        }
        Ok(())
    }

    /// The namespace's name (the label, or `default`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The namespace's column family `family`.
    fn cf(&self, family: Family) -> Result<&ColumnFamily, StorageError> {
        let name = &self.families[family.index()];
        self.db
            .cf_handle(name)
            .ok_or_else(|| StorageError::Corrupt(format!("column family {name} is missing")))
    }

    fn meta_u32(&self, key: &[u8]) -> Result<Option<u32>, StorageError> {
        match self
            .db
            .get_pinned_cf(self.cf(Family::Meta)?, key)
            .map_err(|e| backend("reading metadata", e))?
        {
            Some(v) => Ok(Some(be_u32(&v)?)),
            None => Ok(None),
        }
    }

    /// Checks `ours` against the namespace's identity; records it in a new namespace, or when
    /// `allow_change` (from the next height, in the module history).
    fn check_identity(&self, ours: &IndexIdentity, allow_change: bool) -> Result<(), OpenError> {
        let stored = self
            .db
            .get_cf(self.cf(Family::Meta)?, IDENTITY)
            .map_err(|e| backend("reading the index identity", e))?;
        let stored = stored.map(|bytes| IndexIdentity::decode(&bytes).ok_or(bytes));
        match stored {
            Some(Ok(stored)) if stored == *ours => Ok(self.ensure_module_history(ours)?),
            Some(stored) if !allow_change => Err(OpenError::IdentityMismatch {
                namespace: self.namespace.clone(),
                stored: stored.map_or_else(|_| "an unreadable identity".into(), |i| i.describe()),
                ours: ours.describe(),
            }),
            stored => {
                if let Some(Ok(previous)) = &stored {
                    self.ensure_module_history(previous)?;
                }
                let next = self.tip()?.map_or(0, |t| t.saturating_add(1));
                Ok(self.record_module(ours, next)?)
            }
        }
    }

    fn cached(value: u64) -> Option<u32> {
        (value != NO_TIP).then_some(value as u32)
    }

    /// Every key with its value as of `height` (empty values omitted), sorted: a full dump, for
    /// comparisons and `rockshrew diff`.
    pub fn dump_at(&self, height: u32) -> Result<KeyValues, StorageError> {
        let mut out = KeyValues::new();
        let mut it = self.history_scan()?;
        it.seek_to_first();
        let mut current: Option<(Vec<u8>, Vec<u8>)> = None;
        while it.valid() {
            let (Some(entry), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            let (key, h) = keys::split_history_key(entry)
                .ok_or_else(|| StorageError::Corrupt("malformed history key".into()))?;
            if current.as_ref().is_some_and(|(k, _)| k.as_slice() != key) {
                out.extend(current.take().filter(|(_, v)| !v.is_empty()));
            }
            if h <= height {
                current = Some((key.to_vec(), value.to_vec()));
            }
            it.next();
        }
        it.status().map_err(|e| backend("scanning history", e))?;
        out.extend(current.filter(|(_, v)| !v.is_empty()));
        Ok(out)
    }

    /// Keeps the 80-byte header of the block at `height`, for the daemon's proof-of-work checks
    /// (a retarget reads the headers of its period). It is written just before the block
    /// commits, outside the block's batch: a header above the tip, or one whose hash is not the
    /// stored block hash of its height, is left from a block that did not commit, and is to be
    /// ignored (the next block at that height overwrites it).
    pub fn put_header(&self, height: u32, header: &[u8; 80]) -> Result<(), StorageError> {
        self.db
            .put_cf_opt(
                self.cf(Family::Meta)?,
                header_key(height),
                header,
                &self.write_options,
            )
            .map_err(|e| backend("writing a block header", e))
    }

    /// The header [`RocksStore::put_header`] kept at `height`, if any.
    pub fn header(&self, height: u32) -> Result<Option<[u8; 80]>, StorageError> {
        let stored = self
            .db
            .get_pinned_cf(self.cf(Family::Meta)?, header_key(height))
            .map_err(|e| backend("reading a block header", e))?;
        stored
            .map(|bytes| {
                <[u8; 80]>::try_from(&bytes[..]).map_err(|_| {
                    StorageError::Corrupt(format!(
                        "the header kept at height {height} is {} bytes, not 80",
                        bytes.len()
                    ))
                })
            })
            .transpose()
    }

    /// Syncs the WAL, then writes the namespace's memtables to SST files, so that the next
    /// open has no WAL to replay (seconds on a large database). For a clean shutdown.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db
            .flush_wal(true)
            .map_err(|e| backend("flushing the WAL", e))?;
        for family in Family::ALL {
            self.db
                .flush_cf(self.cf(family)?)
                .map_err(|e| backend("flushing memtables", e))?;
        }
        Ok(())
    }
}

impl Storage for RocksStore {
    fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        let prefix = keys::history_prefix(key);
        // A read at or above the tip (every read a block makes) is a point lookup of the key's
        // newest version. The version carries its height, so a block committed since the tip
        // was loaded is seen for what it is, and the read falls back to history.
        if u64::from(height) >= self.tip.load(Ordering::SeqCst) {
            let latest = self
                .db
                .get_pinned_cf(self.cf(Family::Latest)?, &prefix)
                .map_err(|e| backend("reading a latest value", e))?;
            let Some(entry) = latest else {
                return Ok(None);
            };
            let (written_at, value) = keys::split_latest_value(&entry)
                .ok_or_else(|| StorageError::Corrupt("malformed latest value".into()))?;
            if written_at <= height {
                return Ok(Some(value.to_vec()));
            }
        }
        self.history_at(&prefix, height)
    }

    /// A read at or above the tip answered from the memtables and the block cache only
    /// (RocksDB's `kBlockCacheTier`: a lookup that would read a file is `Incomplete`). A read
    /// below the tip, or of a key written since the tip was loaded, needs history: unknown.
    fn get_in_memory(
        &self,
        key: &[u8],
        height: u32,
    ) -> Result<Option<Option<Vec<u8>>>, StorageError> {
        if u64::from(height) < self.tip.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let mut options = ReadOptions::default();
        options.set_read_tier(rocksdb::ReadTier::BlockCache);
        let latest = self.db.get_pinned_cf_opt(
            self.cf(Family::Latest)?,
            keys::history_prefix(key),
            &options,
        );
        match latest {
            Err(e) if e.kind() == rocksdb::ErrorKind::Incomplete => Ok(None),
            Err(e) => Err(backend("reading a latest value from memory", e)),
            Ok(None) => Ok(Some(None)),
            Ok(Some(entry)) => {
                let (written_at, value) = keys::split_latest_value(&entry)
                    .ok_or_else(|| StorageError::Corrupt("malformed latest value".into()))?;
                Ok((written_at <= height).then(|| Some(value.to_vec())))
            }
        }
    }

    fn commit_block(&self, commit: &BlockCommit) -> Result<(), StorageError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tip = Self::cached(self.tip.load(Ordering::SeqCst));
        if let Some(t) = tip
            && Some(commit.height()) != t.checked_add(1)
        {
            return Err(StorageError::NotNextHeight {
                height: commit.height(),
                tip,
            });
        }
        let (history, latest) = (self.cf(Family::History)?, self.cf(Family::Latest)?);
        let (blocks, touched, meta) = (
            self.cf(Family::Blocks)?,
            self.cf(Family::Touched)?,
            self.cf(Family::Meta)?,
        );
        let mut batch = WriteBatch::default();
        let height_bytes = commit.height().to_be_bytes();
        for (k, v) in commit.writes() {
            let mut entry = keys::history_prefix(k);
            batch.put_cf(latest, &entry, keys::latest_value(commit.height(), v));
            entry.extend_from_slice(&height_bytes);
            batch.put_cf(history, entry, v);
        }
        let height = keys::height_key(commit.height());
        batch.put_cf(
            touched,
            height,
            keys::encode_touched(
                commit
                    .writes()
                    .iter()
                    .map(|(k, v)| (k.as_slice(), v.as_slice())),
            ),
        );
        let mut hash_root = commit.block_hash().as_bytes().to_vec();
        hash_root.extend_from_slice(commit.state_root().as_bytes());
        batch.put_cf(blocks, height, hash_root);
        batch.put_cf(meta, TIP, height);
        batch.put_cf(meta, COMMITTED_AT, unix_micros().to_be_bytes());
        if tip.is_none() {
            batch.put_cf(meta, FIRST, height);
        }
        self.db
            .write_opt(batch, &self.write_options)
            .map_err(|e| backend("committing a block", e))?;
        self.tip.store(u64::from(commit.height()), Ordering::SeqCst);
        if tip.is_none() {
            self.first
                .store(u64::from(commit.height()), Ordering::SeqCst);
        }
        Ok(())
    }

    fn tip(&self) -> Result<Option<u32>, StorageError> {
        Ok(Self::cached(self.tip.load(Ordering::SeqCst)))
    }

    fn first_height(&self) -> Result<Option<u32>, StorageError> {
        Ok(Self::cached(self.first.load(Ordering::SeqCst)))
    }

    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, StorageError> {
        Ok(self.block_entry(height)?.map(|(h, _)| h))
    }

    fn state_root(&self, height: u32) -> Result<Option<StateRoot>, StorageError> {
        Ok(self.block_entry(height)?.map(|(_, r)| r))
    }

    fn touched_keys(&self, height: u32) -> Result<Vec<Vec<u8>>, StorageError> {
        match self
            .db
            .get_pinned_cf(self.cf(Family::Touched)?, keys::height_key(height))
            .map_err(|e| backend("reading a touched-key list", e))?
        {
            Some(bytes) => keys::decode_touched(&bytes)
                .ok_or_else(|| StorageError::Corrupt(format!("touched list of {height}"))),
            None => Ok(Vec::new()),
        }
    }

    fn rollback_to(&self, height: u32) -> Result<(), StorageError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tip) = Self::cached(self.tip.load(Ordering::SeqCst)) else {
            return Ok(());
        };
        let first = Self::cached(self.first.load(Ordering::SeqCst)).unwrap_or(0);
        if height >= tip {
            return Ok(());
        }
        let (history, latest) = (self.cf(Family::History)?, self.cf(Family::Latest)?);
        let (blocks, touched, meta) = (
            self.cf(Family::Blocks)?,
            self.cf(Family::Touched)?,
            self.cf(Family::Meta)?,
        );
        let mut batch = WriteBatch::default();
        let lowest_removed = if height < first { first } else { height + 1 };
        let mut rewound = std::collections::BTreeSet::new();
        for h in lowest_removed..=tip {
            for key in self.touched_keys(h)? {
                batch.delete_cf(history, keys::history_key(&key, h));
                rewound.insert(key);
            }
            batch.delete_cf(touched, keys::height_key(h));
            batch.delete_cf(blocks, keys::height_key(h));
        }
        // Each key a removed block wrote gets back its newest version at or below `height`
        // (history reads do not see the deletes above, which are in the batch).
        for key in rewound {
            let prefix = keys::history_prefix(&key);
            match self.history_entry_at(&prefix, height)? {
                Some((h, value)) => batch.put_cf(latest, &prefix, keys::latest_value(h, &value)),
                None => batch.delete_cf(latest, &prefix),
            }
        }
        let emptied = height < first;
        if emptied {
            batch.delete_cf(meta, TIP);
            batch.delete_cf(meta, FIRST);
        } else {
            batch.put_cf(meta, TIP, keys::height_key(height));
        }
        self.db
            .write_opt(batch, &self.write_options)
            .map_err(|e| backend("rolling back", e))?;
        if emptied {
            self.tip.store(NO_TIP, Ordering::SeqCst);
            self.first.store(NO_TIP, Ordering::SeqCst);
        } else {
            self.tip.store(u64::from(height), Ordering::SeqCst);
        }
        Ok(())
    }
}

impl RocksStore {
    /// A raw iterator over the whole history family, in key order (not bounded to a prefix).
    fn history_scan(&self) -> Result<rocksdb::DBRawIterator<'_>, StorageError> {
        let mut read = ReadOptions::default();
        read.set_total_order_seek(true);
        Ok(self.db.raw_iterator_cf_opt(self.cf(Family::History)?, read))
    }

    /// The newest history entry of the key whose prefix is `prefix` at or below `height`,
    /// with its height: one reverse seek within the key's own entries (so that the prefix
    /// bloom filters apply).
    fn history_entry_at(
        &self,
        prefix: &[u8],
        height: u32,
    ) -> Result<Option<(u32, Vec<u8>)>, StorageError> {
        let mut seek = prefix.to_vec();
        seek.extend_from_slice(&height.to_be_bytes());
        let mut read = ReadOptions::default();
        read.set_prefix_same_as_start(true);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(Family::History)?, read);
        it.seek_for_prev(&seek);
        if !it.valid() {
            it.status().map_err(|e| backend("reading history", e))?;
            return Ok(None);
        }
        match (it.key(), it.value()) {
            (Some(found), Some(value))
                if found.len() == prefix.len() + 4 && found.starts_with(prefix) =>
            {
                let at = be_u32(&found[prefix.len()..])?;
                Ok(Some((at, value.to_vec())))
            }
            _ => Ok(None),
        }
    }

    /// The value of the key whose prefix is `prefix` as of `height`, from history.
    fn history_at(&self, prefix: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.history_entry_at(prefix, height)?.map(|(_, v)| v))
    }
}

impl RocksStore {
    fn block_entry(&self, height: u32) -> Result<Option<(BlockHash, StateRoot)>, StorageError> {
        match self
            .db
            .get_pinned_cf(self.cf(Family::Blocks)?, keys::height_key(height))
            .map_err(|e| backend("reading a block entry", e))?
        {
            Some(v) if v.len() == 64 => {
                Ok(BlockHash::from_slice(&v[..32]).zip(StateRoot::from_slice(&v[32..])))
            }
            Some(v) => Err(StorageError::Corrupt(format!(
                "block entry of {height} has {} bytes",
                v.len()
            ))),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn identity(n: u8) -> IndexIdentity {
        IndexIdentity {
            module_hash: [n; 32],
            max_memory_bytes: 4 << 30,
            max_wasm_stack_bytes: 1 << 20,
        }
    }

    pub(crate) fn commit(height: u32, writes: &[(&[u8], &[u8])]) -> BlockCommit {
        BlockCommit::new(
            height,
            BlockHash::from_bytes([height as u8; 32]),
            StateRoot::from_bytes([height as u8 ^ 0xff; 32]),
            writes
                .iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect(),
        )
    }

    /// Whatever `get_in_memory` answers is what `get_at` answers: from the memtables, from SST
    /// files once their blocks are cached, never a guess after a reopen left nothing cached.
    #[test]
    fn reads_from_memory_answer_what_reads_answer_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let check = |s: &RocksStore, height: u32| -> usize {
            let mut known = 0;
            for key in keys.iter().chain([b"absent".to_vec()].iter()) {
                if let Some(value) = s.get_in_memory(key, height).unwrap() {
                    assert_eq!(value, s.get_at(key, height).unwrap(), "{key:?} at {height}");
                    known += 1;
                }
            }
            known
        };
        {
            let s = RocksStore::open(dir.path(), None, &identity(1), false).unwrap();
            for height in 0..3u32 {
                let value = height.to_be_bytes();
                let writes: Vec<(&[u8], &[u8])> =
                    keys.iter().map(|k| (k.as_slice(), &value[..])).collect();
                s.commit_block(&commit(height, &writes)).unwrap();
            }
            // In the memtables: all known at the tip; below it, history is needed.
            assert_eq!(check(&s, 2), keys.len() + 1);
            assert_eq!(check(&s, 1), 0);
            s.flush().unwrap();
        }
        let s = RocksStore::open(dir.path(), None, &identity(1), false).unwrap();
        let cold = check(&s, 2);
        for key in &keys {
            s.get_at(key, 2).unwrap();
        }
        // Read once, their blocks are in the block cache.
        assert!(check(&s, 2) > cold.max(keys.len() / 2), "{cold}");
    }

    #[test]
    fn versioned_reads_rollback_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path(), None, &identity(1), false).unwrap();
        assert_eq!(s.tip().unwrap(), None);
        s.commit_block(&commit(10, &[(b"a", b"1"), (b"ab", b"2")]))
            .unwrap();
        s.commit_block(&commit(11, &[(b"a", b"3")])).unwrap();
        s.commit_block(&commit(12, &[(b"abc", b"4"), (b"a", b"")]))
            .unwrap();
        assert!(matches!(
            s.commit_block(&commit(14, &[])),
            Err(StorageError::NotNextHeight { .. })
        ));
        assert_eq!(s.get_at(b"a", 9).unwrap(), None);
        assert_eq!(s.get_at(b"a", 10).unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get_at(b"a", 11).unwrap(), Some(b"3".to_vec()));
        assert_eq!(s.get_at(b"a", 12).unwrap(), Some(vec![]));
        assert_eq!(s.get_at(b"ab", 12).unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.get_at(b"abc", 11).unwrap(), None);
        assert_eq!(s.get_at(b"", 12).unwrap(), None);
        assert_eq!(
            s.block_hash(11).unwrap(),
            Some(BlockHash::from_bytes([11; 32]))
        );
        assert_eq!(
            s.state_root(11).unwrap(),
            Some(StateRoot::from_bytes([11 ^ 0xff; 32]))
        );
        // Written as ("abc", "a"); a commit's writes, and so its touched keys, are sorted.
        assert_eq!(
            s.touched_keys(12).unwrap(),
            vec![b"a".to_vec(), b"abc".to_vec()]
        );
        assert_eq!(
            s.dump_at(11).unwrap(),
            vec![
                (b"a".to_vec(), b"3".to_vec()),
                (b"ab".to_vec(), b"2".to_vec())
            ]
        );

        s.rollback_to(10).unwrap();
        assert_eq!(s.tip().unwrap(), Some(10));
        assert_eq!(s.get_at(b"a", u32::MAX).unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get_at(b"abc", u32::MAX).unwrap(), None);
        assert_eq!(s.block_hash(11).unwrap(), None);
        s.commit_block(&commit(11, &[(b"z", b"9")])).unwrap();
        drop(s);

        let s = RocksStore::open(dir.path(), None, &identity(1), false).unwrap();
        assert_eq!(s.tip().unwrap(), Some(11));
        assert_eq!(s.first_height().unwrap(), Some(10));
        assert_eq!(s.get_at(b"z", 11).unwrap(), Some(b"9".to_vec()));
        s.rollback_to(3).unwrap();
        assert_eq!(
            s.tip().unwrap(),
            None,
            "rolling back below the first block empties"
        );
        assert!(s.dump_at(u32::MAX).unwrap().is_empty());
    }

    /// Commits `writes` at `height` with a root chained from the stored parent's, so that the
    /// store verifies.
    fn commit_chained(s: &RocksStore, height: u32, writes: &[(&[u8], &[u8])]) {
        let parent = match height.checked_sub(1).map(|p| s.state_root(p).unwrap()) {
            Some(Some(root)) => root,
            _ => metashrew_storage::state_root::GENESIS_PARENT_ROOT,
        };
        let writes = writes
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        s.commit_block(&BlockCommit::chained(
            height,
            BlockHash::from_bytes([height as u8; 32]),
            &parent,
            writes,
        ))
        .unwrap();
    }

    /// The latest-value family, decoded: (key, height, value) per entry, in order.
    fn latest_entries(s: &RocksStore) -> Vec<(Vec<u8>, u32, Vec<u8>)> {
        let mut it = s.db.raw_iterator_cf(s.cf(Family::Latest).unwrap());
        it.seek_to_first();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let (h, value) = keys::split_latest_value(v).unwrap();
            out.push((k[4..].to_vec(), h, value.to_vec()));
            it.next();
        }
        out
    }

    #[test]
    fn the_latest_family_follows_commits_and_rollbacks_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path(), None, &identity(1), false).unwrap();
        // One key with many versions, one written once, one emptied, one written above 20 only.
        for h in 0..40u32 {
            let mut writes: Vec<(&[u8], Vec<u8>)> = vec![(b"hot", h.to_be_bytes().to_vec())];
            if h == 3 {
                writes.push((b"once", b"3".to_vec()));
            }
            if h == 5 || h == 30 {
                writes.push((b"gone", if h == 5 { b"5".to_vec() } else { vec![] }));
            }
            if h > 20 {
                writes.push((b"late", vec![h as u8]));
            }
            let writes: Vec<(&[u8], &[u8])> = writes.iter().map(|(k, v)| (*k, &v[..])).collect();
            commit_chained(&s, h, &writes);
        }
        let at_tip = |s: &RocksStore| {
            [&b"hot"[..], b"once", b"gone", b"late", b"never"]
                .map(|k| (s.get_at(k, 39).unwrap(), s.get_at(k, 25).unwrap()))
        };
        assert_eq!(at_tip(&s)[0].0, Some(39u32.to_be_bytes().to_vec()));
        assert_eq!(at_tip(&s)[0].1, Some(25u32.to_be_bytes().to_vec()));
        assert_eq!(at_tip(&s)[2], (Some(vec![]), Some(b"5".to_vec())));
        assert_eq!(at_tip(&s)[4], (None, None));
        assert_eq!(
            latest_entries(&s),
            vec![
                (b"hot".to_vec(), 39, 39u32.to_be_bytes().to_vec()),
                (b"gone".to_vec(), 30, vec![]),
                (b"late".to_vec(), 39, vec![39]),
                (b"once".to_vec(), 3, b"3".to_vec()),
            ]
        );
        crate::verify::verify(&s, &[], 0).unwrap();

        s.rollback_to(25).unwrap();
        assert_eq!(
            latest_entries(&s),
            vec![
                (b"hot".to_vec(), 25, 25u32.to_be_bytes().to_vec()),
                (b"gone".to_vec(), 5, b"5".to_vec()),
                (b"late".to_vec(), 25, vec![25]),
                (b"once".to_vec(), 3, b"3".to_vec()),
            ]
        );
        assert_eq!(s.get_at(b"gone", 25).unwrap(), Some(b"5".to_vec()));
        crate::verify::verify(&s, &[], 0).unwrap();
        s.rollback_to(20).unwrap();
        assert!(latest_entries(&s).iter().all(|(k, _, _)| k != b"late"));
        assert_eq!(s.get_at(b"late", 20).unwrap(), None);
        crate::verify::verify(&s, &[], 0).unwrap();
        drop(s);
        let s = RocksStore::open(dir.path(), None, &identity(1), false).unwrap();
        assert_eq!(
            s.get_at(b"hot", 20).unwrap(),
            Some(20u32.to_be_bytes().to_vec())
        );
        s.rollback_to(0).unwrap();
        assert_eq!(latest_entries(&s), vec![(b"hot".to_vec(), 0, vec![0; 4])]);
        crate::verify::verify(&s, &[], 0).unwrap();
    }

    #[test]
    fn a_read_at_the_tip_never_sees_a_block_committed_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let s =
            std::sync::Arc::new(RocksStore::open(dir.path(), None, &identity(1), false).unwrap());
        s.commit_block(&commit(0, &[(b"k", b"0")])).unwrap();
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                for h in 1..400u32 {
                    s.commit_block(&commit(h, &[(b"k", &h.to_be_bytes())]))
                        .unwrap();
                }
            })
        };
        // Whatever the tip is when a read starts, a read at a height sees that height's value.
        while !writer.is_finished() {
            let tip = s.tip().unwrap().unwrap();
            let expected = if tip == 0 {
                b"0".to_vec()
            } else {
                tip.to_be_bytes().to_vec()
            };
            assert_eq!(s.get_at(b"k", tip).unwrap(), Some(expected));
        }
        writer.join().unwrap();
    }

    #[test]
    fn a_namespace_of_the_previous_layout_is_refused_until_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path(), None, &identity(1), false).unwrap();
        for h in 0..5u32 {
            commit_chained(
                &s,
                h,
                &[(b"a", &[h as u8]), (format!("k{h}").as_bytes(), b"v")],
            );
        }
        // What a version 1 namespace looked like: no layout version, no latest values.
        let meta = s.cf(Family::Meta).unwrap();
        s.db.delete_cf(meta, format::FORMAT).unwrap();
        s.db.delete_range_cf(
            s.cf(Family::Latest).unwrap(),
            [].as_slice(),
            [0xff; 8].as_slice(),
        )
        .unwrap();
        drop(s);
        for refused in [
            RocksStore::open(dir.path(), None, &identity(1), false).err(),
            RocksStore::open_read_only(dir.path(), None).err(),
            RocksStore::open_existing(dir.path(), None).err(),
        ] {
            match refused {
                Some(OpenError::Layout {
                    found: 1,
                    namespace,
                    ..
                }) => assert_eq!(namespace, "default"),
                other => panic!("expected a layout error, got {other:?}"),
            }
        }
        let message = RocksStore::open(dir.path(), None, &identity(1), false)
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("rockshrew migrate --db-path"), "{message}");
        assert_eq!(
            RocksStore::migrate(dir.path(), None).unwrap(),
            Migrated::Converted { keys: 6 }
        );
        assert_eq!(
            RocksStore::migrate(dir.path(), None).unwrap(),
            Migrated::AlreadyCurrent
        );
        let s = RocksStore::open(dir.path(), None, &identity(1), false).unwrap();
        crate::verify::verify(&s, &[], 0).unwrap();
        assert_eq!(s.get_at(b"a", 4).unwrap(), Some(vec![4]));
        // A newer layout than this build's is refused too, and not migrated.
        s.db.put_cf(
            s.cf(Family::Meta).unwrap(),
            format::FORMAT,
            9u32.to_be_bytes(),
        )
        .unwrap();
        drop(s);
        assert!(matches!(
            RocksStore::open(dir.path(), None, &identity(1), false),
            Err(OpenError::Layout { found: 9, .. })
        ));
        assert!(matches!(
            RocksStore::migrate(dir.path(), None),
            Err(OpenError::Layout { found: 9, .. })
        ));
    }

    #[test]
    fn ingest_modes_switch_at_run_time_and_change_no_answer() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path(), None, &identity(1), false).unwrap();
        // RocksDB writes the options it runs with to a new OPTIONS file on every change.
        let bulk_in_force = || {
            let text = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("OPTIONS-"))
                .max_by_key(|e| e.file_name())
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .unwrap();
            text.contains("level0_file_num_compaction_trigger=8")
        };
        assert!(!bulk_in_force());
        for (h, mode) in [IngestMode::Bulk, IngestMode::Tip, IngestMode::Bulk]
            .into_iter()
            .enumerate()
        {
            s.set_ingest_mode(mode).unwrap();
            assert_eq!(bulk_in_force(), mode == IngestMode::Bulk, "{mode:?}");
            commit_chained(&s, h as u32, &[(b"k", &[h as u8])]);
            assert_eq!(s.get_at(b"k", h as u32).unwrap(), Some(vec![h as u8]));
        }
        crate::verify::verify(&s, &[], 0).unwrap();
    }

    #[test]
    fn another_indexer_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        drop(RocksStore::open(dir.path(), None, &identity(1), false).unwrap());
        match RocksStore::open(dir.path(), None, &identity(2), false) {
            Err(OpenError::IdentityMismatch { namespace, .. }) => assert_eq!(namespace, "default"),
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("a different indexer opened the database"),
        }
        // Another label is another namespace: allowed, and independent.
        let other = RocksStore::open(dir.path(), Some("other"), &identity(2), false).unwrap();
        other.commit_block(&commit(0, &[(b"k", b"v")])).unwrap();
        drop(other);
        let mine = RocksStore::open(dir.path(), None, &identity(2), true).unwrap();
        assert_eq!(mine.get_at(b"k", 0).unwrap(), None);
        drop(mine);
        assert_eq!(RocksStore::namespaces(dir.path()), vec!["default", "other"]);
    }

    #[test]
    fn namespaces_opened_together_share_one_database_and_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (identity(1), identity(2));
        let open = |indexers: &[(Option<&str>, &IndexIdentity)]| {
            RocksStore::open_namespaces(dir.path(), indexers, false, &Tuning::default())
        };
        let stores = open(&[(Some("a"), &one), (None, &two)]).unwrap();
        assert_eq!(stores[0].namespace(), "a");
        assert_eq!(stores[1].namespace(), DEFAULT_NAMESPACE);
        // Each commits and rolls back on its own.
        for h in 0..3 {
            commit_chained(&stores[0], h, &[(b"k", &[h as u8])]);
        }
        commit_chained(&stores[1], 0, &[(b"k", b"other")]);
        stores[0].rollback_to(1).unwrap();
        assert_eq!(stores[0].get_at(b"k", 5).unwrap(), Some(vec![1]));
        assert_eq!(stores[1].get_at(b"k", 5).unwrap(), Some(b"other".to_vec()));
        assert_eq!(
            (stores[0].tip().unwrap(), stores[1].tip().unwrap()),
            (Some(1), Some(0))
        );
        for store in &stores {
            crate::verify::verify(store, &[], 0).unwrap();
        }
        drop(stores);
        // Each namespace keeps its identity; one label twice is refused.
        assert!(matches!(
            open(&[(Some("a"), &two)]),
            Err(OpenError::IdentityMismatch { .. })
        ));
        assert!(matches!(
            open(&[(Some("b"), &one), (Some("b"), &two)]),
            Err(OpenError::DuplicateNamespace(ns)) if ns == "b"
        ));
        // Opened alone, a namespace reads what it wrote together with the others.
        let alone = RocksStore::open(dir.path(), Some("a"), &one, false).unwrap();
        assert_eq!(alone.get_at(b"k", 1).unwrap(), Some(vec![1]));
        assert_eq!(RocksStore::namespaces(dir.path()), vec!["a", "default"]);
    }
}

//! The RocksDB store of rockshrew: implements [`Storage`] over versioned history.
//!
//! One namespace (the `--label`, or `default`) is four column families:
//!
//! | column family | key | value |
//! | --- | --- | --- |
//! | `<ns>/history` | `u32 BE len ++ key ++ u32 BE height` ([`keys`]) | the raw value |
//! | `<ns>/blocks` | `u32 BE height` | block hash (32, internal order) ++ state root (32) |
//! | `<ns>/touched` | `u32 BE height` | the keys the block wrote, with a check of each value ([`keys::encode_touched`]) |
//! | `<ns>/meta` | `tip`, `first`, `identity`, `committed_at` | u32 BE heights; the index identity; when the tip was committed |
//!
//! A block is one `WriteBatch` (history entries, touched list, hash and root, tip): it is in
//! the database whole or not at all, whatever happens to the process. A historical read is one
//! reverse seek. A rollback reads the touched lists of the blocks above the target and deletes
//! exactly their entries, in one batch. All tuning is in [`db_options`] and [`cf_options`].

#![deny(missing_docs)]

pub mod diff;
pub mod keys;
mod replica;
pub use replica::{Refresh, Replica};
pub mod snapshot;
pub mod verify;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use metashrew_storage::{BlockCommit, BlockHash, KeyValues, StateRoot, Storage, StorageError};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Options,
    ReadOptions, SliceTransform, WriteBatch, WriteOptions,
};

/// What an index is: the module and the settings that change its results. Two runs with
/// different identities must not share a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexIdentity {
    /// SHA-256 of the module's bytes.
    pub module_hash: [u8; 32],
    /// The guest's effective memory ceiling, in bytes.
    pub max_memory_bytes: u64,
    /// The guest's wasm stack limit, in bytes.
    pub max_wasm_stack_bytes: u64,
}

const IDENTITY_TAG: &[u8] = b"metashrew-index-v1";

impl IndexIdentity {
    fn encode(&self) -> Vec<u8> {
        let mut out = IDENTITY_TAG.to_vec();
        out.extend_from_slice(&self.module_hash);
        out.extend_from_slice(&self.max_memory_bytes.to_be_bytes());
        out.extend_from_slice(&self.max_wasm_stack_bytes.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(IDENTITY_TAG)?;
        if rest.len() != 48 {
            return None;
        }
        Some(Self {
            module_hash: rest[..32].try_into().ok()?,
            max_memory_bytes: u64::from_be_bytes(rest[32..40].try_into().ok()?),
            max_wasm_stack_bytes: u64::from_be_bytes(rest[40..48].try_into().ok()?),
        })
    }

    /// The identity as an operator reads it (in error messages and manifests).
    pub fn describe(&self) -> String {
        format!(
            "module sha256 {}, max memory {} bytes, max stack {} bytes",
            hex::encode(self.module_hash),
            self.max_memory_bytes,
            self.max_wasm_stack_bytes
        )
    }
}

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
        "the database namespace `{namespace}` was written by another indexer ({stored}); this run is {ours}. Use another --db-path or --label, or pass --allow-indexer-change if you really mean to continue it"
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
    #[error(transparent)]
    /// A store operation failed.
    Storage(#[from] StorageError),
}

const TIP: &[u8] = b"tip";
const FIRST: &[u8] = b"first";
const IDENTITY: &[u8] = b"identity";
/// When the tip was committed: u64 BE microseconds since the Unix epoch. Not part of the state
/// (no root covers it); replicas use it to measure how far behind they are.
const COMMITTED_AT: &[u8] = b"committed_at";
/// `tip` cache value meaning "nothing indexed".
const NO_TIP: u64 = u64::MAX;

/// RocksDB options for the whole database.
pub fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i32;
    o.increase_parallelism(cores);
    o.set_max_background_jobs(cores.max(2));
    o.set_bytes_per_sync(1 << 20);
    o.set_keep_log_file_num(5);
    o
}

/// Block-based table options: the shared LRU block cache, bloom filters, 16 KiB blocks.
fn table_options(cache: &Cache) -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_block_size(16 << 10);
    table
}

/// RocksDB options of one column family: [`table_options`], LZ4, 64 MiB write buffers.
pub fn cf_options(cache: &Cache) -> Options {
    let table = table_options(cache);
    let mut o = Options::default();
    o.set_block_based_table_factory(&table);
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_write_buffer_size(64 << 20);
    o.set_max_write_buffer_number(3);
    o
}

/// The options of a `history` column family: those of [`cf_options`], plus a prefix extractor
/// (a history key without its 4-byte height: every entry of one indexer key shares it) whose
/// bloom filters let a read skip every SST file that holds no entry of its key. Without them a
/// read seeks into every level, and reads slow down as the database grows.
pub fn history_cf_options(cache: &Cache) -> Options {
    let mut o = cf_options(cache);
    let mut table = table_options(cache);
    table.set_whole_key_filtering(false);
    o.set_block_based_table_factory(&table);
    o.set_prefix_extractor(SliceTransform::create(
        "metashrew.history-key",
        |key| &key[..key.len().saturating_sub(4)],
        Some(|key| key.len() >= 4),
    ));
    o.set_memtable_prefix_bloom_ratio(0.05);
    o
}

/// Size of the block cache shared by all column families.
pub const BLOCK_CACHE_BYTES: usize = 256 << 20;

/// RocksDB's figures, from its properties (byte counts RocksDB reports in GB with two
/// decimals are accurate to 10 MB).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineStats {
    /// Size of the live SST files.
    pub live_sst_bytes: u64,
    /// RocksDB's estimate of the bytes compaction still has to rewrite (compaction debt).
    pub pending_compaction_bytes: u64,
    /// Bytes in the memtables.
    pub memtable_bytes: u64,
    /// Since the database was opened: bytes written by the indexer (keys and values), to the
    /// WAL, by flushes, and by compactions.
    pub ingest_bytes: u64,
    /// Bytes written to the write-ahead log.
    pub wal_bytes: u64,
    /// Bytes written by memtable flushes.
    pub flush_bytes: u64,
    /// Bytes written by compactions.
    pub compaction_write_bytes: u64,
    /// Since the database was opened: time writes were stalled or slowed by RocksDB.
    pub stall_seconds: f64,
}

impl EngineStats {
    /// Bytes written to disk (WAL, flushes, compactions) per byte ingested.
    pub fn write_amplification(&self) -> f64 {
        let written = self.wal_bytes + self.flush_bytes + self.compaction_write_bytes;
        written as f64 / self.ingest_bytes.max(1) as f64
    }
}

/// The first "<number> GB" after `label` in a RocksDB statistics text, in bytes.
fn gigabytes_after(text: &str, label: &str) -> u64 {
    let Some(rest) = text.find(label).map(|i| &text[i + label.len()..]) else {
        return 0;
    };
    let line = rest.lines().next().unwrap_or_default();
    let Some(gb) = line.find(" GB") else { return 0 };
    let number = line[..gb].rsplit([' ', ':']).next().unwrap_or_default();
    number
        .parse::<f64>()
        .map_or(0, |g| (g * 1024.0 * 1024.0 * 1024.0) as u64)
}

/// "Cumulative stall: HH:MM:SS.mmm H:M:S" of RocksDB's database statistics, in seconds.
fn stall_seconds(text: &str) -> f64 {
    let label = "Cumulative stall: ";
    let Some(rest) = text.find(label).map(|i| &text[i + label.len()..]) else {
        return 0.0;
    };
    let clock = rest.split_whitespace().next().unwrap_or_default();
    clock
        .split(':')
        .map(|part| part.trim_end_matches(',').parse::<f64>().unwrap_or(0.0))
        .fold(0.0, |acc, v| acc * 60.0 + v)
}

/// See the module documentation.
pub struct RocksStore {
    db: DB,
    namespace: String,
    /// The tip as a u64 (`NO_TIP` when empty): read on every block and view without a disk read.
    tip: AtomicU64,
    first: AtomicU64,
    /// Serialises commits and rollbacks (readers never take it).
    writer: Mutex<()>,
    write_options: WriteOptions,
    /// A secondary instance's own directory.
    secondary_dir: Option<std::path::PathBuf>,
}

/// The descriptors of the column families `names`, with their options and one block cache.
fn descriptors(names: &[String]) -> impl Iterator<Item = ColumnFamilyDescriptor> + '_ {
    let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    names.iter().map(move |n| {
        let options = if n.ends_with("/history") {
            history_cf_options(&cache)
        } else {
            cf_options(&cache)
        };
        ColumnFamilyDescriptor::new(n, options)
    })
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
    let namespace = label.unwrap_or("default").to_string();
    let names = DB::list_cf(&db_options(), path).map_err(|source| rocks_error(path, source))?;
    if !names.contains(&format!("{namespace}/meta")) {
        return Err(OpenError::Storage(StorageError::Corrupt(format!(
            "{} has no index namespace `{namespace}` (it has: {})",
            path.display(),
            RocksStore::namespaces(path).join(", ")
        ))));
    }
    Ok((namespace, names))
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
        let namespace = label.unwrap_or("default").to_string();
        let opts = db_options();
        let mut names: Vec<String> = DB::list_cf(&opts, path).unwrap_or_default();
        for cf in ["history", "blocks", "touched", "meta"] {
            let name = format!("{namespace}/{cf}");
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let db = DB::open_cf_descriptors(&opts, path, descriptors(&names))
            .map_err(|source| rocks_error(path, source))?;
        let store = Self::from_db(db, namespace)?;
        store.check_identity(identity, allow_change)?;
        Ok(store)
    }

    /// Opens an existing database and namespace for writing, without an identity check: for
    /// tools that act on a database no daemon holds (`rockshrew snapshot`).
    pub fn open_existing(path: &Path, label: Option<&str>) -> Result<Self, OpenError> {
        let (namespace, names) = existing_namespace(path, label)?;
        let db = DB::open_cf_descriptors(&db_options(), path, descriptors(&names))
            .map_err(|source| rocks_error(path, source))?;
        Ok(Self::from_db(db, namespace)?)
    }

    /// Opens an existing database read-only, for inspection (`rockshrew-diff`, `verify`): no
    /// identity check, no writes; it may be open in a running daemon at the same time (it then
    /// sees what the daemon had written when it opened).
    pub fn open_read_only(path: &Path, label: Option<&str>) -> Result<Self, OpenError> {
        let (namespace, names) = existing_namespace(path, label)?;
        let db = DB::open_cf_for_read_only(&db_options(), path, &names, false)
            .map_err(|source| rocks_error(path, source))?;
        Ok(Self::from_db(db, namespace)?)
    }

    /// The store over an open database: loads the cached tip and first height.
    fn from_db(db: DB, namespace: String) -> Result<Self, StorageError> {
        let mut write_options = WriteOptions::default();
        // The WAL is written on every commit but not fsynced: a killed process loses nothing
        // (the kernel has the data); a power failure can lose the last blocks, which are then
        // indexed again.
        write_options.set_sync(false);
        let store = Self {
            db,
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

    /// Namespaces (labels) present in the database at `path`.
    pub fn namespaces(path: &Path) -> Vec<String> {
        let mut out: Vec<String> = DB::list_cf(&db_options(), path)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| n.strip_suffix("/meta").map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// The namespace's name (the label, or `default`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn cf(&self, name: &str) -> Result<&ColumnFamily, StorageError> {
        self.db
            .cf_handle(&format!("{}/{name}", self.namespace))
            .ok_or_else(|| StorageError::Corrupt(format!("column family {name} is missing")))
    }

    /// The namespace's history, blocks, touched and meta column families.
    #[allow(clippy::type_complexity)]
    fn column_families(
        &self,
    ) -> Result<(&ColumnFamily, &ColumnFamily, &ColumnFamily, &ColumnFamily), StorageError> {
        Ok((
            self.cf("history")?,
            self.cf("blocks")?,
            self.cf("touched")?,
            self.cf("meta")?,
        ))
    }

    fn meta_u32(&self, key: &[u8]) -> Result<Option<u32>, StorageError> {
        match self
            .db
            .get_pinned_cf(self.cf("meta")?, key)
            .map_err(|e| backend("reading metadata", e))?
        {
            Some(v) => Ok(Some(be_u32(&v)?)),
            None => Ok(None),
        }
    }

    fn check_identity(&self, ours: &IndexIdentity, allow_change: bool) -> Result<(), OpenError> {
        let meta = self.cf("meta")?;
        let stored = self
            .db
            .get_cf(meta, IDENTITY)
            .map_err(|e| backend("reading the index identity", e))?;
        match stored {
            Some(bytes) if bytes == ours.encode() => Ok(()),
            Some(bytes) if !allow_change => Err(OpenError::IdentityMismatch {
                namespace: self.namespace.clone(),
                stored: IndexIdentity::decode(&bytes)
                    .map_or_else(|| "an unreadable identity".into(), |i| i.describe()),
                ours: ours.describe(),
            }),
            _ => {
                self.db
                    .put_cf(meta, IDENTITY, ours.encode())
                    .map_err(|e| backend("writing the index identity", e))?;
                Ok(())
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
        let mut read = ReadOptions::default();
        read.set_total_order_seek(true);
        let mut it = self.db.raw_iterator_cf_opt(self.cf("history")?, read);
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

    /// RocksDB's own figures for this namespace (summed over its column families) and for the
    /// database: what an operator watches as the database grows.
    pub fn engine_stats(&self) -> EngineStats {
        let mut stats = EngineStats::default();
        for name in ["history", "blocks", "touched", "meta"] {
            let Ok(cf) = self.cf(name) else { continue };
            let int = |property: &str| {
                self.db
                    .property_int_value_cf(cf, property)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            };
            stats.live_sst_bytes += int("rocksdb.live-sst-files-size");
            stats.pending_compaction_bytes += int("rocksdb.estimate-pending-compaction-bytes");
            stats.memtable_bytes += int("rocksdb.cur-size-all-mem-tables");
            if let Ok(Some(text)) = self.db.property_value_cf(cf, "rocksdb.cfstats") {
                stats.flush_bytes += gigabytes_after(&text, "Flush(GB): cumulative ");
                stats.compaction_write_bytes += gigabytes_after(&text, "Cumulative compaction: ");
            }
        }
        if let Ok(Some(text)) = self.db.property_value("rocksdb.dbstats") {
            stats.ingest_bytes = gigabytes_after(&text, "Cumulative writes:");
            stats.wal_bytes = gigabytes_after(&text, "Cumulative WAL:");
            stats.stall_seconds = stall_seconds(&text);
        }
        stats
    }

    /// Syncs the WAL, then writes the namespace's memtables to SST files, so that the next
    /// open has no WAL to replay (seconds on a large database). For a clean shutdown.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db
            .flush_wal(true)
            .map_err(|e| backend("flushing the WAL", e))?;
        for name in ["history", "blocks", "touched", "meta"] {
            self.db
                .flush_cf(self.cf(name)?)
                .map_err(|e| backend("flushing memtables", e))?;
        }
        Ok(())
    }
}

impl Storage for RocksStore {
    fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        let prefix = keys::history_prefix(key);
        let mut seek = prefix.clone();
        seek.extend_from_slice(&height.to_be_bytes());
        // Within the key's own entries, so that the prefix filters apply.
        let mut read = ReadOptions::default();
        read.set_prefix_same_as_start(true);
        let mut it = self.db.raw_iterator_cf_opt(self.cf("history")?, read);
        it.seek_for_prev(&seek);
        if !it.valid() {
            it.status().map_err(|e| backend("reading history", e))?;
            return Ok(None);
        }
        match (it.key(), it.value()) {
            (Some(found), Some(value))
                if found.len() == prefix.len() + 4 && found.starts_with(&prefix) =>
            {
                Ok(Some(value.to_vec()))
            }
            _ => Ok(None),
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
        let (history, blocks, touched, meta) = self.column_families()?;
        let mut batch = WriteBatch::default();
        for (k, v) in commit.writes() {
            batch.put_cf(history, keys::history_key(k, commit.height()), v);
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
        let mut hash_root = commit.block_hash().to_vec();
        hash_root.extend_from_slice(commit.state_root());
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
            .get_pinned_cf(self.cf("touched")?, keys::height_key(height))
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
        let (history, blocks, touched, meta) = self.column_families()?;
        let mut batch = WriteBatch::default();
        let lowest_removed = if height < first { first } else { height + 1 };
        for h in lowest_removed..=tip {
            for key in self.touched_keys(h)? {
                batch.delete_cf(history, keys::history_key(&key, h));
            }
            batch.delete_cf(touched, keys::height_key(h));
            batch.delete_cf(blocks, keys::height_key(h));
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
    fn block_entry(&self, height: u32) -> Result<Option<(BlockHash, StateRoot)>, StorageError> {
        match self
            .db
            .get_pinned_cf(self.cf("blocks")?, keys::height_key(height))
            .map_err(|e| backend("reading a block entry", e))?
        {
            Some(v) if v.len() == 64 => {
                let mut hash = [0u8; 32];
                let mut root = [0u8; 32];
                hash.copy_from_slice(&v[..32]);
                root.copy_from_slice(&v[32..]);
                Ok(Some((hash, root)))
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
            [height as u8; 32],
            [height as u8 ^ 0xff; 32],
            writes
                .iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect(),
        )
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
        assert_eq!(s.block_hash(11).unwrap(), Some([11; 32]));
        assert_eq!(s.state_root(11).unwrap(), Some([11 ^ 0xff; 32]));
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
}

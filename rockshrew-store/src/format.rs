//! The on-disk layout version of a namespace, recorded in its metadata and checked at open.
//!
//! | version | layout |
//! | --- | --- |
//! | 1 (no `format` entry) | history, blocks, touched, meta: every read a reverse seek in history |
//! | 2 | adds the latest-value family ([`crate::Family::Latest`]), written in each block's batch |
//!
//! A namespace of another version is refused at open, never read half-converted. A version 1
//! namespace is converted in place by [`RocksStore::migrate`] (`rockshrew migrate`), which
//! records the version only once the latest-value family is whole; a crash during it leaves a
//! namespace that is still refused, and running it again starts over.

use std::path::Path;

use metashrew_storage::StorageError;
use rocksdb::{DB, WriteBatch};

use crate::families::Family;
use crate::{IDENTITY, OpenError, RocksStore, TIP, backend, keys};

/// The layout version this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;

/// The metadata key of the layout version (u32 BE).
pub(crate) const FORMAT: &[u8] = b"format";

/// Latest-value entries per write batch during a migration.
const MIGRATE_BATCH_ENTRIES: usize = 50_000;

/// What [`RocksStore::migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrated {
    /// The namespace already had this layout: nothing was done.
    AlreadyCurrent,
    /// The latest-value family was built from history: this many keys.
    Converted {
        /// Keys written to the latest-value family.
        keys: u64,
    },
}

impl RocksStore {
    /// The namespace's layout version: `None` for a namespace that holds nothing yet.
    fn stored_format(&self) -> Result<Option<u32>, StorageError> {
        if let Some(version) = self.meta_u32(FORMAT)? {
            return Ok(Some(version));
        }
        let meta = self.cf(Family::Meta)?;
        let written = [IDENTITY, TIP].into_iter().try_fold(false, |any, key| {
            let found = self
                .db
                .get_pinned_cf(meta, key)
                .map_err(|e| backend("reading metadata", e))?;
            Ok::<_, StorageError>(any || found.is_some())
        })?;
        Ok(written.then_some(1))
    }

    /// Refuses a namespace of another layout version; records the version in a new one when
    /// `create` (a store opened for indexing).
    pub(crate) fn check_format(&self, path: &Path, create: bool) -> Result<(), OpenError> {
        match self.stored_format()? {
            Some(FORMAT_VERSION) => Ok(()),
            Some(found) => Err(OpenError::Layout {
                path: path.display().to_string(),
                namespace: self.namespace.clone(),
                found,
            }),
            None if create => Ok(self.write_format()?),
            None => Ok(()),
        }
    }

    fn write_format(&self) -> Result<(), StorageError> {
        self.db
            .put_cf(self.cf(Family::Meta)?, FORMAT, FORMAT_VERSION.to_be_bytes())
            .map_err(|e| backend("writing the layout version", e))
    }

    /// Converts the namespace `label` of the database at `path` (no daemon may hold it) to this
    /// layout: builds the latest-value family from history, then records the version.
    pub fn migrate(path: &Path, label: Option<&str>) -> Result<Migrated, OpenError> {
        let (namespace, mut names) = crate::existing_namespace(path, label)?;
        let latest_name = Family::Latest.name_in(&namespace);
        if !names.contains(&latest_name) {
            names.push(latest_name);
        }
        let tuning = crate::Tuning::default();
        let options = crate::tuning::db_options(&tuning);
        let db = DB::open_cf_descriptors(&options, path, crate::descriptors(&names, &tuning))
            .map_err(|source| crate::rocks_error(path, source))?;
        let store = Self::from_db(std::sync::Arc::new(db), namespace, tuning)?;
        match store.stored_format()? {
            Some(FORMAT_VERSION) => return Ok(Migrated::AlreadyCurrent),
            Some(1) | None => {}
            Some(found) => {
                return Err(OpenError::Layout {
                    path: path.display().to_string(),
                    namespace: store.namespace.clone(),
                    found,
                });
            }
        }
        let keys = store.rebuild_latest()?;
        store.write_format()?;
        store.flush()?;
        Ok(Migrated::Converted { keys })
    }

    /// Empties the latest-value family and writes the newest history entry of every key to it.
    fn rebuild_latest(&self) -> Result<u64, StorageError> {
        let latest = self.cf(Family::Latest)?;
        self.db
            .delete_range_cf(latest, [].as_slice(), [0xff; 8].as_slice())
            .map_err(|e| backend("clearing the latest-value family", e))?;
        let mut batch = WriteBatch::default();
        let mut written = 0u64;
        let mut newest: Option<(Vec<u8>, Vec<u8>)> = None;
        let mut put = |batch: &mut WriteBatch, entry: Option<(Vec<u8>, Vec<u8>)>| {
            if let Some((prefix, value)) = entry {
                batch.put_cf(latest, prefix, value);
                written += 1;
            }
        };
        let mut it = self.history_scan()?;
        it.seek_to_first();
        while let (Some(entry), Some(value)) = (it.key(), it.value()) {
            let (_, height) = keys::split_history_key(entry)
                .ok_or_else(|| StorageError::Corrupt("malformed history key".into()))?;
            let prefix = &entry[..entry.len() - 4];
            if newest.as_ref().is_some_and(|(p, _)| p.as_slice() != prefix) {
                put(&mut batch, newest.take());
            }
            newest = Some((prefix.to_vec(), keys::latest_value(height, value)));
            if batch.len() >= MIGRATE_BATCH_ENTRIES {
                self.db
                    .write(std::mem::take(&mut batch))
                    .map_err(|e| backend("writing the latest-value family", e))?;
            }
            it.next();
        }
        it.status().map_err(|e| backend("scanning history", e))?;
        put(&mut batch, newest.take());
        self.db
            .write(batch)
            .map_err(|e| backend("writing the latest-value family", e))?;
        Ok(written)
    }
}

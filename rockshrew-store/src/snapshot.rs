//! Snapshots: a RocksDB checkpoint of a database, at a whole block, with a manifest.
//!
//! A checkpoint holds the database as of one moment: SST files hard-linked (copied when `out`
//! is on another filesystem) and the live WAL copied. Every block is one write batch, so the
//! checkpoint holds whole blocks only. The manifest ([`MANIFEST_FILE`] in the snapshot) is read
//! back from the checkpoint itself, so it states exactly what the snapshot holds. A copy of the
//! directory is a database: `--db-path COPY` resumes indexing from its tip, and the index
//! identity is checked as for any database.

use std::path::{Path, PathBuf};

use metashrew_storage::{Storage, StorageError};
use rocksdb::checkpoint::Checkpoint;
use serde::{Deserialize, Serialize};

use crate::{IDENTITY, IndexIdentity, OpenError, RocksStore, backend};

/// The manifest's file name in a snapshot directory.
pub const MANIFEST_FILE: &str = "rockshrew-snapshot.json";

/// The manifest's format tag.
pub const MANIFEST_FORMAT: &str = "rockshrew-snapshot-v1";

/// What a snapshot holds, for the namespace it was taken for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The namespace (the `--label`, or `default`).
    pub label: String,
    /// The tip: the last whole block in the snapshot.
    pub height: u32,
    /// The tip's block hash, as Bitcoin Core prints it.
    pub block_hash: String,
    /// The state root after the tip, hex.
    pub state_root: String,
    /// SHA-256 of the indexer module that wrote it, hex.
    pub module_hash: String,
    /// The guest memory ceiling it was indexed under, in bytes.
    pub max_memory_bytes: u64,
    /// The guest wasm stack limit it was indexed under, in bytes.
    pub max_wasm_stack_bytes: u64,
    /// When it was taken, in seconds since the Unix epoch.
    pub created_unix: u64,
}

/// Why a snapshot could not be taken or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The output directory exists; a snapshot goes into a new one.
    #[error("{} already exists: a snapshot goes into a new directory", .0.display())]
    Exists(PathBuf),
    /// Nothing is indexed in the namespace, so there is no block to snapshot.
    #[error("namespace `{0}` has no indexed block yet")]
    Empty(String),
    /// The namespace has no index identity (it was never opened by a daemon).
    #[error("namespace `{0}` has no index identity")]
    NoIdentity(String),
    /// The database or the checkpoint could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A read or the checkpoint failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The manifest could not be written or read.
    #[error("manifest {}: {reason}", .path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl RocksStore {
    /// Creates a checkpoint of the whole database (every namespace) in `out`, which must not
    /// exist.
    pub fn checkpoint(&self, out: &Path) -> Result<(), StorageError> {
        let checkpoint =
            Checkpoint::new(&self.db).map_err(|e| backend("preparing a checkpoint", e))?;
        checkpoint
            .create_checkpoint(out)
            .map_err(|e| backend("creating a checkpoint", e))
    }

    /// The index identity stored in this namespace, if any.
    pub fn identity(&self) -> Result<Option<IndexIdentity>, StorageError> {
        let stored = self
            .db
            .get_pinned_cf(self.cf(crate::Family::Meta)?, IDENTITY)
            .map_err(|e| backend("reading the index identity", e))?;
        match stored {
            Some(bytes) => IndexIdentity::decode(&bytes)
                .map(Some)
                .ok_or_else(|| StorageError::Corrupt("unreadable index identity".into())),
            None => Ok(None),
        }
    }

    /// The manifest of this store's namespace as it stands now.
    pub fn manifest(&self) -> Result<Manifest, SnapshotError> {
        let label = self.namespace().to_string();
        let height = self
            .tip()?
            .ok_or_else(|| SnapshotError::Empty(label.clone()))?;
        let (hash, root) = match (self.block_hash(height)?, self.state_root(height)?) {
            (Some(hash), Some(root)) => (hash, root),
            _ => {
                return Err(
                    StorageError::Corrupt(format!("the tip {height} has no block entry")).into(),
                );
            }
        };
        let identity = self
            .identity()?
            .ok_or_else(|| SnapshotError::NoIdentity(label.clone()))?;
        Ok(Manifest {
            format: MANIFEST_FORMAT.to_string(),
            label,
            height,
            block_hash: hash.to_string(),
            state_root: root.to_string(),
            module_hash: hex::encode(identity.module_hash),
            max_memory_bytes: identity.max_memory_bytes,
            max_wasm_stack_bytes: identity.max_wasm_stack_bytes,
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        })
    }
}

/// Takes a snapshot of `store`'s database into `out` (which must not exist) and writes the
/// manifest of `store`'s namespace, read from the checkpoint. `store` may be indexing meanwhile.
pub fn take(store: &RocksStore, out: &Path) -> Result<Manifest, SnapshotError> {
    if out.exists() {
        return Err(SnapshotError::Exists(out.to_path_buf()));
    }
    store.checkpoint(out)?;
    let manifest = RocksStore::open_read_only(out, Some(store.namespace()))?.manifest()?;
    let path = out.join(MANIFEST_FILE);
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| SnapshotError::Manifest {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_durably(out, &path, (text + "\n").as_bytes()).map_err(|e| SnapshotError::Manifest {
        path,
        reason: e.to_string(),
    })?;
    Ok(manifest)
}

/// Writes the manifest last and makes it durable (the file, then its directory): a snapshot
/// is whole exactly when its manifest exists, also after a power cut.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

/// The manifest of the snapshot in `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, SnapshotError> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| SnapshotError::Manifest {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| SnapshotError::Manifest {
        path,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use metashrew_storage::Storage;

    use super::*;
    use crate::tests::{commit, identity};

    #[test]
    fn a_snapshot_holds_whole_blocks_states_them_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let store = RocksStore::open(&db, None, &identity(1), false).unwrap();
        for h in 0..4u32 {
            store
                .commit_block(&commit(h, &[(b"k", &[h as u8])]))
                .unwrap();
        }
        let out = dir.path().join("snap");
        let manifest = take(&store, &out).unwrap();
        assert_eq!(manifest.height, 3);
        assert_eq!(
            manifest.state_root,
            store.state_root(3).unwrap().unwrap().to_string()
        );
        assert_eq!(manifest.module_hash, hex::encode([1u8; 32]));
        assert_eq!(read_manifest(&out).unwrap(), manifest);
        assert!(matches!(take(&store, &out), Err(SnapshotError::Exists(_))));
        // The original goes on; the copy resumes from its own tip, under the same identity.
        store.commit_block(&commit(4, &[(b"k", b"4")])).unwrap();
        let copy = RocksStore::open(&out, None, &identity(1), false).unwrap();
        assert_eq!(copy.tip().unwrap(), Some(3));
        assert_eq!(copy.dump_at(3).unwrap(), store.dump_at(3).unwrap());
        copy.commit_block(&commit(4, &[(b"k", b"4")])).unwrap();
        assert_eq!(copy.dump_at(4).unwrap(), store.dump_at(4).unwrap());
        drop(copy);
        assert!(matches!(
            RocksStore::open(&out, None, &identity(2), false),
            Err(OpenError::IdentityMismatch { .. })
        ));
    }
}

//! The durable image, in the backing directory: what survives a power cut.
//!
//! - `files/<ino>`: the data of each file as of its last sync;
//! - `namespace.json`: every directory's entries as of its last sync, each inode's kind, and
//!   the next inode number; replaced whole at each directory sync (written aside, synced,
//!   renamed over, the directory synced).
//!
//! Both are written through the real file system with `fsync`, so the image survives a real
//! crash of the machine running the tests too.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Kind, ROOT};

/// Every directory's durable entries and every durable inode's kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DurableNamespace {
    /// The next inode number to give.
    pub next_ino: u64,
    /// The kind of every inode a durable entry names (and the root).
    pub kinds: BTreeMap<u64, Kind>,
    /// Each directory's durable entries.
    pub dirs: BTreeMap<u64, BTreeMap<String, u64>>,
}

impl Default for DurableNamespace {
    fn default() -> Self {
        Self {
            next_ino: ROOT + 1,
            kinds: BTreeMap::from([(ROOT, Kind::Dir)]),
            dirs: BTreeMap::from([(ROOT, BTreeMap::new())]),
        }
    }
}

/// The backing directory.
pub struct Durable {
    dir: PathBuf,
}

const NAMESPACE: &str = "namespace.json";
const FILES: &str = "files";

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Durable {
    /// The image in `dir`, created empty when missing.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join(FILES))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The backing directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(dir: &Path, ino: u64) -> PathBuf {
        dir.join(FILES).join(ino.to_string())
    }

    /// The durable namespace (an empty root when nothing was ever synced).
    pub fn namespace(&self) -> std::io::Result<DurableNamespace> {
        match std::fs::read(self.dir.join(NAMESPACE)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DurableNamespace::default()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the durable namespace.
    pub fn write_namespace(&self, namespace: &DurableNamespace) -> std::io::Result<()> {
        let aside = self.dir.join("namespace.json.new");
        let mut file = File::create(&aside)?;
        file.write_all(&serde_json::to_vec(namespace).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&aside, self.dir.join(NAMESPACE))?;
        sync_dir(&self.dir)
    }

    /// The durable length of a file (0 when it was never synced).
    pub fn len(&self, ino: u64) -> std::io::Result<u64> {
        match std::fs::metadata(Self::file(&self.dir, ino)) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The durable data of a file (empty when it was never synced).
    pub fn read(&self, ino: u64) -> std::io::Result<Vec<u8>> {
        match std::fs::read(Self::file(&self.dir, ino)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            other => other,
        }
    }

    /// Makes `content` a file's durable data, writing from `from` on (what is before it is
    /// durable already).
    pub fn write_file(dir: &Path, ino: u64, content: &[u8], from: u64) -> std::io::Result<()> {
        let path = Self::file(dir, ino);
        let existed = path.exists();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.set_len(content.len() as u64)?;
        let from = (from as usize).min(content.len());
        file.write_all_at(&content[from..], from as u64)?;
        file.sync_data()?;
        if !existed {
            sync_dir(&dir.join(FILES))?;
        }
        Ok(())
    }

    /// Deletes the data of every file but `kept` (files no durable entry names any more).
    pub fn forget_all_but(&self, kept: impl Iterator<Item = u64>) -> std::io::Result<()> {
        let kept: std::collections::HashSet<String> = kept.map(|i| i.to_string()).collect();
        for entry in std::fs::read_dir(self.dir.join(FILES))? {
            let entry = entry?;
            if !kept.contains(entry.file_name().to_string_lossy().as_ref()) {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}

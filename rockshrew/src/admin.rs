//! The admin socket: how `rockshrew snapshot` and `rockshrew rollback` reach the daemon that
//! holds a database.
//!
//! RocksDB lets one process write a database, and a checkpoint or a rollback needs that process.
//! The daemon listens on a Unix socket in its database directory ([`socket_path`]), so only
//! users who can reach that directory can ask. One request per connection, one JSON line each
//! way:
//! - `{"snapshot": OUT, "label": LABEL}` -> `{"manifest": {..}}` or `{"error": ".."}`; `OUT`
//!   must be an absolute path that does not exist yet, or an empty directory;
//! - `{"rollback": HEIGHT, "label": LABEL}` -> `{"rolledback": OLD_TIP}` or `{"error": ".."}`,
//!   once the indexer has rolled back at its next block boundary ([`crate::rewind`]).
//!
//! A request is at most 16 KiB and must arrive within 5 s.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rockshrew_store::RocksStore;
use rockshrew_store::snapshot::{self, Manifest};

use crate::rewind::Rewinds;
use serde::{Deserialize, Serialize};

/// The socket of the daemon that holds the database at `db_path`.
pub fn socket_path(db_path: &Path) -> PathBuf {
    db_path.join("rockshrew-admin.sock")
}

#[derive(Serialize, Deserialize)]
struct Request {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rollback: Option<u32>,
    label: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Reply {
    Manifest(Manifest),
    RolledBack(u32),
    Error(String),
}

/// The listening socket; removed when dropped.
pub struct AdminSocket {
    path: PathBuf,
}

impl AdminSocket {
    /// Listens on [`socket_path`] on a thread of its own, answering for `indexers` (one per
    /// indexer of the daemon, the request's label choosing one). Without a socket (a path too
    /// long for one, a read-only directory) the daemon runs on, and live snapshots and
    /// rollbacks of its database are not possible: that is logged.
    pub fn start(db_path: &Path, indexers: Vec<Arc<Rewinds>>) -> Option<Self> {
        let path = socket_path(db_path);
        // A socket left by a daemon that died: this process holds the database lock, so no
        // other daemon is listening on it.
        let _ = std::fs::remove_file(&path);
        let listener = match UnixListener::bind(&path) {
            Ok(listener) => listener,
            Err(err) => {
                log::warn!(
                    "no admin socket at {} ({err}): `rockshrew snapshot` and `rollback` cannot reach this daemon",
                    path.display()
                );
                return None;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    if let Err(err) = answer(stream, &indexers) {
                        log::warn!("admin request: {err:#}");
                    }
                }
            });
        if let Err(err) = spawned {
            log::warn!("cannot start the admin socket's thread: {err}");
            return None;
        }
        Some(Self { path })
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The largest request accepted, in bytes.
const MAX_REQUEST_BYTES: u64 = 16 << 10;
/// Time a client has to send its request.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a snapshot may be written: an absolute path that does not exist yet, or an empty
/// directory (removed first: a checkpoint makes its own); never over anything else.
fn check_destination(out: &Path) -> std::result::Result<(), String> {
    if !out.is_absolute() {
        return Err(format!("{} is not an absolute path", out.display()));
    }
    match std::fs::read_dir(out).map(|mut entries| entries.next().is_none()) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Ok(true) => std::fs::remove_dir(out)
            .map_err(|e| format!("cannot use the empty directory {}: {e}", out.display())),
        Ok(false) => Err(format!(
            "{} is a directory that is not empty",
            out.display()
        )),
        Err(_) => Err(format!("{} exists and is not a directory", out.display())),
    }
}

fn answer(stream: UnixStream, indexers: &[Arc<Rewinds>]) -> Result<()> {
    use std::io::Read;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST_BYTES)).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let wanted = rockshrew_store::namespace_of(request.label.as_deref());
            match indexers.iter().find(|i| i.store.namespace() == wanted) {
                Some(indexer) => carry_out(indexer, &request),
                None => Reply::Error(format!(
                    "this daemon serves the index {}, not `{wanted}`",
                    indexers
                        .iter()
                        .map(|i| format!("`{}`", i.store.namespace()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        Err(err) => Reply::Error(format!("malformed request: {err}")),
    };
    let mut text = serde_json::to_string(&reply)?;
    text.push('\n');
    (&stream).write_all(text.as_bytes())?;
    Ok(())
}

fn carry_out(indexer: &Rewinds, request: &Request) -> Reply {
    match (&request.snapshot, request.rollback) {
        (Some(out), None) => match check_destination(out) {
            Ok(()) => take_snapshot(&indexer.store, out),
            Err(err) => Reply::Error(err),
        },
        (None, Some(height)) => {
            log::info!(
                "rollback of `{}` to {height} requested",
                indexer.store.namespace()
            );
            match indexer.ask(height) {
                Ok(old_tip) => Reply::RolledBack(old_tip),
                Err(err) => Reply::Error(err),
            }
        }
        _ => Reply::Error("malformed request: give either `snapshot` or `rollback`".into()),
    }
}

fn take_snapshot(store: &RocksStore, out: &Path) -> Reply {
    log::info!(
        "snapshot of `{}` requested into {}",
        store.namespace(),
        out.display()
    );
    match snapshot::take(store, out) {
        Ok(manifest) => {
            log::info!("snapshot at block {} in {}", manifest.height, out.display());
            Reply::Manifest(manifest)
        }
        Err(err) => Reply::Error(err.to_string()),
    }
}

/// Asks the daemon holding `db_path` for a snapshot into `out`. `Ok(None)`: no daemon listens
/// there.
pub fn request_snapshot(
    db_path: &Path,
    out: &Path,
    label: Option<&str>,
) -> Result<Option<Manifest>> {
    let request = Request {
        snapshot: Some(std::path::absolute(out).context("resolving --out")?),
        rollback: None,
        label: label.map(str::to_string),
    };
    match ask(db_path, &request)? {
        None => Ok(None),
        Some(Reply::Manifest(manifest)) => Ok(Some(manifest)),
        Some(Reply::Error(err)) => anyhow::bail!("the daemon could not take the snapshot: {err}"),
        Some(Reply::RolledBack(_)) => anyhow::bail!("the daemon answered something else"),
    }
}

/// Asks the daemon holding `db_path` to roll its index back to `height`; returns the old tip.
/// `Ok(None)`: no daemon listens there.
pub fn request_rollback(db_path: &Path, height: u32, label: Option<&str>) -> Result<Option<u32>> {
    let request = Request {
        snapshot: None,
        rollback: Some(height),
        label: label.map(str::to_string),
    };
    match ask(db_path, &request)? {
        None => Ok(None),
        Some(Reply::RolledBack(old_tip)) => Ok(Some(old_tip)),
        Some(Reply::Error(err)) => anyhow::bail!("the daemon did not roll back: {err}"),
        Some(Reply::Manifest(_)) => anyhow::bail!("the daemon answered something else"),
    }
}

/// Sends one request to the daemon holding `db_path`; `Ok(None)` when none listens there.
fn ask(db_path: &Path, request: &Request) -> Result<Option<Reply>> {
    let Ok(stream) = UnixStream::connect(socket_path(db_path)) else {
        return Ok(None);
    };
    let mut text = serde_json::to_string(request)?;
    text.push('\n');
    (&stream).write_all(text.as_bytes())?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .context("reading the daemon's answer")?;
    Ok(Some(
        serde_json::from_str(&line).context("the daemon's answer")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_go_only_to_new_or_empty_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_destination(&dir.path().join("new")).is_ok());
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(check_destination(&empty).is_ok());
        assert!(!empty.exists(), "made room for the checkpoint");
        let full = dir.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("keep"), b"x").unwrap();
        assert!(check_destination(&full).unwrap_err().contains("not empty"));
        assert!(full.join("keep").exists());
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(
            check_destination(&file)
                .unwrap_err()
                .contains("not a directory")
        );
        assert!(check_destination(Path::new("relative")).is_err());
    }

    #[test]
    fn an_endless_request_is_cut_at_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let (client, server) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            let huge = vec![b'x'; 1 << 20];
            let _ = (&client).write_all(&huge);
            let mut reply = String::new();
            let _ = BufReader::new(&client).read_line(&mut reply);
            reply
        });
        let store = RocksStore::open(
            &dir.path().join("db"),
            None,
            &rockshrew_store::IndexIdentity {
                module_hash: [0; 32],
                max_memory_bytes: 1 << 20,
                max_wasm_stack_bytes: 1 << 20,
            },
            false,
        )
        .unwrap();
        answer(server, &[Arc::new(Rewinds::new(Arc::new(store)))]).unwrap();
        let reply = writer.join().unwrap();
        assert!(reply.contains("malformed request"), "{reply}");
    }
}

//! The admin socket: how `rockshrew snapshot` reaches the daemon that holds a database.
//!
//! RocksDB lets one process write a database, and a checkpoint needs that process. The daemon
//! listens on a Unix socket in its database directory ([`socket_path`]), so only users who can
//! reach that directory can ask. One request per connection, one JSON line each way:
//! `{"snapshot": OUT, "label": LABEL}` -> `{"manifest": {..}}` or `{"error": ".."}`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rockshrew_store::RocksStore;
use rockshrew_store::snapshot::{self, Manifest};
use serde::{Deserialize, Serialize};

/// The socket of the daemon that holds the database at `db_path`.
pub fn socket_path(db_path: &Path) -> PathBuf {
    db_path.join("rockshrew-admin.sock")
}

#[derive(Serialize, Deserialize)]
struct Request {
    snapshot: PathBuf,
    label: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Reply {
    Manifest(Manifest),
    Error(String),
}

/// The listening socket; removed when dropped.
pub struct AdminSocket {
    path: PathBuf,
}

impl AdminSocket {
    /// Listens on [`socket_path`] on a thread of its own, answering from `store`. Without a
    /// socket (a path too long for one, a read-only directory) the daemon runs on, and live
    /// snapshots of its database are not possible: that is logged.
    pub fn start(db_path: &Path, store: Arc<RocksStore>) -> Option<Self> {
        let path = socket_path(db_path);
        // A socket left by a daemon that died: this process holds the database lock, so no
        // other daemon is listening on it.
        let _ = std::fs::remove_file(&path);
        let listener = match UnixListener::bind(&path) {
            Ok(listener) => listener,
            Err(err) => {
                log::warn!(
                    "no admin socket at {} ({err}): `rockshrew snapshot` cannot reach this daemon",
                    path.display()
                );
                return None;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    if let Err(err) = answer(stream, &store) {
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

fn answer(stream: UnixStream, store: &RocksStore) -> Result<()> {
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) if request.label.as_deref().unwrap_or("default") != store.namespace() => {
            Reply::Error(format!(
                "this daemon serves the index `{}`, not `{}`",
                store.namespace(),
                request.label.unwrap_or_default()
            ))
        }
        Ok(request) => {
            log::info!("snapshot requested into {}", request.snapshot.display());
            match snapshot::take(store, &request.snapshot) {
                Ok(manifest) => {
                    log::info!(
                        "snapshot at block {} in {}",
                        manifest.height,
                        request.snapshot.display()
                    );
                    Reply::Manifest(manifest)
                }
                Err(err) => Reply::Error(err.to_string()),
            }
        }
        Err(err) => Reply::Error(format!("malformed request: {err}")),
    };
    let mut text = serde_json::to_string(&reply)?;
    text.push('\n');
    (&stream).write_all(text.as_bytes())?;
    Ok(())
}

/// Asks the daemon holding `db_path` for a snapshot into `out`. `Ok(None)`: no daemon listens
/// there.
pub fn request_snapshot(
    db_path: &Path,
    out: &Path,
    label: Option<&str>,
) -> Result<Option<Manifest>> {
    let Ok(stream) = UnixStream::connect(socket_path(db_path)) else {
        return Ok(None);
    };
    let request = Request {
        snapshot: std::path::absolute(out).context("resolving --out")?,
        label: label.map(str::to_string),
    };
    let mut text = serde_json::to_string(&request)?;
    text.push('\n');
    (&stream).write_all(text.as_bytes())?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .context("reading the daemon's answer")?;
    match serde_json::from_str(&line).context("the daemon's answer")? {
        Reply::Manifest(manifest) => Ok(Some(manifest)),
        Reply::Error(err) => anyhow::bail!("the daemon could not take the snapshot: {err}"),
    }
}

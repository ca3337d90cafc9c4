//! Runs the sync loops of a daemon's indexers, each on its own thread, and keeps their
//! failures apart.
//!
//! One indexer runs on the calling thread, as it always has, and any error stops the daemon.
//! With several, an indexer whose block fails deterministically
//! ([`crate::sync::IndexerFailed`]) stops alone: its error goes into its status (`/status`,
//! `rockshrew_indexer_stopped`), its endpoint keeps answering for what it indexed, and the
//! others go on. A host failure (storage, the node's answers breaking the loop) stops them all:
//! it sets `shutdown`, each stops after its block in flight, and the error is the daemon's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};
use metashrew_storage::Storage;

use crate::rpc::status::Status;
use crate::sync::{IndexerFailed, SyncStop, Syncer};

/// How one indexer's loop ended.
enum End {
    Stopped(SyncStop),
    /// It failed on a block; the others went on.
    Failed,
}

/// Runs every `(syncer, status)` until `--exit-at`, shutdown, or a host failure; see the
/// module documentation.
pub(crate) fn run<S: Storage + 'static>(
    mut lanes: Vec<(Syncer<S>, Arc<Status>)>,
    shutdown: &Arc<AtomicBool>,
) -> Result<SyncStop> {
    if lanes.len() == 1
        && let Some((syncer, _)) = lanes.pop()
    {
        return syncer.run();
    }
    let outcomes: Vec<Result<End>> = std::thread::scope(|scope| {
        let threads: Vec<_> = lanes
            .iter()
            .map(|(syncer, status)| {
                let name = format!("index-{}", status.namespace());
                let spawned = std::thread::Builder::new()
                    .name(name)
                    .spawn_scoped(scope, move || one(syncer, status, shutdown));
                (status, spawned)
            })
            .collect();
        threads
            .into_iter()
            .map(|(status, spawned)| match spawned {
                Ok(thread) => thread.join().unwrap_or_else(|_| {
                    shutdown.store(true, Ordering::SeqCst);
                    bail!("the indexing thread of `{}` panicked", status.namespace())
                }),
                Err(err) => {
                    shutdown.store(true, Ordering::SeqCst);
                    bail!(
                        "cannot start the indexing thread of `{}`: {err}",
                        status.namespace()
                    )
                }
            })
            .collect()
    });
    let mut stop = None;
    for outcome in outcomes {
        match outcome? {
            End::Stopped(SyncStop::ExitAt(h)) => stop = Some(SyncStop::ExitAt(h)),
            End::Stopped(SyncStop::Shutdown) => stop = stop.or(Some(SyncStop::Shutdown)),
            End::Failed => {}
        }
    }
    match stop {
        Some(stop) => Ok(stop),
        None => bail!(
            "every indexer stopped on a block it fails on: {}",
            lanes
                .iter()
                .map(|(_, s)| format!("`{}`: {}", s.namespace(), s.failure().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// One indexer's loop, on its own thread.
fn one<S: Storage>(syncer: &Syncer<S>, status: &Status, shutdown: &AtomicBool) -> Result<End> {
    match syncer.run() {
        Ok(stop) => Ok(End::Stopped(stop)),
        Err(err) if err.downcast_ref::<IndexerFailed>().is_some() => {
            log::error!(
                "indexer `{}` stopped: {err:#}. The other indexers go on.",
                status.namespace()
            );
            syncer.metrics.stopped.set(1);
            status.stopped(format!("{err:#}"));
            Ok(End::Failed)
        }
        Err(err) => {
            shutdown.store(true, Ordering::SeqCst);
            Err(err.context(format!("indexer `{}`", status.namespace())))
        }
    }
}

//! Replica mode (`--replica-of`): serves the views of another daemon's database.
//!
//! The replica opens the primary's database as RocksDB secondary instances
//! ([`rockshrew_store::Replica`]) and refreshes every `--replica-interval-ms`. It indexes
//! nothing and talks to no node. Every view holds the replica's state for its whole call
//! (`Replica::pin`), so an answer never mixes two refreshes: during a reorganisation on the
//! primary, a replica answers from the old branch or the new one, and never above the tip it
//! has whole. When the primary is down, refreshes fail (counted, logged once) and the replica
//! keeps serving what it has; when the primary returns, it follows again.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use metashrew_storage::Storage;
use rockshrew_store::{OpenError, Replica};

use crate::cli::Args;
use crate::fd_budget::FdBudget;
use crate::metrics::Metrics;
use crate::rpc::status::Status;
use crate::rpc::{AppState, Endpoints};
use crate::setup::{Indexer, load_runtime, serve_while, server_config, view_settings};
use crate::sync::SyncStop;

/// Runs a replica of `primary` until a signal.
pub(crate) fn run(
    args: &Args,
    primary: &Path,
    own_dir: &Path,
    indexer: Indexer,
    fds: FdBudget,
) -> Result<()> {
    check_file_budget(primary, &fds)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let interval = Duration::from_millis(args.replica_interval_ms);
    let replica = Arc::new(open(primary, own_dir, indexer.label.as_deref(), interval)?);
    let store = replica.store();
    match store.identity()? {
        Some(stored) if stored == indexer.identity || args.allow_indexer_change => {}
        Some(stored) => anyhow::bail!(
            "the primary's index `{}` was written by another indexer ({}); this replica runs {}. A replica must run the primary's module with its memory settings",
            store.namespace(),
            stored.describe(),
            indexer.identity.describe()
        ),
        None => log::warn!("the primary's index has no identity yet"),
    }
    let runtime = Arc::new(load_runtime(&indexer, replica.clone())?);
    let metrics = Arc::new(Metrics::new()?);
    let tip = store.tip()?;
    if let Some(t) = tip {
        metrics.indexed_height.set(i64::from(t));
    }
    drop(store);
    log::info!(
        "replica of {} (index `{}`), refreshing every {interval:?}: {}",
        primary.display(),
        indexer.namespace(),
        tip.map_or_else(|| "empty".to_string(), |t| format!("tip {t}"))
    );
    let follower = Follower {
        replica: replica.clone(),
        metrics: metrics.clone(),
        interval,
        shutdown: shutdown.clone(),
    };
    serve_while(
        Arc::new(Endpoints::single(Arc::new(
            AppState::new(runtime, metrics, &view_settings(args))?
                .with_replica(replica)
                .with_status(Arc::new(Status::new(indexer.label.clone()))),
        ))),
        server_config(args)?,
        shutdown,
        move || Ok(follower.run()),
    )
}

/// A secondary instance keeps every SST file of the primary open (see
/// [`rockshrew_store::Replica`]): refuses to start when they are more than the budget gives.
fn check_file_budget(primary: &Path, fds: &FdBudget) -> Result<()> {
    let files = std::fs::read_dir(primary)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "sst"))
                .count() as u64
        })
        .unwrap_or(0);
    anyhow::ensure!(
        files <= fds.rocksdb_files,
        "the primary's database has {files} SST files, and a replica keeps them all open; the open-file limit leaves {} for them. Raise the hard limit (`ulimit -Hn`, systemd's LimitNOFILE=) or lower --max-connections",
        fds.rocksdb_files
    );
    Ok(())
}

/// Opens the replica, waiting for the primary's database to appear.
fn open(
    primary: &Path,
    own_dir: &Path,
    label: Option<&str>,
    interval: Duration,
) -> Result<Replica> {
    let mut warned = false;
    loop {
        match Replica::open(primary, own_dir, label) {
            Ok(replica) => return Ok(replica),
            Err(err @ OpenError::Storage(_)) | Err(err @ OpenError::Rocks { .. })
                if !primary.join("CURRENT").exists() =>
            {
                if !warned {
                    log::warn!(
                        "waiting for the primary's database at {} ({err})",
                        primary.display()
                    );
                    warned = true;
                }
                std::thread::sleep(interval.max(Duration::from_millis(200)));
            }
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("opening {} as a replica", primary.display()));
            }
        }
    }
}

/// Refreshes the replica on an interval and keeps its metrics.
struct Follower {
    replica: Arc<Replica>,
    metrics: Arc<Metrics>,
    interval: Duration,
    shutdown: Arc<AtomicBool>,
}

impl Follower {
    fn run(self) -> SyncStop {
        let mut last_ok = Instant::now();
        let mut failing = false;
        while !self.shutdown.load(Ordering::SeqCst) {
            std::thread::sleep(self.interval);
            match self.replica.refresh() {
                Ok(refresh) => {
                    if failing {
                        log::info!("following the primary again");
                        failing = false;
                    }
                    last_ok = Instant::now();
                    if refresh.reopened {
                        self.metrics.replica_reopens.inc();
                    }
                    if let Some(after) = refresh.after {
                        self.metrics.indexed_height.set(i64::from(after));
                    }
                    if refresh.after != refresh.before {
                        self.observe_lag();
                        if refresh.after < refresh.before {
                            log::info!(
                                "the primary rolled back: tip {:?} -> {:?}",
                                refresh.before,
                                refresh.after
                            );
                        }
                    }
                }
                Err(err) => {
                    self.metrics.replica_refresh_failures.inc();
                    if !failing {
                        log::warn!(
                            "cannot follow the primary ({err}); serving what this replica has"
                        );
                        failing = true;
                    }
                }
            }
            self.metrics
                .replica_refresh_age_seconds
                .set(last_ok.elapsed().as_secs_f64());
        }
        SyncStop::Shutdown
    }

    /// Observes the time from the primary's commit of the tip to now.
    fn observe_lag(&self) {
        if let Ok(Some(committed)) = self.replica.store().tip_committed_at() {
            let lag = SystemTime::now()
                .duration_since(committed)
                .unwrap_or_default();
            self.metrics.replica_lag_seconds.observe(lag.as_secs_f64());
        }
    }
}

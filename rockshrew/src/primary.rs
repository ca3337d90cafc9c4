//! The indexing daemon: the store, the runtime over it, the block source, the sync loop and the
//! JSON-RPC server beside it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use metashrew_storage::{CachedStore, PipelinedStore};

use crate::cli::Args;
use crate::fd_budget::FdBudget;
use crate::metrics::Metrics;
use crate::placement::Placement;
use crate::pow::Rules;
use crate::rpc::AppState;
use crate::setup::{Indexer, load_runtime, serve_while, server_config, view_settings};
use crate::source::BlockSource;
use crate::source::files::FileSource;
use crate::source::rpc::{Auth, RpcSource, default_cookie_path};
use crate::store::{RocksStore, Tuning};
use crate::sync::{PowCheck, SyncConfig, Syncer};

fn block_source(args: &Args, shutdown: &Arc<AtomicBool>) -> Result<Arc<dyn BlockSource>> {
    if let Some(path) = &args.blocks_file {
        let poll = Duration::from_millis(args.poll_interval_ms);
        let source = FileSource::open(path, args.start_block, poll)
            .with_context(|| format!("reading blocks from {}", path.display()))?;
        log::info!(
            "{} blocks on the chain in {} (heights {}..), indexing from {}",
            source.len(),
            path.display(),
            source.first_height(),
            args.start_block
        );
        return Ok(Arc::new(source));
    }
    let auth = match (&args.auth, &args.cookie_file) {
        (Some(up), _) => Auth::UserPass(up.clone()),
        (None, Some(cookie)) => Auth::Cookie(cookie.clone()),
        (None, None) => match default_cookie_path() {
            Some(cookie) if cookie.exists() => Auth::Cookie(cookie),
            _ => Auth::None,
        },
    };
    log::info!("following the node at {}", args.daemon_rpc_url);
    Ok(Arc::new(RpcSource::new(
        &args.daemon_rpc_url,
        auth,
        Duration::from_secs(args.rpc_timeout_secs),
        shutdown.clone(),
    )))
}

/// Indexes from the block source into the database at `db_path`, serving JSON-RPC meanwhile.
pub(crate) fn run(args: &Args, db_path: &Path, indexer: Indexer, fds: FdBudget) -> Result<()> {
    let tuning = Tuning {
        max_open_files: u32::try_from(fds.rocksdb_files).unwrap_or(u32::MAX),
        ..Tuning::default()
    };
    let store = Arc::new(RocksStore::open_tuned(
        db_path,
        args.label.as_deref(),
        &indexer.identity,
        args.allow_indexer_change,
        &tuning,
    )?);
    let namespace = store.namespace().to_string();
    // Reads go through a host cache, written through on every commit; large blocks are then
    // written to RocksDB in the background while the next one runs, and filled into the cache
    // by a thread of its own (reads of a key whose fill is pending are answered from the block
    // being committed). Neither layer changes what a read answers.
    let cached = Arc::new(CachedStore::new(
        PipelinedStore::new(store.clone()),
        (args.host_cache_mib as usize) << 20,
    ));
    let runtime = Arc::new(load_runtime(&indexer, cached.clone())?);
    let tip = runtime.tip()?;
    log::info!(
        "index `{}` in {}: {}",
        namespace,
        db_path.display(),
        tip.map_or_else(|| "empty".to_string(), |t| format!("tip {t}"))
    );
    let metrics = Arc::new(Metrics::new()?);
    if let Some(t) = tip {
        metrics.indexed_height.set(i64::from(t));
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    let source = block_source(args, &shutdown)?;
    let state = AppState::new(runtime.clone(), metrics.clone(), &view_settings(args))?;
    let syncer = Syncer {
        abandoned: state.abandoned.clone(),
        runtime: runtime.clone(),
        source,
        config: SyncConfig {
            start_block: args.start_block,
            exit_at: args.exit_at,
            max_reorg_depth: args.max_reorg_depth,
            poll_interval: Duration::from_millis(args.poll_interval_ms),
            fetch_workers: usize::from(args.fetch_workers),
            bulk_behind: args.bulk_sync_behind,
            ..SyncConfig::default()
        },
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        ingest: Some({
            let store = store.clone();
            Box::new(move |mode| store.set_ingest_mode(mode))
        }),
        pow: if args.no_pow_check {
            log::warn!("--no-pow-check: blocks are indexed without checking their proof of work");
            None
        } else {
            Some(PowCheck {
                rules: Rules::new(args.network),
                store: store.clone(),
            })
        },
    };
    let admin = crate::admin::AdminSocket::start(db_path, store.clone());
    let indexer_placement = Placement {
        nice: args.indexer_nice,
        cores: args.indexer_cores.clone(),
        ..Placement::default()
    };
    let result = serve_while(Arc::new(state), server_config(args)?, shutdown, move || {
        // The indexing thread and the threads it starts (block fetchers, instance teardown);
        // the server's threads and RocksDB's keep the daemon's own priority.
        indexer_placement
            .apply_to_current_thread()
            .context("--indexer-nice / --indexer-cores")?;
        syncer.run()
    });
    drop(admin);
    if let Err(err) = cached.inner().settle() {
        log::error!("{err}");
    }
    if let Err(err) = store.flush() {
        log::error!("final flush: {err} (the next start replays the write-ahead log)");
    }
    result
}

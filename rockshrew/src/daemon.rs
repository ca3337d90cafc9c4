//! Wires the daemon together: store, runtime, block source, sync loop, JSON-RPC server, signals.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use metashrew_runtime::state_root::sha256;
use metashrew_runtime::{
    CachedStore, InstanceMode, MetashrewRuntime, PipelinedStore, RuntimeConfig, memory_ceiling,
};

use crate::cli::{Args, Mode};
use crate::fd_budget::FdBudget;
use crate::metrics::Metrics;
use crate::placement::Placement;
use crate::pow::Rules;
use crate::rpc::{AppState, ServerConfig, ViewSettings};
use crate::source::BlockSource;
use crate::source::files::FileSource;
use crate::source::rpc::{Auth, RpcSource, default_cookie_path};
use crate::store::{IndexIdentity, RocksStore, Tuning};
use crate::sync::{PowCheck, SyncConfig, SyncStop, Syncer};

fn runtime_config(args: &Args) -> Result<RuntimeConfig> {
    anyhow::ensure!(
        args.max_guest_memory_mib > 0 && args.max_guest_memory_mib <= 4096,
        "--max-guest-memory-mib must be between 1 and 4096"
    );
    Ok(RuntimeConfig {
        max_memory_bytes: args.max_guest_memory_mib << 20,
        view_timeout: Duration::from_millis(args.view_timeout_ms),
        view_memory_bytes: args.view_memory_mib << 20,
        max_concurrent_views: usize::from(args.max_concurrent_views),
        instance_mode: match args.instance_mode {
            Mode::Fresh => InstanceMode::Fresh,
            Mode::Persistent => InstanceMode::Persistent,
        },
        module_cache_dir: args.db_path.as_ref().map(|d| d.join(MODULE_CACHE_DIR)),
        ..RuntimeConfig::default()
    })
}

/// The directory, inside the database directory, where compiled modules are kept.
pub const MODULE_CACHE_DIR: &str = "module-cache";

/// Loads the runtime over `store`, logging how long it took and whether the compiled module
/// came from the cache.
pub(crate) fn load_runtime<S: metashrew_runtime::Storage>(
    indexer: &Indexer,
    store: Arc<S>,
) -> Result<MetashrewRuntime<S>> {
    let started = std::time::Instant::now();
    let runtime = MetashrewRuntime::from_bytes(&indexer.wasm, store, indexer.config.clone())
        .with_context(|| format!("loading {}", indexer.path.display()))?;
    log::info!(
        "module {} ready in {} ms (compiled-module cache: {:?})",
        indexer.path.display(),
        started.elapsed().as_millis(),
        runtime.module_cache_outcome()
    );
    Ok(runtime)
}

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

/// The module and what it runs under: read, its memory ceiling applied, its identity.
pub(crate) struct Indexer {
    /// The module's path, for messages.
    pub path: PathBuf,
    /// Its bytes.
    pub wasm: Vec<u8>,
    /// Its runtime configuration (the ceiling applied).
    pub config: RuntimeConfig,
    /// Its identity.
    pub identity: IndexIdentity,
}

fn load_indexer(args: &Args) -> Result<Indexer> {
    let path = args.indexer.clone().context("--indexer is required")?;
    let wasm =
        std::fs::read(&path).with_context(|| format!("reading the indexer {}", path.display()))?;
    let mut config = runtime_config(args)?;
    // A module's declared memory maximum lowers the ceiling; the identity records what it
    // really runs under.
    let ceiling = memory_ceiling(&wasm, config.max_memory_bytes)
        .with_context(|| format!("loading {}", path.display()))?;
    if ceiling < config.max_memory_bytes {
        log::info!(
            "guest memory ceiling {} MiB: the module's declared maximum",
            ceiling >> 20
        );
    }
    config.max_memory_bytes = ceiling;
    let identity = IndexIdentity {
        module_hash: sha256(&wasm),
        max_memory_bytes: config.max_memory_bytes,
        max_wasm_stack_bytes: config.max_wasm_stack_bytes as u64,
    };
    Ok(Indexer {
        path,
        wasm,
        config,
        identity,
    })
}

/// How views run: the view threads' placement and the memory floor.
pub(crate) fn view_settings(args: &Args) -> ViewSettings {
    ViewSettings {
        placement: Placement {
            nice: args.view_nice,
            cores: args.view_cores.clone(),
        },
        memory_floor_bytes: args.view_memory_floor_mib << 20,
    }
}

pub(crate) fn server_config(args: &Args) -> Result<ServerConfig> {
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("invalid --host/--port {}:{}", args.host, args.port))?;
    Ok(ServerConfig {
        addr,
        max_request_bytes: args.max_request_bytes,
        cors: args.cors.clone(),
        header_timeout: Duration::from_millis(args.header_timeout_ms),
        body_timeout: Duration::from_millis(args.body_timeout_ms),
        max_connections: args.max_connections as usize,
    })
}

/// Runs the daemon until `--exit-at`, a signal, or a fatal error: an indexer, or with
/// `--replica-of` a read replica.
pub fn run(args: Args) -> Result<()> {
    let db_path = args.db_path.clone().context("--db-path is required")?;
    let fds = crate::fd_budget::claim(u64::from(args.max_connections))?;
    let indexer = load_indexer(&args)?;
    match &args.replica_of {
        Some(primary) => crate::replica::run(&args, primary, &db_path, indexer, fds),
        None => run_primary(&args, &db_path, indexer, fds),
    }
}

fn run_primary(args: &Args, db_path: &Path, indexer: Indexer, fds: FdBudget) -> Result<()> {
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

/// Serves JSON-RPC from `state` while `work` runs on a blocking thread; stops both on a signal
/// (which sets `shutdown`), when `work` returns, or when the server fails.
pub(crate) fn serve_while<S: metashrew_runtime::Storage + 'static>(
    state: Arc<AppState<S>>,
    server_config: ServerConfig,
    shutdown: Arc<AtomicBool>,
    work: impl FnOnce() -> Result<SyncStop> + Send + 'static,
) -> Result<()> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    tokio.block_on(async move {
        let stop = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(watch_signals(shutdown.clone(), stop.clone()));
        let server_stop = stop.clone();
        let server = tokio::spawn(crate::rpc::serve(state, server_config, async move {
            server_stop.notified().await
        }));
        let work = tokio::task::spawn_blocking(work);
        let outcome = tokio::select! {
            done = work => done.context("the daemon's task")?,
            served = server => {
                // The server only ends by itself on an error (e.g. the port is taken).
                shutdown.store(true, Ordering::SeqCst);
                served.context("server task")??;
                return Ok(());
            }
        };
        shutdown.store(true, Ordering::SeqCst);
        stop.notify_one();
        outcome.map(|stop| match stop {
            SyncStop::ExitAt(h) => log::info!("reached --exit-at {h}; exiting"),
            SyncStop::Shutdown => log::info!("stopped cleanly"),
        })
    })
}

/// First SIGINT/SIGTERM: stop after the block in flight. Second: exit at once.
async fn watch_signals(shutdown: Arc<AtomicBool>, stop: Arc<tokio::sync::Notify>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log::error!("cannot install signal handlers");
        return;
    };
    for round in 0.. {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        if round == 0 {
            log::info!(
                "signal received: finishing the block in flight, then stopping (again to force)"
            );
            shutdown.store(true, Ordering::SeqCst);
            stop.notify_one();
        } else {
            log::warn!("second signal: exiting now (the database stays consistent)");
            std::process::exit(130);
        }
    }
}

//! What a primary and a replica both set up: the module and its runtime configuration, the
//! runtime, the view and server settings, and serving JSON-RPC while the work runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use metashrew_runtime::{InstanceMode, MetashrewRuntime, PreparedModule, RuntimeConfig};

use crate::cli::{Args, Mode};
use crate::placement::{Class, Placement};
use crate::rpc::{Endpoints, ServerConfig, ViewSettings};
use crate::store::IndexIdentity;
use crate::sync::SyncStop;

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
pub(crate) const MODULE_CACHE_DIR: &str = "module-cache";

/// Loads the runtime over `store`, logging how long it took and whether the compiled module
/// came from the cache.
pub(crate) fn load_runtime<S: metashrew_storage::Storage>(
    indexer: &Indexer,
    store: Arc<S>,
) -> Result<MetashrewRuntime<S>> {
    let started = std::time::Instant::now();
    let runtime = MetashrewRuntime::from_prepared(&indexer.module, store)
        .with_context(|| format!("loading {}", indexer.path.display()))?;
    log::info!(
        "module {} ready in {} ms (compiled-module cache: {:?})",
        indexer.path.display(),
        started.elapsed().as_millis(),
        runtime.module_cache_outcome()
    );
    Ok(runtime)
}

/// The module and what it runs under: read, its memory ceiling applied, its identity.
pub(crate) struct Indexer {
    /// Its namespace and endpoint (`None`: the namespace `default`).
    pub label: Option<String>,
    /// The first height it indexes when its namespace is empty.
    pub start_block: u32,
    /// The module's path, for messages.
    pub path: PathBuf,
    /// The module, its hash and its runtime configuration (the ceiling applied).
    pub module: PreparedModule,
    /// Its identity, made of the module's.
    pub identity: IndexIdentity,
}

impl Indexer {
    /// Its namespace's name.
    pub fn namespace(&self) -> &str {
        crate::store::namespace_of(self.label.as_deref())
    }
}

/// Every indexer `--indexer` or `--indexers` names, read and checked.
pub(crate) fn load_indexers(args: &Args) -> Result<Vec<Indexer>> {
    let planned = crate::indexers::plan(
        &args.indexer,
        args.indexers.as_deref(),
        args.label.as_deref(),
        args.start_block,
    )?;
    let indexers = planned
        .into_iter()
        .map(|p| load_indexer(args, p))
        .collect::<Result<Vec<_>>>()?;
    if let Some(default) = &args.default_indexer
        && !indexers.iter().any(|i| i.label.as_ref() == Some(default))
    {
        anyhow::bail!(
            "--default-indexer {default}: no indexer has that label (labels: {})",
            labels(&indexers)
        );
    }
    Ok(indexers)
}

/// The labels of `indexers`, comma-separated, for messages.
pub(crate) fn labels(indexers: &[Indexer]) -> String {
    crate::indexers::listed(indexers.iter().map(Indexer::namespace))
}

fn load_indexer(args: &Args, planned: crate::indexers::Planned) -> Result<Indexer> {
    let path = planned.path;
    let wasm =
        std::fs::read(&path).with_context(|| format!("reading the indexer {}", path.display()))?;
    let mut config = runtime_config(args)?;
    if let Some(mib) = planned.max_memory_mib {
        anyhow::ensure!(
            mib > 0 && mib <= 4096,
            "{}: max_memory_mib must be between 1 and 4096",
            path.display()
        );
        config.max_memory_bytes = mib << 20;
    }
    // A module's declared memory maximum lowers the ceiling; the identity records what it
    // really runs under, computed once for the runtime and the identity.
    let module =
        PreparedModule::new(wasm, config).with_context(|| format!("loading {}", path.display()))?;
    if let Some(pinned) = planned.sha256
        && pinned != module.hash()
    {
        anyhow::bail!(
            "the indexer {} has SHA-256 {}, but its manifest pins {}: refusing to start",
            path.display(),
            hex::encode(module.hash()),
            hex::encode(pinned)
        );
    }
    let identity = identity_of(&module);
    Ok(Indexer {
        label: planned.label,
        start_block: planned.start,
        path,
        module,
        identity,
    })
}

/// The identity of an index `module` writes: its hash and the memory it really runs under.
fn identity_of(module: &PreparedModule) -> IndexIdentity {
    IndexIdentity {
        module_hash: module.hash(),
        max_memory_bytes: module.config().max_memory_bytes,
        max_wasm_stack_bytes: module.config().max_wasm_stack_bytes as u64,
    }
}

/// The identity of the index the module at `path` writes under a memory ceiling of
/// `max_memory_mib` (as the daemon's `--max-guest-memory-mib`): the module is loaded and
/// compiled, so a module the daemon would refuse is refused here too.
pub(crate) fn module_identity(
    path: &std::path::Path,
    max_memory_mib: u64,
) -> Result<IndexIdentity> {
    anyhow::ensure!(
        max_memory_mib > 0 && max_memory_mib <= 4096,
        "--max-guest-memory-mib must be between 1 and 4096"
    );
    let wasm =
        std::fs::read(path).with_context(|| format!("reading the indexer {}", path.display()))?;
    let config = RuntimeConfig {
        max_memory_bytes: max_memory_mib << 20,
        ..RuntimeConfig::default()
    };
    let module =
        PreparedModule::new(wasm, config).with_context(|| format!("loading {}", path.display()))?;
    Ok(identity_of(&module))
}

/// How views run: the view threads' placement and the memory floor.
pub(crate) fn view_settings(args: &Args) -> ViewSettings {
    ViewSettings {
        placement: Placement {
            nice: args.view_nice,
            cores: args.view_cores.clone(),
            class: args.view_class,
            ..Placement::default()
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
        thread_placement: Placement {
            slice: (args.rpc_slice_us > 0)
                .then(|| Duration::from_micros(u64::from(args.rpc_slice_us))),
            class: if args.rpc_realtime {
                Class::Realtime
            } else {
                Class::Normal
            },
            ..Placement::default()
        },
    })
}

/// Serves JSON-RPC from `endpoints` while `work` runs on a thread of its own; stops both on a
/// signal (which sets `shutdown`), when `work` returns, or when the server fails. Returns once
/// `work` has returned.
pub(crate) fn serve_while<S: metashrew_storage::Storage + 'static>(
    endpoints: Arc<Endpoints<S>>,
    server_config: ServerConfig,
    shutdown: Arc<AtomicBool>,
    work: impl FnOnce() -> Result<SyncStop> + Send + 'static,
) -> Result<()> {
    let placement = server_config.thread_placement.clone();
    let warned = AtomicBool::new(false);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .thread_name("rockshrew-rpc")
        .on_thread_start(move || {
            // Without the privilege for the real-time class, the threads keep the short slice.
            let applied = match placement.apply_to_current_thread() {
                Err(err) if placement.class == Class::Realtime => {
                    if !warned.swap(true, Ordering::Relaxed) {
                        log::warn!("the JSON-RPC server's threads run in the normal class: {err}");
                    }
                    let normal = Placement {
                        class: Class::Normal,
                        ..placement.clone()
                    };
                    normal.apply_to_current_thread()
                }
                other => other,
            };
            if let Err(err) = applied
                && !warned.swap(true, Ordering::Relaxed)
            {
                log::warn!("the JSON-RPC server's threads keep the default scheduling: {err}");
            }
        })
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The work runs outside the server's runtime, so that it keeps its own scheduling rather
    // than the server's threads'.
    let (finished, outcome) = tokio::sync::oneshot::channel();
    let worker = std::thread::Builder::new()
        .name("rockshrew-index".into())
        .spawn(move || finished.send(work()))
        .context("starting the indexing thread")?;
    let served = tokio.block_on(async move {
        let stop = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(watch_signals(shutdown.clone(), stop.clone()));
        let server_stop = stop.clone();
        let server = tokio::spawn(crate::rpc::serve(endpoints, server_config, async move {
            server_stop.notified().await
        }));
        let outcome = tokio::select! {
            done = outcome => done.context("the indexing thread panicked")?,
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
    });
    // On a server error the work stops after its block in flight (it sees `shutdown`).
    if worker.join().is_err() && served.is_ok() {
        anyhow::bail!("the indexing thread panicked");
    }
    served
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

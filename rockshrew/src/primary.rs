//! The indexing daemon: the block source, and for each indexer its namespace of the database,
//! its runtime, its sync loop and its JSON-RPC endpoint, served beside them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use metashrew_storage::{CachedStore, PipelinedStore};

use crate::cli::Args;
use crate::fd_budget::FdBudget;
use crate::metrics::Metrics;
use crate::placement::Placement;
use crate::pow::{Chain, Rules, mismatch};
use crate::read_ahead::ReadAheadConfig;
use crate::rpc::status::Status;
use crate::rpc::{AppState, Endpoints};
use crate::setup::{Indexer, labels, load_runtime, serve_while, server_config, view_settings};
use crate::source::files::FileSource;
use crate::source::rpc::{Auth, RpcSource, check_cookie, default_cookie_path, node_url};
use crate::source::shared::SharedSource;
use crate::source::{BlockSource, SourceError};
use crate::store::{RocksStore, Tuning};
use crate::sync::{PowCheck, SyncConfig, Syncer};

/// Where the blocks come from, as the command line gives it. It is opened on the indexing thread
/// once the JSON-RPC server is up: a scan of a node's block files reads every header of the chain
/// (seconds on a cold disk), and views of what is already indexed need none of it.
enum SourceSpec {
    /// `--blocks-file`: a directory of `blk*.dat` files, one such file, or a hex file.
    Files {
        path: PathBuf,
        start_block: u32,
        poll: Duration,
    },
    /// Bitcoin Core's JSON-RPC.
    Node {
        url: String,
        auth: Auth,
        timeout: Duration,
    },
}

impl SourceSpec {
    /// The source the options name; a malformed node URL or an unreadable cookie file is
    /// refused here, at start, rather than retried as if the node were down.
    fn of(args: &Args) -> Result<Self> {
        if let Some(path) = &args.blocks_file {
            return Ok(Self::Files {
                path: path.clone(),
                start_block: args.start_block,
                poll: Duration::from_millis(args.poll_interval_ms),
            });
        }
        let auth = match (&args.auth, &args.cookie_file) {
            (Some(up), _) => Auth::UserPass(up.clone()),
            (None, Some(cookie)) => {
                check_cookie(cookie).map_err(anyhow::Error::msg)?;
                Auth::Cookie(cookie.clone())
            }
            (None, None) => match default_cookie_path() {
                Some(cookie) if cookie.exists() => {
                    check_cookie(&cookie).map_err(anyhow::Error::msg)?;
                    Auth::Cookie(cookie)
                }
                _ => Auth::None,
            },
        };
        Ok(Self::Node {
            url: node_url(&args.daemon_rpc_url).map_err(anyhow::Error::msg)?,
            auth,
            timeout: Duration::from_secs(args.rpc_timeout_secs),
        })
    }

    /// Opens the source and checks that its blocks are of `network`: the magic of the block
    /// files' records, or the chain the node names. A mismatch is an error no retry can cure.
    fn open(self, network: Chain, shutdown: &Arc<AtomicBool>) -> Result<Arc<dyn BlockSource>> {
        match self {
            Self::Files {
                path,
                start_block,
                poll,
            } => {
                let source = FileSource::open(&path, start_block, poll)
                    .with_context(|| format!("reading blocks from {}", path.display()))?;
                if let Some(magic) = source.magic() {
                    let found = Chain::of_magic(magic);
                    if found != Some(network) {
                        let what = format!(
                            "the block files in {} are of {} (record magic {})",
                            path.display(),
                            found.map_or("an unknown network", Chain::name),
                            hex::encode(magic)
                        );
                        bail!(mismatch(network, &what, found.as_slice()));
                    }
                }
                log::info!(
                    "{} blocks on the chain in {} (heights {}..), indexing from {start_block}",
                    source.len(),
                    path.display(),
                    source.first_height(),
                );
                Ok(Arc::new(source))
            }
            Self::Node { url, auth, timeout } => {
                log::info!("following the node at {url}");
                let source = RpcSource::new(&url, auth, timeout, shutdown.clone());
                match source.chain_name() {
                    Ok(name) if name == network.name() => {}
                    Ok(name) => {
                        let found = Chain::of_name(&name);
                        let what = format!("the node at {url} follows {name}");
                        bail!(mismatch(network, &what, found.as_slice()));
                    }
                    Err(SourceError::Interrupted) => {}
                    Err(err) => log::warn!("the node's network is not checked: {err}"),
                }
                Ok(Arc::new(source))
            }
        }
    }
}

/// What a lane's runtime reads and writes through: the host cache over the background writer
/// over its namespace of the database.
type Stack = CachedStore<PipelinedStore<Arc<RocksStore>>>;

/// A lane's sync loop, made once the block source is open.
type MakeSyncer = Box<dyn FnOnce(Arc<dyn BlockSource>) -> Syncer<Stack> + Send>;

/// One indexer of the daemon: its namespace of the database, its runtime over its caches, its
/// sync loop (made when the work starts), and the state its endpoint answers from.
struct Lane {
    store: Arc<RocksStore>,
    rewinds: Arc<crate::rewind::Rewinds>,
    cached: Arc<Stack>,
    state: Arc<AppState<Stack>>,
    syncer: MakeSyncer,
}

fn lane(
    args: &Args,
    indexer: &Indexer,
    store: RocksStore,
    metrics: Metrics,
    several: bool,
    shutdown: &Arc<AtomicBool>,
) -> Result<Lane> {
    let store = Arc::new(store);
    let namespace = store.namespace().to_string();
    // Reads go through a host cache, written through on every commit; large blocks are then
    // written to RocksDB in the background while the next one runs, and filled into the cache
    // by a thread of its own (reads of a key whose fill is pending are answered from the block
    // being committed). Neither layer changes what a read answers.
    let cached = Arc::new(CachedStore::new(
        PipelinedStore::new(store.clone()),
        (args.host_cache_mib as usize) << 20,
    ));
    let runtime = Arc::new(load_runtime(indexer, cached.clone())?);
    let tip = runtime.tip()?;
    log::info!(
        "index `{namespace}` ({}): {}",
        indexer.path.display(),
        tip.map_or_else(|| "empty".to_string(), |t| format!("tip {t}"))
    );
    for module in store.module_history()? {
        log::info!("index `{namespace}`: module {}", module.describe());
    }
    let metrics = Arc::new(metrics);
    if let Some(t) = tip {
        metrics.indexed_height.set(i64::from(t));
    }
    let state = Arc::new(
        AppState::new(runtime.clone(), metrics.clone(), &view_settings(args))?.with_status(
            Arc::new(Status::new(indexer.label.clone()).with_modules(store.clone())),
        ),
    );
    let config = SyncConfig {
        start_block: indexer.start_block,
        exit_at: args.exit_at,
        max_reorg_depth: args.max_reorg_depth,
        poll_interval: Duration::from_millis(args.poll_interval_ms),
        fetch_workers: usize::from(args.fetch_workers),
        bulk_behind: args.bulk_sync_behind,
        read_ahead: (args.read_ahead > 0).then(|| ReadAheadConfig {
            parallel: usize::from(args.read_ahead),
            always: args.read_ahead_always,
            ..ReadAheadConfig::default()
        }),
        name: several.then(|| namespace.clone()),
        ..SyncConfig::default()
    };
    let pow = (!args.no_pow_check).then(|| PowCheck {
        rules: Rules::new(args.network),
        store: store.clone(),
    });
    let abandoned = state.abandoned.clone();
    let shutdown = shutdown.clone();
    let ingest_store = store.clone();
    let rewinds = Arc::new(crate::rewind::Rewinds::new(store.clone()));
    let lane_rewinds = rewinds.clone();
    let syncer: MakeSyncer = Box::new(move |source| Syncer {
        abandoned,
        runtime,
        source,
        config,
        metrics,
        shutdown,
        ingest: Some(Box::new(move |mode| ingest_store.set_ingest_mode(mode))),
        pow,
        rewinds: Some(lane_rewinds),
    });
    Ok(Lane {
        store,
        rewinds,
        cached,
        state,
        syncer,
    })
}

/// Indexes from the block source into the database at `db_path`, serving JSON-RPC meanwhile:
/// every indexer of `indexers` in its own namespace, on its own thread, over one block source
/// (whose blocks are shared between them when there are several).
pub(crate) fn run(
    args: &Args,
    db_path: &Path,
    indexers: Vec<Indexer>,
    fds: FdBudget,
) -> Result<()> {
    let tuning = Tuning {
        max_open_files: u32::try_from(fds.rocksdb_files).unwrap_or(u32::MAX),
        block_cache_bytes: usize::try_from(args.block_cache_mib << 20).unwrap_or(usize::MAX),
        sync_commits: args.sync_every_block,
        ..Tuning::default()
    };
    let identities: Vec<_> = indexers
        .iter()
        .map(|i| (i.label.as_deref(), &i.identity))
        .collect();
    let spec = SourceSpec::of(args)?;
    let stores =
        RocksStore::open_namespaces(db_path, &identities, args.allow_indexer_change, &tuning)?;
    log::info!("database {}: {}", db_path.display(), labels(&indexers));
    if args.no_pow_check {
        log::warn!("--no-pow-check: blocks are indexed without checking their proof of work");
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    let several = indexers.len() > 1;
    let registry = crate::metrics::registry()?;
    let mut lanes = Vec::with_capacity(indexers.len());
    for (indexer, store) in indexers.iter().zip(stores) {
        let label = several.then(|| indexer.namespace());
        let metrics = Metrics::in_registry(registry.clone(), label)?;
        lanes.push(lane(args, indexer, store, metrics, several, &shutdown)?);
    }
    let admin = crate::admin::AdminSocket::start(
        db_path,
        lanes.iter().map(|l| l.rewinds.clone()).collect(),
    );
    let endpoints = Arc::new(Endpoints::several(
        lanes.iter().map(|l| l.state.clone()).collect(),
        args.default_indexer.as_deref(),
    ));
    let mut kept = Vec::with_capacity(lanes.len());
    let mut work = Vec::with_capacity(lanes.len());
    for lane in lanes {
        work.push((lane.syncer, lane.state.status.clone()));
        kept.push((lane.store, lane.cached));
    }
    let indexer_placement = Placement {
        nice: args.indexer_nice,
        cores: args.indexer_cores.clone(),
        ..Placement::default()
    };
    let stop_all = shutdown.clone();
    let network = args.network;
    let shared_bytes = (args.shared_blocks_mib as usize) << 20;
    let result = serve_while(endpoints, server_config(args)?, shutdown, move || {
        // The indexing threads and the threads they start (block fetchers, instance teardown)
        // inherit this placement; the server's threads and RocksDB's keep the daemon's own.
        indexer_placement
            .apply_to_current_thread()
            .context("--indexer-nice / --indexer-cores")?;
        let source = spec.open(network, &stop_all)?;
        let shared = several.then(|| Arc::new(SharedSource::new(source.clone(), shared_bytes)));
        let source: Arc<dyn BlockSource> = match &shared {
            Some(shared) => shared.clone(),
            None => source,
        };
        let work = work
            .into_iter()
            .map(|(make, status)| (make(source.clone()), status))
            .collect();
        let stopped = crate::lanes::run(work, &stop_all);
        if let Some(shared) = shared {
            let (fetched, reused) = shared.counts();
            log::info!(
                "shared block source: {fetched} blocks fetched, {reused} answered from memory"
            );
        }
        stopped
    });
    drop(admin);
    for (store, cached) in kept {
        if let Err(err) = cached.inner().settle() {
            log::error!("{err}");
        }
        if let Err(err) = store.flush() {
            log::error!(
                "final flush of `{}`: {err} (the next start replays the write-ahead log)",
                store.namespace()
            );
        }
    }
    result
}

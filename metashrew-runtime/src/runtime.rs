//! [`MetashrewRuntime`]: loads an indexer, runs blocks, answers views and previews.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use wasmtime::{Instance, Store, Trap, UpdateDeadline};

use crate::PreparedModule;
use crate::abi;
use crate::bounds::{Cancellation, Deadline, EpochTicker, Limits, Stop};
use crate::compile::{Compiled, Use, compile};
use crate::config::{InstanceMode, RuntimeConfig};
use crate::context::{CallContext, CallKind, StateView};
use crate::error::{GuestFault, RuntimeError};
use crate::gate::Gate;
use crate::locks::lock;
use crate::module_cache::CacheOutcome;
use crate::recycle::{BlockInstance, Kept, Recycler, memory_bytes};
use metashrew_storage::hashes::block_hash;
use metashrew_storage::state_root::GENESIS_PARENT_ROOT;
use metashrew_storage::{BlockCommit, BlockHash, StateRoot, Storage, StorageError};

/// What committing a block produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockReport {
    /// The block's height.
    pub height: u32,
    /// The block's hash.
    pub block_hash: BlockHash,
    /// The state root after the block.
    pub state_root: StateRoot,
    /// Distinct keys written.
    pub writes: usize,
    /// Reads the guest made of the store (`__get_len`/`__get`, the pair counting once).
    pub reads: usize,
    /// Time spent instantiating and running the guest (everything before hashing the writes).
    pub execute_time: std::time::Duration,
    /// Part of `execute_time`: getting the block's instance. Zero for a kept instance; for a
    /// fresh one, waiting for the instance made ahead on the teardown thread, or else creating
    /// it here, including the module's wasm start function if it has one (AssemblyScript guests
    /// do: their top-level initialisation is guest code, counted here).
    pub instantiate_time: std::time::Duration,
    /// Part of `execute_time`: the call of `_start`, host functions included.
    pub start_time: std::time::Duration,
    /// Part of `start_time`: inside host functions (`__get`, `__flush`, ...). `start_time -
    /// host_call_time` is the guest's own code (with the page faults its memory use causes).
    pub host_call_time: std::time::Duration,
    /// Time spent hashing the writes and committing them (with a [`metashrew_storage::PipelinedStore`]:
    /// waiting for the previous block's background write, then handing this one over).
    pub commit_time: std::time::Duration,
}

use metashrew_storage::KeyValues as Pairs;

/// Why a call failed: the guest (the same on every node), or the host's storage under it.
enum Failure {
    Guest(GuestFault),
    Storage(StorageError),
}

impl Failure {
    /// The runtime error: a guest failure as `guest(fault)`, a storage failure as itself.
    fn into_error(self, guest: impl FnOnce(GuestFault) -> RuntimeError) -> RuntimeError {
        match self {
            Failure::Guest(fault) => guest(fault),
            Failure::Storage(err) => RuntimeError::Storage(err),
        }
    }
}

/// What a successful `_start` left behind.
struct StartOutcome {
    pairs: Pairs,
    reads: usize,
    instantiate_time: std::time::Duration,
    start_time: std::time::Duration,
    host_call_time: std::time::Duration,
}

/// A loaded indexer over a store. Share it behind an `Arc`: views and previews run
/// concurrently from any number of threads and never wait for block execution, which is
/// serialised internally.
pub struct MetashrewRuntime<S: Storage> {
    /// Compiled for blocks: no interruption checks (a block has no deadline).
    blocks: Arc<Compiled<S>>,
    /// Compiled for views and previews: epoch interruption enforces their timeout.
    views: Compiled<S>,
    store: Arc<S>,
    config: RuntimeConfig,
    module_hash: [u8; 32],
    /// Serialises block execution; holds the persistent instance when there is one.
    indexer: Mutex<Kept<S>>,
    /// Bounds views and previews running at once to the view engine's memory slots.
    view_gate: Gate,
    /// Finished fresh block instances being torn down, and the next one being made.
    recycler: Recycler<CallContext<S>>,
    _ticker: EpochTicker,
}

/// Turns a wasmtime failure into a readable reason.
fn fault(err: &wasmtime::Error, deadline: Option<&Deadline>, last_log: &str) -> GuestFault {
    if let (Some(Trap::Interrupt), Some(deadline)) = (err.downcast_ref::<Trap>(), deadline) {
        return match deadline.stop() {
            Some(Stop::Cancelled) => GuestFault::Cancelled,
            _ => GuestFault::TimedOut {
                limit: deadline.limit,
            },
        };
    }
    // The root cause says what happened; the wasm backtrace (the outer context) says where.
    let cause = err.root_cause().to_string();
    let outer = err.to_string();
    let message = if outer == cause {
        cause
    } else {
        format!(
            "{cause} ({})",
            outer.trim_end_matches(':').replace('\n', " ")
        )
    };
    GuestFault::Trapped {
        message,
        last_log: (!last_log.is_empty()).then(|| last_log.to_string()),
    }
}

/// Reserves the process's preallocated region, once (later calls only check it): address space
/// at a fixed place for code that allocates in it natively (see `metashrew_support::region`),
/// no RAM. A failure is logged: nothing in the runtime itself needs the region.
fn reserve_region() {
    if let Err(err) = metashrew_support::region::ensure_preallocated_memory() {
        log::warn!("no preallocated region on the host: {err}");
    }
}

impl<S: Storage> MetashrewRuntime<S> {
    /// Loads the indexer at `path`: reserves the preallocated region first (see
    /// `reserve_region`), then as [`MetashrewRuntime::from_bytes`].
    pub fn load(
        path: impl AsRef<Path>,
        store: Arc<S>,
        config: RuntimeConfig,
    ) -> Result<Self, RuntimeError> {
        reserve_region();
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| RuntimeError::ReadModule {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_prepared(&PreparedModule::new(bytes, config)?, store)
    }

    /// Loads an indexer from its wasm bytes: reserves the preallocated region (first thing),
    /// lowers the memory ceiling to the module's declared maximum ([`crate::memory_ceiling`];
    /// [`MetashrewRuntime::config`] then reports the effective ceiling), compiles the module
    /// twice in parallel (for blocks, and with interruption checks for views), checks its
    /// exports, links the ABI and reserves the instance memory slots.
    pub fn from_bytes(
        wasm: &[u8],
        store: Arc<S>,
        config: RuntimeConfig,
    ) -> Result<Self, RuntimeError> {
        reserve_region();
        Self::from_prepared(&PreparedModule::new(wasm.to_vec(), config)?, store)
    }

    /// [`MetashrewRuntime::from_bytes`] for a module already prepared (its hash and effective
    /// configuration computed once, for the host's index identity as well).
    pub fn from_prepared(module: &PreparedModule, store: Arc<S>) -> Result<Self, RuntimeError> {
        reserve_region();
        let (wasm, module_hash, config) = (module.wasm(), module.hash(), module.config().clone());
        let (blocks, views) = std::thread::scope(|scope| {
            let views = scope.spawn(|| compile(wasm, &module_hash, &config, Use::Views));
            let blocks = compile(wasm, &module_hash, &config, Use::Blocks);
            let views = views
                .join()
                .unwrap_or_else(|_| Err(RuntimeError::Config("compilation panicked".into())));
            (blocks, views)
        });
        let (blocks, views) = (blocks?, views?);
        let ticker = EpochTicker::start(&views.engine)?;
        let view_gate = Gate::new(config.max_concurrent_views);
        let runtime = Self {
            blocks: Arc::new(blocks),
            views,
            store,
            config,
            module_hash,
            indexer: Mutex::new(None),
            view_gate,
            recycler: Recycler::default(),
            _ticker: ticker,
        };
        runtime.check_resources()?;
        Ok(runtime)
    }

    /// Fails fast when this host cannot give a guest its configured memory: instantiates once and
    /// grows the memory to the ceiling (address space only; no page is touched), so that the
    /// shortfall shows at start and not in the middle of a block.
    fn check_resources(&self) -> Result<(), RuntimeError> {
        let context = self.context(Use::Blocks, CallKind::View, 0, &[], StateView::Empty);
        let mut store = Self::new_store(&self.blocks, context);
        let instance = Self::instantiate(&self.blocks, &mut store)?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| RuntimeError::InvalidModule("`memory` is not a memory".into()))?;
        let ceiling_pages = self.config.max_memory_bytes / 65_536;
        let missing = ceiling_pages.saturating_sub(memory.size(&store));
        if missing > 0 {
            memory.grow(&mut store, missing).map_err(|e| {
                RuntimeError::Instantiate(format!(
                    "cannot reserve the configured guest memory of {} bytes: {e:#}",
                    self.config.max_memory_bytes
                ))
            })?;
        }
        Ok(())
    }

    /// Whether the compiled module came from [`RuntimeConfig::module_cache_dir`].
    pub fn module_cache_outcome(&self) -> CacheOutcome {
        self.blocks.cache.combine(self.views.cache)
    }

    /// SHA-256 of the module's bytes.
    pub fn module_hash(&self) -> [u8; 32] {
        self.module_hash
    }

    /// The configuration it was loaded with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The store this runtime reads and commits to.
    pub fn storage(&self) -> &Arc<S> {
        &self.store
    }

    /// The highest indexed height (`None`: nothing indexed).
    pub fn tip(&self) -> Result<Option<u32>, RuntimeError> {
        Ok(self.store.tip()?)
    }

    /// The state root after block `height`, if indexed.
    pub fn state_root(&self, height: u32) -> Result<Option<StateRoot>, RuntimeError> {
        Ok(self.store.state_root(height)?)
    }

    /// The hash of the block indexed at `height`.
    pub fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, RuntimeError> {
        Ok(self.store.block_hash(height)?)
    }

    /// A new instance of the module. Failing here is usually the host's doing (typically the
    /// address space for the guest memory cannot be reserved), but a module's wasm start
    /// function, which AssemblyScript guests declare, also runs here and may trap.
    fn instantiate(
        compiled: &Compiled<S>,
        store: &mut Store<CallContext<S>>,
    ) -> Result<Instance, RuntimeError> {
        compiled
            .pre
            .instantiate(store)
            .map_err(|e| RuntimeError::Instantiate(format!("{e:#}")))
    }

    /// `ready` (a kept instance, or one made ahead) running with `context`, or else a new
    /// instance.
    fn block_instance(
        &self,
        ready: Option<BlockInstance<CallContext<S>>>,
        context: CallContext<S>,
    ) -> Result<BlockInstance<CallContext<S>>, RuntimeError> {
        if let Some((mut store, instance)) = ready {
            *store.data_mut() = context;
            return Ok((store, instance));
        }
        let mut store = Self::new_store(&self.blocks, context);
        let instance = Self::instantiate(&self.blocks, &mut store)?;
        Ok((store, instance))
    }

    /// Makes a fresh block instance with a sealed context (see [`Recycler`]); `None` when
    /// instantiation fails, for instance because the start function called the host.
    fn premaker(&self) -> impl FnOnce() -> Option<BlockInstance<CallContext<S>>> + Send + 'static {
        let blocks = self.blocks.clone();
        let context = self
            .context(Use::Blocks, CallKind::Block, 0, &[], StateView::Empty)
            .sealed();
        move || {
            let mut store = Self::new_store(&blocks, context);
            match Self::instantiate(&blocks, &mut store) {
                Ok(instance) => Some((store, instance)),
                Err(err) => {
                    log::debug!("no block instance made ahead: {err}");
                    None
                }
            }
        }
    }

    fn new_store(compiled: &Compiled<S>, context: CallContext<S>) -> Store<CallContext<S>> {
        let mut store = Store::new(&compiled.engine, context);
        store.limiter(|c| &mut c.limits);
        store
    }

    /// The context of a call on the compilation for `usage`, whose memory bound it takes: the
    /// guest memory ceiling for blocks, the view memory bound for views and previews.
    fn context(
        &self,
        usage: Use,
        kind: CallKind,
        height: u32,
        payload: &[u8],
        state: StateView<S>,
    ) -> CallContext<S> {
        let bytes = match usage {
            Use::Blocks => self.config.max_memory_bytes,
            Use::Views => self.config.view_memory_ceiling(),
        };
        CallContext::new(Limits::new(bytes as usize), kind, height, payload, state)
    }

    /// A store on the view compilation for `context`, stopped at `deadline`: the epoch callback
    /// checks it every [`EPOCH_TICK`] of guest code, the host functions on every call.
    fn view_store(&self, context: CallContext<S>, deadline: &Deadline) -> Store<CallContext<S>> {
        let mut store = Self::new_store(&self.views, context.until(deadline.clone()));
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|store| {
            let stop = store.data().deadline.as_ref().and_then(Deadline::stop);
            Ok(match stop {
                Some(_) => UpdateDeadline::Interrupt,
                None => UpdateDeadline::Continue(1),
            })
        });
        store
    }

    /// Tells the guest's SDK that its instance serves a view or a preview, through
    /// [`abi::BEGIN_VIEW_EXPORT`] when the module exports it.
    fn begin_view(store: &mut Store<CallContext<S>>, instance: &Instance) -> Result<(), Failure> {
        match instance.get_typed_func::<(), ()>(&mut *store, abi::BEGIN_VIEW_EXPORT) {
            Ok(begin) => begin
                .call(&mut *store, ())
                .map_err(|e| Self::failure(store, &e)),
            Err(_) => Ok(()),
        }
    }

    /// Runs `_start` in `store`/`instance` and returns what it flushed, how many store reads it
    /// made, and how long the call and its host functions took.
    fn run_start(
        store: &mut Store<CallContext<S>>,
        instance: &Instance,
    ) -> Result<StartOutcome, Failure> {
        let start = instance
            .get_typed_func::<(), ()>(&mut *store, "_start")
            .map_err(|_| Failure::Guest(GuestFault::NoStart))?;
        let started = std::time::Instant::now();
        let called = start.call(&mut *store, ());
        let start_time = started.elapsed();
        if let Err(err) = called {
            return Err(Self::failure(store, &err));
        }
        let context = store.data_mut();
        let pairs = context
            .flushed
            .take()
            .ok_or(Failure::Guest(GuestFault::NoFlush))?;
        Ok(StartOutcome {
            pairs,
            reads: context.store_reads,
            start_time,
            host_call_time: context.host_time,
            instantiate_time: std::time::Duration::ZERO,
        })
    }

    /// Why a call that trapped with `err` failed: the storage failure it hit, if any; for a view
    /// or preview, its memory bound if it grew past it; else the guest's fault with its last log
    /// line.
    fn failure(store: &mut Store<CallContext<S>>, err: &wasmtime::Error) -> Failure {
        let context = store.data_mut();
        if let Some(storage) = context.storage_failure.take() {
            return Failure::Storage(storage);
        }
        if let (Some(_), Some(requested)) = (&context.deadline, context.limits.exceeded) {
            return Failure::Guest(GuestFault::MemoryExceeded {
                limit_bytes: context.limits.bytes() as u64,
                requested_bytes: requested as u64,
            });
        }
        Failure::Guest(fault(err, context.deadline.as_ref(), &context.last_log))
    }

    /// Runs block `height` and commits its writes, touched keys, hash, state root and the new
    /// tip as one unit. Nothing is committed if the guest traps, faults, or does not flush.
    ///
    /// `height` must be the tip + 1 (any height when nothing is indexed yet). During the block,
    /// reads see the state after `height - 1`.
    pub fn process_block(&self, height: u32, block: &[u8]) -> Result<BlockReport, RuntimeError> {
        let mut kept = lock(&self.indexer);
        let tip = self.store.tip()?;
        if let Some(t) = tip
            && Some(height) != t.checked_add(1)
        {
            return Err(RuntimeError::NotNextBlock { height, tip });
        }
        let hash = block_hash(block).ok_or_else(|| RuntimeError::MalformedBlock {
            height,
            reason: format!("{} bytes is shorter than a block header", block.len()),
        })?;
        let (parent_root, state) = match tip {
            Some(t) => (
                self.store.state_root(t)?.ok_or_else(|| {
                    StorageError::Corrupt(format!("no state root stored for the tip {t}"))
                })?,
                StateView::At(self.store.clone(), t),
            ),
            None => (GENESIS_PARENT_ROOT, StateView::Empty),
        };
        let context = self.context(Use::Blocks, CallKind::Block, height, block, state);
        let started = std::time::Instant::now();
        let outcome = match self.config.instance_mode {
            InstanceMode::Fresh => {
                let (mut store, instance) = self.block_instance(self.recycler.wait(), context)?;
                let instantiate_time = started.elapsed();
                let outcome = Self::run_start(&mut store, &instance).map(|outcome| StartOutcome {
                    instantiate_time,
                    ..outcome
                });
                let memory = memory_bytes(&mut store, &instance);
                self.recycler.retire(store, memory, self.premaker());
                outcome
            }
            InstanceMode::Persistent => {
                let (mut store, instance) = self.block_instance(kept.take(), context)?;
                let outcome = Self::run_start(&mut store, &instance);
                if outcome.is_ok() {
                    // Release the reads' handle on the store; the next block sets its own.
                    store.data_mut().state = StateView::Empty;
                    *kept = Some((store, instance));
                }
                outcome
            }
        };
        let outcome = outcome.map_err(|failure| {
            failure.into_error(|fault| RuntimeError::BlockFailed { height, fault })
        })?;
        let execute_time = started.elapsed();
        let commit = Arc::new(BlockCommit::chained(
            height,
            hash,
            &parent_root,
            outcome.pairs,
        ));
        let (state_root, writes_count) = (*commit.state_root(), commit.writes().len());
        if let Err(err) = self.store.commit_shared(commit) {
            // The kept instance has seen writes that are not in the store.
            *kept = None;
            return Err(err.into());
        }
        Ok(BlockReport {
            height,
            block_hash: hash,
            state_root,
            writes: writes_count,
            reads: outcome.reads,
            execute_time,
            instantiate_time: outcome.instantiate_time,
            start_time: outcome.start_time,
            host_call_time: outcome.host_call_time,
            commit_time: started.elapsed() - execute_time,
        })
    }

    /// Removes every block above `height` (a reorg), and the persistent instance with them.
    pub fn rollback_to(&self, height: u32) -> Result<(), RuntimeError> {
        let mut kept = lock(&self.indexer);
        *kept = None;
        self.store.rollback_to(height)?;
        Ok(())
    }

    fn check_height(&self, height: u32) -> Result<(), RuntimeError> {
        let tip = self.store.tip()?;
        match tip {
            Some(t) if height <= t => Ok(()),
            _ => Err(RuntimeError::HeightAboveTip { height, tip }),
        }
    }

    /// Calls view `name` on a read-only instance at `height` (the state after that block). Its
    /// `__flush` changes nothing; it is interrupted after the configured view timeout, and fails
    /// if it grows its memory past the view memory bound.
    pub fn view(&self, name: &str, input: &[u8], height: u32) -> Result<Vec<u8>, RuntimeError> {
        self.view_with(name, input, height, &Cancellation::new())
    }

    /// [`MetashrewRuntime::view`], stopped early (with [`GuestFault::Cancelled`]) when `cancel`
    /// is raised. The time limit runs from when the call gets its view slot.
    pub fn view_with(
        &self,
        name: &str,
        input: &[u8],
        height: u32,
        cancel: &Cancellation,
    ) -> Result<Vec<u8>, RuntimeError> {
        self.check_height(height)?;
        let _pass = self.view_gate.enter();
        let deadline = Deadline::after(self.config.view_timeout, cancel.clone());
        let state = StateView::ViewAt(self.store.clone(), height);
        self.run_view(name, input, height, state, &deadline)
    }

    fn run_view(
        &self,
        name: &str,
        input: &[u8],
        height: u32,
        state: StateView<S>,
        deadline: &Deadline,
    ) -> Result<Vec<u8>, RuntimeError> {
        let failed = |fault: GuestFault| RuntimeError::ViewFailed {
            name: name.to_string(),
            height,
            fault,
        };
        let context = self.context(Use::Views, CallKind::View, height, input, state);
        let mut store = self.view_store(context, deadline);
        let instance = Self::instantiate(&self.views, &mut store)?;
        let func = instance
            .get_typed_func::<(), i32>(&mut store, name)
            .map_err(|_| RuntimeError::MissingExport(format!("{name}: () -> i32")))?;
        Self::begin_view(&mut store, &instance).map_err(|f| f.into_error(failed))?;
        let ptr = func
            .call(&mut store, ())
            .map_err(|e| Self::failure(&mut store, &e).into_error(failed))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| failed(GuestFault::NoMemory))?;
        abi::read_buffer(memory.data(&store), ptr)
            .map_err(|e| failed(GuestFault::BadResult(format!("{e:#}"))))
    }

    /// Runs `block` as block `height` on top of the state at `over` (at most the tip; below
    /// `height - 1` when the blocks between are still to be committed), keeping nothing: its
    /// reads go to the store as a block's do, its writes are thrown away. Read-ahead uses it to
    /// have the store read, ahead of the block, what the block will read. It runs like a
    /// preview's block (the view compilation, the view memory bound, the view timeout, a view
    /// slot), stops early when `cancel` is raised, and returns the reads it made. Its guest may
    /// fail on state it reads as absent; that ends the run and is returned, and changes nothing.
    pub fn speculate(
        &self,
        block: &[u8],
        height: u32,
        over: u32,
        cancel: &Cancellation,
    ) -> Result<usize, RuntimeError> {
        self.check_height(over)?;
        let _pass = self.view_gate.enter();
        let deadline = Deadline::after(self.config.view_timeout, cancel.clone());
        let state = StateView::At(self.store.clone(), over);
        let context = self.context(Use::Views, CallKind::Block, height, block, state);
        let mut store = self.view_store(context, &deadline);
        let instance = Self::instantiate(&self.views, &mut store)?;
        let outcome = Self::begin_view(&mut store, &instance)
            .and_then(|()| Self::run_start(&mut store, &instance));
        match outcome {
            Ok(StartOutcome { reads, .. }) => Ok(reads),
            Err(failure) => {
                Err(failure.into_error(|fault| RuntimeError::BlockFailed { height, fault }))
            }
        }
    }

    /// Runs `block` as block `height + 1` on top of the state at `height` in an isolated
    /// overlay, then view `name` at `height + 1` over that overlay. Nothing reaches the store.
    /// Both parts share one time limit and run under the view memory bound.
    pub fn preview(
        &self,
        block: &[u8],
        name: &str,
        input: &[u8],
        height: u32,
    ) -> Result<Vec<u8>, RuntimeError> {
        self.preview_with(block, name, input, height, &Cancellation::new())
    }

    /// [`MetashrewRuntime::preview`], stopped early when `cancel` is raised.
    pub fn preview_with(
        &self,
        block: &[u8],
        name: &str,
        input: &[u8],
        height: u32,
        cancel: &Cancellation,
    ) -> Result<Vec<u8>, RuntimeError> {
        self.check_height(height)?;
        let next = height.checked_add(1).ok_or(RuntimeError::HeightAboveTip {
            height,
            tip: Some(height),
        })?;
        // One place for both calls: the block's instance is dropped before the view's is made.
        let _pass = self.view_gate.enter();
        let deadline = Deadline::after(self.config.view_timeout, cancel.clone());
        let base = StateView::ViewAt(self.store.clone(), height);
        let context = self.context(Use::Views, CallKind::Block, next, block, base);
        let mut store = self.view_store(context, &deadline);
        let instance = Self::instantiate(&self.views, &mut store)?;
        let StartOutcome { pairs, .. } = Self::begin_view(&mut store, &instance)
            .and_then(|()| Self::run_start(&mut store, &instance))
            .map_err(|failure| {
                failure.into_error(|fault| RuntimeError::BlockFailed {
                    height: next,
                    fault,
                })
            })?;
        drop(store);
        let writes: HashMap<Vec<u8>, Vec<u8>> = pairs.into_iter().collect();
        let overlay = StateView::Overlay {
            writes: Arc::new(writes),
            base: Some((self.store.clone(), height)),
        };
        self.run_view(name, input, next, overlay, &deadline)
    }
}

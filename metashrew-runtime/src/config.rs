//! Runtime settings. The ones marked *identity* change what an indexer computes (for example
//! where a guest runs out of memory): every node of one index must use the same values.

use std::time::Duration;

/// How block execution gets its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceMode {
    /// A fresh instance per block (the default): a block's execution is a function of the
    /// module, its input and its reads only.
    #[default]
    Fresh,
    /// One instance kept across blocks, so the guest's own cache stays warm. It is discarded
    /// after any failure and on rollback. Must give the same roots as `Fresh`. Each block then
    /// starts by cleaning up after the previous one inside the guest (an SDK guest moves the
    /// previous block's values into its cache and frees its maps): with the alkanes indexer,
    /// 60-120 ms after a 45,000-write block, where `Fresh` throws the instance away whole.
    Persistent,
}

/// How the runtime runs guests: memory and stack bounds, view limits, instance recycling, the
/// compiled-module cache. The fields marked *identity* change what an indexer computes; the
/// others never do. `RuntimeConfig::default()` gives the defaults each field states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// *Identity.* The most linear memory a guest may have, in bytes (at most 4 GiB; default
    /// 4 GiB). Growing past it traps, the same way on every machine.
    pub max_memory_bytes: u64,
    /// *Identity.* The most wasm stack a guest may use, in bytes (default 1 MiB).
    pub max_wasm_stack_bytes: usize,
    /// Wall-clock limit of one view call, or of a whole preview (its block part and its view
    /// part share it). Default 10 s.
    pub view_timeout: Duration,
    /// Views and previews running at once; more wait their turn (default 16). Each has a
    /// reserved memory slot (address space only, until used).
    pub max_concurrent_views: usize,
    /// The most linear memory one view or preview may have, in bytes (default 256 MiB, as
    /// Metashrew's `--view-memory-mb`); never more than `max_memory_bytes`. Growing past it
    /// fails the call with [`crate::GuestFault::MemoryExceeded`], and the memory is given back
    /// when the call ends. Not part of the identity: views write no state. With every view
    /// slot busy, views hold at most `max_concurrent_views` times this.
    pub view_memory_bytes: u64,
    /// How blocks get their instance (default [`InstanceMode::Fresh`]).
    pub instance_mode: InstanceMode,
    /// Refuse modules that import functions the host does not provide. When false (Metashrew's
    /// behaviour) such imports are linked as traps: the module loads, and calling one fails the
    /// block with the import's name. Default false.
    pub reject_unknown_imports: bool,
    /// A directory where compiled modules are kept, keyed by the module's hash and every
    /// engine setting that affects code, so that loading the same module again does not
    /// compile it; a corrupt or stale entry is detected and rebuilt. `None` (the default):
    /// every load compiles.
    pub module_cache_dir: Option<std::path::PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_memory_bytes: 4 << 30,
            max_wasm_stack_bytes: 1 << 20,
            view_timeout: Duration::from_secs(10),
            max_concurrent_views: 16,
            view_memory_bytes: 256 << 20,
            instance_mode: InstanceMode::Fresh,
            reject_unknown_imports: false,
            module_cache_dir: None,
        }
    }
}

impl RuntimeConfig {
    /// The memory bound of a view or preview: `view_memory_bytes`, at most the block ceiling.
    pub fn view_memory_ceiling(&self) -> u64 {
        self.view_memory_bytes.min(self.max_memory_bytes)
    }
}

/// How often the runtime's clock advances wasmtime's epoch (the granularity of view timeouts).
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

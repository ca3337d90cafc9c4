//! Compiling the module: one wasmtime engine per use (blocks, views), its pooled memory slots,
//! the export checks and the ABI's linking.

use wasmtime::{Engine, ExternType, InstancePre, Linker, Module};

use crate::abi;
use crate::config::RuntimeConfig;
use crate::context::CallContext;
use crate::error::RuntimeError;
use crate::module_cache::{self, CacheOutcome};
use metashrew_storage::Storage;

/// One compilation of the module, ready to instantiate.
pub(crate) struct Compiled<S: Storage> {
    pub(crate) engine: Engine,
    pub(crate) pre: InstancePre<CallContext<S>>,
    /// Where the compiled code came from.
    pub(crate) cache: CacheOutcome,
}

/// Bytes of a block instance's memory kept resident between blocks (per slot; two slots).
const BLOCK_MEMORY_KEEP_RESIDENT: usize = 256 << 20;

/// Which calls a compilation serves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Blocks,
    Views,
}

fn engine_for(config: &RuntimeConfig, usage: Use) -> Result<Engine, RuntimeError> {
    if config.max_memory_bytes > 4 << 30 {
        return Err(RuntimeError::Config(format!(
            "max_memory_bytes {} is above the 4 GiB of wasm32",
            config.max_memory_bytes
        )));
    }
    // Threads (shared memories, atomics waits) are not compiled into this wasmtime build
    // (no `threads` feature), so a module that uses them fails to load.
    let mut c = wasmtime::Config::new();
    c.cranelift_nan_canonicalization(true)
        .relaxed_simd_deterministic(true)
        .max_wasm_stack(config.max_wasm_stack_bytes)
        // The checks cost about 15% of a heavy block's guest time, and only views need them.
        .epoch_interruption(usage == Use::Views);
    // Instances come from a pool of memory slots reserved once, instead of a mapping made and
    // unmapped per call (which costs system time and TLB shootdowns on every core).
    let slots = match usage {
        // One block at a time (a kept instance, or the load-time resource check).
        Use::Blocks => 2,
        Use::Views => config.max_concurrent_views.max(1) as u32,
    };
    let slot_bytes = match usage {
        Use::Blocks => config.max_memory_bytes,
        Use::Views => config.view_memory_ceiling(),
    };
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .max_memory_size(slot_bytes as usize);
    if usage == Use::Blocks {
        // A fresh instance per block faults in (and the kernel zeroes) every page its heap
        // touches; AssemblyScript guests grow tens of MB per heavy block. Keeping the touched
        // pages of a slot resident and resetting them to zero in place (only those the last
        // instance touched, found with PAGEMAP_SCAN where the kernel has it) avoids the faults.
        // Every instance still starts from all-zero memory.
        pool.linear_memory_keep_resident(BLOCK_MEMORY_KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto);
    }
    c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&c).map_err(|e| {
        RuntimeError::Instantiate(format!(
            "cannot reserve {slots} guest memory slot(s) of {slot_bytes} bytes: {e:#}"
        ))
    })
}

/// Checks the exports every indexer needs.
fn check_module(module: &Module) -> Result<(), RuntimeError> {
    match module.get_export("memory") {
        Some(ExternType::Memory(_)) => {}
        Some(_) => {
            return Err(RuntimeError::InvalidModule(
                "`memory` is not a memory".into(),
            ));
        }
        None => {
            return Err(RuntimeError::InvalidModule(
                "the module exports no `memory`".into(),
            ));
        }
    }
    match module.get_export("_start") {
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => Ok(()),
        Some(_) => Err(RuntimeError::InvalidModule(
            "`_start` must be a function () -> ()".into(),
        )),
        None => Err(RuntimeError::InvalidModule(
            "the module exports no `_start`".into(),
        )),
    }
}

/// Compiles `wasm` for one use, checks its exports and links the ABI.
pub(crate) fn compile<S: Storage>(
    wasm: &[u8],
    module_hash: &[u8; 32],
    config: &RuntimeConfig,
    usage: Use,
) -> Result<Compiled<S>, RuntimeError> {
    let engine = engine_for(config, usage)?;
    let (module, cache) = match &config.module_cache_dir {
        Some(dir) => {
            let name = match usage {
                Use::Blocks => "blocks",
                Use::Views => "views",
            };
            module_cache::load(dir, &engine, wasm, module_hash, name)
        }
        None => Module::new(&engine, wasm).map(|m| (m, CacheOutcome::Off)),
    }
    .map_err(|e| RuntimeError::InvalidModule(format!("{e:#}")))?;
    check_module(&module)?;
    let mut linker = Linker::new(&engine);
    abi::define(&mut linker).map_err(RuntimeError::engine)?;
    let unknown: Vec<String> = module
        .imports()
        .filter(|i| !abi::provides(i.module(), i.name()))
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    if !unknown.is_empty() {
        if config.reject_unknown_imports {
            return Err(RuntimeError::InvalidModule(format!(
                "imports the host does not provide: {}",
                unknown.join(", ")
            )));
        }
        if usage == Use::Blocks {
            log::warn!(
                "imports linked as traps (calling one fails the call): {}",
                unknown.join(", ")
            );
        }
        linker
            .define_unknown_imports_as_traps(&module)
            .map_err(RuntimeError::engine)?;
    }
    let pre = linker
        .instantiate_pre(&module)
        .map_err(|e| RuntimeError::InvalidModule(format!("{e:#}")))?;
    Ok(Compiled { engine, pre, cache })
}

/// Refuses a view memory bound below what the module's memory starts at: no view could run.
pub(crate) fn check_view_memory(wasm: &[u8], config: &RuntimeConfig) -> Result<(), RuntimeError> {
    let bound = config.view_memory_ceiling();
    let minimum =
        crate::declared_memory(wasm)?.map_or(0, |m| m.minimum_pages.saturating_mul(65_536));
    if minimum > bound {
        return Err(RuntimeError::Config(format!(
            "the module's memory starts at {} MiB, above the view memory bound of {} MiB \
             (--view-memory-mib): no view could run",
            minimum.div_ceil(1 << 20),
            bound >> 20
        )));
    }
    Ok(())
}

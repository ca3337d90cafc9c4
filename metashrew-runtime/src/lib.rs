//! The Metashrew host: runs WebAssembly indexers deterministically over versioned storage.
//!
//! * [`MetashrewRuntime`] loads an indexer ([`MetashrewRuntime::load`]), runs blocks
//!   ([`MetashrewRuntime::process_block`]: one atomic commit each), answers views at any
//!   height ([`MetashrewRuntime::view`]) and previews blocks without writing
//!   ([`MetashrewRuntime::preview`]).
//! * [`storage`]: the [`Storage`] trait (versioned by height, atomic block commits, rollback
//!   through touched-key lists) and the in-memory [`MemStore`].
//! * [`state_root`]: the exact state-root function.
//! * The `env` host functions of Metashrew's guest ABI are linked by the runtime (see the
//!   repository's `../shared/reference` notes for the ABI).
//!
//! Determinism: NaN canonicalisation, deterministic relaxed SIMD, no threads, a bounded wasm
//! stack and a configured memory ceiling that traps when exceeded ([`RuntimeConfig`]); by default
//! every block runs in a fresh instance. Any trap, host fault or missing flush fails the block and
//! commits nothing.

#![deny(missing_docs)]

mod abi;
mod bounds;
mod config;
mod context;
mod error;
mod gate;
mod memory_limits;
mod module_cache;
mod runtime;

pub use abi::BEGIN_VIEW_EXPORT;
pub use bounds::Cancellation;
pub use config::{EPOCH_TICK, InstanceMode, RuntimeConfig};
pub use error::{GuestFault, RuntimeError};
pub use memory_limits::{DeclaredMemory, declared_memory, memory_ceiling};
/// The storage the runtime reads and commits to (the `metashrew-storage` crate).
pub use metashrew_storage as storage;
pub use metashrew_storage::state_root;
pub use metashrew_storage::{
    BlockCommit, CachedStore, KeyValues, MemStore, PipelinedStore, Storage, StorageError,
};
pub use module_cache::{CacheOutcome, KEPT_ENTRIES};
pub use runtime::{BlockReport, MetashrewRuntime};

//! The Metashrew host: runs WebAssembly indexers deterministically over versioned storage.
//!
//! * [`MetashrewRuntime`] loads an indexer ([`MetashrewRuntime::load`]), runs blocks
//!   ([`MetashrewRuntime::process_block`]: one atomic commit each), answers views at any
//!   height ([`MetashrewRuntime::view`]) and previews blocks without writing
//!   ([`MetashrewRuntime::preview`]).
//! * [`storage`]: the [`Storage`] trait (versioned by height, atomic block commits, rollback
//!   through touched-key lists) and the in-memory [`MemStore`].
//! * [`state_root`]: the exact state-root function.
//! * [`abi`]: the `env` host functions of Metashrew's guest ABI.
//!
//! Determinism: NaN canonicalisation, deterministic relaxed SIMD, no threads, a bounded wasm
//! stack and a configured memory ceiling that traps when exceeded ([`RuntimeConfig`]); by default
//! every block runs in a fresh instance. Any trap, host fault or missing flush fails the block and
//! commits nothing.

pub mod abi;
pub mod config;
pub mod context;
pub mod error;
mod gate;
pub mod memory_limits;
pub mod runtime;
pub mod state_root;
pub mod storage;

pub use config::{InstanceMode, RuntimeConfig};
pub use error::RuntimeError;
pub use memory_limits::memory_ceiling;
pub use runtime::{BlockReport, MetashrewRuntime};
pub use storage::{
    BlockCommit, CachedStore, KeyValues, MemStore, PipelinedStore, Storage, StorageError,
};

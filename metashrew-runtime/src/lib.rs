//! The Metashrew host: runs WebAssembly indexers deterministically over versioned storage.
//!
//! * [`MetashrewRuntime`] loads an indexer ([`MetashrewRuntime::load`]), runs blocks
//!   ([`MetashrewRuntime::process_block`]: one atomic commit each), answers views at any
//!   height ([`MetashrewRuntime::view`]) and previews blocks without writing
//!   ([`MetashrewRuntime::preview`]).
//! * It runs over any [`metashrew_storage::Storage`] (versioned by height, atomic block
//!   commits, rollback through touched-key lists), such as the in-memory
//!   [`metashrew_storage::MemStore`]; storage types come from `metashrew-storage` only. The
//!   state root is [`metashrew_storage::state_root`].
//! * The `env` host functions of Metashrew's guest ABI are linked by the runtime (their names:
//!   the module's `abi`, checked against what is linked).
//!
//! Determinism: NaN canonicalisation, deterministic relaxed SIMD, no threads, a bounded wasm
//! stack and a configured memory ceiling that traps when exceeded ([`RuntimeConfig`]); by default
//! every block runs in a fresh instance. Any trap, host fault or missing flush fails the block and
//! commits nothing.
//!
//! A guest written in WAT, one block and one view, over an in-memory store:
//!
//! ```
//! use std::sync::Arc;
//! use metashrew_runtime::{MetashrewRuntime, RuntimeConfig};
//! use metashrew_storage::MemStore;
//!
//! // Buffers are length-prefixed: an empty flush at 0x104, the view's answer "hi" at 0x10c.
//! let wasm = wat::parse_str(
//!     r#"(module
//!          (import "env" "__flush" (func $flush (param i32)))
//!          (memory (export "memory") 1)
//!          (data (i32.const 0x100) "\00\00\00\00\00\00\00\00\02\00\00\00hi")
//!          (func (export "_start") (call $flush (i32.const 0x104)))
//!          (func (export "hello") (result i32) (i32.const 0x10c)))"#,
//! )?;
//! let runtime = MetashrewRuntime::from_bytes(&wasm, Arc::new(MemStore::new()), RuntimeConfig::default())?;
//! let report = runtime.process_block(0, &[0u8; 80])?;
//! assert_eq!((report.height, report.writes), (0, 0));
//! assert_eq!(runtime.view("hello", &[], 0)?, b"hi");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod abi;
mod bounds;
mod compile;
mod config;
mod context;
mod error;
mod gate;
mod locks;
mod memory_limits;
mod module_cache;
mod prepared;
mod recycle;
mod runtime;

pub use abi::BEGIN_VIEW_EXPORT;
pub use bounds::Cancellation;
pub use config::{EPOCH_TICK, InstanceMode, RuntimeConfig};
pub use error::{GuestFault, RuntimeError};
pub use memory_limits::{DeclaredMemory, declared_memory, memory_ceiling};
pub use module_cache::{CacheOutcome, KEPT_ENTRIES};
pub use prepared::PreparedModule;
pub use runtime::{BlockReport, MetashrewRuntime};

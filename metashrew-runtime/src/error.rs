//! Errors of the runtime.

use std::time::Duration;

use metashrew_storage::StorageError;

/// Why the runtime could not load a module, run a block or answer a view.
///
/// The variants say whose fault it was: the module or the configuration (refused at load), the
/// guest (deterministic: every node fails the same way, see [`GuestFault`]), the caller (a
/// height or block it should not have asked for), or this host (storage, engine, instances).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The module file could not be read.
    #[error("cannot read the indexer module {path}: {source}")]
    ReadModule {
        /// The path given.
        path: String,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a module this host can run: invalid wasm, a missing or mistyped
    /// export, an import the host does not provide, a declared memory it cannot give.
    #[error("invalid indexer module: {0}")]
    InvalidModule(String),
    /// A [`crate::RuntimeConfig`] value is out of range.
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    /// The host could not create an instance (address space, memory reservation): this host's
    /// limits, not the guest's fault.
    #[error(
        "the host cannot instantiate the guest (not a guest failure; check memory and address-space limits): {0}"
    )]
    Instantiate(String),
    /// The guest failed on a block (or on a preview's block): nothing was committed, and every
    /// node running the same module fails there the same way.
    #[error("block {height} failed: {fault}")]
    BlockFailed {
        /// The block's height.
        height: u32,
        /// What the guest did.
        fault: GuestFault,
    },
    /// `process_block` was given a height other than the tip + 1.
    #[error("block {height} is not the next block (the tip is {tip:?})")]
    NotNextBlock {
        /// The height asked for.
        height: u32,
        /// The indexed tip (`None`: nothing indexed).
        tip: Option<u32>,
    },
    /// The block bytes have no 80-byte header to hash.
    #[error("block at height {height} is malformed: {reason}")]
    MalformedBlock {
        /// The height it was offered at.
        height: u32,
        /// What is wrong with it.
        reason: String,
    },
    /// The guest failed in a view (or a preview's view).
    #[error("view {name} at height {height} failed: {fault}")]
    ViewFailed {
        /// The view function's export name.
        name: String,
        /// The height it was called at.
        height: u32,
        /// What the guest did.
        fault: GuestFault,
    },
    /// A read at a height the store does not have yet.
    #[error("height {height} is above the indexed tip {tip:?}")]
    HeightAboveTip {
        /// The height asked for.
        height: u32,
        /// The indexed tip (`None`: nothing indexed).
        tip: Option<u32>,
    },
    /// A view was asked for by a name the module does not export as `() -> i32`.
    #[error("the guest has no export {0} of the right type")]
    MissingExport(String),
    /// The store failed under a block or a view: this host's disk, retryable, never the
    /// guest's fault.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// wasmtime failed in a way none of the above covers.
    #[error("wasm engine error: {0}")]
    Engine(String),
}

impl RuntimeError {
    pub(crate) fn engine(err: impl std::fmt::Display) -> Self {
        RuntimeError::Engine(format!("{err:#}"))
    }
}

/// What a guest did that ended its call. Deterministic: the same module on the same input does
/// the same on every node, except [`GuestFault::TimedOut`], [`GuestFault::Cancelled`] and
/// [`GuestFault::MemoryExceeded`], which only views and previews have (their bounds are the
/// host's, not the index's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestFault {
    /// The call trapped: a wasm trap (`unreachable`, an out-of-bounds access, stack overflow,
    /// memory it could not grow), an AssemblyScript `abort`, a Rust panic, or a host function
    /// refusing its arguments.
    Trapped {
        /// The trap's cause as wasmtime states it, then where (the wasm backtrace).
        message: String,
        /// The guest's last `__log` line before it trapped, if it logged anything.
        last_log: Option<String>,
    },
    /// A view or preview ran past its time limit and was interrupted.
    TimedOut {
        /// The limit it exceeded.
        limit: Duration,
    },
    /// A view or preview was cancelled by its caller (its client went away).
    Cancelled,
    /// A view or preview grew its memory past its bound (`--view-memory-mib`).
    MemoryExceeded {
        /// The bound, in bytes.
        limit_bytes: u64,
        /// The size the guest asked for, in bytes.
        requested_bytes: u64,
    },
    /// The module has no `_start: () -> ()` to run a block with.
    NoStart,
    /// `_start` returned without calling `__flush`: the block's writes were never handed over.
    NoFlush,
    /// The guest exports no `memory` to read a view's result from.
    NoMemory,
    /// The view returned a pointer that is not a valid length-prefixed result.
    BadResult(String),
}

impl std::fmt::Display for GuestFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestFault::Trapped { message, last_log } => {
                f.write_str(message)?;
                match last_log {
                    Some(line) => write!(f, "; last guest log: {line}"),
                    None => Ok(()),
                }
            }
            GuestFault::TimedOut { limit } => {
                write!(f, "interrupted after exceeding its time limit of {limit:?}")
            }
            GuestFault::Cancelled => f.write_str("cancelled by its caller"),
            GuestFault::MemoryExceeded {
                limit_bytes,
                requested_bytes,
            } => write!(
                f,
                "asked for {} MiB of memory, past the view memory bound of {} MiB",
                requested_bytes.div_ceil(1 << 20),
                limit_bytes >> 20
            ),
            GuestFault::NoStart => f.write_str("the module has no `_start: () -> ()` export"),
            GuestFault::NoFlush => f.write_str("_start returned without calling __flush"),
            GuestFault::NoMemory => f.write_str("the guest exports no memory"),
            GuestFault::BadResult(why) => write!(f, "bad result: {why}"),
        }
    }
}

//! Errors of the runtime.

use crate::storage::StorageError;

/// Why the runtime could not load a module, run a block or answer a view.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot read the indexer module {path}: {source}")]
    ReadModule {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid indexer module: {0}")]
    InvalidModule(String),
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    #[error(
        "the host cannot instantiate the guest (not a guest failure; check memory and address-space limits): {0}"
    )]
    Instantiate(String),
    #[error("block {height} failed: {reason}")]
    BlockFailed { height: u32, reason: String },
    #[error("block {height} is not the next block (the tip is {tip:?})")]
    NotNextBlock { height: u32, tip: Option<u32> },
    #[error("block at height {height} is malformed: {reason}")]
    MalformedBlock { height: u32, reason: String },
    #[error("view {name} at height {height} failed: {reason}")]
    ViewFailed {
        name: String,
        height: u32,
        reason: String,
    },
    #[error("height {height} is above the indexed tip {tip:?}")]
    HeightAboveTip { height: u32, tip: Option<u32> },
    #[error("the guest has no export {0} of the right type")]
    MissingExport(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("wasm engine error: {0}")]
    Engine(String),
}

impl RuntimeError {
    pub(crate) fn engine(err: impl std::fmt::Display) -> Self {
        RuntimeError::Engine(format!("{err:#}"))
    }
}

//! rockshrew: the Metashrew daemon, as a library (the binary is a thin `main`).
//!
//! Data flows one way: [`source`] (Bitcoin Core or block files) -> [`prefetch`] -> [`sync`]
//! (checks and executes blocks through `metashrew-runtime`) -> [`store`] (RocksDB) -> [`rpc`]
//! (JSON-RPC views, previews, heights, hashes, roots), with [`metrics`] beside them.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod abandoned;
pub mod admin;
pub mod cli;
pub mod daemon;
pub mod fd_budget;
pub mod metrics;
pub mod placement;
pub mod pow;
pub mod prefetch;
mod replica;
pub mod rpc;
pub mod source;
pub mod sync;
pub mod tools;

/// The RocksDB store, a crate of its own (`rockshrew-store`) so that tools which only read
/// databases do not build the wasm runtime.
pub use rockshrew_store as store;

//! rockshrew: the Metashrew daemon, as a library (the binary is a thin `main`).
//!
//! Data flows one way: [`source`] (Bitcoin Core or block files) -> `prefetch` -> `sync`
//! (checks each block, its proof of work with [`pow`], and executes it through
//! `metashrew-runtime`) -> [`store`] (RocksDB) -> `rpc` (JSON-RPC views, previews, heights,
//! hashes, roots), with `metrics` beside them. `daemon` starts an indexer (`primary`) or a
//! read replica (`replica`), both set up by `setup`. A primary may run several indexers
//! ([`indexers`] names them): one block source, shared by them (`source::shared`), and for
//! each its own namespace, sync loop (`lanes` runs them) and endpoint.
//!
//! Public are what the binary, the tests and the benchmark use: [`cli`], [`daemon`],
//! [`tools`], [`source`], [`pow`], [`placement`] and [`store`]; the rest is private.

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod abandoned;
mod admin;
pub mod cli;
pub mod daemon;
mod device_reads;
mod fd_budget;
pub mod indexers;
pub mod inspect;
mod lanes;
mod metrics;
pub mod placement;
pub mod pow;
mod prefetch;
mod primary;
pub mod read_ahead;
mod replica;
mod rewind;
mod rpc;
mod setup;
pub mod source;
mod sub_blocks;
mod sync;
pub mod tools;

/// The RocksDB store, a crate of its own (`rockshrew-store`) so that tools which only read
/// databases do not build the wasm runtime.
pub use rockshrew_store as store;

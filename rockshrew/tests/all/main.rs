//! The daemon's integration tests, in one binary (one link of RocksDB and wasmtime instead of
//! one per file). Each module runs the real `rockshrew` binary, against a fake Bitcoin Core or
//! block files.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod block_files;
mod crash;
mod daemon;
mod disk_faults;
mod hostile_clients;
mod multi;
mod network;
mod operator;
mod power_loss;
mod read_ahead;
mod replicas;

//! The workspace-wide integration tests that can share a process, in one binary: the example
//! guests built to wasm32 and run by the runtime, hostile and broken guests, determinism, the
//! module cache, storage failures. The region tests (`region`, `region_allocator`,
//! `region_rss`) are binaries of their own: the region is process-wide.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod assemblyscript_traits;
mod compat_guest;
mod contracts_guest;
mod determinism;
mod guests_wasm;
mod hostile_guests;
mod module_cache;
mod runtime_faults;
mod runtime_guests;
mod spendables_native;
mod storage_failures;

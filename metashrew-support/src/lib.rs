//! Code shared by Metashrew guests (wasm32) and hosts.
//!
//! Metashrew's modules, at Metashrew's paths and with its signatures: [`address`], [`block`],
//! [`byte_view`], [`compat`], [`index_pointer`], [`proto`], [`utils`]. Our additions:
//!
//! * [`region`]: the preallocated memory region ([`ensure_preallocated_memory`]) and its heap;
//! * [`region_alloc`]: the global allocator that puts chosen allocations into the region;
//! * [`lru_cache`]: the memory-bounded LRU cache (and Metashrew's cache API);
//!
//! This crate builds on Rust 1.86 (the toolchain alkanes-rs pins), for wasm32 and natively.

#![deny(missing_docs)]

pub mod address;
pub mod block;
pub mod byte_view;
pub mod compat;
pub mod index_pointer;
pub mod lru_cache;
pub mod proto;
pub mod region;
pub mod region_alloc;
pub mod utils;

pub use byte_view::ByteView;
pub use index_pointer::KeyValuePointer;
pub use lru_cache::{
    CacheAllocationMode, CacheStats, MemoryBoundedLru, api_cache_get, api_cache_remove,
    api_cache_set, clear_lru_cache, clear_view_height, flush_to_lru, force_evict_to_target,
    get_cache_allocation_mode, get_cache_stats, get_height_partitioned_cache, get_lru_cache,
    get_total_memory_usage, get_view_height, initialize_lru_cache, is_lru_cache_initialized,
    set_cache_allocation_mode, set_height_partitioned_cache, set_lru_cache, set_view_height,
};
pub use region::{Region, RegionError, ensure_preallocated_memory, set_region_size};

//! The guest SDK for Metashrew indexers.
//!
//! An indexer is a `wasm32-unknown-unknown` cdylib whose `_start` handles one block: it reads its
//! input (`u32 LE height ++ raw block`) with [`input`], reads state with [`get`] (the state after
//! the previous block, plus this block's own writes), writes with [`set`], and ends with
//! [`flush`]. View functions read the state at a height and return bytes. [`export_indexer!`] and
//! [`export_view!`] generate those exports from plain Rust functions; see the crate README.
//!
//! Reads go: this block's writes and earlier reads, then the LRU cache (kept across blocks when
//! the host keeps the instance), then the host. The cache lives in the preallocated region, and a
//! read makes the same general-heap allocations whether it hits or misses the cache, so a guest
//! cannot observe the cache's history through its heap.
//!
//! On a native target the host imports are replaced by [`mock`], so indexer logic can be tested
//! with plain `cargo test`:
//!
//! ```
//! use std::sync::Arc;
//!
//! // An indexer that counts blocks under `/count`.
//! fn index(_height: u32, _block: &[u8]) -> Result<(), std::convert::Infallible> {
//!     let key = Arc::new(b"/count".to_vec());
//!     let count = metashrew_core::get(key.clone());
//!     let next = count.first().copied().unwrap_or(0) + 1;
//!     metashrew_core::set(key, Arc::new(vec![next]));
//!     Ok(())
//! }
//!
//! for height in 0..3 {
//!     metashrew_core::mock::set_input(height, b"a block");
//!     metashrew_core::index_block(index);
//! }
//! assert_eq!(metashrew_core::mock::get_state(b"/count"), vec![3]);
//! ```

#![deny(missing_docs)]

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use metashrew_support::compat::to_arraybuffer_layout;
use metashrew_support::lru_cache::{self, CacheAllocationMode, CacheStats, storage_cache_key};
use metashrew_support::proto::encode_flush_arraybuffer;
use metashrew_support::region::ensure_preallocated_memory;

#[cfg(all(target_arch = "wasm32", feature = "region-allocator"))]
mod allocator;
pub mod compat;
mod host;
pub mod imports;
pub mod index_pointer;
#[cfg(any(not(target_arch = "wasm32"), feature = "test-utils"))]
pub mod mock;
pub mod stdio;

/// Metashrew's protobuf messages, at its path `metashrew_core::proto::metashrew`.
pub mod proto {
    pub use metashrew_support::proto::metashrew;
}

pub use compat::export_bytes;
pub use metashrew_support;
pub use stdio::stdout;

/// A fast fixed-seed hasher: iteration order of the block's maps never depends on heap
/// addresses or on the process.
pub use metashrew_support::lru_cache::FixedState;

/// The map type of Metashrew's `get_cache()`.
pub type MetashrewCache = HashMap<Arc<Vec<u8>>, Arc<Vec<u8>>>;

/// This block's reads and writes, by key.
pub type BlockCache = HashMap<Arc<Vec<u8>>, Arc<Vec<u8>>, FixedState>;

#[derive(Default)]
struct BlockState {
    /// Values read or written during this block.
    cache: BlockCache,
    /// Written keys, in the order first set.
    to_flush: Vec<Arc<Vec<u8>>>,
    written: HashSet<Arc<Vec<u8>>, FixedState>,
}

thread_local! {
    static BLOCK: RefCell<Option<BlockState>> = const { RefCell::new(None) };
    static INITIALIZED: Cell<bool> = const { Cell::new(false) };
    /// The last flushed block's reads and writes, moved into the cache when (if) this instance
    /// runs another block. An instance used for one block only never pays for filling the cache.
    static PREVIOUS: RefCell<Option<BlockCache>> = const { RefCell::new(None) };
    /// Bumped on every change of [`BLOCK`].
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    /// The last [`get_cache`] snapshot and the generation it was taken at.
    static SNAPSHOT: Cell<Option<(u64, &'static MetashrewCache)>> = const { Cell::new(None) };
}

/// Entry of every SDK call that touches state: initialises, then settles the previous block.
fn enter() {
    initialize();
    let Some(previous) = PREVIOUS.with(|p| p.borrow_mut().take()) else {
        return;
    };
    lru_cache::with_lru_cache(|cache| {
        for (k, v) in &previous {
            let cache_key = storage_cache_key(k);
            if cache.peek(&cache_key) != Some(&v[..]) {
                cache.put(&cache_key, v);
            }
        }
    });
    drop(previous);
}

fn with_block<R>(f: impl FnOnce(&mut BlockState) -> R) -> R {
    BLOCK.with(|b| f(b.borrow_mut().get_or_insert_with(BlockState::default)))
}

/// Takes the block state out, leaving none.
fn take_block() -> Option<BlockState> {
    changed();
    BLOCK.with(|b| b.borrow_mut().take())
}

/// Whether the guest cache may be used: only where its memory cannot touch the general heap
/// (inside the region in a guest with the SDK's allocator; anywhere on a native host).
const CACHE_ALLOWED: bool = cfg!(any(
    not(target_arch = "wasm32"),
    feature = "region-allocator"
));

/// Marks this instance as serving a view, before anything else runs in it: it then reserves no
/// preallocated region, and so has no guest cache. A view instance serves one call, so a cache
/// would only be filled, never reused, and the region's 1 GiB of address space would count
/// against the host's view memory bound (`--view-memory-mib`, 256 MiB by default). What a view
/// answers never depends on the cache.
///
/// This host calls it through the export `__metashrew_begin_view` before every view, so that
/// views written in Metashrew's style (an export that calls [`input`] itself) get it too. A host
/// that does not know the export never calls it, and views reserve the region as before. Does
/// nothing once the SDK is initialised, and nothing on a native host (whose one region the
/// whole process shares).
pub fn begin_view() {
    #[cfg(target_arch = "wasm32")]
    if !INITIALIZED.with(Cell::get) {
        // Refused only when the region is already reserved, which leaves it as it is.
        let _ = metashrew_support::region::set_region_size(0);
    }
}

/// The export through which the host calls [`begin_view`] (its name is the host's
/// `metashrew_runtime` `BEGIN_VIEW_EXPORT`).
#[cfg(target_arch = "wasm32")]
#[unsafe(export_name = "__metashrew_begin_view")]
pub extern "C" fn begin_view_export() {
    begin_view();
}

/// Prepares the SDK; idempotent. Its first action is reserving the preallocated region, so the
/// region sits at the same place in every instance. Then it installs the panic hook (in wasm)
/// and creates the LRU cache. It never changes the cache mode.
pub fn initialize() {
    if INITIALIZED.with(Cell::get) {
        return;
    }
    INITIALIZED.with(|i| i.set(true));
    let region = ensure_preallocated_memory();
    #[cfg(target_arch = "wasm32")]
    std::panic::set_hook(Box::new(compat::panic_hook));
    if CACHE_ALLOWED && region.is_ok() {
        lru_cache::initialize_lru_cache();
    }
}

/// The input: `u32 LE height ++ payload` (the raw block for `_start`, the request for a view).
pub fn input() -> Vec<u8> {
    enter();
    let n = host::host_input_len();
    let mut buffer = vec![0u8; n + 4];
    buffer[..4].copy_from_slice(&(n as u32).to_le_bytes());
    host::host_load_input(&mut buffer);
    buffer.drain(..4);
    buffer
}

/// The value of `key` (empty when absent): this block's writes, then the cache, then the host
/// (state after the previous block, or at the view height).
pub fn get(key: Arc<Vec<u8>>) -> Arc<Vec<u8>> {
    enter();
    if let Some(value) = with_block(|b| b.cache.get(&key).cloned()) {
        return value;
    }
    let value = fetch(&key);
    changed();
    with_block(|b| b.cache.insert(key, value.clone()));
    value
}

/// Reads `key` from the cache or the host.
///
/// Both paths make the same general-heap allocations, of the same sizes, in the same order: the
/// key buffer, a zeroed value buffer of `len + 4` bytes, then the `Arc`; and they free the key
/// buffer at the same point. Everything the cache does happens inside the region.
fn fetch(key: &[u8]) -> Arc<Vec<u8>> {
    let mut key_buffer = to_arraybuffer_layout(key);
    let cache_key = storage_cache_key(key);
    let cached = lru_cache::with_lru_cache(|cache| {
        cache.get(&cache_key).map(|value| {
            let mut buffer = vec![0u8; value.len() + 4];
            buffer[..4].copy_from_slice(&(value.len() as u32).to_le_bytes());
            buffer[4..].copy_from_slice(value);
            buffer
        })
    })
    .flatten();
    let mut buffer = match cached {
        Some(buffer) => buffer,
        None => {
            let n = host::host_get_len(&mut key_buffer);
            let mut buffer = vec![0u8; n + 4];
            buffer[..4].copy_from_slice(&(n as u32).to_le_bytes());
            host::host_get(&mut key_buffer, &mut buffer);
            buffer
        }
    };
    drop(key_buffer);
    drop(cache_key);
    buffer.drain(..4);
    Arc::new(buffer)
}

/// Writes `value` at `key` for this block; visible to later [`get`]s at once, sent at [`flush`].
pub fn set(key: Arc<Vec<u8>>, value: Arc<Vec<u8>>) {
    enter();
    changed();
    with_block(|b| {
        if b.written.insert(key.clone()) {
            b.to_flush.push(key.clone());
        }
        b.cache.insert(key, value);
    });
}

/// Sends this block's writes to the host: keys in the order first set, each with its last value.
/// Always calls `__flush`, even with nothing to write (the host takes it as the completion
/// signal). Afterwards the block state is empty; when indexing, the block's values go to the cache
/// as soon as this instance starts another block.
pub fn flush() {
    enter();
    let state = take_block().unwrap_or_default();
    let pairs: Vec<(&[u8], &[u8])> = state
        .to_flush
        .iter()
        .filter_map(|k| state.cache.get(k).map(|v| (&k[..], &v[..])))
        .collect();
    debug_log!(
        "metashrew-core: flushing {} keys ({} values read or written this block)",
        pairs.len(),
        state.cache.len()
    );
    let mut buffer = encode_flush_arraybuffer(pairs.iter().flat_map(|(k, v)| [*k, *v]));
    drop(pairs);
    host::host_flush(&mut buffer);
    drop(buffer);
    let BlockState { cache, .. } = state;
    if lru_cache::get_cache_allocation_mode() == CacheAllocationMode::Indexer
        && lru_cache::is_lru_cache_initialized()
    {
        PREVIOUS.with(|p| *p.borrow_mut() = Some(cache));
    }
}

/// Forgets the keys waiting to be flushed (their values stay readable in this block).
pub fn reset() {
    with_block(|b| {
        b.to_flush = Vec::new();
        b.written = HashSet::default();
    });
}

/// Forgets this block's state and empties the cache.
pub fn clear() {
    take_block();
    PREVIOUS.with(|p| p.borrow_mut().take());
    lru_cache::clear_lru_cache();
}

/// Called when the host state changed behind the guest's back (the mock): cached reads may be
/// stale.
#[cfg(any(not(target_arch = "wasm32"), feature = "test-utils"))]
pub(crate) fn forget_cached_reads() {
    clear();
}

/// This block's reads and writes so far, lent to `f`: no copy and nothing kept. The leak-free
/// form of [`get_cache`].
pub fn with_cache<R>(f: impl FnOnce(&BlockCache) -> R) -> R {
    with_block(|b| f(&b.cache))
}

/// This block's reads and writes so far, as an owned map (the keys and values are shared
/// handles, not copies): the leak-free form of [`get_cache`] for a caller that keeps it.
pub fn cache_snapshot() -> MetashrewCache {
    with_cache(|cache| cache.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// This block's reads and writes so far (Metashrew's signature). The map is a snapshot taken at
/// the call: later reads and writes do not change it.
///
/// A `'static` reference can only be sound if its map is never freed, so each snapshot lives
/// for the rest of the instance, with the values it holds. Calls without a state change in
/// between share one; an instance kept across blocks (`--instance-mode persistent`) that calls
/// this once per block keeps one map per block. Use [`with_cache`] or [`cache_snapshot`]
/// instead, which keep nothing; the SDK itself never calls this.
pub fn get_cache() -> &'static MetashrewCache {
    let generation = GENERATION.with(Cell::get);
    if let Some((taken, snapshot)) = SNAPSHOT.with(Cell::get) {
        if taken == generation {
            return snapshot;
        }
    }
    let snapshot: &'static MetashrewCache = Box::leak(Box::new(cache_snapshot()));
    SNAPSHOT.with(|s| s.set(Some((generation, snapshot))));
    snapshot
}

/// Counts changes of the block state, so [`get_cache`] knows when its last snapshot is stale.
fn changed() {
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
}

fn split_height(input: &[u8]) -> (u32, &[u8]) {
    match input.split_first_chunk::<4>() {
        Some((height, rest)) => (u32::from_le_bytes(*height), rest),
        None => panic!(
            "input is {} bytes; it must start with a u32 height",
            input.len()
        ),
    }
}

/// Runs one block: reads the input, calls `index(height, block)`, then [`flush`]es. An error
/// traps (with its message logged), so the host fails the block and commits nothing.
pub fn index_block<E: std::fmt::Display>(index: impl FnOnce(u32, &[u8]) -> Result<(), E>) {
    lru_cache::set_cache_allocation_mode(CacheAllocationMode::Indexer);
    initialize();
    let input = input();
    let (height, block) = split_height(&input);
    if let Err(err) = index(height, block) {
        panic!("indexer failed at height {height}: {err}");
    }
    flush();
}

/// Runs a view: reads the input (`u32 LE view height ++ request`), calls `view(height, request)`
/// with reads at that height, and returns its bytes. Nothing it writes is kept.
///
/// A view instance reserves no preallocated region (and so has no guest cache, see
/// [`begin_view`]).
pub fn view_bytes<E>(view: impl FnOnce(u32, &[u8]) -> Result<Vec<u8>, E>) -> Result<Vec<u8>, E> {
    lru_cache::set_cache_allocation_mode(CacheAllocationMode::View);
    begin_view();
    initialize();
    let input = input();
    let (height, request) = split_height(&input);
    lru_cache::set_view_height(height);
    let result = view(height, request);
    lru_cache::clear_view_height();
    take_block();
    result
}

/// [`view_bytes`] for an export: returns the result as a leaked ArrayBuffer pointer, or traps
/// with the error's message.
pub fn view<E: std::fmt::Display>(view: impl FnOnce(u32, &[u8]) -> Result<Vec<u8>, E>) -> i32 {
    match view_bytes(view) {
        Ok(bytes) => compat::export_bytes(bytes),
        Err(err) => panic!("view failed: {err}"),
    }
}

/// Exports `_start` running `fn(height: u32, block: &[u8]) -> Result<(), E: Display>` on each
/// block (wasm32 only).
#[macro_export]
macro_rules! export_indexer {
    ($index:path) => {
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn _start() {
            $crate::index_block($index)
        }
    };
}

/// Exports a view `name` running `fn(height: u32, request: &[u8]) -> Result<Vec<u8>, E: Display>`
/// (wasm32 only).
#[macro_export]
macro_rules! export_view {
    ($name:ident => $view:path) => {
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn $name() -> i32 {
            $crate::view($view)
        }
    };
}

// Metashrew's cache wrappers.

/// Counters of this instance's LRU cache (zero when it has none). Depends on the instance's history: do not let it change what a block writes.
pub fn lru_cache_stats() -> CacheStats {
    lru_cache::get_cache_stats()
}

/// Bytes this instance's LRU cache holds. Depends on the instance's history.
pub fn lru_cache_memory_usage() -> usize {
    lru_cache::get_total_memory_usage()
}

/// Whether this instance has an LRU cache (a region was reserved).
pub fn is_lru_cache_available() -> bool {
    lru_cache::is_lru_cache_initialized()
}

/// Sets whether the cache is filled as an indexer or as a view ([`CacheAllocationMode`]).
pub fn set_cache_mode(mode: CacheAllocationMode) {
    lru_cache::set_cache_allocation_mode(mode)
}

/// The current [`CacheAllocationMode`].
pub fn get_cache_mode() -> CacheAllocationMode {
    lru_cache::get_cache_allocation_mode()
}

/// Caches an indexer-chosen value under `key`. Instance-local: a later block may or may not see it.
pub fn cache_set(key: String, value: Arc<Vec<u8>>) {
    initialize();
    lru_cache::api_cache_set(key, value)
}

/// What [`cache_set`] stored under `key`, if it is still cached. Depends on the instance's history.
pub fn cache_get(key: &str) -> Option<Arc<Vec<u8>>> {
    initialize();
    lru_cache::api_cache_get(key)
}

/// Removes and returns what [`cache_set`] stored under `key`.
pub fn cache_remove(key: &str) -> Option<Arc<Vec<u8>>> {
    initialize();
    lru_cache::api_cache_remove(key)
}

#[cfg(test)]
mod tests;

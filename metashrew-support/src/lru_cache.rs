//! A memory-bounded LRU cache of byte keys and byte values, built on the `lru` crate.
//!
//! The bound is in bytes: every entry weighs `key.len() + value.len() + ENTRY_OVERHEAD`, a
//! platform-independent figure, so the same sequence of operations keeps the same entries on
//! every machine. Inserting evicts least-recently-used entries until the new one fits; an entry
//! heavier than the whole budget is not cached (and any older value of its key is dropped).
//!
//! All of the cache's own memory (its table, its nodes, the key and value bytes) is allocated
//! inside [`in_region`]: in a guest built with the SDK's allocator it lives in the preallocated
//! region and never touches the general heap. If the region cannot hold a new entry, the cache
//! evicts and retries; it never spills.
//!
//! Besides the [`MemoryBoundedLru`] type, this module keeps Metashrew's cache API (one cache per
//! thread, which in a guest is one per instance): [`set_lru_cache`], [`get_lru_cache`],
//! [`CacheAllocationMode`], the height-partitioned view cache, the API cache, statistics.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::region::{configured_region_size, ensure_preallocated_memory};
use crate::region_alloc::{in_region, region_allocator_in_use};

/// Weight added to every entry for the cache's bookkeeping (node, links, table slot).
pub const ENTRY_OVERHEAD: usize = 96;

/// Free space `put` requires in the region, beyond the key and value, before it links a node.
const PUSH_HEADROOM: usize = 4096;

/// A fast hasher with a fixed seed: table layout and cost never depend on addresses or process
/// history. (Keys come from chain data; with a fixed seed no hasher resists chosen collisions,
/// so a keyed one like SipHash would only cost time.)
pub type FixedState = foldhash::fast::FixedState;

/// Counters of a cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups that found their key.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Insertions (replacements included).
    pub inserts: u64,
    /// Entries evicted to stay within the budget.
    pub evictions: u64,
    /// Entries currently held.
    pub items: usize,
    /// Bytes currently accounted (keys + values + per-entry overhead).
    pub memory_usage: usize,
    /// The byte bound.
    pub budget: usize,
}

/// An LRU cache of byte keys and values bounded in bytes (each entry weighs its key, its value
/// and a fixed overhead); inserting evicts the least recently used entries until the new one fits.
pub struct MemoryBoundedLru {
    entries: lru::LruCache<Box<[u8]>, Box<[u8]>, FixedState>,
    budget: usize,
    used: usize,
    stats: CacheStats,
}

fn weight(key_len: usize, value_len: usize) -> usize {
    key_len + value_len + ENTRY_OVERHEAD
}

/// Copies `bytes` into a new exact-size allocation, or `None` if the allocator is out of room.
fn try_boxed(bytes: &[u8]) -> Option<Box<[u8]>> {
    let mut v = Vec::new();
    v.try_reserve_exact(bytes.len()).ok()?;
    v.extend_from_slice(bytes);
    Some(v.into_boxed_slice())
}

impl MemoryBoundedLru {
    /// An empty cache holding at most `budget` bytes.
    pub fn new(budget: usize) -> Self {
        let entries = in_region(|| lru::LruCache::unbounded_with_hasher(FixedState::default()));
        Self {
            entries,
            budget,
            used: 0,
            stats: CacheStats {
                budget,
                ..CacheStats::default()
            },
        }
    }

    /// Looks `key` up, marking it most recently used. Counts a hit or a miss.
    pub fn get(&mut self, key: &[u8]) -> Option<&[u8]> {
        match self.entries.get(key) {
            Some(value) => {
                self.stats.hits += 1;
                Some(value)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Looks `key` up without touching recency or statistics.
    pub fn peek(&self, key: &[u8]) -> Option<&[u8]> {
        self.entries.peek(key).map(|v| &**v)
    }

    /// Stores `value` under `key`, evicting least-recently-used entries to stay within budget.
    /// Returns whether the entry is now cached.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> bool {
        let cost = weight(key.len(), value.len());
        if cost > self.budget {
            self.remove(key);
            return false;
        }
        if self.replace(key, value) {
            return true;
        }
        self.remove(key);
        while self.used + cost > self.budget {
            if !self.evict_one() {
                return false;
            }
        }
        // Checking for room only matters when the region allocator serves the cache.
        let check_room = region_allocator_in_use();
        loop {
            let stored = in_region(|| {
                let k = try_boxed(key)?;
                let v = try_boxed(value)?;
                // The node (and any table growth) is allocated by `push`, where a failure would
                // abort: check that the region still has room for it first.
                if check_room {
                    let mut room: Vec<u8> = Vec::new();
                    room.try_reserve_exact(PUSH_HEADROOM).ok()?;
                }
                self.entries.push(k, v);
                Some(())
            });
            if stored.is_some() {
                break;
            }
            // The region itself is full (fragmentation): make room and retry.
            if !self.evict_one() {
                return false;
            }
        }
        self.used += cost;
        self.stats.inserts += 1;
        self.sync_stats();
        true
    }

    /// Replaces the value of a cached `key` in place (one lookup, no new node), making it the
    /// most recently used. Returns false when `key` is not cached or the new value does not fit.
    fn replace(&mut self, key: &[u8], value: &[u8]) -> bool {
        let Some(slot) = self.entries.get_mut(key) else {
            return false;
        };
        let old_len = slot.len();
        let Some(new) = in_region(|| try_boxed(value)) else {
            return false;
        };
        drop(std::mem::replace(slot, new));
        self.used = self.used - old_len + value.len();
        // The replaced entry is the most recently used, so it is evicted last.
        while self.used > self.budget && self.evict_one() {}
        self.stats.inserts += 1;
        self.sync_stats();
        true
    }

    /// Drops `key` if cached.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        match self.entries.pop_entry(key) {
            Some((k, v)) => {
                self.used -= weight(k.len(), v.len());
                in_region(|| drop((k, v)));
                self.sync_stats();
                true
            }
            None => false,
        }
    }

    fn evict_one(&mut self) -> bool {
        match self.entries.pop_lru() {
            Some((k, v)) => {
                self.used -= weight(k.len(), v.len());
                in_region(|| drop((k, v)));
                self.stats.evictions += 1;
                self.sync_stats();
                true
            }
            None => false,
        }
    }

    /// Drops every entry; statistics other than the contents are kept.
    pub fn clear(&mut self) {
        in_region(|| self.entries.clear());
        self.used = 0;
        self.sync_stats();
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes accounted to the entries held.
    pub fn bytes_in_use(&self) -> usize {
        self.used
    }

    /// The byte bound.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Counters and current usage.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    fn sync_stats(&mut self) {
        self.stats.items = self.entries.len();
        self.stats.memory_usage = self.used;
    }
}

impl Drop for MemoryBoundedLru {
    fn drop(&mut self) {
        in_region(|| self.entries.clear());
    }
}

// ---------------------------------------------------------------------------------------------
// Metashrew's cache API: one cache per thread (per guest instance).
// ---------------------------------------------------------------------------------------------

/// What the cache is sized and keyed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheAllocationMode {
    /// Block indexing: one cache of the whole budget, keyed by the storage key.
    #[default]
    Indexer,
    /// Views: reads are keyed by (view height, key), so a value cached for one height never
    /// answers another.
    View,
}

thread_local! {
    static CACHE: RefCell<Option<MemoryBoundedLru>> = const { RefCell::new(None) };
    static MODE: Cell<CacheAllocationMode> = const { Cell::new(CacheAllocationMode::Indexer) };
    static VIEW_HEIGHT: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Namespaces inside the one cache: a storage key, a (height, key) pair, an API string key.
const NS_MAIN: u8 = 0;
const NS_HEIGHT: u8 = 1;
const NS_API: u8 = 2;

/// Builds the cache key of a namespace. The buffer is allocated inside the region, so building
/// it never disturbs the general heap.
fn namespaced(ns: u8, height: Option<u32>, key: &[u8]) -> Vec<u8> {
    in_region(|| {
        let mut out = Vec::with_capacity(key.len() + 5);
        out.push(ns);
        if let Some(h) = height {
            out.extend_from_slice(&h.to_be_bytes());
        }
        out.extend_from_slice(key);
        out
    })
}

/// Runs `f` on this thread's cache, if it has been initialised.
///
/// # Panics
/// If `f` re-enters the cache through this function.
pub fn with_lru_cache<R>(f: impl FnOnce(&mut MemoryBoundedLru) -> R) -> Option<R> {
    CACHE.with(|c| c.borrow_mut().as_mut().map(f))
}

/// Sets this thread's [`CacheAllocationMode`] (indexer or view).
pub fn set_cache_allocation_mode(mode: CacheAllocationMode) {
    MODE.with(|m| m.set(mode));
}

/// This thread's [`CacheAllocationMode`].
pub fn get_cache_allocation_mode() -> CacheAllocationMode {
    MODE.with(Cell::get)
}

/// Creates this thread's cache (idempotent), with the region's size as its budget. Reserves the
/// region first. Without a region (size 0, or reservation refused) no cache is created.
pub fn initialize_lru_cache() {
    if ensure_preallocated_memory().is_err() {
        return;
    }
    let budget = configured_region_size() / 8 * 7;
    if budget == 0 {
        return;
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(MemoryBoundedLru::new(budget));
        }
    });
}

/// Whether [`initialize_lru_cache`] created this thread's cache.
pub fn is_lru_cache_initialized() -> bool {
    CACHE.with(|c| c.borrow().is_some())
}

/// Cached value of a storage key (keyed by view height when one is set).
pub fn get_lru_cache(key: &Arc<Vec<u8>>) -> Option<Arc<Vec<u8>>> {
    let k = storage_cache_key(key);
    with_lru_cache(|c| c.get(&k).map(|v| Arc::new(v.to_vec()))).flatten()
}

/// Caches a storage key's value (keyed by view height when one is set).
pub fn set_lru_cache(key: Arc<Vec<u8>>, value: Arc<Vec<u8>>) {
    let k = storage_cache_key(&key);
    with_lru_cache(|c| c.put(&k, &value));
}

/// The cache key under which a storage key's value is held: by view height when one is set.
/// Allocated inside the region (see `namespaced`).
pub fn storage_cache_key(key: &[u8]) -> Vec<u8> {
    match get_view_height() {
        Some(h) => namespaced(NS_HEIGHT, Some(h), key),
        None => namespaced(NS_MAIN, None, key),
    }
}

/// Cached value of `key` as of `height` (views at a height keep separate entries).
pub fn get_height_partitioned_cache(height: u32, key: &Arc<Vec<u8>>) -> Option<Arc<Vec<u8>>> {
    let k = namespaced(NS_HEIGHT, Some(height), key);
    with_lru_cache(|c| c.get(&k).map(|v| Arc::new(v.to_vec()))).flatten()
}

/// Caches `key`'s value as of `height`.
pub fn set_height_partitioned_cache(height: u32, key: Arc<Vec<u8>>, value: Arc<Vec<u8>>) {
    let k = namespaced(NS_HEIGHT, Some(height), &key);
    with_lru_cache(|c| c.put(&k, &value));
}

/// The value the indexer cached under `key` with [`api_cache_set`].
pub fn api_cache_get(key: &str) -> Option<Arc<Vec<u8>>> {
    let k = namespaced(NS_API, None, key.as_bytes());
    with_lru_cache(|c| c.get(&k).map(|v| Arc::new(v.to_vec()))).flatten()
}

/// Caches an indexer-chosen value under `key`, apart from storage keys.
pub fn api_cache_set(key: String, value: Arc<Vec<u8>>) {
    let k = namespaced(NS_API, None, key.as_bytes());
    with_lru_cache(|c| c.put(&k, &value));
}

/// Removes and returns what [`api_cache_set`] stored under `key`.
pub fn api_cache_remove(key: &str) -> Option<Arc<Vec<u8>>> {
    let k = namespaced(NS_API, None, key.as_bytes());
    with_lru_cache(|c| {
        let old = c.peek(&k).map(|v| Arc::new(v.to_vec()));
        c.remove(&k);
        old
    })
    .flatten()
}

/// Marks this thread as serving a view at `height`: storage entries are then keyed by it.
pub fn set_view_height(height: u32) {
    VIEW_HEIGHT.with(|h| h.set(Some(height)));
}

/// Ends [`set_view_height`]: storage entries are keyed by key alone again.
pub fn clear_view_height() {
    VIEW_HEIGHT.with(|h| h.set(None));
}

/// The height set by [`set_view_height`], if any.
pub fn get_view_height() -> Option<u32> {
    VIEW_HEIGHT.with(Cell::get)
}

/// Empties the cache (its budget stays).
pub fn clear_lru_cache() {
    with_lru_cache(MemoryBoundedLru::clear);
}

/// Statistics of this thread's cache (all zero when there is none).
pub fn get_cache_stats() -> CacheStats {
    with_lru_cache(|c| c.stats()).unwrap_or_default()
}

/// Bytes accounted to the cache's entries.
pub fn get_total_memory_usage() -> usize {
    with_lru_cache(|c| c.bytes_in_use()).unwrap_or(0)
}

/// The cache never exceeds its budget, so there is nothing to force; kept for API compatibility
/// (hidden from the docs: it does nothing).
#[doc(hidden)]
pub fn force_evict_to_target() {}

/// Kept for API compatibility: writes reach the cache through `metashrew_core::flush()` (hidden
/// from the docs: it does nothing).
#[doc(hidden)]
pub fn flush_to_lru() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_budget_and_evicts_lru_first() {
        let budget = 3 * weight(2, 10);
        let mut c = MemoryBoundedLru::new(budget);
        for k in [b"k1", b"k2", b"k3"] {
            assert!(c.put(k, &[7u8; 10]));
        }
        assert_eq!(c.bytes_in_use(), budget);
        // Touch k1 so that k2 is the least recently used.
        assert!(c.get(b"k1").is_some());
        assert!(c.put(b"k4", &[8u8; 10]));
        assert!(c.peek(b"k2").is_none(), "k2 was least recently used");
        assert!(c.peek(b"k1").is_some());
        assert!(c.peek(b"k3").is_some());
        assert!(c.peek(b"k4").is_some());
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.inserts, s.evictions), (1, 0, 4, 1));
        assert_eq!(s.items, 3);
        assert!(s.memory_usage <= budget);
    }

    #[test]
    fn byte_bound_holds_under_pressure() {
        let budget = 10_000;
        let mut c = MemoryBoundedLru::new(budget);
        for i in 0u32..5_000 {
            let value = vec![i as u8; (i as usize * 7) % 300];
            c.put(&i.to_le_bytes(), &value);
            assert!(c.bytes_in_use() <= budget);
            let accounted: usize = c
                .entries
                .iter()
                .map(|(k, v)| weight(k.len(), v.len()))
                .sum();
            assert_eq!(accounted, c.bytes_in_use());
        }
        let s = c.stats();
        assert_eq!(s.inserts, 5_000);
        assert_eq!(s.evictions as usize + s.items, 5_000);
        // The most recent key is always present.
        assert!(c.peek(&4_999u32.to_le_bytes()).is_some());
    }

    #[test]
    fn oversized_entry_is_refused_and_drops_the_stale_value() {
        let mut c = MemoryBoundedLru::new(200);
        assert!(c.put(b"k", b"small"));
        assert!(!c.put(b"k", &[0u8; 500]));
        assert!(c.peek(b"k").is_none(), "a stale value must never survive");
        assert_eq!(c.bytes_in_use(), 0);
    }

    #[test]
    fn replacing_a_key_reaccounts_its_bytes() {
        let mut c = MemoryBoundedLru::new(1_000);
        c.put(b"k", &[1u8; 100]);
        c.put(b"k", &[2u8; 10]);
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes_in_use(), weight(1, 10));
        assert_eq!(c.peek(b"k"), Some(&[2u8; 10][..]));
    }

    #[test]
    fn misses_are_counted() {
        let mut c = MemoryBoundedLru::new(1_000);
        assert!(c.get(b"absent").is_none());
        assert_eq!(c.stats().misses, 1);
    }

    #[test]
    fn namespaces_do_not_collide() {
        // A storage key that looks like a height-partitioned key must stay distinct.
        let main = namespaced(NS_MAIN, None, &[1, 0, 0, 0, 5, b'k']);
        let part = namespaced(NS_HEIGHT, Some(5), b"k");
        assert_ne!(main, part);
        assert_ne!(
            namespaced(NS_API, None, b"k"),
            namespaced(NS_MAIN, None, b"k")
        );
    }
}

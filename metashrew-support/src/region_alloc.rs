//! A global allocator that can put chosen allocations into the preallocated region.
//!
//! [`RegionAwareAllocator`] wraps the ordinary allocator (`A`). Code that runs inside
//! [`in_region`] allocates from the region's heap ([`crate::region::HEAP`]); everything else
//! uses `A`. Frees and reallocations are routed by *address* (not by the current scope), so an
//! object always returns to the heap it came from. Inside the scope, a full region makes the
//! allocation fail: it never spills into the general heap.
//!
//! The guest SDK installs this allocator on wasm32 (feature `region-allocator`, on by default)
//! and runs every LRU-cache operation inside [`in_region`], which is what keeps the general heap
//! identical whether a read hit or missed the cache. Without the allocator installed,
//! [`in_region`] only runs its closure.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::region::{HEAP, region};

thread_local! {
    static REGION_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` with this thread's allocations directed to the preallocated region.
pub fn in_region<R>(f: impl FnOnce() -> R) -> R {
    struct Exit;
    impl Drop for Exit {
        fn drop(&mut self) {
            REGION_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    REGION_DEPTH.with(|d| d.set(d.get() + 1));
    let _exit = Exit;
    f()
}

/// Set once a [`RegionAwareAllocator`] has served an allocation from the region.
static ROUTED: AtomicBool = AtomicBool::new(false);

/// Whether allocations inside [`in_region`] really come from the region (a
/// [`RegionAwareAllocator`] is the global allocator and the region exists).
pub fn region_allocator_in_use() -> bool {
    ROUTED.load(Ordering::Relaxed)
}

fn region_scope_active() -> bool {
    REGION_DEPTH.try_with(|d| d.get() > 0).unwrap_or(false)
}

/// A global allocator over `A` that puts the allocations made inside `in_region` into the
/// preallocated region, and every other one into `A`.
pub struct RegionAwareAllocator<A> {
    inner: A,
}

impl<A> RegionAwareAllocator<A> {
    /// Wraps `inner`, which serves every allocation outside the region.
    pub const fn new(inner: A) -> Self {
        Self { inner }
    }
}

fn in_region_memory(ptr: *mut u8) -> bool {
    region().is_some_and(|r| r.contains(ptr as usize))
}

// SAFETY: every pointer is freed / resized by the heap that produced it (decided by address), and
// both heaps uphold the `GlobalAlloc` contract.
unsafe impl<A: GlobalAlloc> GlobalAlloc for RegionAwareAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if region_scope_active() && region().is_some() {
            if !ROUTED.load(Ordering::Relaxed) {
                ROUTED.store(true, Ordering::Relaxed);
            }
            // SAFETY: forwarded contract.
            unsafe { HEAP.alloc(layout) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.inner.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if region_scope_active() && region().is_some() {
            // SAFETY: forwarded contract.
            unsafe { HEAP.alloc_zeroed(layout) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.inner.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if in_region_memory(ptr) {
            // SAFETY: the pointer lies in the region, so the region heap produced it.
            unsafe { HEAP.dealloc(ptr, layout) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.inner.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if in_region_memory(ptr) {
            // SAFETY: the pointer lies in the region, so the region heap produced it.
            unsafe { HEAP.realloc(ptr, layout, new_size) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.inner.realloc(ptr, layout, new_size) }
        }
    }
}

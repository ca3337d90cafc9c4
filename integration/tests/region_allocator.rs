//! The region-aware global allocator, installed in this test binary as in a guest: allocations
//! made in `in_region` land in the region, others do not, frees go back by address, and a full
//! region fails instead of spilling into the general heap; the LRU cache then evicts.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use metashrew_support::MemoryBoundedLru;
use metashrew_support::region::{HEAP, ensure_preallocated_memory, set_region_size};
use metashrew_support::region_alloc::{RegionAwareAllocator, in_region};

#[global_allocator]
static ALLOCATOR: RegionAwareAllocator<std::alloc::System> =
    RegionAwareAllocator::new(std::alloc::System);

const REGION: usize = 1 << 20;

#[test]
fn allocations_are_routed_by_scope_and_freed_by_address() {
    set_region_size(REGION).expect("settable before first use");
    let region = ensure_preallocated_memory().expect("reserved");

    let outside = vec![1u8; 1000];
    assert!(!region.contains(outside.as_ptr() as usize));

    let inside = in_region(|| vec![2u8; 1000]);
    assert!(region.contains(inside.as_ptr() as usize));
    let used = HEAP.usage().allocated_bytes;
    assert!(used >= 1000);
    // Freed outside the scope, it still returns to the region heap.
    drop(inside);
    assert!(HEAP.usage().allocated_bytes < used);

    // A full region refuses; it never hands out general-heap memory.
    let refused = in_region(|| {
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve_exact(2 * REGION).is_err()
    });
    assert!(refused, "an allocation larger than the region must fail");

    // The cache, given a budget larger than the region can hold, evicts instead of spilling.
    let mut cache = MemoryBoundedLru::new(4 * REGION);
    let value = vec![7u8; 10_000];
    for i in 0u32..1_000 {
        assert!(cache.put(&i.to_le_bytes(), &value), "entry {i} cached");
        let last = cache.peek(&i.to_le_bytes()).expect("just inserted");
        assert!(
            region.contains(last.as_ptr() as usize),
            "cache bytes live in the region"
        );
    }
    let stats = cache.stats();
    assert!(
        stats.evictions > 0,
        "region pressure forced evictions: {stats:?}"
    );
    assert!(stats.items * 10_000 < REGION);
    drop(outside);
}

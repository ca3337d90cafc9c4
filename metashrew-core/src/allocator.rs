//! The guest's global allocator: the default allocator, plus the preallocated region for code
//! running in `metashrew_support::region_alloc::in_region` (the LRU cache).

use metashrew_support::region_alloc::RegionAwareAllocator;

#[global_allocator]
static ALLOCATOR: RegionAwareAllocator<std::alloc::System> =
    RegionAwareAllocator::new(std::alloc::System);

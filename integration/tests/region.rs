//! The preallocated region: settable size, one reservation under concurrent first calls,
//! idempotence, refusal of late size changes. (Own test binary: the region is process-wide.)

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use metashrew_support::region::{
    PAGE_SIZE, RegionError, configured_region_size, ensure_preallocated_memory, region,
    set_region_size,
};

#[test]
fn region_is_reserved_once_with_the_configured_size() {
    let size = 64 << 20;
    set_region_size(size).expect("size is settable before first use");
    assert_eq!(configured_region_size(), size);
    assert!(
        region().is_none(),
        "nothing is reserved before the first call"
    );

    let threads: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| ensure_preallocated_memory().expect("reserved")))
        .collect();
    let regions: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("thread finished"))
        .collect();
    let first = regions[0];
    assert!(
        regions.iter().all(|r| *r == first),
        "one reservation for all callers"
    );
    assert_eq!(first.size, size);
    assert_eq!(first.base % PAGE_SIZE.min(4096), 0, "page aligned");
    assert_eq!(ensure_preallocated_memory().expect("idempotent"), first);
    assert_eq!(region(), Some(first));

    assert_eq!(
        set_region_size(1 << 20),
        Err(RegionError::AlreadyReserved {
            base: first.base,
            size
        })
    );
    assert_eq!(
        configured_region_size(),
        size,
        "a refused change changes nothing"
    );
}

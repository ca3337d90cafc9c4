//! Reserving the 1 GiB region must cost address space, not memory: at most 16 MiB of resident
//! memory, natively and inside a wasm guest. (Own test binary, one test: RSS is process-wide.)

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use metashrew_runtime::{MetashrewRuntime, RuntimeConfig};
use metashrew_storage::{MemStore, Storage};
use metashrew_tests::{fixtures::mainnet_blocks, guests};

const LIMIT: u64 = 16 << 20;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm has a resident field");
    pages * 4096
}

#[test]
fn reserving_the_region_adds_at_most_16_mib_of_rss() {
    // Native host process.
    let before = rss_bytes();
    let region = metashrew_support::ensure_preallocated_memory().expect("reserved");
    let native_delta = rss_bytes().saturating_sub(before);
    assert_eq!(region.size, 1 << 30);
    eprintln!(
        "native: 1 GiB region at {:#x} added {native_delta} bytes of RSS",
        region.base
    );
    assert!(
        native_delta <= LIMIT,
        "native reservation added {native_delta} bytes"
    );

    // A wasm guest whose initialize() reserves its own 1 GiB region.
    let store = Arc::new(MemStore::new());
    let rt = MetashrewRuntime::load(guests::PROBE, store.clone(), RuntimeConfig::default())
        .expect("probe loads");
    let genesis = mainnet_blocks().swap_remove(0);
    let before = rss_bytes();
    rt.process_block(0, &genesis).expect("block runs");
    let guest_delta = rss_bytes().saturating_sub(before);
    let report = store
        .get_at(b"/probe/report/0", 0)
        .expect("read")
        .expect("report stored");
    let word = |i: usize| u32::from_le_bytes(report[i * 4..i * 4 + 4].try_into().expect("word"));
    assert_eq!(
        word(3) as usize * 65536,
        1 << 30,
        "the guest reserved 1 GiB"
    );
    assert!(word(4) >= 1 << 14, "guest memory spans the region");
    eprintln!(
        "guest: 1 GiB region at {:#x} ({} pages of memory) added {guest_delta} bytes of RSS",
        word(2),
        word(4)
    );
    assert!(
        guest_delta <= LIMIT,
        "guest reservation added {guest_delta} bytes"
    );
}

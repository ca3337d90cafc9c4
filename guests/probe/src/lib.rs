//! `probe`: reports where the guest's heap allocations land, for the determinism tests.
//!
//! Each block reads `/probe/a` (100 bytes) and `/probe/b` (5,000 bytes), which the previous
//! block wrote: in an instance kept across blocks they come from the LRU cache (a hit), in a
//! fresh instance from the host (a miss). It then makes two fresh allocations and records, as
//! u32 LE words under `/probe/report/{height}`:
//!
//! `[cache hits, cache misses, region base, region size / 64 KiB, memory pages,
//!   address of a's bytes, address of b's bytes, address of a fresh 48-byte box,
//!   address of a fresh 1,000-byte vector]`
//!
//! Everything after the first two words must be identical whether the reads hit or missed.
//! The view `report` returns the report of the view height.

use std::sync::Arc;

use metashrew_core::{get, set};

/// Number of u32 words in a report.
pub const REPORT_WORDS: usize = 9;

fn key(s: &str) -> Arc<Vec<u8>> {
    Arc::new(s.as_bytes().to_vec())
}

#[cfg(target_arch = "wasm32")]
fn memory_pages() -> u32 {
    core::arch::wasm32::memory_size(0) as u32
}

#[cfg(not(target_arch = "wasm32"))]
fn memory_pages() -> u32 {
    0
}

/// Indexes one block (the payload is ignored).
pub fn index_block(height: u32, _block: &[u8]) -> Result<(), std::convert::Infallible> {
    let a = get(key("/probe/a"));
    let b = get(key("/probe/b"));
    let boxed = Box::new([0u8; 48]);
    let vector = vec![0u8; 1000];
    let stats = metashrew_core::lru_cache_stats();
    let region = metashrew_support::region::region()
        .unwrap_or(metashrew_support::Region { base: 0, size: 0 });
    let words = [
        stats.hits as u32,
        stats.misses as u32,
        region.base as u32,
        (region.size / metashrew_support::region::PAGE_SIZE) as u32,
        memory_pages(),
        a.as_ptr() as usize as u32,
        b.as_ptr() as usize as u32,
        boxed.as_ptr() as usize as u32,
        vector.as_ptr() as usize as u32,
    ];
    let report: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    set(key("/probe/a"), Arc::new(vec![height as u8; 100]));
    set(key("/probe/b"), Arc::new(vec![height as u8; 5000]));
    set(
        Arc::new(format!("/probe/report/{height}").into_bytes()),
        Arc::new(report),
    );
    Ok(())
}

/// The report of the view height.
pub fn report_view(height: u32, _request: &[u8]) -> Result<Vec<u8>, std::convert::Infallible> {
    Ok((*get(Arc::new(format!("/probe/report/{height}").into_bytes()))).clone())
}

metashrew_core::export_indexer!(index_block);
metashrew_core::export_view!(report => report_view);

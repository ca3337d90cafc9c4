//! The preallocated memory region.
//!
//! One contiguous region of address space, reserved once per process (per guest instance in
//! wasm) by [`ensure_preallocated_memory`], at a fixed point: the first call. Its pages are
//! *reserved, not committed*: nothing writes to them up front, so the reservation costs
//! address space, not RAM.
//!
//! * In a wasm32 guest the region is obtained with `memory.grow` directly (fresh wasm pages are
//!   already zero), so the general heap's next allocation lands right after it. The region is
//!   then managed by its own allocator ([`RegionHeap`]); the guest SDK routes the LRU cache's
//!   allocations into it so that using the cache never moves an allocation of the general heap.
//! * On a native host the region is an anonymous private mapping that the kernel backs lazily:
//!   address space, no RAM until written. Only code running inside [`crate::region_alloc`]'s
//!   `in_region` with the region allocator installed as the global allocator allocates there
//!   (native builds of guests with the SDK's mock host, e.g. their unit tests). The daemon's
//!   host-side read cache does not: its budget is its own (`CachedStore`), so in the runtime the
//!   reservation only fixes the region's place for such code and costs no memory.
//!
//! The size defaults to [`DEFAULT_REGION_SIZE`] (1 GiB unless `METASHREW_REGION_SIZE` was set at
//! build time). Change it at run time with [`set_region_size`]
//! *before* the first call to [`ensure_preallocated_memory`] (in a guest: before
//! `metashrew_core::initialize()`, i.e. as the first statement of `_start`); later changes are
//! refused with [`RegionError::AlreadyReserved`]. A size of 0 disables the region (and with it
//! the guest cache). The size is rounded up to whole 64 KiB wasm pages.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Default size of the region: 1 GiB, or the decimal `METASHREW_REGION_SIZE` set when the crate
/// is compiled (so a guest can be built with another default without changing its code).
pub const DEFAULT_REGION_SIZE: usize = match option_env!("METASHREW_REGION_SIZE") {
    Some(text) => parse_decimal(text),
    None => 1 << 30,
};

/// Parses a decimal number at compile time (a malformed value fails the build).
const fn parse_decimal(text: &str) -> usize {
    let bytes = text.as_bytes();
    assert!(!bytes.is_empty(), "METASHREW_REGION_SIZE is empty");
    let mut value: usize = 0;
    let mut i = 0;
    while i < bytes.len() {
        let digit = bytes[i];
        assert!(
            digit.is_ascii_digit(),
            "METASHREW_REGION_SIZE must be decimal"
        );
        value = value * 10 + (digit - b'0') as usize;
        i += 1;
    }
    value
}

/// Granularity of the region: one wasm page.
pub const PAGE_SIZE: usize = 64 * 1024;

/// Why the region could not be configured or reserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// [`set_region_size`] was called after the region had been reserved.
    #[error(
        "the preallocated region is already reserved ({size} bytes at {base:#x}); set its size before first use"
    )]
    AlreadyReserved {
        /// Where the region is.
        base: usize,
        /// Its size.
        size: usize,
    },
    /// The platform refused to reserve the address space.
    #[error("could not reserve {size} bytes for the preallocated region: {reason}")]
    ReserveFailed {
        /// The size asked for.
        size: usize,
        /// The platform's reason.
        reason: String,
    },
}

/// Where the region is and how big it is. A size of 0 means "no region".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Start address (0 when there is no region).
    pub base: usize,
    /// Size in bytes.
    pub size: usize,
}

impl Region {
    /// Whether `addr` lies inside the region.
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.base && addr - self.base < self.size
    }
}

static CONFIGURED_SIZE: AtomicUsize = AtomicUsize::new(DEFAULT_REGION_SIZE);
static REGION: OnceLock<Result<Region, RegionError>> = OnceLock::new();

/// Sets the size (in bytes) the region will have. Must be called before the region is reserved.
pub fn set_region_size(bytes: usize) -> Result<(), RegionError> {
    if let Some(Ok(region)) = REGION.get() {
        return Err(RegionError::AlreadyReserved {
            base: region.base,
            size: region.size,
        });
    }
    CONFIGURED_SIZE.store(bytes, Ordering::SeqCst);
    // A concurrent first reservation may have raced with the store: report it.
    match REGION.get() {
        Some(Ok(region)) if region.size != round_to_pages(bytes) => {
            Err(RegionError::AlreadyReserved {
                base: region.base,
                size: region.size,
            })
        }
        _ => Ok(()),
    }
}

/// The size the region has (once reserved) or will have.
pub fn configured_region_size() -> usize {
    match REGION.get() {
        Some(Ok(region)) => region.size,
        _ => round_to_pages(CONFIGURED_SIZE.load(Ordering::SeqCst)),
    }
}

/// Reserves the region on first call and returns it; later calls return the same region.
///
/// Idempotent and thread-safe: concurrent first calls reserve exactly once. Logs the region's
/// place and size once, at debug level.
pub fn ensure_preallocated_memory() -> Result<Region, RegionError> {
    REGION
        .get_or_init(|| {
            let size = round_to_pages(CONFIGURED_SIZE.load(Ordering::SeqCst));
            let region = backing::reserve(size)?;
            if region.size > 0 {
                // SAFETY: the span was just reserved for the region's exclusive use.
                unsafe { HEAP.claim(region) };
            }
            log::debug!(
                "preallocated region reserved at {:#x}, {} bytes ({} MiB)",
                region.base,
                region.size,
                region.size >> 20
            );
            Ok(region)
        })
        .clone()
}

/// The region, if it has been reserved successfully.
pub fn region() -> Option<Region> {
    match REGION.get() {
        Some(Ok(region)) if region.size > 0 => Some(*region),
        _ => None,
    }
}

fn round_to_pages(bytes: usize) -> usize {
    bytes.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE)
}

#[cfg(target_arch = "wasm32")]
mod backing {
    use super::{PAGE_SIZE, Region, RegionError};

    /// Grows the linear memory by the region's pages: the new pages are zero and untouched.
    pub fn reserve(size: usize) -> Result<Region, RegionError> {
        if size == 0 {
            return Ok(Region { base: 0, size: 0 });
        }
        let previous_pages = core::arch::wasm32::memory_grow(0, size / PAGE_SIZE);
        if previous_pages == usize::MAX {
            return Err(RegionError::ReserveFailed {
                size,
                reason: "memory.grow failed (guest memory limit)".into(),
            });
        }
        Ok(Region {
            base: previous_pages * PAGE_SIZE,
            size,
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod backing {
    use super::{Region, RegionError};
    use std::sync::OnceLock;

    static MAPPING: OnceLock<memmap2::MmapMut> = OnceLock::new();

    /// Maps anonymous private memory: the kernel commits a page only when it is first written.
    pub fn reserve(size: usize) -> Result<Region, RegionError> {
        if size == 0 {
            return Ok(Region { base: 0, size: 0 });
        }
        let mapping = memmap2::MmapOptions::new()
            .len(size)
            .map_anon()
            .map_err(|err| RegionError::ReserveFailed {
                size,
                reason: err.to_string(),
            })?;
        let base = mapping.as_ptr() as usize;
        // Called at most once, from inside `REGION`'s initialiser.
        let _ = MAPPING.set(mapping);
        Ok(Region { base, size })
    }
}

/// The allocator that owns the region's memory: a `talc` heap claimed over the whole region.
///
/// Allocation fails (returns null) when the region is full; it never falls back to another heap.
pub struct RegionHeap {
    talc: Mutex<Option<Talc>>,
}

struct Talc(talc::TalcCell<talc::source::Manual>);

// SAFETY: the talc cell is only ever reached through the `Mutex`, one thread at a time.
unsafe impl Send for Talc {}

/// The process-wide (instance-wide in wasm) heap over the region.
pub static HEAP: RegionHeap = RegionHeap {
    talc: Mutex::new(None),
};

/// Statistics of the region heap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegionUsage {
    /// Bytes handed out and not yet freed.
    pub allocated_bytes: usize,
    /// Live allocations.
    pub allocation_count: usize,
    /// Bytes the heap manages in all.
    pub claimed_bytes: usize,
}

impl RegionHeap {
    /// Hands the region to the heap.
    ///
    /// # Safety
    /// `region` must be memory that nothing else uses, valid for the process's lifetime.
    unsafe fn claim(&self, region: Region) {
        let cell = talc::TalcCell::new(talc::source::Manual);
        // SAFETY: guaranteed by the caller.
        let claimed = unsafe { cell.claim(region.base as *mut u8, region.size) };
        if claimed.is_none() {
            return;
        }
        if let Ok(mut guard) = self.talc.lock() {
            *guard = Some(Talc(cell));
        }
    }

    /// Allocates from the region; null when the region is full or not reserved.
    ///
    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    pub unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.talc.lock() {
            // SAFETY: forwarded contract.
            Ok(guard) => match guard.as_ref() {
                Some(talc) => unsafe { talc.0.alloc(layout) },
                None => std::ptr::null_mut(),
            },
            Err(_) => std::ptr::null_mut(),
        }
    }

    /// Allocates zeroed memory from the region (region memory is reused, so it is zeroed here).
    ///
    /// # Safety
    /// As [`GlobalAlloc::alloc_zeroed`].
    pub unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let ptr = unsafe { self.alloc(layout) };
        if !ptr.is_null() {
            // SAFETY: `ptr` points to `layout.size()` writable bytes.
            unsafe { ptr.write_bytes(0, layout.size()) };
        }
        ptr
    }

    /// Frees a region allocation.
    ///
    /// # Safety
    /// `ptr` must come from this heap with this `layout`.
    pub unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(talc) = self.talc.lock().ok().as_ref().and_then(|g| g.as_ref()) {
            // SAFETY: forwarded contract.
            unsafe { talc.0.dealloc(ptr, layout) }
        }
    }

    /// Resizes a region allocation, staying inside the region; null if it does not fit.
    ///
    /// # Safety
    /// As [`GlobalAlloc::realloc`], for a pointer of this heap.
    pub unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match self.talc.lock() {
            // SAFETY: forwarded contract.
            Ok(guard) => match guard.as_ref() {
                Some(talc) => unsafe { talc.0.realloc(ptr, layout, new_size) },
                None => std::ptr::null_mut(),
            },
            Err(_) => std::ptr::null_mut(),
        }
    }

    /// Current usage of the heap.
    pub fn usage(&self) -> RegionUsage {
        match self.talc.lock() {
            Ok(guard) => match guard.as_ref() {
                Some(talc) => {
                    let counters = talc.0.counters();
                    RegionUsage {
                        allocated_bytes: counters.allocated_bytes,
                        allocation_count: counters.allocation_count,
                        claimed_bytes: counters.claimed_bytes,
                    }
                }
                None => RegionUsage::default(),
            },
            Err(_) => RegionUsage::default(),
        }
    }

    /// Whether `ptr` belongs to the region.
    pub fn owns(&self, ptr: NonNull<u8>) -> bool {
        region().is_some_and(|r| r.contains(ptr.as_ptr() as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_time_decimal_parsing() {
        assert_eq!(parse_decimal("0"), 0);
        assert_eq!(parse_decimal("65536"), 65_536);
        assert_eq!(parse_decimal("1073741824"), 1 << 30);
    }

    #[test]
    fn rounding_is_to_whole_pages() {
        assert_eq!(round_to_pages(0), 0);
        assert_eq!(round_to_pages(1), PAGE_SIZE);
        assert_eq!(round_to_pages(PAGE_SIZE), PAGE_SIZE);
        assert_eq!(round_to_pages(PAGE_SIZE + 1), 2 * PAGE_SIZE);
    }

    #[test]
    fn contains_is_half_open() {
        let r = Region {
            base: 1000,
            size: 10,
        };
        assert!(!r.contains(999));
        assert!(r.contains(1000));
        assert!(r.contains(1009));
        assert!(!r.contains(1010));
    }
}

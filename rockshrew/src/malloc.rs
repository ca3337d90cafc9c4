//! glibc's allocator, set at start so that the JSON-RPC server's threads do not wait on the
//! process's memory map.
//!
//! glibc gives threads arenas made of 64 MiB heaps. It grows a heap with `mprotect`, gives the
//! top of a heap back past a trim threshold (128 KiB by default) and frees whole heaps with
//! `munmap`. Each of these calls takes the process's mmap lock for writing, and waits there
//! while any other thread holds it for reading: every page fault does, and views and RocksDB
//! fault pages in all the time. `strace` of the daemon under view load showed a server thread
//! spending 10+ ms in one `mprotect` that way.
//!
//! So the daemon keeps what its arenas have grown to: [`TRIM_THRESHOLD`] makes heaps shrink
//! only when their free top passes 1 GiB, [`TOP_PAD`] grows the main arena 64 MiB at a time,
//! and [`MMAP_THRESHOLD`] serves allocations below 32 MiB (blocks included) from the arenas
//! rather than each from a `mmap` and `munmap` of its own. Memory freed inside an arena is
//! reused for the next allocations; what the process holds stays bounded by its peak.

#![allow(unsafe_code)]

/// Free top of a heap past which glibc returns it (`M_TRIM_THRESHOLD`).
pub const TRIM_THRESHOLD: i32 = 1 << 30;
/// Extra the main arena grows by each time (`M_TOP_PAD`).
pub const TOP_PAD: i32 = 64 << 20;
/// Allocations from this size up get their own mapping (`M_MMAP_THRESHOLD`).
pub const MMAP_THRESHOLD: i32 = 32 << 20;

/// Applies the settings above; false (with a warning) if glibc refused one.
pub fn keep_arenas_grown() -> bool {
    let settings = [
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD, "M_TRIM_THRESHOLD"),
        (libc::M_TOP_PAD, TOP_PAD, "M_TOP_PAD"),
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD, "M_MMAP_THRESHOLD"),
    ];
    let mut all = true;
    for (param, value, name) in settings {
        // SAFETY: `mallopt` takes two integers and only changes the allocator's parameters;
        // glibc serialises it with the arenas' own locks, so calling it while other threads
        // allocate is allowed.
        let done = unsafe { libc::mallopt(param, value) } == 1;
        if !done {
            log::warn!("glibc refused mallopt({name}, {value})");
            all = false;
        }
    }
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_takes_the_settings() {
        assert!(super::keep_arenas_grown());
        // Allocations of every size still work under them.
        let sizes = [16usize, 4 << 10, 2 << 20, 40 << 20];
        let blocks: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![7u8; n]).collect();
        assert!(
            blocks
                .iter()
                .zip(sizes)
                .all(|(b, n)| b.len() == n && b[n - 1] == 7)
        );
    }
}

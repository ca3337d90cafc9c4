//! The host's available memory, for `--view-memory-floor-mib`: below the floor, new views are
//! refused rather than risk the indexer being killed for memory.

/// `MemAvailable` of `/proc/meminfo`, in bytes (`None` where the kernel does not report it).
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_available(&text)
}

fn parse_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_available(text), Some(2 << 20));
        assert_eq!(parse_available("MemTotal: 1 kB\n"), None);
        assert!(available_bytes().is_some_and(|b| b > 0));
    }
}

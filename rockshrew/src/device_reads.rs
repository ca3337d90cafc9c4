//! Reads a thread made the kernel fetch from a storage device (page-cache hits excluded), from
//! Linux's per-thread I/O accounting (`/proc/thread-self/io`, `read_bytes`).

/// Bytes of one device read, to count reads from bytes (RocksDB's block size).
const DEVICE_READ: u64 = 4096;

/// Bytes the calling thread made the kernel read from a storage device so far; `None` without
/// task I/O accounting.
fn bytes_of_this_thread() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/thread-self/io").ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("read_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// Counts the calling thread's device reads between calls of [`DeviceReads::take`], which must
/// be made on the thread that made it.
#[derive(Debug)]
pub struct DeviceReads {
    mark: Option<u64>,
}

impl DeviceReads {
    /// Starts counting on the calling thread.
    pub fn on_this_thread() -> Self {
        Self {
            mark: bytes_of_this_thread(),
        }
    }

    /// Whether this kernel counts a thread's device reads (otherwise every count is 0).
    pub fn counted(&self) -> bool {
        self.mark.is_some()
    }

    /// Device reads (4 KiB each) since the last call, or since counting started.
    pub fn take(&mut self) -> u64 {
        let now = bytes_of_this_thread();
        let read = now
            .zip(self.mark)
            .map_or(0, |(now, was)| now.saturating_sub(was));
        self.mark = now;
        read / DEVICE_READ
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    use super::*;

    /// A read that bypasses the page cache is counted, on the thread that made it only.
    #[test]
    fn counts_this_threads_reads_from_the_device() {
        let mut reads = DeviceReads::on_this_thread();
        if !reads.counted() {
            eprintln!("no task I/O accounting on this kernel");
            return;
        }
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("data");
        std::fs::write(&path, vec![7u8; 1 << 20]).expect("written");
        assert_eq!(reads.take(), 0, "writing is not reading");
        let elsewhere = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut other = DeviceReads::on_this_thread();
                direct_read(&path);
                other.take()
            }
        })
        .join()
        .expect("the thread");
        assert_eq!(reads.take(), 0, "another thread's reads are its own");
        if elsewhere == 0 {
            eprintln!("this file system does not count direct reads (tmpfs?)");
            return;
        }
        assert_eq!(elsewhere, 256, "1 MiB in 4 KiB reads");
        direct_read(&path);
        assert_eq!(reads.take(), 256);
    }

    /// Reads `path` whole with `O_DIRECT` (from the device, not the page cache).
    fn direct_read(path: &std::path::Path) {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .expect("opened");
        let mut space = vec![0u8; (1 << 20) + 4096];
        let at = space.as_ptr().align_offset(4096);
        let buffer = &mut space[at..at + (1 << 20)];
        file.read_exact(buffer).expect("read");
    }
}

//! Reads a thread made the kernel fetch from a storage device (page-cache hits excluded), from
//! Linux's per-thread I/O accounting (`/proc/thread-self/io`, `read_bytes`).

use std::fs::File;
use std::os::unix::fs::FileExt as _;

/// Bytes of one device read, to count reads from bytes (RocksDB's block size).
const DEVICE_READ: u64 = 4096;

/// The calling thread's I/O accounting, opened once: `/proc/thread-self` names the thread at
/// open, so the file goes on reading that thread's counters, with one `pread` each time.
fn open_this_threads() -> Option<File> {
    File::open("/proc/thread-self/io").ok()
}

/// Bytes the thread of `io` made the kernel read from a storage device so far.
fn bytes_read(io: &File) -> Option<u64> {
    // The file is seven short lines (well under 512 bytes).
    let mut buffer = [0u8; 512];
    let len = io.read_at(&mut buffer, 0).ok()?;
    std::str::from_utf8(buffer.get(..len)?)
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("read_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// Counts the device reads of the thread that made it, between calls of
/// [`DeviceReads::take`] (about 2 µs each).
#[derive(Debug)]
pub struct DeviceReads {
    io: Option<File>,
    mark: Option<u64>,
}

impl DeviceReads {
    /// Starts counting the calling thread's device reads.
    pub fn on_this_thread() -> Self {
        let io = open_this_threads();
        let mark = io.as_ref().and_then(bytes_read);
        Self { io, mark }
    }

    /// Whether this kernel counts a thread's device reads (otherwise every count is 0).
    pub fn counted(&self) -> bool {
        self.mark.is_some()
    }

    /// Device reads (4 KiB each) since the last call, or since counting started.
    pub fn take(&mut self) -> u64 {
        let now = self.io.as_ref().and_then(bytes_read);
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

    /// A read that bypasses the page cache is counted, for the thread that made it only, even
    /// when another thread takes the count.
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
        // Taken on another thread, the count is still this thread's.
        let taken = std::thread::spawn(move || reads.take())
            .join()
            .expect("the thread");
        assert_eq!(taken, 256);
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

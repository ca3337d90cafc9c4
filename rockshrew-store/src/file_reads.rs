//! [`FileReads`]: how many data blocks RocksDB read from its files (not found in its block cache)
//! for the calling thread: the reads that waited for the page cache or the disk.

use rocksdb::{PerfContext, PerfMetric, PerfStatsLevel};

/// Counts the calling thread's reads of data blocks from files, from RocksDB's thread-local
/// perf context (counters only: no timing is switched on).
pub struct FileReads {
    context: PerfContext,
}

impl FileReads {
    /// Starts counting on the calling thread; [`FileReads::take`] must be called there too.
    pub fn on_this_thread() -> Self {
        rocksdb::perf::set_perf_stats(PerfStatsLevel::EnableCount);
        Self {
            context: PerfContext::default(),
        }
    }

    /// The blocks read from files since the last call (or since counting started).
    pub fn take(&mut self) -> u64 {
        let n = self.context.metric(PerfMetric::BlockReadCount);
        self.context.reset();
        n
    }
}

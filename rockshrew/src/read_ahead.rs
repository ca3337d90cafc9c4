//! Read-ahead: while block N runs, learn which keys block N+1 will read and read them from the
//! store in parallel, so that N+1 finds them in memory instead of waiting for the disk on each.
//!
//! A speculative run of N+1 ([`MetashrewRuntime::speculate`], on a thread of its own) reads the
//! committed state answered only from memory; every key it would have had to read from the disk
//! goes to a bounded queue, which a pool of reader threads drains, each key read at the store's
//! tip through the daemon's whole store stack ([`Storage::get_at`]). That read puts it into the
//! host read cache, RocksDB's block cache and the kernel's page cache, with as many reads in
//! flight as there are readers.
//!
//! Results cannot change. The speculative run's writes are thrown away, and the values the
//! readers fetch are not kept here: the block then runs as it always does, and every value it
//! reads comes through the same [`Storage::get_at`]. What the host cache may answer is decided in
//! one place, its own rule (an entry answers only heights at or above the one it was read at, a
//! read that raced a commit or a rollback is not cached, the block being committed answers its
//! own keys). At worst read-ahead reads keys for nothing.
//!
//! A guest may fail on state it read as absent (a balance it subtracts from). The block is then
//! run a second time, which reads what it misses from the store itself, one key at a time,
//! while the readers bring in the first run's: it keeps a second stream of reads one block ahead
//! of the indexing thread, to the block's end.
//!
//! Bounds: one speculative run at a time (a block offered while one runs is skipped), on the
//! view compilation under the view memory bound and `--view-timeout-ms`, in a view slot; at most
//! [`QUEUED_KEYS`] keys queued (more are dropped); [`ReadAheadConfig::readers`] reader threads.
//! Every thread of it runs in Linux's `SCHED_IDLE` class, so it only uses CPU time that the
//! indexing thread and RocksDB leave. A reorganisation (any rollback) or the end of a batch
//! cancels the run in progress and drops the queued keys.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use metashrew_runtime::{Cancellation, MetashrewRuntime};
use metashrew_storage::Storage;

use crate::placement::{Class, Placement};
use crate::source::Block;

/// Most keys waiting for a reader; more are dropped (a few MB of keys).
pub const QUEUED_KEYS: usize = 65_536;

/// Read-ahead's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAheadConfig {
    /// Reader threads: the reads in flight at once (the disk's queue depth). Default 16.
    pub readers: usize,
    /// Blocks smaller than this many bytes are not read ahead (their reads are few, and a
    /// speculative run would cost more than it saves). Default 64 KiB.
    pub min_block_bytes: usize,
}

impl Default for ReadAheadConfig {
    fn default() -> Self {
        Self {
            readers: 16,
            min_block_bytes: 64 << 10,
        }
    }
}

/// Counters of what read-ahead did.
#[derive(Debug, Default)]
pub struct ReadAheadStats {
    /// Speculative runs started (two for a block whose first run failed).
    pub runs: AtomicU64,
    /// Speculative runs that ended early (the guest failed on state read as absent, or the run
    /// was cancelled).
    pub runs_failed: AtomicU64,
    /// Keys the readers read.
    pub keys_read: AtomicU64,
}

/// One block to run speculatively: `block` at `height`, over the committed state (the tip when
/// the run starts: the block before it may still be running).
struct Job {
    height: u32,
    block: Block,
    cancel: Cancellation,
}

/// The speculative runner and the reader pool; dropping it stops them.
pub struct ReadAhead {
    jobs: Option<SyncSender<Job>>,
    /// Raised to drop the queued keys (readers skip them).
    flushing: Arc<AtomicBool>,
    current: Mutex<Option<Cancellation>>,
    config: ReadAheadConfig,
    stats: Arc<ReadAheadStats>,
}

/// Moves the calling thread to `SCHED_IDLE` (logged once if it cannot).
fn idle_class() {
    let placement = Placement {
        class: Class::Idle,
        ..Placement::default()
    };
    if let Err(err) = placement.apply_to_current_thread() {
        log::debug!("read-ahead thread at normal priority: {err}");
    }
}

fn read_keys<S: Storage>(
    store: &S,
    keys: &Mutex<Receiver<Vec<u8>>>,
    flushing: &AtomicBool,
    stats: &ReadAheadStats,
) {
    idle_class();
    loop {
        let key = match keys.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(key) = key else { return };
        if flushing.load(Ordering::Relaxed) {
            continue;
        }
        // A failed read is the block's to meet and report: here it only means nothing was
        // read ahead.
        if let Ok(Some(tip)) = store.tip() {
            let _ = store.get_at(&key, tip);
            stats.keys_read.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn speculate<S: Storage>(
    runtime: &MetashrewRuntime<S>,
    jobs: &Receiver<Job>,
    keys: &SyncSender<Vec<u8>>,
    stats: &ReadAheadStats,
) {
    idle_class();
    while let Ok(job) = jobs.recv() {
        // First from memory only, every miss queued for the readers; if the guest fails on
        // state it read as absent, again reading its misses itself (mostly those the readers
        // are bringing in meanwhile), to the block's end.
        for missed in [Some(keys.clone()), None] {
            let Ok(Some(tip)) = runtime.tip() else { break };
            if job.cancel.is_cancelled() {
                break;
            }
            stats.runs.fetch_add(1, Ordering::Relaxed);
            let waits = missed.is_none();
            match runtime.speculate(&job.block, job.height, tip, missed, &job.cancel) {
                Ok(_) => break,
                Err(err) => {
                    stats.runs_failed.fetch_add(1, Ordering::Relaxed);
                    log::debug!(
                        "speculative run of block {} ({}) ended: {err}",
                        job.height,
                        if waits {
                            "reading its misses"
                        } else {
                            "from memory"
                        }
                    );
                }
            }
        }
    }
}

impl ReadAhead {
    /// Starts the speculative runner and the readers on `runtime`'s store; `None` (logged) if
    /// no thread could be started, in which case blocks run without read-ahead.
    pub fn start<S: Storage>(
        runtime: Arc<MetashrewRuntime<S>>,
        config: ReadAheadConfig,
    ) -> Option<Self> {
        let stats = Arc::new(ReadAheadStats::default());
        let flushing = Arc::new(AtomicBool::new(false));
        let (key_tx, key_rx) = sync_channel::<Vec<u8>>(QUEUED_KEYS);
        let key_rx = Arc::new(Mutex::new(key_rx));
        for _ in 0..config.readers.max(1) {
            let (runtime, key_rx, flushing, stats) = (
                runtime.clone(),
                key_rx.clone(),
                flushing.clone(),
                stats.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name("rockshrew-read-ahead".into())
                .spawn(move || read_keys(runtime.storage(), &key_rx, &flushing, &stats));
            if let Err(err) = spawned {
                log::warn!("no read-ahead (cannot start a reader thread: {err})");
                return None;
            }
        }
        let (job_tx, job_rx) = sync_channel::<Job>(0);
        let runner_stats = stats.clone();
        let spawned = std::thread::Builder::new()
            .name("rockshrew-speculate".into())
            .spawn(move || speculate(&runtime, &job_rx, &key_tx, &runner_stats));
        if let Err(err) = spawned {
            log::warn!("no read-ahead (cannot start the speculative runner: {err})");
            return None;
        }
        Some(Self {
            jobs: Some(job_tx),
            flushing,
            current: Mutex::new(None),
            config,
            stats,
        })
    }

    /// Offers block `height` (the one after the block about to run): it is run speculatively
    /// unless it is small, or a run is still in progress (then it is skipped).
    pub fn offer(&self, height: u32, block: &Block) {
        if block.len() < self.config.min_block_bytes {
            return;
        }
        let Some(jobs) = &self.jobs else { return };
        self.flushing.store(false, Ordering::Relaxed);
        let cancel = Cancellation::new();
        let job = Job {
            height,
            block: block.clone(),
            cancel: cancel.clone(),
        };
        if jobs.try_send(job).is_ok()
            && let Ok(mut current) = self.current.lock()
        {
            *current = Some(cancel);
        }
    }

    /// Cancels the run in progress and drops the queued keys: a rollback made them useless.
    pub fn cancel(&self) {
        if let Ok(mut current) = self.current.lock()
            && let Some(cancel) = current.take()
        {
            cancel.cancel();
        }
        self.flushing.store(true, Ordering::Relaxed);
    }

    /// What it did so far.
    pub fn stats(&self) -> &ReadAheadStats {
        &self.stats
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.cancel();
        // The runner ends when its job channel closes, the readers when the key channel does.
        self.jobs.take();
    }
}

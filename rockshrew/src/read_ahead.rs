//! Read-ahead: while block N runs, run block N+1 speculatively, cut into parts run side by
//! side, so that the reads N+1 will make are read from the disk together, many in flight,
//! instead of one after another when N+1 runs.
//!
//! A guest reads one key at a time and waits for each, and which key it reads next often
//! depends on the value it just read (the output a transaction spends names the balance it
//! changes). So the keys are learned by running the guest, and read where they are learned. The
//! next block is cut into [`ReadAheadConfig::parallel`] × [`PARTS_PER_RUN`] blocks of its own
//! transactions (each: the header, the coinbase, a run of the others), and [`ReadAheadConfig::parallel`] threads run them,
//! first parts first, each as a speculative run ([`MetashrewRuntime::speculate`]) over the
//! committed state: every read goes through the daemon's whole store stack
//! ([`Storage::get_at`] at the tip), which leaves the value in the host read cache, RocksDB's
//! block cache and the kernel's page cache. With `parallel` runs waiting on the disk at once,
//! the disk has that many reads in flight.
//!
//! Results cannot change. The speculative runs' writes are thrown away, and nothing they read
//! is kept here: the block then runs as it always does, and every value it reads comes through
//! the same [`Storage::get_at`]. What the host cache may answer is decided in one place, its own
//! rule (an entry answers only heights at or above the one it was read at, a read that raced a
//! commit or a rollback is not cached, the block being committed answers its own keys). At
//! worst read-ahead reads keys for nothing.
//!
//! It only runs while blocks wait for the disk. After each block the sync loop reports its
//! reads and the indexing thread's device reads ([`ReadAhead::block_done`]); with the runners'
//! own, counted the same way (the bytes Linux's per-thread I/O accounting says a thread had the
//! kernel fetch from the device: page-cache hits do not count), they give the device reads a
//! guest read over the last blocks (each block's counts weigh a quarter less at every later
//! block). From [`ACTIVE_FROM`] (one in 50) it reads ahead; below [`ACTIVE_UNTIL`] (one in 200)
//! it stands down again. With the database in memory it thus costs nothing: there, speculative
//! runs only take CPU time from the block (8.5% of `contracts` on 2 cores, measured), while
//! under a memory limit they save far more than they cost. [`ReadAheadConfig::always`] reads
//! ahead for every block regardless (for tests and measurements).
//!
//! A part may fail where the whole block would not (it reads as absent what an earlier part
//! writes, and the guest checks it): that part ends early, the others go on.
//!
//! Bounds: one block at a time (a block offered while one is being read ahead is skipped);
//! `parallel` threads, each running one part at a time in a view slot (view places are shared
//! with views), under the view memory bound and `--view-timeout-ms`. Every thread of it runs in
//! Linux's `SCHED_IDLE` class by default ([`ReadAheadConfig::class`]), so it only uses CPU time
//! that the indexing thread and RocksDB leave. A reorganisation (any rollback) or the end of a batch cancels the parts not yet run
//! and stops the ones running.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};

use metashrew_runtime::{Cancellation, MetashrewRuntime};
use metashrew_storage::Storage;

use crate::device_reads::DeviceReads;
use crate::placement::{Class, Placement};
use crate::source::Block;
use crate::sub_blocks;

/// Parts a block is cut into for each run allowed at once: more parts make each shorter, so
/// that the first parts (the keys the block reads first) are done sooner and a part that fails
/// early loses less.
pub const PARTS_PER_RUN: usize = 4;

/// Device reads a guest read from which read-ahead starts (one in 50: a block of 30,000 reads
/// waits on ~600 device reads, ~30-60 ms of a 500 ms block).
pub const ACTIVE_FROM: f64 = 1.0 / 50.0;
/// Device reads a guest read below which read-ahead stands down again (one in 200).
pub const ACTIVE_UNTIL: f64 = 1.0 / 200.0;

/// Read-ahead's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAheadConfig {
    /// Speculative runs at once, each waiting on one read: the reads in flight (the disk's
    /// queue depth). Each takes one of the view places while it runs. Default 16.
    pub parallel: usize,
    /// Blocks smaller than this many bytes are not read ahead (their reads are few, and the
    /// speculative runs would cost more than they save). Default 64 KiB.
    pub min_block_bytes: usize,
    /// Read ahead for every block, not only while blocks wait for the disk (see the module's
    /// documentation). Default false.
    pub always: bool,
    /// The scheduling class of its threads. Default [`Class::Idle`]: they use only CPU time
    /// that indexing and RocksDB leave, so on a machine kept busy by other work they may wait
    /// long for a CPU.
    pub class: Class,
}

impl Default for ReadAheadConfig {
    fn default() -> Self {
        Self {
            parallel: 16,
            min_block_bytes: 64 << 10,
            always: false,
            class: Class::Idle,
        }
    }
}

/// Counters of what read-ahead did.
#[derive(Debug, Default)]
pub struct ReadAheadStats {
    /// Blocks read ahead.
    pub blocks: AtomicU64,
    /// Blocks whose every part has ended.
    pub blocks_done: AtomicU64,
    /// Speculative runs started (one a part).
    pub runs: AtomicU64,
    /// Speculative runs that ended early (the guest failed on a part, or the run was
    /// cancelled).
    pub runs_failed: AtomicU64,
    /// Keys read by the runs that completed (through the store: read ahead).
    pub keys_read: AtomicU64,
    /// Device reads the runners made since the last block was done.
    device_reads: AtomicU64,
}

/// One block to read ahead: `block` at `height`.
struct Job {
    height: u32,
    block: Block,
    cancel: Cancellation,
}

/// One part of a block, for a runner.
struct Part {
    height: u32,
    bytes: Vec<u8>,
    cancel: Cancellation,
}

/// The speculative runners; dropping it stops them.
pub struct ReadAhead {
    jobs: Option<SyncSender<Job>>,
    current: Mutex<Option<Cancellation>>,
    config: ReadAheadConfig,
    stats: Arc<ReadAheadStats>,
    /// Whether blocks wait for the disk: read ahead.
    active: AtomicBool,
    /// What decides `active`.
    gauge: Mutex<DiskGauge>,
}

/// Device reads and guest reads of the last blocks, each block's counts weighing [`DECAY`]
/// times less at every later block: the runners' reads for a block are counted when they end,
/// which may be a block later, so one block alone says little.
#[derive(Debug, Default)]
struct DiskGauge {
    device_reads: f64,
    reads: f64,
}

/// The weight a block's counts keep at each later block.
const DECAY: f64 = 0.75;

impl DiskGauge {
    /// Counts a block's reads and device reads: the device reads a read over the last blocks.
    fn add(&mut self, reads: u64, device_reads: u64) -> f64 {
        self.device_reads = DECAY * self.device_reads + device_reads as f64;
        self.reads = DECAY * self.reads + reads as f64;
        self.device_reads / self.reads.max(1.0)
    }
}

/// Moves the calling thread to `class` (logged if it cannot).
fn enter_class(class: Class) {
    let placement = Placement {
        class,
        ..Placement::default()
    };
    if let Err(err) = placement.apply_to_current_thread() {
        log::debug!("read-ahead thread at normal priority: {err}");
    }
}

/// Runs parts as they come, reporting each one done on `done`.
fn run_parts<S: Storage>(
    runtime: &MetashrewRuntime<S>,
    parts: &Mutex<Receiver<Part>>,
    done: &Sender<()>,
    stats: &ReadAheadStats,
    class: Class,
) {
    enter_class(class);
    let mut device = DeviceReads::on_this_thread();
    loop {
        let part = match parts.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(part) = part else { return };
        if !part.cancel.is_cancelled()
            && let Ok(Some(tip)) = runtime.tip()
        {
            stats.runs.fetch_add(1, Ordering::Relaxed);
            // From here, this part's reads.
            device.take();
            let outcome = runtime.speculate(&part.bytes, part.height, tip, &part.cancel);
            stats
                .device_reads
                .fetch_add(device.take(), Ordering::Relaxed);
            match outcome {
                Ok(reads) => {
                    stats.keys_read.fetch_add(reads as u64, Ordering::Relaxed);
                }
                Err(err) => {
                    stats.runs_failed.fetch_add(1, Ordering::Relaxed);
                    log::trace!("a speculative part of block {} ended: {err}", part.height);
                }
            }
        }
        if done.send(()).is_err() {
            return;
        }
    }
}

/// Takes one block at a time, cuts it and hands its parts to the runners, and waits for them
/// before it takes the next (so that an offer made meanwhile is skipped).
fn dispatch(
    jobs: &Receiver<Job>,
    parts: &SyncSender<Part>,
    done: &Receiver<()>,
    config: ReadAheadConfig,
    stats: &ReadAheadStats,
) {
    enter_class(config.class);
    let runs = config.parallel.max(1);
    while let Ok(job) = jobs.recv() {
        let pieces = sub_blocks::split(&job.block, runs * PARTS_PER_RUN)
            .unwrap_or_else(|| vec![job.block.to_vec()]);
        stats.blocks.fetch_add(1, Ordering::Relaxed);
        let mut sent = 0usize;
        for bytes in pieces {
            let part = Part {
                height: job.height,
                bytes,
                cancel: job.cancel.clone(),
            };
            if parts.send(part).is_err() {
                return;
            }
            sent += 1;
        }
        for _ in 0..sent {
            if done.recv().is_err() {
                return;
            }
        }
        stats.blocks_done.fetch_add(1, Ordering::Relaxed);
    }
}

impl ReadAhead {
    /// Starts the runners on `runtime`'s store; `None` (logged) if a thread could not be
    /// started, in which case blocks run without read-ahead.
    pub fn start<S: Storage>(
        runtime: Arc<MetashrewRuntime<S>>,
        config: ReadAheadConfig,
    ) -> Option<Self> {
        let stats = Arc::new(ReadAheadStats::default());
        let runs = config.parallel.max(1);
        // Parts wait for a runner here: a whole block's worth at most.
        let (part_tx, part_rx) = sync_channel::<Part>(runs * PARTS_PER_RUN);
        let part_rx = Arc::new(Mutex::new(part_rx));
        let (done_tx, done_rx) = channel::<()>();
        for _ in 0..runs {
            let (runtime, part_rx, done_tx, stats) = (
                runtime.clone(),
                part_rx.clone(),
                done_tx.clone(),
                stats.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name("rockshrew-read-ahead".into())
                .spawn(move || run_parts(&runtime, &part_rx, &done_tx, &stats, config.class));
            if let Err(err) = spawned {
                log::warn!("no read-ahead (cannot start a runner thread: {err})");
                return None;
            }
        }
        let (job_tx, job_rx) = sync_channel::<Job>(0);
        let dispatcher_stats = stats.clone();
        let spawned = std::thread::Builder::new()
            .name("rockshrew-speculate".into())
            .spawn(move || dispatch(&job_rx, &part_tx, &done_rx, config, &dispatcher_stats));
        if let Err(err) = spawned {
            log::warn!("no read-ahead (cannot start its dispatcher: {err})");
            return None;
        }
        if !DeviceReads::on_this_thread().counted() && !config.always {
            log::warn!(
                "read-ahead stays off: this kernel does not count a thread's device reads (/proc/thread-self/io), so it cannot tell when blocks wait for the disk"
            );
        }
        Some(Self {
            jobs: Some(job_tx),
            current: Mutex::new(None),
            config,
            stats,
            active: AtomicBool::new(config.always),
            gauge: Mutex::new(DiskGauge::default()),
        })
    }

    /// Reports a block done: the `reads` it made and the `device_reads` the indexing thread
    /// made for it (reads of 4 KiB that missed the page cache); decides whether the next
    /// blocks are read ahead (see the module's documentation).
    pub fn block_done(&self, reads: u64, device_reads: u64) {
        if self.config.always {
            return;
        }
        let device_reads = device_reads + self.stats.device_reads.swap(0, Ordering::Relaxed);
        let Ok(share) = self.gauge.lock().map(|mut g| g.add(reads, device_reads)) else {
            return;
        };
        let was = self.active.load(Ordering::Relaxed);
        let next = if was {
            share >= ACTIVE_UNTIL
        } else {
            share >= ACTIVE_FROM
        };
        if next != was {
            self.active.store(next, Ordering::Relaxed);
            if next {
                log::info!(
                    "blocks wait for the disk ({share:.3} device reads a read; this block: {device_reads} for {reads}): reading ahead"
                );
            } else {
                log::info!(
                    "blocks no longer wait for the disk ({share:.4} device reads a read; this block: {device_reads} for {reads}): read-ahead stands down"
                );
            }
        }
    }

    /// Offers block `height` (the one after the block about to run): it is read ahead unless
    /// it is small, blocks do not wait for the disk, or the block before is still being read
    /// ahead (then it is skipped).
    pub fn offer(&self, height: u32, block: &Block) {
        if block.len() < self.config.min_block_bytes || !self.active.load(Ordering::Relaxed) {
            return;
        }
        let Some(jobs) = &self.jobs else { return };
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

    /// Cancels the block being read ahead: a rollback made its reads useless.
    pub fn cancel(&self) {
        if let Ok(mut current) = self.current.lock()
            && let Some(cancel) = current.take()
        {
            cancel.cancel();
        }
    }

    /// What it did so far.
    pub fn stats(&self) -> &ReadAheadStats {
        &self.stats
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.cancel();
        // The dispatcher ends when its job channel closes, the runners when the part channel
        // does.
        self.jobs.take();
    }
}

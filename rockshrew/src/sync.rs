//! The sync loop: follows the block source, checks every block before it runs, handles reorgs,
//! and commits strictly one block after another.
//!
//! Before block h runs: the block's header must hash to what the source announced for h, and
//! its previous-block hash must be the stored hash of h-1. A mismatch of the first kind means
//! the source lied or changed its mind: nothing is indexed, the blocks are fetched again. A
//! mismatch of the second kind (or the source's hash at our tip changing) is a reorg: the store
//! is rolled back to the last height where both agree, within `max_reorg_depth`, and indexing
//! resumes from there. A deeper reorg stops the daemon with a clear error.
//!
//! With proof-of-work checks on ([`PowCheck`], the default), every block must also pass
//! [`crate::pow::Rules::check`] before it runs, and a reorganisation's blocks before anything
//! is rolled back: a block that fails is refused (logged with its height, hash and the rule it
//! broke), nothing of it is indexed, and the source is asked again after the poll interval;
//! but a block that shows the source is of another network than `--network` (`nBits` above its
//! limit, another network's genesis) stops the daemon with the flag to pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use metashrew_runtime::{MetashrewRuntime, RuntimeError};
use metashrew_storage::hashes::{block_hash, parent_hash};
use metashrew_storage::{BlockHash, Storage, StorageError};
use rockshrew_store::IngestMode;

use crate::device_reads::DeviceReads;
use crate::metrics::Metrics;
use crate::pow::{Branch, CheckError, Checked, HeaderStore, KeptHeaders, Rules, header_of};
use crate::prefetch::Prefetcher;
use crate::read_ahead::{ReadAhead, ReadAheadConfig};
use crate::store::FileReads;

use crate::source::{BlockSource, SourceError};

/// Settings of the sync loop.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// First height to index when the store is empty.
    pub start_block: u32,
    /// Stop once this height is committed.
    pub exit_at: Option<u32>,
    /// The deepest reorganisation followed; a deeper one stops the daemon.
    pub max_reorg_depth: u32,
    /// How long to wait before asking the source again when caught up or after an error.
    pub poll_interval: Duration,
    /// Blocks fetched in parallel.
    pub fetch_workers: usize,
    /// Blocks fetched ahead of execution at most.
    pub fetch_depth: usize,
    /// From this many blocks behind the source's tip, the store is written with its bulk-sync
    /// settings ([`IngestMode::Bulk`]); below half of it, with its tip settings again. 0: never.
    pub bulk_behind: u32,
    /// Reading the next block's keys ahead while a block runs (`None`: off, the default).
    pub read_ahead: Option<ReadAheadConfig>,
    /// The indexer's label, named in the loop's log lines when a daemon runs several.
    pub name: Option<String>,
}

/// The proof-of-work check of every block: the network's rules, and the database whose kept
/// headers they read and extend.
pub struct PowCheck {
    /// The rules of the network.
    pub rules: Rules,
    /// Where headers are kept.
    pub store: Arc<crate::store::RocksStore>,
}

/// Switches the store's ingest settings (the daemon passes the RocksDB store's).
pub type IngestSwitch = Box<dyn Fn(IngestMode) -> Result<(), StorageError> + Send + Sync>;

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            start_block: 0,
            exit_at: None,
            max_reorg_depth: 100,
            poll_interval: Duration::from_secs(1),
            fetch_workers: 4,
            fetch_depth: 64,
            bulk_behind: 144,
            read_ahead: None,
            name: None,
        }
    }
}

/// The indexer failed on a block: deterministic (every node fails there), so this indexer
/// stops; nothing of the block was committed. Any other error of [`Syncer::run`] is the host's
/// (storage, node).
#[derive(Debug, thiserror::Error)]
#[error(
    "the indexer failed on block {height} ({hash}): {fault}. This is deterministic: every node fails here. Nothing of the block was committed."
)]
pub struct IndexerFailed {
    /// The block's height.
    pub height: u32,
    /// Its hash.
    pub hash: BlockHash,
    /// What the guest did.
    pub fault: String,
}

/// Why the loop returned without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStop {
    /// `exit_at` was committed.
    ExitAt(u32),
    /// Shutdown was requested.
    Shutdown,
}

/// The sync loop over one runtime and one block source: checks, runs and commits each block,
/// following reorganisations.
pub struct Syncer<S: Storage> {
    /// The indexer.
    pub runtime: Arc<MetashrewRuntime<S>>,
    /// Where blocks come from.
    pub source: Arc<dyn BlockSource>,
    /// Settings.
    pub config: SyncConfig,
    /// Metrics to update.
    pub metrics: Arc<Metrics>,
    /// Set to stop at the next block boundary.
    pub shutdown: Arc<AtomicBool>,
    /// Called when the ingest mode should change (none: the store has one mode).
    pub ingest: Option<IngestSwitch>,
    /// Proof-of-work checks (none: `--no-pow-check`).
    pub pow: Option<PowCheck>,
    /// Where the hashes of rolled-back blocks are recorded.
    pub abandoned: Arc<crate::abandoned::Abandoned>,
    /// An operator's rollback, carried out at the next block boundary (none: not offered).
    pub rewinds: Option<Arc<crate::rewind::Rewinds>>,
}

/// What happened to a batch of fetched blocks.
enum Batch {
    /// Go on from the store's tip: the batch was indexed, or a reorganisation was rolled back.
    Done,
    /// Fetch again from the (possibly new) tip.
    Refetch,
    Stop(SyncStop),
}

struct Progress {
    since: Instant,
    blocks: u64,
    /// Blocks indexed since the loop started.
    total: u64,
    /// Time spent indexing (fetching, running and committing blocks), idle polls excluded.
    active: Duration,
    /// The store's current ingest mode.
    mode: IngestMode,
    /// The indexing thread's reads of RocksDB's files (block cache misses).
    file_reads: FileReads,
    /// The indexing thread's device reads.
    device_reads: DeviceReads,
}

impl<S: Storage> Syncer<S> {
    /// `` `label`: `` before the loop's own log lines when it has a name.
    fn prefix(&self) -> String {
        self.config
            .name
            .as_ref()
            .map_or_else(String::new, |n| format!("`{n}`: "))
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    fn sleep(&self, duration: Duration) {
        let deadline = Instant::now() + duration;
        let rewind_waits = || self.rewinds.as_ref().is_some_and(|r| r.pending());
        while Instant::now() < deadline && !self.stopping() && !rewind_waits() {
            std::thread::sleep(Duration::from_millis(20).min(duration));
        }
    }

    /// Runs until `exit_at`, shutdown, or a fatal error (a block the indexer fails on, a reorg
    /// deeper than allowed, a storage failure).
    pub fn run(&self) -> Result<SyncStop> {
        let started = Instant::now();
        let mut progress = Progress {
            since: started,
            blocks: 0,
            total: 0,
            active: Duration::ZERO,
            mode: IngestMode::Tip,
            file_reads: FileReads::on_this_thread(),
            device_reads: DeviceReads::on_this_thread(),
        };
        let read_ahead = self
            .config
            .read_ahead
            .and_then(|c| ReadAhead::start(self.runtime.clone(), c));
        let outcome = self.follow(&mut progress, read_ahead.as_ref());
        if let Some(stats) = read_ahead.as_ref().map(ReadAhead::stats) {
            log::info!(
                "{}read ahead: {} blocks in {} speculative runs ({} ended early), {} keys read ahead, for {} reads the blocks made",
                self.prefix(),
                stats.blocks.load(Ordering::Relaxed),
                stats.runs.load(Ordering::Relaxed),
                stats.runs_failed.load(Ordering::Relaxed),
                stats.keys_read.load(Ordering::Relaxed),
                self.metrics.block_reads.get()
            );
        }
        let active = progress.active.as_secs_f64();
        log::info!(
            "{}indexed {} blocks in {active:.3} s of indexing ({:.1} blocks/s); up {:.3} s",
            self.prefix(),
            progress.total,
            progress.total as f64 / active.max(1e-9),
            started.elapsed().as_secs_f64()
        );
        outcome
    }

    fn follow(&self, progress: &mut Progress, read_ahead: Option<&ReadAhead>) -> Result<SyncStop> {
        loop {
            if self.stopping() {
                return Ok(SyncStop::Shutdown);
            }
            if let Some(rewind) = self.rewinds.as_ref().and_then(|r| r.take()) {
                let outcome = self.rewind(rewind.height);
                let failed = outcome.as_ref().err().map(|e| format!("{e:#}"));
                rewind.answer(outcome.map_err(|e| format!("{e:#}")));
                if let Some(why) = failed {
                    log::error!("{}operator's rollback failed: {why}", self.prefix());
                }
            }
            let tip = self.runtime.tip()?;
            if let (Some(t), Some(e)) = (tip, self.config.exit_at)
                && t >= e
            {
                return Ok(SyncStop::ExitAt(t));
            }
            let node_tip = match self.source.tip_height() {
                Ok(t) => t,
                Err(SourceError::Interrupted) => return Ok(SyncStop::Shutdown),
                Err(e) => {
                    log::warn!("cannot get the source's tip: {e}");
                    self.sleep(self.config.poll_interval);
                    continue;
                }
            };
            self.metrics.node_tip.set(i64::from(node_tip));
            let next_height = tip.map_or(self.config.start_block, |t| t + 1);
            self.adjust_ingest(progress, node_tip.saturating_sub(next_height))?;
            if let Some(t) = tip {
                let checked = self.check_tip(t).with_context(|| {
                    format!(
                        "checking our tip {t} against the source, before block {}",
                        t + 1
                    )
                });
                match checked {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) if is_interrupted(&e) => return Ok(SyncStop::Shutdown),
                    Err(e) => return Err(e),
                }
            }
            let next = tip.map_or(self.config.start_block, |t| t + 1);
            let last = self.config.exit_at.map_or(node_tip, |e| e.min(node_tip));
            if next > last {
                self.sleep(self.config.poll_interval);
                continue;
            }
            // A shutdown while waiting for the node (also inside a reorganisation's walk back)
            // is a clean stop, not a failure.
            let indexing = Instant::now();
            let batch = self.index_range(next, last, node_tip, progress, read_ahead);
            // Whatever ended the batch (a reorganisation among others), what was read ahead
            // for it is of no more use.
            if let Some(read_ahead) = read_ahead {
                read_ahead.cancel();
            }
            progress.active += indexing.elapsed();
            let batch = match batch {
                Err(e) if is_interrupted(&e) => return Ok(SyncStop::Shutdown),
                other => other?,
            };
            match batch {
                Batch::Done => {}
                Batch::Refetch => self.sleep(self.config.poll_interval),
                Batch::Stop(stop) => return Ok(stop),
            }
        }
    }

    /// Compares our tip with the source's block at that height; rolls back on a reorg.
    /// Returns whether a rollback happened.
    fn check_tip(&self, tip: u32) -> Result<bool> {
        if self.agrees_at(tip)? {
            return Ok(false);
        }
        if !self.handle_reorg(tip)? {
            self.sleep(self.config.poll_interval);
        }
        Ok(true)
    }

    /// The stored block hash of `height`, for the kept headers.
    fn stored_hash(&self, height: u32) -> Result<Option<BlockHash>, StorageError> {
        self.runtime.block_hash(height).map_err(|e| match e {
            RuntimeError::Storage(err) => err,
            other => StorageError::Corrupt(other.to_string()),
        })
    }

    /// Checks `block` at `height` against the rules over `earlier` headers; a refusal is logged
    /// and counted, and returns false.
    fn passes(
        &self,
        pow: &PowCheck,
        height: u32,
        block: &[u8],
        earlier: &dyn HeaderStore,
    ) -> Result<bool> {
        match pow.rules.check(height, block, earlier) {
            Ok(Checked::Full) => Ok(true),
            Ok(Checked::Partial) => {
                log::debug!("block {height}: difficulty not checked (earlier headers unknown)");
                Ok(true)
            }
            Err(CheckError::Refused(refused)) => {
                // Asking again cannot cure a block of another network: the daemon stops.
                if let Some(why) = refused.of_another_network(pow.rules.chain()) {
                    bail!("{refused}; nothing of it is indexed. {why}");
                }
                log::error!("{refused}; nothing of it is indexed, asking the source again later");
                self.metrics.pow_refused.inc();
                Ok(false)
            }
            Err(CheckError::Storage(err)) => Err(err).context("reading the kept block headers"),
        }
    }

    /// Fetches the source's blocks above `fork` up to `to` and checks them as a branch; false
    /// (logged) if one is refused or does not link to the one before.
    fn branch_passes(&self, pow: &PowCheck, fork: u32, to: u32) -> Result<bool> {
        self.with_kept_headers(pow, |kept| self.branch_passes_over(pow, kept, fork, to))
    }

    /// `f` over the headers kept in the database, as far as they are the stored blocks'.
    fn with_kept_headers<R>(&self, pow: &PowCheck, f: impl FnOnce(&KeptHeaders<'_>) -> R) -> R {
        let hash_at = |h| self.stored_hash(h);
        f(&KeptHeaders {
            store: &pow.store,
            hash_at: &hash_at,
        })
    }

    fn branch_passes_over(
        &self,
        pow: &PowCheck,
        kept: &KeptHeaders<'_>,
        fork: u32,
        to: u32,
    ) -> Result<bool> {
        let mut branch = Branch {
            fork,
            headers: Vec::new(),
            below: kept,
        };
        let mut parent = self.runtime.block_hash(fork)?;
        for height in fork + 1..=to {
            let hash = match self.source.block_hash(height) {
                Ok(hash) => hash,
                Err(SourceError::NoBlock(_)) => break,
                Err(e) => return Err(e.into()),
            };
            let block = self.source.block(&hash)?;
            let (Some(header), Some(linked)) = (header_of(&block), parent) else {
                break;
            };
            if block_hash(&block) != Some(hash) || parent_hash(&block) != Some(linked) {
                log::error!("the source's branch at {height} does not link; not following it");
                return Ok(false);
            }
            if !self.passes(pow, height, &block, &branch)? {
                return Ok(false);
            }
            branch.headers.push(header);
            parent = Some(hash);
        }
        Ok(true)
    }

    /// Whether our block at `height` is the source's block at that height.
    fn agrees_at(&self, height: u32) -> Result<bool> {
        let ours = self.runtime.block_hash(height)?;
        let theirs = match self.source.block_hash(height) {
            Ok(h) => Some(h),
            Err(SourceError::NoBlock(_)) => None,
            Err(e) => return Err(e.into()),
        };
        Ok(ours.is_some() && ours == theirs)
    }

    /// Walks down from `from` until our hash and the source's agree, then rolls back to there;
    /// with proof-of-work checks, only once the source's blocks that replace ours pass them.
    /// Returns whether it rolled back.
    fn handle_reorg(&self, from: u32) -> Result<bool> {
        let first = self.runtime.storage().first_height()?.unwrap_or(0);
        let mut height = from;
        loop {
            if self.agrees_at(height)? {
                break;
            }
            let depth = from - height + 1;
            if depth > self.config.max_reorg_depth {
                bail!(
                    "chain reorganisation deeper than --max-reorg-depth {} (our block {} differs from the node's); refusing to roll back further",
                    self.config.max_reorg_depth,
                    height
                );
            }
            if height <= first {
                bail!(
                    "chain reorganisation reaches below the first indexed block {first}; re-index from an earlier --start-block"
                );
            }
            height -= 1;
        }
        let depth = from - height;
        if let Some(pow) = &self.pow
            && !self.branch_passes(pow, height, from)?
        {
            log::error!(
                "the source's branch replacing our blocks {}..={from} is refused: nothing is rolled back",
                height + 1
            );
            return Ok(false);
        }
        for abandoned in height + 1..=from {
            if let Some(hash) = self.runtime.block_hash(abandoned)? {
                self.abandoned.record(hash, abandoned);
            }
        }
        log::warn!(
            "chain reorganisation: rolling back {depth} block(s), from {from} to {height} ({})",
            self.runtime
                .block_hash(height)?
                .map_or_else(String::new, |h| h.to_string())
        );
        self.runtime
            .rollback_to(height)
            .context("rolling back a reorg")?;
        self.metrics.reorgs.inc();
        self.metrics.reorg_depth.observe(f64::from(depth));
        self.metrics.indexed_height.set(i64::from(height));
        Ok(true)
    }

    /// Rolls back to `height` for an operator; returns the old tip.
    fn rewind(&self, height: u32) -> Result<u32> {
        let tip = self.runtime.tip()?.context("nothing is indexed")?;
        log::warn!(
            "{}rolling back from {tip} to {height}, as the operator asked",
            self.prefix()
        );
        self.runtime
            .rollback_to(height)
            .context("rolling back for the operator")?;
        self.metrics.indexed_height.set(i64::from(height));
        Ok(tip)
    }

    fn index_range(
        &self,
        from: u32,
        to: u32,
        node_tip: u32,
        progress: &mut Progress,
        read_ahead: Option<&ReadAhead>,
    ) -> Result<Batch> {
        let prefetcher = Prefetcher::start(
            self.source.clone(),
            from,
            to,
            self.config.fetch_workers,
            self.config.fetch_depth,
        )
        .context("starting the block fetcher")?;
        // The block after the one running, taken early to be read ahead.
        let mut upcoming = None;
        while let Some(fetched) = upcoming.take().or_else(|| prefetcher.next()) {
            if self.stopping() {
                return Ok(Batch::Stop(SyncStop::Shutdown));
            }
            if self.rewinds.as_ref().is_some_and(|r| r.pending()) {
                return Ok(Batch::Done);
            }
            let fetched = match fetched {
                Ok(f) => f,
                Err(SourceError::Interrupted) => return Ok(Batch::Stop(SyncStop::Shutdown)),
                Err(e) => {
                    log::warn!("fetching blocks: {e}");
                    return Ok(Batch::Refetch);
                }
            };
            let h = fetched.height;
            if block_hash(&fetched.block) != Some(fetched.hash) {
                log::error!(
                    "the source sent a block for height {h} whose header does not hash to the announced {}; not indexing it, fetching again",
                    fetched.hash
                );
                return Ok(Batch::Refetch);
            }
            let parent = match h.checked_sub(1) {
                Some(below) => self.runtime.block_hash(below).with_context(|| {
                    format!("the database failed while checking that block {h} links to our block {below}")
                })?,
                None => None,
            };
            if let Some(parent) = parent
                && parent_hash(&fetched.block) != Some(parent)
            {
                log::warn!("block {h} does not link to our block {}: reorg", h - 1);
                return Ok(match self.handle_reorg(h - 1)? {
                    true => Batch::Done,
                    false => Batch::Refetch,
                });
            }
            if let Some(pow) = &self.pow {
                if !self.with_kept_headers(pow, |kept| self.passes(pow, h, &fetched.block, kept))? {
                    return Ok(Batch::Refetch);
                }
                let header: &[u8; 80] = fetched
                    .block
                    .first_chunk()
                    .context("a block shorter than its header")?;
                pow.store
                    .put_header(h, header)
                    .context("keeping the block's header")?;
            }
            if let Some(read_ahead) = read_ahead {
                // Only a block already fetched: at the node's tip there is none to read for.
                upcoming = prefetcher.try_next();
                if let Some(Ok(next)) = &upcoming {
                    read_ahead.offer(next.height, &next.block);
                }
            }
            progress.file_reads.take();
            progress.device_reads.take();
            let report = match self.runtime.process_block(h, &fetched.block) {
                Ok(r) => r,
                Err(RuntimeError::BlockFailed { height, fault }) => {
                    return Err(IndexerFailed {
                        height,
                        hash: fetched.hash,
                        fault: fault.to_string(),
                    }
                    .into());
                }
                Err(RuntimeError::Storage(err)) => {
                    bail!(
                        "the database failed while indexing block {h} ({}): {err}. This is this host's fault, not the indexer's: the database holds the block whole or not at all, and a restart once the disk is fixed resumes after its last whole block.",
                        fetched.hash
                    )
                }
                Err(e) => return Err(e).with_context(|| format!("indexing block {h}")),
            };
            let phases = &self.metrics.block_phase_seconds;
            phases
                .with_label_values(&["fetch"])
                .observe(fetched.fetch_time.as_secs_f64());
            phases
                .with_label_values(&["guest"])
                .observe(report.execute_time.as_secs_f64());
            phases
                .with_label_values(&["host_calls"])
                .observe(report.host_call_time.as_secs_f64());
            phases
                .with_label_values(&["commit"])
                .observe(report.commit_time.as_secs_f64());
            self.metrics.block_reads.inc_by(report.reads as u64);
            let device_reads = progress.device_reads.take();
            self.metrics.block_device_reads.inc_by(device_reads);
            if let Some(read_ahead) = read_ahead {
                read_ahead.block_done(report.reads as u64, device_reads);
            }
            self.metrics
                .block_file_reads
                .inc_by(progress.file_reads.take());
            log_block(h, &fetched.block, &report);
            self.metrics.indexed_height.set(i64::from(h));
            self.metrics.blocks_indexed.inc();
            progress.blocks += 1;
            progress.total += 1;
            self.report_progress(progress, h, node_tip);
            self.adjust_ingest(progress, node_tip.saturating_sub(h))?;
            if self.config.exit_at == Some(h) {
                return Ok(Batch::Stop(SyncStop::ExitAt(h)));
            }
        }
        Ok(Batch::Done)
    }

    /// Switches the store to bulk mode at [`SyncConfig::bulk_behind`] blocks behind the
    /// source's tip, and back below half of it.
    fn adjust_ingest(&self, progress: &mut Progress, behind: u32) -> Result<()> {
        let (Some(switch), threshold) = (&self.ingest, self.config.bulk_behind) else {
            return Ok(());
        };
        let wanted = match progress.mode {
            _ if threshold == 0 => IngestMode::Tip,
            IngestMode::Tip if behind >= threshold => IngestMode::Bulk,
            IngestMode::Bulk if behind < threshold / 2 => IngestMode::Tip,
            current => current,
        };
        if wanted != progress.mode {
            switch(wanted).context("switching the store's ingest settings")?;
            log::info!("{behind} blocks behind the source: the store uses its {wanted:?} settings");
            self.metrics
                .bulk_ingest
                .set(i64::from(wanted == IngestMode::Bulk));
            progress.mode = wanted;
        }
        Ok(())
    }

    fn report_progress(&self, progress: &mut Progress, height: u32, node_tip: u32) {
        let elapsed = progress.since.elapsed();
        if elapsed < Duration::from_secs(5) && height < node_tip {
            return;
        }
        let rate = progress.blocks as f64 / elapsed.as_secs_f64().max(1e-9);
        self.metrics
            .blocks_per_second_milli
            .set((rate * 1000.0) as i64);
        let left = node_tip.saturating_sub(height);
        let eta = if rate > 0.0 {
            format!("{:.0}s", f64::from(left) / rate)
        } else {
            "?".into()
        };
        log::info!(
            "{}height {height} / node tip {node_tip} ({left} behind), {rate:.1} blocks/s, ETA {eta}",
            self.prefix()
        );
        progress.since = Instant::now();
        progress.blocks = 0;
    }
}

/// A block took longer than this: logged at info level ("slow block"), else at debug.
const SLOW_BLOCK: Duration = Duration::from_secs(1);

/// One line per block: height, transactions, reads, writes, guest and commit time.
fn log_block(height: u32, block: &[u8], report: &metashrew_runtime::BlockReport) {
    let took = report.execute_time + report.commit_time;
    let level = if took > SLOW_BLOCK {
        log::Level::Info
    } else {
        log::Level::Debug
    };
    if !log::log_enabled!(level) {
        return;
    }
    let txs = transaction_count(block).map_or_else(|| "?".to_string(), |n| n.to_string());
    log::log!(
        level,
        "{}block {height}: {txs} transactions, {} reads, {} writes, guest {:.1} ms, commit {:.1} ms",
        if took > SLOW_BLOCK { "slow " } else { "" },
        report.reads,
        report.writes,
        report.execute_time.as_secs_f64() * 1e3,
        report.commit_time.as_secs_f64() * 1e3
    );
}

/// The transaction count of a consensus-serialised block (the varint after its header).
fn transaction_count(block: &[u8]) -> Option<u64> {
    crate::source::varint(block.get(80..)?).map(|(n, _)| n)
}

fn is_interrupted(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<SourceError>(),
        Some(SourceError::Interrupted)
    )
}

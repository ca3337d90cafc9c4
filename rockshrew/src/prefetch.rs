//! Fetches the next blocks in parallel, ahead of execution, and hands them over in height order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use crate::source::{Block, BlockSource, SourceError};
use metashrew_storage::BlockHash;

/// One fetched block, as the source announced it.
pub struct Fetched {
    /// Its height.
    pub height: u32,
    /// The hash `getblockhash` gave for the height (to be checked against the block's header).
    pub hash: BlockHash,
    /// The consensus-serialised block.
    pub block: Block,
    /// How long fetching it took.
    pub fetch_time: Duration,
}

/// Fetches heights `from..=to` with `workers` requests in flight, at most `depth` blocks ahead
/// of the consumer. Dropping it stops the fetching.
pub struct Prefetcher {
    rx: Receiver<Result<Fetched, SourceError>>,
    stop: Arc<AtomicBool>,
}

fn fetch_one(source: &dyn BlockSource, height: u32) -> Result<Fetched, SourceError> {
    let started = Instant::now();
    let hash = source.block_hash(height)?;
    let block = source.block(&hash)?;
    Ok(Fetched {
        height,
        hash,
        block,
        fetch_time: started.elapsed(),
    })
}

fn produce(
    source: Arc<dyn BlockSource>,
    from: u32,
    to: u32,
    workers: usize,
    tx: SyncSender<Result<Fetched, SourceError>>,
    stop: Arc<AtomicBool>,
) {
    let mut next = from;
    while next <= to && !stop.load(Ordering::Relaxed) {
        let last = next.saturating_add(workers as u32 - 1).min(to);
        let results: Vec<Result<Fetched, SourceError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (next..=last)
                .map(|h| {
                    let source = source.as_ref();
                    std::thread::Builder::new()
                        .name("rockshrew-fetch".into())
                        .spawn_scoped(scope, move || fetch_one(source, h))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(thread) => thread.join().unwrap_or_else(|_| {
                        Err(SourceError::Node("a fetch thread panicked".into()))
                    }),
                    Err(e) => Err(SourceError::Unavailable(format!(
                        "cannot start a fetch thread: {e}"
                    ))),
                })
                .collect()
        });
        for result in results {
            let failed = result.is_err();
            if tx.send(result).is_err() || failed {
                return;
            }
        }
        match last.checked_add(1) {
            Some(n) => next = n,
            None => return,
        }
    }
}

impl Prefetcher {
    /// Starts fetching; fails only if the fetch thread cannot be started.
    pub fn start(
        source: Arc<dyn BlockSource>,
        from: u32,
        to: u32,
        workers: usize,
        depth: usize,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(depth.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let workers = workers.max(1);
        let spawned = std::thread::Builder::new()
            .name("rockshrew-fetch".into())
            .spawn(move || produce(source, from, to, workers, tx, flag));
        spawned?;
        Ok(Self { rx, stop })
    }

    /// The next block in height order; `None` once the range is done (or fetching stopped).
    pub fn next(&self) -> Option<Result<Fetched, SourceError>> {
        self.rx.recv().ok()
    }

    /// The next block if it is already fetched, without waiting.
    pub fn try_next(&self) -> Option<Result<Fetched, SourceError>> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

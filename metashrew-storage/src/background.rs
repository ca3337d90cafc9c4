//! [`Background`]: hands one block at a time to a worker thread, and keeps that block in hand
//! (the *pending* block) until the worker is done with it, so that callers can answer from it
//! meanwhile. Used by [`super::PipelinedStore`] (the worker writes the block to the store) and
//! [`super::CachedStore`] (the worker puts the block's writes into the cache).

use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use arc_swap::ArcSwapOption;

use super::{BlockCommit, StorageError};

/// Read by every store read, so without a lock: a reader that the scheduler sets aside while
/// it reads (a view thread at idle priority, say) holds nobody up.
struct Shared {
    pending: ArcSwapOption<BlockCommit>,
    /// Why the worker failed on a block; every later call reports it.
    failed: ArcSwapOption<String>,
    /// Taken only to wait for the end of a block, and to announce it.
    waiting: Mutex<()>,
    settled: Condvar,
    /// What the worker does, for error messages ("writing an earlier block in the background").
    action: &'static str,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ()> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self) -> Result<(), StorageError> {
        match self.failed.load().as_deref() {
            Some(why) => Err(StorageError::Backend {
                action: self.action,
                cause: why.as_str().into(),
            }),
            None => Ok(()),
        }
    }
}

/// See the module documentation. Dropping it waits for the pending block.
pub(super) struct Background {
    shared: Arc<Shared>,
    jobs: Option<SyncSender<Arc<BlockCommit>>>,
    worker: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts a thread called `name` that runs `job` on every block handed to it; `action`
    /// names the job in errors. Fails only if the thread cannot be started.
    pub(super) fn spawn<F>(name: &str, action: &'static str, mut job: F) -> std::io::Result<Self>
    where
        F: FnMut(Arc<BlockCommit>) -> Result<(), StorageError> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            pending: ArcSwapOption::empty(),
            failed: ArcSwapOption::empty(),
            waiting: Mutex::new(()),
            settled: Condvar::new(),
            action,
        });
        let (jobs, queue) = sync_channel::<Arc<BlockCommit>>(1);
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for commit in queue {
                    let height = commit.height;
                    if let Err(err) = job(commit) {
                        log::error!("{} failed on block {height}: {err}", worker.action);
                        worker.failed.store(Some(Arc::new(err.to_string())));
                    }
                    let done = worker.pending.swap(None);
                    {
                        let _announcing = worker.lock();
                        worker.settled.notify_all();
                    }
                    // Freed last, and by no lock: freeing a large block takes milliseconds.
                    drop(done);
                }
            })?;
        Ok(Self {
            shared,
            jobs: Some(jobs),
            worker: Some(thread),
        })
    }

    /// Waits until no block is pending; fails if the worker failed on a block.
    pub(super) fn settle(&self) -> Result<(), StorageError> {
        let mut waiting = self.shared.lock();
        // The worker clears `pending` before it takes the lock to announce it, so a clear that
        // happens after this check is announced to the wait below.
        while self.shared.pending.load().is_some() {
            waiting = self
                .shared
                .settled
                .wait(waiting)
                .unwrap_or_else(|p| p.into_inner());
        }
        drop(waiting);
        self.shared.failed()
    }

    /// The pending block, if any (fails if the worker failed on a block).
    pub(super) fn pending(&self) -> Result<Option<Arc<BlockCommit>>, StorageError> {
        self.shared.failed()?;
        Ok(self.shared.pending.load_full())
    }

    /// Makes `commit` the pending block and hands it to the worker. Call [`Background::settle`]
    /// first: at most one block is pending.
    pub(super) fn hand_over(&self, commit: Arc<BlockCommit>) -> Result<(), StorageError> {
        self.shared.pending.store(Some(commit.clone()));
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(commit));
        if !matches!(sent, Some(Ok(()))) {
            self.shared.pending.store(None);
            return Err(StorageError::Backend {
                action: self.shared.action,
                cause: "the worker thread has stopped".into(),
            });
        }
        Ok(())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

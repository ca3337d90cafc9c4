//! [`Background`]: hands one block at a time to a worker thread, and keeps that block in hand
//! (the *pending* block) until the worker is done with it, so that callers can answer from it
//! meanwhile. Used by [`super::PipelinedStore`] (the worker writes the block to the store) and
//! [`super::CachedStore`] (the worker puts the block's writes into the cache).

use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::{BlockCommit, StorageError};

#[derive(Default)]
struct State {
    pending: Option<Arc<BlockCommit>>,
    /// Why the worker failed on a block; every later call reports it.
    failed: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    settled: Condvar,
    /// What the worker does, for error messages ("writing an earlier block in the background").
    action: &'static str,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failure(&self, why: &str) -> StorageError {
        StorageError::Backend {
            action: self.action,
            cause: why.into(),
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
            state: Mutex::new(State::default()),
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
                    let result = job(commit);
                    let mut state = worker.lock();
                    if let Err(err) = result {
                        log::error!("{} failed on block {height}: {err}", worker.action);
                        state.failed = Some(err.to_string());
                    }
                    state.pending = None;
                    worker.settled.notify_all();
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
        let mut state = self.shared.lock();
        while state.pending.is_some() {
            state = self
                .shared
                .settled
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        match &state.failed {
            Some(why) => Err(self.shared.failure(why)),
            None => Ok(()),
        }
    }

    /// The pending block, if any (fails if the worker failed on a block).
    pub(super) fn pending(&self) -> Result<Option<Arc<BlockCommit>>, StorageError> {
        let state = self.shared.lock();
        match &state.failed {
            Some(why) => Err(self.shared.failure(why)),
            None => Ok(state.pending.clone()),
        }
    }

    /// Makes `commit` the pending block and hands it to the worker. Call [`Background::settle`]
    /// first: at most one block is pending.
    pub(super) fn hand_over(&self, commit: Arc<BlockCommit>) -> Result<(), StorageError> {
        self.shared.lock().pending = Some(commit.clone());
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(commit));
        if !matches!(sent, Some(Ok(()))) {
            self.shared.lock().pending = None;
            return Err(self.shared.failure("the worker thread has stopped"));
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

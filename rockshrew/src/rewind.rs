//! Rolling a running daemon's index back to a height, on an operator's request (`rockshrew
//! rollback` through the admin socket): the request waits for the indexer's next block
//! boundary, where the sync loop rolls back through its whole store stack (host cache,
//! background writer, RocksDB), as for a reorganisation, and then indexes again from there.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rockshrew_store::RocksStore;

/// How long a request waits for the indexer to reach a block boundary before giving up (a
/// daemon waiting for an unreachable node never does).
const BOUNDARY_WAIT: Duration = Duration::from_secs(60);

/// A rollback the sync loop is to carry out: the height, and where to say how it went (the
/// old tip, or why not).
pub(crate) struct Rewind {
    /// The height the index is to end at.
    pub height: u32,
    reply: SyncSender<Result<u32, String>>,
}

impl Rewind {
    /// Tells the requester how it went.
    pub fn answer(self, outcome: Result<u32, String>) {
        // The requester may have given up waiting; then nobody listens.
        let _ = self.reply.send(outcome);
    }
}

/// One indexer's pending rollback request, shared by the admin socket and its sync loop.
pub(crate) struct Rewinds {
    /// The indexer's namespace: checks before the request is queued.
    pub store: Arc<RocksStore>,
    pending: Mutex<Option<Rewind>>,
}

impl Rewinds {
    /// No request pending yet.
    pub fn new(store: Arc<RocksStore>) -> Self {
        Self {
            store,
            pending: Mutex::new(None),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Rewind>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the sync loop to roll back to `height` and waits until it has; returns the old tip.
    /// Refused at once when the height is out of range, when the rollback would forget a module
    /// (the running one would no longer be the index's: stop the daemon and use `rockshrew
    /// rollback` on the database), or when another request is pending.
    pub fn ask(&self, height: u32) -> Result<u32, String> {
        self.store.check_rewind(height).map_err(|e| e.to_string())?;
        if self
            .store
            .rewind_forgets_a_module(height)
            .map_err(|e| e.to_string())?
        {
            return Err(format!(
                "height {height} is below the height this daemon's module took over from: stop the daemon, run `rockshrew rollback` on the database, and start it with the module that indexed {height}"
            ));
        }
        let (reply, outcome): (_, Receiver<_>) = sync_channel(1);
        {
            let mut slot = self.slot();
            if slot.is_some() {
                return Err("another rollback is pending".into());
            }
            *slot = Some(Rewind { height, reply });
        }
        match outcome.recv_timeout(BOUNDARY_WAIT) {
            Ok(outcome) => outcome,
            Err(_) => {
                if self.slot().take().is_some() {
                    return Err(format!(
                        "the indexer did not reach a block boundary within {} s (is it waiting for its node?); nothing was rolled back",
                        BOUNDARY_WAIT.as_secs()
                    ));
                }
                // The loop took it just now: it is being carried out.
                outcome
                    .recv()
                    .unwrap_or_else(|_| Err("the indexer stopped during the rollback".into()))
            }
        }
    }

    /// Whether a request waits: the loop ends its batch at the next block boundary.
    pub fn pending(&self) -> bool {
        self.slot().is_some()
    }

    /// The waiting request, taken by the sync loop to carry it out.
    pub fn take(&self) -> Option<Rewind> {
        self.slot().take()
    }
}

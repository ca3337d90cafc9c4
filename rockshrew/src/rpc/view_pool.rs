//! The threads views and previews run on: a fixed pool, one thread per view slot, each placed
//! at the view threads' priority and CPUs ([`Placement`]) when it starts. Nothing else runs on
//! them, so a lowered priority never reaches the indexer or the server's own threads (a
//! thread's nice value cannot be raised back without privileges).

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use crate::placement::Placement;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads, placed once, that run views and previews. Dropping it lets its threads
/// finish their job and exit.
pub struct ViewPool {
    jobs: Mutex<Sender<Job>>,
}

/// Why the pool could not start.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The system refused a thread.
    #[error("cannot start a view thread: {0}")]
    Spawn(std::io::Error),
    /// A thread could not take its placement.
    #[error(transparent)]
    Placement(#[from] crate::placement::PlacementError),
}

fn take_job(jobs: &Mutex<Receiver<Job>>) -> Option<Job> {
    jobs.lock().unwrap_or_else(|p| p.into_inner()).recv().ok()
}

impl ViewPool {
    /// Starts `threads` threads under `placement`; fails if one cannot start or be placed.
    pub fn start(threads: usize, placement: &Placement) -> Result<Self, PoolError> {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let (placed_tx, placed_rx) = channel();
        for i in 0..threads.max(1) {
            let (receiver, placement, placed) =
                (receiver.clone(), placement.clone(), placed_tx.clone());
            std::thread::Builder::new()
                .name(format!("rockshrew-view-{i}"))
                .spawn(move || {
                    let placed_ok = placement.apply_to_current_thread();
                    let failed = placed_ok.is_err();
                    let _ = placed.send(placed_ok);
                    drop(placed);
                    if failed {
                        return;
                    }
                    while let Some(job) = take_job(&receiver) {
                        // A panicking view loses its answer (the caller sees the channel
                        // closed), not the thread.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .map_err(PoolError::Spawn)?;
        }
        drop(placed_tx);
        for placed in placed_rx {
            placed?;
        }
        Ok(Self {
            jobs: Mutex::new(sender),
        })
    }

    /// Runs `work` on a pool thread; its result arrives on the receiver (which reports an error
    /// if the work panicked).
    pub fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> tokio::sync::oneshot::Receiver<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        // A send fails only once every thread has exited; the receiver then reports it.
        let _ = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_on_threads_at_the_pool_priority() {
        let base = crate::placement::current_nice().unwrap();
        let pool = ViewPool::start(
            2,
            &Placement {
                nice: base + 5,
                ..Placement::default()
            },
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let nices: Vec<i32> = runtime.block_on(async {
            let calls: Vec<_> = (0..4)
                .map(|_| pool.run(|| crate::placement::current_nice().unwrap()))
                .collect();
            let mut out = Vec::new();
            for call in calls {
                out.push(call.await.unwrap());
            }
            out
        });
        assert_eq!(nices, vec![(base + 5).min(19); 4]);
        assert_eq!(crate::placement::current_nice().unwrap(), base);
        let panicked = runtime.block_on(pool.run(|| -> u8 { panic!("a view thread panics") }));
        assert!(panicked.is_err());
    }
}

//! What bounds one guest call: its memory limiter, and for views and previews its deadline, its
//! cancellation, and the ticker that makes running calls check them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::thread::JoinHandle;

use wasmtime::{Engine, ResourceLimiter, StoreLimits, StoreLimitsBuilder};

use crate::config::EPOCH_TICK;

/// Lets a caller stop a view or preview that is running on another thread, for instance because
/// its client went away. Cloning shares the flag. The call stops within one epoch tick
/// ([`crate::EPOCH_TICK`]) of guest code, or at its next host call, and fails with
/// [`crate::GuestFault::Cancelled`].
#[derive(Debug, Clone, Default)]
pub struct Cancellation(Arc<AtomicBool>);

impl Cancellation {
    /// A flag not yet raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every call holding this flag to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancellation::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// When a view or preview must stop: at its time limit, or when cancelled. A preview's block
/// part and view part share one.
#[derive(Debug, Clone)]
pub(crate) struct Deadline {
    at: Instant,
    /// The time limit the deadline was made from, for the error.
    pub(crate) limit: Duration,
    pub(crate) cancel: Cancellation,
}

/// Why a call with a [`Deadline`] must stop now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    TimedOut,
    Cancelled,
}

impl Deadline {
    /// `limit` from now.
    pub(crate) fn after(limit: Duration, cancel: Cancellation) -> Self {
        Self {
            at: Instant::now() + limit,
            limit,
            cancel,
        }
    }

    /// Why the call must stop, if it must.
    pub(crate) fn stop(&self) -> Option<Stop> {
        if self.cancel.is_cancelled() {
            Some(Stop::Cancelled)
        } else if Instant::now() >= self.at {
            Some(Stop::TimedOut)
        } else {
            None
        }
    }
}

/// The memory limiter of one call: wasmtime's [`StoreLimits`] with a byte bound on linear memory
/// (growing past it traps), which also records that the bound was hit, so that the call's
/// failure can say so.
pub(crate) struct Limits {
    inner: StoreLimits,
    bytes: usize,
    /// The size the guest asked to grow to past the bound, if it did.
    pub(crate) exceeded: Option<usize>,
}

impl Limits {
    /// At most `bytes` of linear memory and one instance.
    pub(crate) fn new(bytes: usize) -> Self {
        Self {
            inner: StoreLimitsBuilder::new()
                .memory_size(bytes)
                .trap_on_grow_failure(true)
                .instances(1)
                .build(),
            bytes,
            exceeded: None,
        }
    }

    /// The bound, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.bytes {
            self.exceeded = Some(desired);
        }
        self.inner.memory_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`]: each tick, every running view or preview
/// checks its [`Deadline`].
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Fails if the thread cannot be started: without it views would have no time limit.
    pub(crate) fn start(engine: &Engine) -> Result<Self, crate::error::RuntimeError> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metashrew-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| {
                crate::error::RuntimeError::Config(format!(
                    "cannot start the thread that enforces view time limits: {e}"
                ))
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_stops_when_cancelled_or_past() {
        let cancel = Cancellation::new();
        let deadline = Deadline::after(Duration::from_secs(60), cancel.clone());
        assert_eq!(deadline.stop(), None);
        cancel.cancel();
        assert_eq!(deadline.stop(), Some(Stop::Cancelled));
        let past = Deadline::after(Duration::ZERO, Cancellation::new());
        assert_eq!(past.stop(), Some(Stop::TimedOut));
    }

    #[test]
    fn the_limiter_records_growth_past_its_bound() {
        let mut limits = Limits::new(1 << 20);
        assert!(limits.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(limits.exceeded, None);
        assert!(limits.memory_growing(1 << 20, 2 << 20, None).is_err());
        assert_eq!(limits.exceeded, Some(2 << 20));
    }
}

//! [`Recycler`]: block instances torn down, and the next one made, off the block's critical path.

use std::sync::Mutex;
use std::thread::JoinHandle;

use wasmtime::{Instance, Store};

use crate::context::CallContext;
use crate::locks::lock;

/// Guest memory from which a finished block instance is torn down on a background thread.
/// Tearing down resets every page the instance touched (milliseconds for the tens of MB an
/// AssemblyScript guest grows per heavy block); below this, a thread hand-off costs more.
const BACKGROUND_TEARDOWN_BYTES: usize = 16 << 20;

/// A block instance with its store.
pub(crate) type BlockInstance<T> = (Store<T>, Instance);

/// Recycles block instances: tears finished ones down off the block's critical path, and makes
/// the next block's instance there too: while one is being torn down, the block commits in the
/// meantime. At most one teardown is in flight, so a block never finds the pool's two slots
/// exhausted; dropping waits for it.
///
/// Making the next instance ahead takes two costs off the next block: wasmtime write-protects
/// the memory the slot's last instance grew beyond the module's initial size (milliseconds per
/// hundred MB), and runs the module's start function (AssemblyScript's top-level
/// initialisation). The instance is made with a sealed context (every host call traps), so what
/// it holds depends on the module alone: it is the instance the block would have made itself.
/// A module whose start function calls the host gets no instance made ahead.
pub(crate) struct Recycler<T: 'static> {
    in_flight: Mutex<Option<JoinHandle<Option<BlockInstance<T>>>>>,
}

impl<T: 'static> Default for Recycler<T> {
    fn default() -> Self {
        Self {
            in_flight: Mutex::new(None),
        }
    }
}

impl<T: Send + 'static> Recycler<T> {
    /// Waits for the teardown in flight, if any, and returns the instance it made.
    pub(crate) fn wait(&self) -> Option<BlockInstance<T>> {
        let thread = lock(&self.in_flight).take()?;
        thread.join().ok().flatten()
    }

    /// Drops `store` (whose guest memory is `memory_bytes`), and when that is large does it in
    /// the background, then makes the next instance there with `premake`.
    pub(crate) fn retire(
        &self,
        store: Store<T>,
        memory_bytes: usize,
        premake: impl FnOnce() -> Option<BlockInstance<T>> + Send + 'static,
    ) {
        if memory_bytes < BACKGROUND_TEARDOWN_BYTES {
            return drop(store);
        }
        drop(self.wait());
        let spawned = std::thread::Builder::new()
            .name("metashrew-teardown".into())
            .spawn(move || {
                drop(store);
                premake()
            });
        match spawned {
            Ok(thread) => *lock(&self.in_flight) = Some(thread),
            // The store went down with the closure, on this thread.
            Err(err) => log::debug!("instance torn down inline: no thread ({err})"),
        }
    }
}

impl<T: 'static> Drop for Recycler<T> {
    fn drop(&mut self) {
        if let Some(thread) = lock(&self.in_flight).take() {
            let _ = thread.join();
        }
    }
}

/// Bytes of `instance`'s exported memory.
pub(crate) fn memory_bytes<T>(store: &mut Store<T>, instance: &Instance) -> usize {
    instance
        .get_memory(&mut *store, "memory")
        .map_or(0, |memory| memory.data_size(&*store))
}

/// The instance kept across blocks in [`InstanceMode::Persistent`].
pub(crate) type Kept<S> = Option<BlockInstance<CallContext<S>>>;

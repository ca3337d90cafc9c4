//! Locking a mutex whose holder may have panicked: the data it guards stays usable (every
//! critical section here leaves it consistent), so poisoning is ignored.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, ignoring poisoning.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

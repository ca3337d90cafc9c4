//! [`Gate`]: lets at most N callers through at once; the others wait their turn.

use std::sync::{Condvar, Mutex, MutexGuard};

/// A counting semaphore for threads.
pub(crate) struct Gate {
    free: Mutex<usize>,
    opened: Condvar,
}

/// A place taken in a [`Gate`], given back on drop.
pub(crate) struct Pass<'a>(&'a Gate);

impl Gate {
    pub(crate) fn new(places: usize) -> Self {
        Self {
            free: Mutex::new(places.max(1)),
            opened: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a free place and takes it.
    pub(crate) fn enter(&self) -> Pass<'_> {
        let mut free = self.lock();
        while *free == 0 {
            free = self.opened.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Pass(self)
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        *self.0.lock() += 1;
        self.0.opened.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn lets_exactly_its_places_through_at_once() {
        let gate = Arc::new(Gate::new(3));
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        // Counts one more caller inside, keeping the most seen at once.
        let arrived = {
            let (inside, most) = (inside.clone(), most.clone());
            move || {
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
            }
        };
        // Three callers get in together (or this test never finishes) and stay until told.
        let (together, leave) = (
            Arc::new(std::sync::Barrier::new(4)),
            Arc::new(std::sync::Barrier::new(4)),
        );
        let holders: Vec<_> = (0..3)
            .map(|_| {
                let (gate, arrived, inside) = (gate.clone(), arrived.clone(), inside.clone());
                let (together, leave) = (together.clone(), leave.clone());
                std::thread::spawn(move || {
                    let _pass = gate.enter();
                    arrived();
                    together.wait();
                    leave.wait();
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        together.wait();
        // A fourth caller while all places are taken: a gate that let it in shows in `most`.
        let late = {
            let (gate, inside) = (gate.clone(), inside.clone());
            std::thread::spawn(move || {
                let _pass = gate.enter();
                arrived();
                inside.fetch_sub(1, Ordering::SeqCst);
            })
        };
        std::thread::yield_now();
        leave.wait();
        for t in holders {
            t.join().unwrap();
        }
        late.join().unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert_eq!(inside.load(Ordering::SeqCst), 0);
    }
}

//! Pointers over the indexer's store: [`IndexPointer`] (direct) and [`AtomicPointer`]
//! (transactional, with nested checkpoints).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

pub use metashrew_support::index_pointer::KeyValuePointer;

/// A key of the store; reads and writes go through [`crate::get`] / [`crate::set`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexPointer(Arc<Vec<u8>>);

impl KeyValuePointer for IndexPointer {
    fn wrap(word: &Vec<u8>) -> Self {
        IndexPointer(Arc::new(word.clone()))
    }
    fn unwrap(&self) -> Arc<Vec<u8>> {
        self.0.clone()
    }
    fn set(&mut self, v: Arc<Vec<u8>>) {
        crate::set(self.unwrap(), v)
    }
    fn get(&self) -> Arc<Vec<u8>> {
        crate::get(self.unwrap())
    }
    fn inherits(&mut self, _from: &Self) {}
}

/// One level of pending writes. Ordered by key, so committing it writes in a deterministic order
/// (Metashrew used a `HashMap`, whose order depends on the guest's heap history).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexCheckpoint(pub BTreeMap<Arc<Vec<u8>>, Arc<Vec<u8>>>);

impl IndexCheckpoint {
    fn pipe_to(&self, target: &mut IndexCheckpoint) {
        for (k, v) in &self.0 {
            target.0.insert(k.clone(), v.clone());
        }
    }
}

/// A stack of checkpoints shared by every pointer derived from one [`AtomicPointer`]. Never
/// empty: it always holds at least the base checkpoint.
#[derive(Debug, Clone)]
pub struct IndexCheckpointStack(pub Arc<Mutex<Vec<IndexCheckpoint>>>);

impl Default for IndexCheckpointStack {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(vec![IndexCheckpoint::default()])))
    }
}

impl IndexCheckpointStack {
    fn lock(&self) -> MutexGuard<'_, Vec<IndexCheckpoint>> {
        // A poisoned lock only means a panic elsewhere; the data is still consistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn depth(&self) -> usize {
        self.lock().len()
    }
}

/// A pointer whose writes stay in checkpoints until committed.
#[derive(Debug, Clone, Default)]
pub struct AtomicPointer {
    pointer: IndexPointer,
    store: IndexCheckpointStack,
}

impl KeyValuePointer for AtomicPointer {
    fn wrap(word: &Vec<u8>) -> Self {
        AtomicPointer {
            pointer: IndexPointer::wrap(word),
            store: IndexCheckpointStack::default(),
        }
    }
    fn unwrap(&self) -> Arc<Vec<u8>> {
        self.pointer.unwrap()
    }
    /// Writes into the top checkpoint only.
    fn set(&mut self, v: Arc<Vec<u8>>) {
        let key = self.unwrap();
        let mut stack = self.store.lock();
        if stack.is_empty() {
            stack.push(IndexCheckpoint::default());
        }
        if let Some(top) = stack.last_mut() {
            top.0.insert(key, v);
        }
    }
    /// Reads the newest pending write, else the store.
    fn get(&self) -> Arc<Vec<u8>> {
        let key = self.unwrap();
        {
            let stack = self.store.lock();
            for checkpoint in stack.iter().rev() {
                if let Some(v) = checkpoint.0.get(&key) {
                    return v.clone();
                }
            }
        }
        self.pointer.get()
    }
    fn inherits(&mut self, from: &Self) {
        self.store = from.store.clone();
    }
}

impl AtomicPointer {
    /// Opens a nested checkpoint.
    pub fn checkpoint(&mut self) {
        self.store.lock().push(IndexCheckpoint::default());
    }

    /// Merges the top checkpoint into the one below; at the base, writes the base's entries to
    /// the store (in key order) and empties it.
    pub fn commit(&mut self) {
        let mut stack = self.store.lock();
        if stack.len() > 1 {
            if let Some(top) = stack.pop()
                && let Some(below) = stack.last_mut()
            {
                top.pipe_to(below);
            }
        } else if let Some(base) = stack.last_mut() {
            let entries = std::mem::take(&mut base.0);
            drop(stack);
            for (k, v) in entries {
                crate::set(k, v);
            }
        }
    }

    /// Discards the top checkpoint's writes. At the base this empties the base checkpoint (it is
    /// never removed, so later writes keep working; Metashrew panicked on them).
    pub fn rollback(&mut self) {
        let mut stack = self.store.lock();
        if stack.len() > 1 {
            stack.pop();
        } else if let Some(base) = stack.last_mut() {
            base.0.clear();
        }
    }

    /// A pointer at `pointer`'s key sharing this transaction.
    pub fn derive(&self, pointer: &IndexPointer) -> Self {
        AtomicPointer {
            pointer: pointer.clone(),
            store: self.store.clone(),
        }
    }

    pub fn get_pointer(&self) -> IndexPointer {
        self.pointer.clone()
    }

    pub fn checkpoint_depth(&self) -> usize {
        self.store.depth()
    }
}

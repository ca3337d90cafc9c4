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
/// (Metashrew used a `HashMap`; the order of a flush never changes the state, so the persisted
/// bytes are the same).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexCheckpoint(pub BTreeMap<Arc<Vec<u8>>, Arc<Vec<u8>>>);

impl IndexCheckpoint {
    fn pipe_to(&self, target: &mut IndexCheckpoint) {
        for (k, v) in &self.0 {
            target.0.insert(k.clone(), v.clone());
        }
    }
}

/// A stack of checkpoints shared by every pointer derived from one [`AtomicPointer`]. A new
/// stack holds one base checkpoint.
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

    /// The number of checkpoints, the base one included.
    pub fn depth(&self) -> usize {
        self.lock().len()
    }
}

/// A pointer whose writes stay in checkpoints until committed: how an indexer applies one
/// transaction (or message) all or nothing.
///
/// Behaviour is Metashrew's, byte for byte: a new pointer's stack holds one base checkpoint;
/// [`AtomicPointer::checkpoint`] pushes one; [`AtomicPointer::commit`] folds the top one into
/// the one below, or at depth 1 writes every entry of the base checkpoint to the store
/// (which stays filled, so a later commit writes those entries again); and
/// [`AtomicPointer::rollback`] pops the top one, the base one included. At depth 0 (after the
/// base was rolled back) `set` and `commit` panic, which fails the block, as in Metashrew.
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
    /// Writes into the top checkpoint.
    ///
    /// # Panics
    /// At depth 0 (as Metashrew).
    fn set(&mut self, v: Arc<Vec<u8>>) {
        let key = self.unwrap();
        match self.store.lock().last_mut() {
            Some(top) => {
                top.0.insert(key, v);
            }
            None => panic!("AtomicPointer::set with no checkpoint (the base one was rolled back)"),
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

    /// Above the base, merges the top checkpoint into the one below. At the base, writes each of
    /// its entries to the store with [`crate::set`], in key order, and keeps them.
    ///
    /// # Panics
    /// At depth 0 (as Metashrew).
    pub fn commit(&mut self) {
        let mut stack = self.store.lock();
        match stack.len() {
            0 => panic!("AtomicPointer::commit with no checkpoint (the base one was rolled back)"),
            1 => {
                let entries = stack[0].0.clone();
                drop(stack);
                for (k, v) in entries {
                    crate::set(k, v);
                }
            }
            _ => {
                if let Some(top) = stack.pop() {
                    if let Some(below) = stack.last_mut() {
                        top.pipe_to(below);
                    }
                }
            }
        }
    }

    /// Drops the top checkpoint and its writes; at depth 1 that is the base checkpoint (depth 0
    /// afterwards); at depth 0 it does nothing.
    pub fn rollback(&mut self) {
        self.store.lock().pop();
    }

    /// A pointer at `pointer`'s key sharing this pointer's checkpoints.
    pub fn derive(&self, pointer: &IndexPointer) -> Self {
        AtomicPointer {
            pointer: pointer.clone(),
            store: self.store.clone(),
        }
    }

    /// The plain pointer at this key (its writes bypass the checkpoints).
    pub fn get_pointer(&self) -> IndexPointer {
        self.pointer.clone()
    }

    /// The number of checkpoints, the base one included.
    pub fn checkpoint_depth(&self) -> usize {
        self.store.depth()
    }
}

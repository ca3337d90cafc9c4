//! What one guest call sees: its input, the state it reads, and what it flushed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::bounds::{Deadline, Limits};
use metashrew_storage::{Storage, StorageError};

/// The state a call reads.
pub enum StateView<S> {
    /// Nothing (block 0's parent).
    Empty,
    /// The store as of a height, read by a block (or a speculative run of one).
    At(Arc<S>, u32),
    /// The store as of a height, read by a view or a preview's block
    /// ([`Storage::get_at_for_view`]).
    ViewAt(Arc<S>, u32),
    /// Writes of a previewed block over the store as of a height (or over nothing), read by
    /// the preview's view.
    Overlay {
        writes: Arc<HashMap<Vec<u8>, Vec<u8>>>,
        base: Option<(Arc<S>, u32)>,
    },
}

impl<S: Storage> StateView<S> {
    /// The value of `key` (empty when absent).
    pub fn get(&self, key: &[u8]) -> Result<Vec<u8>, StorageError> {
        match self {
            StateView::Empty => Ok(Vec::new()),
            StateView::At(store, height) => Ok(store.get_at(key, *height)?.unwrap_or_default()),
            StateView::ViewAt(store, height) => {
                Ok(store.get_at_for_view(key, *height)?.unwrap_or_default())
            }
            StateView::Overlay { writes, base } => match writes.get(key) {
                Some(value) => Ok(value.clone()),
                None => match base {
                    Some((store, height)) => {
                        Ok(store.get_at_for_view(key, *height)?.unwrap_or_default())
                    }
                    None => Ok(Vec::new()),
                },
            },
        }
    }
}

/// What `__flush` does in this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `_start` of a block (or of a previewed block): flushes are collected.
    Block,
    /// A view: flushes are accepted and ignored.
    View,
}

/// The wasmtime store data of one guest call.
pub struct CallContext<S> {
    pub(crate) limits: Limits,
    /// When a view or preview must stop (`None` for blocks: a block has no deadline).
    pub(crate) deadline: Option<Deadline>,
    pub(crate) kind: CallKind,
    /// `u32 LE height ++ payload`.
    pub(crate) input: Vec<u8>,
    pub(crate) state: StateView<S>,
    /// Pairs flushed so far, in order; `None` until the first `__flush`.
    pub(crate) flushed: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    /// The value of the last `__get_len`, reused by the `__get` that follows it.
    pub(crate) last_read: Option<(Vec<u8>, Vec<u8>)>,
    /// The guest's exported memory, once a host function has looked it up.
    pub(crate) memory: Option<wasmtime::Memory>,
    /// Reads that went to the store (a `__get` answered from `last_read` is not counted).
    pub(crate) store_reads: usize,
    /// Time spent in host functions during this call.
    pub(crate) host_time: std::time::Duration,
    /// Where the guest's `__log` output goes (`log` target).
    pub(crate) log_target: &'static str,
    /// The last text the guest logged (bounded), quoted in failure reasons: a Rust guest's panic
    /// message arrives this way just before its trap.
    pub(crate) last_log: String,
    /// A storage failure during a read: the call traps, and the caller reports this error (the
    /// host's fault, worth retrying) instead of a guest failure (the same on every node).
    pub(crate) storage_failure: Option<StorageError>,
    /// Made ahead of any block (an instance prepared on the teardown thread): every host call
    /// traps, so nothing of a block can reach the instance before its own context replaces this.
    pub(crate) sealed: bool,
}

/// The most of a guest log line kept for failure reasons.
const LAST_LOG_LIMIT: usize = 1024;

impl<S: Storage> CallContext<S> {
    pub(crate) fn new(
        limits: Limits,
        kind: CallKind,
        height: u32,
        payload: &[u8],
        state: StateView<S>,
    ) -> Self {
        let mut input = Vec::with_capacity(payload.len() + 4);
        input.extend_from_slice(&height.to_le_bytes());
        input.extend_from_slice(payload);
        Self {
            limits,
            deadline: None,
            kind,
            input,
            state,
            flushed: None,
            last_read: None,
            memory: None,
            store_reads: 0,
            host_time: std::time::Duration::ZERO,
            last_log: String::new(),
            storage_failure: None,
            sealed: false,
            log_target: match kind {
                CallKind::Block => "metashrew::guest",
                CallKind::View => "metashrew::view",
            },
        }
    }

    /// This context, bounded by `deadline`.
    pub(crate) fn until(self, deadline: Deadline) -> Self {
        Self {
            deadline: Some(deadline),
            ..self
        }
    }

    /// This context, sealed (see [`CallContext::sealed`]).
    pub(crate) fn sealed(self) -> Self {
        Self {
            sealed: true,
            ..self
        }
    }

    pub(crate) fn remember_log(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let mut end = text.len().min(LAST_LOG_LIMIT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.last_log = text[..end].to_string();
    }

    /// Reads `key`, remembering the value for the `__get` that usually follows `__get_len`. A
    /// storage failure is kept in [`CallContext::storage_failure`] and traps the guest.
    pub(crate) fn read(&mut self, key: Vec<u8>) -> Result<&[u8], wasmtime::Error> {
        let cached = matches!(&self.last_read, Some((k, _)) if *k == key);
        if !cached {
            self.store_reads += 1;
            let value = match self.state.get(&key) {
                Ok(value) => value,
                Err(err) => {
                    let trap = wasmtime::Error::msg(format!("the host's storage failed: {err}"));
                    self.storage_failure = Some(err);
                    return Err(trap);
                }
            };
            self.last_read = Some((key, value));
        }
        Ok(self
            .last_read
            .as_ref()
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default())
    }
}

//! `GET /status`: every indexer of the daemon, with its label, module hash, height, the
//! source's height, its speed, its state (`syncing`, `at tip`, or `stopped` on a block it fails
//! on) and that failure, and which module indexed which heights (`modules`, oldest first;
//! `to` is null for a module that has indexed nothing yet).
//!
//! ```json
//! {"indexers": [{"label": "spendables", "module_hash": "9f2c...", "height": 840000,
//!   "node_tip": 840012, "blocks_per_second": 3.1, "state": "syncing", "last_error": null,
//!   "modules": [{"from": 0, "to": 840000, "module_hash": "9f2c...",
//!     "max_memory_bytes": 4294967296, "max_wasm_stack_bytes": 1048576}]}]}
//! ```

use std::sync::{Arc, Mutex};

use metashrew_storage::Storage;
use serde_json::{Value, json};

use rockshrew_store::{ModuleRange, RocksStore};

use super::AppState;

/// One module of an index's history, as `/status` and `rockshrew inspect --json status` give it.
pub(crate) fn module_json(module: &ModuleRange) -> Value {
    json!({
        "from": module.from,
        "to": module.to,
        "module_hash": hex::encode(module.identity.module_hash),
        "max_memory_bytes": module.identity.max_memory_bytes,
        "max_wasm_stack_bytes": module.identity.max_wasm_stack_bytes,
    })
}

/// One indexer's label, and its failure once it has stopped on a block.
#[derive(Default)]
pub struct Status {
    label: Option<String>,
    failure: Mutex<Option<String>>,
    /// The namespace whose module history `/status` gives (none: not given).
    store: Option<Arc<RocksStore>>,
}

impl Status {
    /// The status of the indexer labelled `label` (`None`: the namespace `default`).
    pub fn new(label: Option<String>) -> Self {
        Self {
            label,
            failure: Mutex::default(),
            store: None,
        }
    }

    /// Gives the module history of `store`'s namespace too.
    pub fn with_modules(mut self, store: Arc<RocksStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The module history, when known.
    fn modules(&self) -> Option<Value> {
        let modules = self.store.as_ref()?.module_history().ok()?;
        Some(modules.iter().map(module_json).collect())
    }

    /// Its label.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// Its namespace's name: the label, or `default`.
    pub fn namespace(&self) -> &str {
        rockshrew_store::namespace_of(self.label())
    }

    /// Records that it stopped, and why.
    pub fn stopped(&self, error: String) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    /// Why it stopped, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What `/status` says of the indexer of `state`.
pub(crate) fn report<S: Storage>(state: &AppState<S>) -> Value {
    let tip = state.runtime.tip().ok().flatten();
    let node_tip = state.metrics.node_tip.get();
    let failure = state.status.failure();
    let phase = match (&failure, tip) {
        (Some(_), _) => "stopped",
        (None, Some(t)) if node_tip > 0 && i64::from(t) >= node_tip => "at tip",
        _ => "syncing",
    };
    json!({
        "label": state.status.namespace(),
        "module_hash": hex::encode(state.runtime.module_hash()),
        "height": tip,
        "node_tip": (node_tip > 0).then_some(node_tip),
        "blocks_per_second": state.metrics.blocks_per_second_milli.get() as f64 / 1000.0,
        "state": phase,
        "last_error": failure,
        "modules": state.status.modules(),
    })
}

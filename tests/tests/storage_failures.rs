//! A store that fails reads: the failure is reported as the host's (`RuntimeError::Storage`,
//! retryable), never as a guest failure, commits nothing, and a retry gives the same state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use metashrew_runtime::storage::{BlockHash, StateRoot};
use metashrew_runtime::{
    BlockCommit, MemStore, MetashrewRuntime, RuntimeConfig, RuntimeError, Storage, StorageError,
};
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;

/// A [`MemStore`] whose reads fail while `failing` is set.
#[derive(Default)]
struct FailingReads {
    inner: MemStore,
    failing: AtomicBool,
}

impl Storage for FailingReads {
    fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StorageError::Backend {
                action: "reading a value",
                cause: "Input/output error (os error 5)".into(),
            });
        }
        self.inner.get_at(key, height)
    }
    fn commit_block(&self, commit: &BlockCommit) -> Result<(), StorageError> {
        self.inner.commit_block(commit)
    }
    fn tip(&self) -> Result<Option<u32>, StorageError> {
        self.inner.tip()
    }
    fn first_height(&self) -> Result<Option<u32>, StorageError> {
        self.inner.first_height()
    }
    fn block_hash(&self, height: u32) -> Result<Option<BlockHash>, StorageError> {
        self.inner.block_hash(height)
    }
    fn state_root(&self, height: u32) -> Result<Option<StateRoot>, StorageError> {
        self.inner.state_root(height)
    }
    fn touched_keys(&self, height: u32) -> Result<Vec<Vec<u8>>, StorageError> {
        self.inner.touched_keys(height)
    }
    fn rollback_to(&self, height: u32) -> Result<(), StorageError> {
        self.inner.rollback_to(height)
    }
}

fn load<S: Storage>(store: Arc<S>) -> MetashrewRuntime<S> {
    let wasm = std::fs::read(guests::SPENDABLES).expect("guest built");
    MetashrewRuntime::from_bytes(&wasm, store, RuntimeConfig::default()).expect("loads")
}

#[test]
fn a_failing_read_is_a_storage_error_commits_nothing_and_a_retry_gives_the_same_state() {
    let blocks = mainnet_blocks();
    let store = Arc::new(FailingReads::default());
    let rt = load(store.clone());
    for (h, block) in blocks.iter().enumerate().take(170) {
        rt.process_block(h as u32, block).expect("block");
    }
    store.failing.store(true, Ordering::SeqCst);
    match rt.process_block(170, &blocks[170]) {
        Err(RuntimeError::Storage(err)) => {
            assert!(err.to_string().contains("Input/output error"), "{err}");
        }
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert_eq!(
        rt.tip().unwrap(),
        Some(169),
        "nothing of block 170 was committed"
    );

    // A view that hits the failure is a storage error too, not the view's fault.
    let script = [0x51u8];
    assert!(matches!(
        rt.view("balance", &script, 169),
        Err(RuntimeError::Storage(_))
    ));

    // Retried once the store reads again: the same state as a run that never failed.
    store.failing.store(false, Ordering::SeqCst);
    rt.process_block(170, &blocks[170]).expect("retry");
    let reference = load(Arc::new(MemStore::new()));
    for (h, block) in blocks.iter().enumerate().take(171) {
        reference.process_block(h as u32, block).expect("block");
    }
    assert_eq!(
        rt.state_root(170).unwrap(),
        reference.state_root(170).unwrap()
    );
}

//! A store that fails reads: the failure is reported as the host's (`RuntimeError::Storage`,
//! retryable), never as a guest failure, commits nothing, and a retry gives the same state.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use metashrew_runtime::{MetashrewRuntime, RuntimeConfig, RuntimeError};
use metashrew_storage::{MemStore, Storage, StorageError};
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;
use metashrew_tests::hooked::Hooked;

/// A [`MemStore`] whose reads fail while the returned flag is set.
fn failing_reads() -> (Arc<Hooked<MemStore>>, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let flag = failing.clone();
    let mut store = Hooked::new(MemStore::new());
    store.read = Box::new(move || {
        if flag.load(Ordering::SeqCst) {
            return Err(StorageError::Backend {
                action: "reading a value",
                cause: "Input/output error (os error 5)".into(),
            });
        }
        Ok(())
    });
    (Arc::new(store), failing)
}

fn load<S: Storage>(store: Arc<S>) -> MetashrewRuntime<S> {
    let wasm = std::fs::read(guests::SPENDABLES).expect("guest built");
    MetashrewRuntime::from_bytes(&wasm, store, RuntimeConfig::default()).expect("loads")
}

#[test]
fn a_failing_read_is_a_storage_error_commits_nothing_and_a_retry_gives_the_same_state() {
    let blocks = mainnet_blocks();
    let (store, failing) = failing_reads();
    let rt = load(store);
    for (h, block) in blocks.iter().enumerate().take(170) {
        rt.process_block(h as u32, block).expect("block");
    }
    failing.store(true, Ordering::SeqCst);
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
    failing.store(false, Ordering::SeqCst);
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

//! `rockshrew-diff` on two real databases of the same indexer, one of which diverged at one
//! write of one block.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;

use metashrew_runtime::{MetashrewRuntime, RuntimeConfig};
use metashrew_storage::{BlockCommit, Storage};
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;
use metashrew_tests::hooked::Hooked;
use rockshrew_store::{IndexIdentity, RocksStore};

/// A store that, at `height`, replaces the value of its `index`-th write and commits the root
/// that value gives: a node whose execution diverged there.
fn diverging(inner: RocksStore, height: u32, index: usize) -> Hooked<RocksStore> {
    let mut store = Hooked::new(inner);
    store.commit = Box::new(move |inner: &RocksStore, commit: &BlockCommit| {
        if commit.height() != height {
            return inner.commit_block(commit);
        }
        let mut writes = commit.writes().to_vec();
        writes[index].1.push(0x42);
        let parent = inner.state_root(height - 1)?.unwrap_or_default();
        inner.commit_block(&BlockCommit::chained(
            height,
            *commit.block_hash(),
            &parent,
            writes,
        ))
    });
    store
}

fn identity() -> IndexIdentity {
    IndexIdentity {
        module_hash: [1; 32],
        max_memory_bytes: 4 << 30,
        max_wasm_stack_bytes: 1 << 20,
    }
}

fn index<S: Storage>(store: S) -> Arc<S> {
    let store = Arc::new(store);
    let rt = MetashrewRuntime::load(guests::SPENDABLES, store.clone(), RuntimeConfig::default())
        .expect("guest loads");
    for (h, block) in mainnet_blocks().iter().enumerate() {
        rt.process_block(h as u32, block).expect("block");
    }
    store
}

fn run_diff(a: &std::path::Path, b: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rockshrew-diff"))
        .arg(a)
        .arg(b)
        .output()
        .expect("rockshrew-diff runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn names_the_first_diverging_height_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let honest = index(RocksStore::open(&a, None, &identity(), false).unwrap());
    let (expected_key, honest_value) = {
        let keys = honest.touched_keys(170).unwrap();
        let key = keys[3].clone();
        let value = honest.get_at(&key, 170).unwrap();
        (key, value)
    };
    drop(honest);
    drop(index(
        RocksStore::open(&c, None, &identity(), false).unwrap(),
    ));
    let diverged = index(diverging(
        RocksStore::open(&b, None, &identity(), false).unwrap(),
        170,
        3,
    ));
    drop(diverged);

    let (code, report) = run_diff(&a, &c);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.starts_with("identical"), "{report}");

    let (code, report) = run_diff(&a, &b);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("first differ at height 170"), "{report}");
    assert!(report.contains(&hex::encode(&expected_key)), "{report}");
    let honest_hex = format!("0x{}", hex::encode(honest_value.unwrap()));
    assert!(report.contains(&format!("a: {honest_hex}\n")), "{report}");
    assert!(report.contains(&format!("b: {honest_hex}42")), "{report}");

    let (code, _) = run_diff(&a, &dir.path().join("missing"));
    assert_eq!(code, Some(2));
}

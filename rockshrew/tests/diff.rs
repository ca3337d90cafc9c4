//! `rockshrew-diff` on two real databases of the same indexer, one of which diverged at one
//! write of one block.

use std::process::Command;
use std::sync::Arc;

use metashrew_runtime::storage::{BlockCommit, BlockHash, StateRoot, Storage, StorageError};
use metashrew_runtime::{MetashrewRuntime, RuntimeConfig};
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;
use rockshrew::store::{IndexIdentity, RocksStore};

/// A store that, at one height, replaces the value of its `index`-th write and commits the root
/// that value gives: a node whose execution diverged there.
struct Diverging {
    inner: RocksStore,
    height: u32,
    index: usize,
}

impl Storage for Diverging {
    fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get_at(key, height)
    }
    fn commit_block(&self, commit: &BlockCommit) -> Result<(), StorageError> {
        if commit.height() != self.height {
            return self.inner.commit_block(commit);
        }
        let mut writes = commit.writes().to_vec();
        writes[self.index].1.push(0x42);
        let parent = self
            .inner
            .state_root(commit.height() - 1)?
            .unwrap_or([0; 32]);
        let c = BlockCommit::chained(commit.height(), *commit.block_hash(), &parent, writes);
        self.inner.commit_block(&c)
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
    let diverged = index(Diverging {
        inner: RocksStore::open(&b, None, &identity(), false).unwrap(),
        height: 170,
        index: 3,
    });
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

//! The compiled-module cache: a second load of the same module and settings is a hit, a
//! corrupt, truncated or stale entry is found and rebuilt, another module is another entry,
//! and every load gives the same roots as a runtime without the cache.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use metashrew_runtime::{CacheOutcome, MetashrewRuntime, RuntimeConfig};
use metashrew_storage::MemStore;
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;

fn load(config: &RuntimeConfig) -> MetashrewRuntime<MemStore> {
    MetashrewRuntime::load(
        guests::SPENDABLES,
        Arc::new(MemStore::new()),
        config.clone(),
    )
    .unwrap()
}

/// Roots of the first 40 bundled blocks.
fn roots(rt: &MetashrewRuntime<MemStore>) -> Vec<metashrew_storage::StateRoot> {
    mainnet_blocks()[..40]
        .iter()
        .enumerate()
        .map(|(h, b)| rt.process_block(h as u32, b).unwrap().state_root)
        .collect()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

#[test]
fn hits_misses_and_corrupt_or_stale_entries() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("module-cache");
    let config = RuntimeConfig {
        module_cache_dir: Some(cache.clone()),
        ..RuntimeConfig::default()
    };
    let reference = roots(&load(&RuntimeConfig::default()));
    assert_eq!(
        load(&RuntimeConfig::default()).module_cache_outcome(),
        CacheOutcome::Off
    );

    let first = load(&config);
    assert_eq!(first.module_cache_outcome(), CacheOutcome::Miss);
    let files = entries(&cache);
    assert_eq!(
        files.len(),
        2,
        "one entry for blocks, one for views: {files:?}"
    );
    assert!(
        files
            .iter()
            .all(|f| f.extension().is_some_and(|x| x == "cwasm"))
    );
    assert_eq!(roots(&first), reference);

    let hit = load(&config);
    assert_eq!(hit.module_cache_outcome(), CacheOutcome::Hit);
    assert_eq!(roots(&hit), reference);
    let script = metashrew_tests::fixtures::coinbase9_script();
    let balance = hit.view("balance", &script, 39).unwrap();
    assert_eq!(
        balance,
        50_0000_0000u64.to_le_bytes(),
        "views run from the cached code too"
    );

    // A flipped byte in the compiled code: the checksum finds it.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&files[0], &bytes).unwrap();
    let rebuilt = load(&config);
    assert_eq!(rebuilt.module_cache_outcome(), CacheOutcome::Rebuilt);
    assert_eq!(roots(&rebuilt), reference);
    assert_eq!(load(&config).module_cache_outcome(), CacheOutcome::Hit);

    // A truncated entry (a crash of another writer, a full disk).
    let whole = std::fs::read(&files[1]).unwrap();
    std::fs::write(&files[1], &whole[..whole.len() / 3]).unwrap();
    assert_eq!(load(&config).module_cache_outcome(), CacheOutcome::Rebuilt);
    assert_eq!(load(&config).module_cache_outcome(), CacheOutcome::Hit);

    // A whole, checksummed entry compiled under other settings (the block engine's code under
    // the view engine's name): wasmtime refuses it, and it is rebuilt.
    let (a, b) = (
        std::fs::read(&files[0]).unwrap(),
        std::fs::read(&files[1]).unwrap(),
    );
    std::fs::write(&files[0], &b).unwrap();
    std::fs::write(&files[1], &a).unwrap();
    let stale = load(&config);
    assert_eq!(stale.module_cache_outcome(), CacheOutcome::Rebuilt);
    assert_eq!(roots(&stale), reference);
    assert_eq!(load(&config).module_cache_outcome(), CacheOutcome::Hit);

    // Another module is another entry.
    let minimal =
        MetashrewRuntime::load(guests::MINIMAL, Arc::new(MemStore::new()), config.clone()).unwrap();
    assert_eq!(minimal.module_cache_outcome(), CacheOutcome::Miss);
    assert_eq!(entries(&cache).len(), 4);
    // A setting that wasmtime checks at run time, not in the code (the stack limit), shares
    // the entry: the engines' compatibility hashes are equal.
    let other_stack = RuntimeConfig {
        max_wasm_stack_bytes: 2 << 20,
        ..config.clone()
    };
    let shared = load(&other_stack);
    assert_eq!(shared.module_cache_outcome(), CacheOutcome::Hit);
    assert_eq!(roots(&shared), reference);
    assert_eq!(entries(&cache).len(), 4);
}

#[test]
fn an_unwritable_cache_directory_only_costs_the_compilation() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be: nothing can be stored, the module still loads.
    let blocked = dir.path().join("module-cache");
    std::fs::write(&blocked, b"not a directory").unwrap();
    let config = RuntimeConfig {
        module_cache_dir: Some(blocked),
        ..RuntimeConfig::default()
    };
    let rt = load(&config);
    assert_eq!(rt.module_cache_outcome(), CacheOutcome::Miss);
    assert_eq!(roots(&rt), roots(&load(&RuntimeConfig::default())));
}

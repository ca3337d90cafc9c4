//! The determinism evidence suite: the same indexer over the same real blocks gives the same
//! state root at every height (and the same full state) whatever the guest cache, the instance
//! lifetime, the region size, or concurrent views and previews did.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use metashrew_runtime::{InstanceMode, MetashrewRuntime, RuntimeConfig};
use metashrew_storage::MemStore;
use metashrew_tests::fixtures::{HEAVY_HEIGHT, heavy_block, mainnet_blocks};
use metashrew_tests::guests;

type State = std::collections::BTreeMap<Vec<u8>, Vec<u8>>;

use metashrew_tests::runtimes::{on_memory as runtime, roots};

/// Every (guest, instance mode) condition of the suite.
fn conditions() -> Vec<(&'static str, &'static str, InstanceMode)> {
    let mut out = Vec::new();
    for (name, wasm) in [
        ("cache 1 GiB", guests::SPENDABLES),
        ("cache off", guests::SPENDABLES_NOCACHE),
        (
            "cache 64 KiB (evicts every block)",
            guests::SPENDABLES_TINYCACHE,
        ),
    ] {
        for mode in [InstanceMode::Fresh, InstanceMode::Persistent] {
            out.push((name, wasm, mode));
        }
    }
    out
}

#[test]
fn mainnet_0_255_roots_agree_across_caches_instances_and_region_sizes() {
    let blocks = mainnet_blocks();
    let mut reference: Option<(Vec<metashrew_storage::StateRoot>, State)> = None;
    for (name, wasm, mode) in conditions() {
        let rt = runtime(wasm, mode);
        for (h, block) in blocks.iter().enumerate() {
            rt.process_block(h as u32, block).expect("block");
        }
        let got = (roots(&rt, 0..256), rt.storage().dump_at(255));
        match &reference {
            None => reference = Some(got),
            Some((r, dump)) => {
                assert_eq!(&got.0, r, "roots differ under {name}, {mode:?}");
                assert!(&got.1 == dump, "state differs under {name}, {mode:?}");
            }
        }
    }
}

#[test]
fn host_read_cache_on_off_and_tiny_give_the_same_roots() {
    use metashrew_storage::{CachedStore, Storage};
    fn chain<S: Storage>(store: S, mode: InstanceMode) -> Vec<metashrew_storage::StateRoot> {
        let config = RuntimeConfig {
            instance_mode: mode,
            ..RuntimeConfig::default()
        };
        let rt = MetashrewRuntime::load(guests::SPENDABLES, Arc::new(store), config)
            .expect("guest loads");
        for (h, block) in mainnet_blocks().iter().enumerate() {
            rt.process_block(h as u32, block).expect("block");
        }
        // A reorg of 10 blocks and their re-application, through the cache.
        rt.rollback_to(245).expect("rollback");
        for (h, block) in mainnet_blocks().iter().enumerate().skip(246) {
            rt.process_block(h as u32, block).expect("block");
        }
        (0..256)
            .map(|h| rt.state_root(h).expect("read").expect("root"))
            .collect()
    }
    let reference = chain(MemStore::new(), InstanceMode::Fresh);
    for (budget, name) in [(0, "off"), (4 << 10, "4 KiB"), (256 << 20, "256 MiB")] {
        for mode in [InstanceMode::Fresh, InstanceMode::Persistent] {
            let got = chain(CachedStore::new(MemStore::new(), budget), mode);
            assert_eq!(got, reference, "host cache {name}, {mode:?}");
        }
    }
}

#[test]
fn heavy_block_roots_agree_across_caches_and_instances() {
    let block = heavy_block();
    let mut reference = None;
    for (name, wasm, mode) in conditions() {
        let rt = runtime(wasm, mode);
        // The heavy block twice in a row: the second run reads everything the first wrote
        // (from the guest cache when the instance is kept).
        let first = rt.process_block(HEAVY_HEIGHT, &block).expect("block");
        assert!(first.writes > 40_000, "{} writes", first.writes);
        rt.process_block(HEAVY_HEIGHT + 1, &block)
            .expect("block again");
        let got = roots(&rt, HEAVY_HEIGHT..HEAVY_HEIGHT + 2);
        match &reference {
            None => reference = Some(got),
            Some(r) => assert_eq!(&got, r, "roots differ under {name}, {mode:?}"),
        }
    }
    // The daemon's store stack: the second block runs while the first is still being written
    // in the background, reading it from the pending block and the host cache.
    use metashrew_storage::{CachedStore, PipelinedStore};
    for mode in [InstanceMode::Fresh, InstanceMode::Persistent] {
        let store = CachedStore::new(PipelinedStore::new(MemStore::new()), 256 << 20);
        let config = RuntimeConfig {
            instance_mode: mode,
            ..RuntimeConfig::default()
        };
        let rt = MetashrewRuntime::load(guests::SPENDABLES, Arc::new(store), config)
            .expect("guest loads");
        rt.process_block(HEAVY_HEIGHT, &block).expect("block");
        rt.process_block(HEAVY_HEIGHT + 1, &block)
            .expect("block again");
        let got: Vec<metashrew_storage::StateRoot> = (HEAVY_HEIGHT..HEAVY_HEIGHT + 2)
            .map(|h| rt.state_root(h).expect("read").expect("root"))
            .collect();
        assert_eq!(Some(got), reference, "pipelined store, {mode:?}");
    }
}

#[test]
fn concurrent_views_and_previews_do_not_change_roots() {
    let blocks = Arc::new(mainnet_blocks());
    let quiet = runtime(guests::SPENDABLES, InstanceMode::Persistent);
    for (h, block) in blocks.iter().enumerate() {
        quiet.process_block(h as u32, block).expect("block");
    }
    let busy = Arc::new(runtime(guests::SPENDABLES, InstanceMode::Persistent));
    busy.process_block(0, &blocks[0]).expect("block");
    let done = Arc::new(AtomicBool::new(false));
    let script = {
        let b: bitcoin::Block = bitcoin::consensus::deserialize(&blocks[9]).expect("block 9");
        b.txdata[0].output[0].script_pubkey.as_bytes().to_vec()
    };
    let hammers: Vec<_> = (0..3)
        .map(|i| {
            let (rt, blocks, done, script) =
                (busy.clone(), blocks.clone(), done.clone(), script.clone());
            std::thread::spawn(move || {
                let mut calls = 0u32;
                while !done.load(Ordering::Relaxed) {
                    let tip = rt.tip().expect("tip").expect("indexed");
                    let h = (calls * 13 + i) % (tip + 1);
                    rt.view("balance", &script, h).expect("view");
                    rt.view("unspent", &script, h).expect("view");
                    if (h as usize) + 1 < blocks.len() {
                        rt.preview(&blocks[h as usize + 1], "balance", &script, h)
                            .expect("preview");
                    }
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    for (h, block) in blocks.iter().enumerate().skip(1) {
        busy.process_block(h as u32, block).expect("block");
    }
    done.store(true, Ordering::Relaxed);
    let calls: u32 = hammers.into_iter().map(|t| t.join().expect("hammer")).sum();
    assert!(calls > 0);
    assert_eq!(roots(&busy, 0..256), roots(&quiet, 0..256));
    assert!(busy.storage().dump_at(255) == quiet.storage().dump_at(255));
}

#[test]
fn the_cache_variants_are_really_different_builds() {
    let hash = |p: &str| metashrew_storage::hashes::sha256(&std::fs::read(p).expect("wasm"));
    let default = hash(guests::SPENDABLES);
    assert_ne!(default, hash(guests::SPENDABLES_NOCACHE));
    assert_ne!(default, hash(guests::SPENDABLES_TINYCACHE));
    assert_ne!(
        hash(guests::SPENDABLES_NOCACHE),
        hash(guests::SPENDABLES_TINYCACHE)
    );
}

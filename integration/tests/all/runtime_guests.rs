//! metashrew-runtime with the real example guests over real mainnet blocks: block execution,
//! historical views, persistent vs fresh instances, rollback, preview isolation, concurrency.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bitcoin::Block;
use metashrew_runtime::{InstanceMode, MetashrewRuntime};
use metashrew_storage::{MemStore, Storage};
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;

const COIN: u64 = 100_000_000;

use metashrew_tests::runtimes::on_memory as runtime;

fn index(rt: &MetashrewRuntime<MemStore>, blocks: &[Vec<u8>], heights: std::ops::Range<u32>) {
    for h in heights {
        rt.process_block(h, &blocks[h as usize])
            .unwrap_or_else(|e| panic!("block {h}: {e}"));
    }
}

fn roots(rt: &MetashrewRuntime<MemStore>, upto: u32) -> Vec<metashrew_storage::StateRoot> {
    metashrew_tests::runtimes::roots(rt, 0..=upto)
}

#[test]
fn minimal_indexes_mainnet_and_serves_historical_views() {
    let blocks = mainnet_blocks();
    let rt = runtime(guests::MINIMAL, InstanceMode::Fresh);
    index(&rt, &blocks, 0..256);
    assert_eq!(rt.tip().unwrap(), Some(255));
    let tip: Block = bitcoin::consensus::deserialize(&blocks[255]).expect("tip");
    let hash = rt.block_hash(255).unwrap().expect("hash stored");
    assert_eq!(hash.to_string(), tip.block_hash().to_string());
    // A view at H sees the state after H, whatever was indexed since.
    assert_eq!(rt.view("getblock", &[], 100).unwrap(), blocks[100]);
    assert_eq!(rt.view("blocktracker", &[], 10).unwrap().len(), 11);
    assert_eq!(rt.view("blocktracker", &[], 255).unwrap().len(), 256);
    assert!(matches!(
        rt.view("getblock", &[], 256),
        Err(metashrew_runtime::RuntimeError::HeightAboveTip {
            height: 256,
            tip: Some(255)
        })
    ));
    let distinct: std::collections::HashSet<_> = roots(&rt, 255).into_iter().collect();
    assert_eq!(distinct.len(), 256, "every height has its own root");
}

#[test]
fn spendables_balances_at_169_and_170() {
    let blocks = mainnet_blocks();
    let script = metashrew_tests::fixtures::coinbase9_script();
    let rt = runtime(guests::SPENDABLES, InstanceMode::Fresh);
    index(&rt, &blocks, 0..256);
    let balance =
        |h| u64::from_le_bytes(rt.view("balance", &script, h).unwrap().try_into().unwrap());
    assert_eq!(balance(8), 0);
    assert_eq!(balance(9), 50 * COIN);
    assert_eq!(balance(169), 50 * COIN);
    assert_eq!(balance(170), 40 * COIN);
}

#[test]
fn fresh_and_persistent_instances_give_identical_roots() {
    let blocks = mainnet_blocks();
    let fresh = runtime(guests::SPENDABLES, InstanceMode::Fresh);
    let persistent = runtime(guests::SPENDABLES, InstanceMode::Persistent);
    index(&fresh, &blocks, 0..256);
    index(&persistent, &blocks, 0..256);
    assert_eq!(roots(&fresh, 255), roots(&persistent, 255));
    assert_eq!(
        fresh.storage().dump_at(255),
        persistent.storage().dump_at(255)
    );
}

#[test]
fn rollback_and_reapply_gives_the_same_roots() {
    let blocks = mainnet_blocks();
    for mode in [InstanceMode::Fresh, InstanceMode::Persistent] {
        let rt = runtime(guests::SPENDABLES, mode);
        index(&rt, &blocks, 0..256);
        let before = roots(&rt, 255);
        let dump = rt.storage().dump_at(255);
        rt.rollback_to(165).unwrap();
        assert_eq!(rt.tip().unwrap(), Some(165));
        assert!(rt.state_root(166).unwrap().is_none());
        assert_eq!(rt.storage().dump_at(u32::MAX), rt.storage().dump_at(165));
        index(&rt, &blocks, 166..256);
        assert_eq!(roots(&rt, 255), before, "{mode:?}");
        assert_eq!(rt.storage().dump_at(255), dump);
    }
}

#[test]
fn preview_runs_in_an_overlay_and_writes_nothing() {
    let blocks = mainnet_blocks();
    let rt = runtime(guests::MINIMAL, InstanceMode::Fresh);
    index(&rt, &blocks, 0..201);
    let dump = rt.storage().dump_at(u32::MAX);
    let root = rt.state_root(200).unwrap();
    // Block 201 previewed on top of 200: the view at 201 sees it.
    let previewed = rt.preview(&blocks[201], "getblock", &[], 200).unwrap();
    assert_eq!(previewed, blocks[201]);
    let tracker = rt.preview(&blocks[201], "blocktracker", &[], 200).unwrap();
    assert_eq!(tracker.len(), 202);
    // Nothing reached the store.
    assert_eq!(rt.tip().unwrap(), Some(200));
    assert_eq!(rt.state_root(200).unwrap(), root);
    assert_eq!(rt.storage().dump_at(u32::MAX), dump);
    assert_eq!(rt.storage().get_at(b"/blocks/201", u32::MAX).unwrap(), None);
    // Previewing at an older height reads the state of that height.
    let old = rt.preview(&blocks[51], "blocktracker", &[], 50).unwrap();
    assert_eq!(old.len(), 52);
}

#[test]
fn views_run_concurrently_with_indexing() {
    let blocks = Arc::new(mainnet_blocks());
    let rt = Arc::new(runtime(guests::MINIMAL, InstanceMode::Fresh));
    index(&rt, &blocks, 0..128);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Each reader reports its first answer; indexing resumes only once all four have one, so
    // every reader verifiably reads while blocks are still being added.
    let (started, first_answers) = std::sync::mpsc::channel();
    let readers: Vec<_> = (0..4)
        .map(|i| {
            let (rt, blocks, done) = (rt.clone(), blocks.clone(), done.clone());
            let started = started.clone();
            std::thread::spawn(move || {
                let mut tips_seen = std::collections::BTreeSet::new();
                let mut calls = 0u32;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || calls < 50 {
                    let tip = rt.tip().unwrap().expect("indexed");
                    tips_seen.insert(tip);
                    let h = (calls * 7 + i) % (tip + 1);
                    assert_eq!(rt.view("getblock", &[], h).unwrap(), blocks[h as usize]);
                    let tracker = rt.view("blocktracker", &[], h).unwrap();
                    assert_eq!(tracker.len() as u32, h + 1);
                    if calls == 0 {
                        started.send(tip).expect("main thread waits");
                    }
                    calls += 1;
                }
                tips_seen
            })
        })
        .collect();
    for _ in 0..4 {
        let tip = first_answers.recv().expect("a reader answered");
        assert_eq!(tip, 127, "readers started before indexing resumed");
    }
    index(&rt, &blocks, 128..256);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        let tips = r.join().expect("reader");
        assert!(tips.contains(&127), "{tips:?}");
    }
    assert_eq!(rt.tip().unwrap(), Some(255));
}

#[test]
fn a_guest_panic_message_reaches_the_error() {
    let rt = runtime(guests::SPENDABLES, InstanceMode::Fresh);
    // A valid header followed by garbage: the block hash is computable, the block is not.
    let mut block = mainnet_blocks().swap_remove(0)[..80].to_vec();
    block.extend_from_slice(&[0xff; 10]);
    match rt.process_block(0, &block) {
        Err(metashrew_runtime::RuntimeError::BlockFailed { height: 0, fault }) => {
            let reason = fault.to_string();
            assert!(reason.contains("indexer failed at height 0"), "{reason}");
            assert!(reason.contains("block does not decode"), "{reason}");
        }
        other => panic!("expected a failed block, got {other:?}"),
    }
    assert_eq!(rt.tip().unwrap(), None);
    let too_short = rt.process_block(0, &[0u8; 79]);
    assert!(matches!(
        too_short,
        Err(metashrew_runtime::RuntimeError::MalformedBlock { height: 0, .. })
    ));
}

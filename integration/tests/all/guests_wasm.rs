//! The example guests built to wasm32, run block by block by the runtime over real mainnet
//! blocks, compared with the same logic run natively.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitcoin::Block;
use bitcoin::hashes::Hash;
use metashrew_core::mock;
use metashrew_runtime::{InstanceMode, MetashrewRuntime};
use metashrew_storage::{MemStore, Storage};
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;

type Runtime = MetashrewRuntime<MemStore>;

use metashrew_tests::runtimes::on_memory as runtime;

fn run_all(wasm: &str, blocks: &[Vec<u8>], mode: InstanceMode) -> Runtime {
    let rt = runtime(wasm, mode);
    for (height, block) in blocks.iter().enumerate() {
        rt.process_block(height as u32, block)
            .unwrap_or_else(|e| panic!("block {height}: {e}"));
    }
    rt
}

fn stored(rt: &Runtime, key: &str) -> Vec<u8> {
    rt.storage()
        .get_at(key.as_bytes(), u32::MAX)
        .expect("read")
        .unwrap_or_default()
}

#[test]
fn minimal_stores_blocks_hashes_and_tracker() {
    let blocks = mainnet_blocks();
    let rt = run_all(guests::MINIMAL, &blocks, InstanceMode::Fresh);
    let mut tracker = Vec::new();
    for (height, raw) in blocks.iter().enumerate() {
        let block: Block = bitcoin::consensus::deserialize(raw).expect("fixture block");
        let hash = block.block_hash().to_byte_array();
        tracker.push(hash[0]);
        assert_eq!(stored(&rt, &format!("/blocks/{height}")), *raw);
        assert_eq!(
            stored(&rt, &format!("/block-hashes/{height}")),
            hash.to_vec()
        );
    }
    assert_eq!(rt.view("blocktracker", b"", 255).expect("view"), tracker);
    assert_eq!(rt.view("getblock", b"", 100).expect("view"), blocks[100]);
    let tip: Block = bitcoin::consensus::deserialize(&blocks[255]).expect("tip");
    assert_eq!(
        tip.block_hash().to_string(),
        "00000000d0a75c861fabf9ff7b92022f60e4afeed9331fe5aa073d8e4706fe3c"
    );
}

#[test]
fn spendables_in_wasm_matches_native_and_answers_balances() {
    let blocks = mainnet_blocks();
    let script = metashrew_tests::fixtures::coinbase9_script();

    let rt = run_all(guests::SPENDABLES, &blocks, InstanceMode::Fresh);
    for (height, btc) in [(169u32, 50u64), (170, 40)] {
        let balance = rt.view("balance", &script, height).expect("view");
        assert_eq!(
            balance,
            (btc * 100_000_000).to_le_bytes().to_vec(),
            "height {height}"
        );
    }

    // The same logic compiled natively, over the mock host, gives byte-identical state.
    let wasm_state = rt.storage().dump_at(255);
    std::thread::spawn(move || {
        mock::reset();
        for (height, block) in blocks.iter().enumerate() {
            mock::set_input(height as u32, block);
            metashrew_core::index_block(spendables::index_block);
        }
        mock::state()
    })
    .join()
    .map(|native| assert!(native == wasm_state, "native and wasm states differ"))
    .expect("native run");
}

fn report(rt: &Runtime, height: u32) -> Vec<u32> {
    let bytes = stored(rt, &format!("/probe/report/{height}"));
    assert_eq!(bytes.len(), probe::REPORT_WORDS * 4);
    bytes
        .chunks(4)
        .map(|w| u32::from_le_bytes(w.try_into().expect("word")))
        .collect()
}

#[test]
fn probe_heap_addresses_do_not_depend_on_cache_hits() {
    let blocks = mainnet_blocks();
    const BLOCKS: u32 = 6;
    // Persistent: from block 1 on, /probe/a and /probe/b are read from the guest's LRU cache.
    let warm = runtime(guests::PROBE, InstanceMode::Persistent);
    // Fresh: every block starts with an empty cache and reads them from the host.
    let cold = runtime(guests::PROBE, InstanceMode::Fresh);
    for height in 0..BLOCKS {
        warm.process_block(height, &blocks[height as usize])
            .expect("warm block");
        cold.process_block(height, &blocks[height as usize])
            .expect("cold block");
    }
    for height in 0..BLOCKS {
        let (w, c) = (report(&warm, height), report(&cold, height));
        eprintln!("height {height}: warm {w:x?} cold {c:x?}");
        if height > 0 {
            assert!(w[0] >= 2 * height, "warm reads hit the cache: {w:?}");
            assert_eq!(c[0], 0, "cold reads never hit: {c:?}");
        }
        assert_eq!(w[2..], c[2..], "addresses differ at height {height}");
        assert!(
            w[5] > w[2] + w[3] * 65536 || w[5] < w[2],
            "values live outside the region"
        );
    }
}

/// The state root of `spendables` after the bundled blocks 0..=255, pinned: a change to the
/// root function, to the guest's writes or to the ABI shows here, even if every run agrees with
/// every other.
#[test]
fn the_spendables_root_at_255_is_pinned() {
    let rt = run_all(guests::SPENDABLES, &mainnet_blocks(), InstanceMode::Fresh);
    let root = rt.state_root(255).unwrap().unwrap();
    assert_eq!(
        hex::encode(root),
        "7b0b12b2119620d381f6f18e86987e5ecc37cf216f3d7aa20d5ec940b470585f"
    );
}

//! The example guests built to wasm32, run block by block in wasmtime over real mainnet blocks.

use bitcoin::Block;
use bitcoin::hashes::Hash;
use metashrew_core::mock;
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;
use metashrew_tests::harness::GuestHost;

fn run_all(wasm: &str, blocks: &[Vec<u8>], persistent: bool) -> GuestHost {
    let mut host = GuestHost::load(wasm).expect("guest compiles");
    for (height, block) in blocks.iter().enumerate() {
        host.run_block(height as u32, block, persistent)
            .unwrap_or_else(|e| panic!("block {height}: {e:#}"));
    }
    host
}

#[test]
fn minimal_stores_blocks_hashes_and_tracker() {
    let blocks = mainnet_blocks();
    let host = run_all(guests::MINIMAL, &blocks, false);
    let mut tracker = Vec::new();
    for (height, raw) in blocks.iter().enumerate() {
        let block: Block = bitcoin::consensus::deserialize(raw).expect("fixture block");
        let hash = block.block_hash().to_byte_array();
        tracker.push(hash[0]);
        assert_eq!(host.state()[format!("/blocks/{height}").as_bytes()], *raw);
        assert_eq!(
            host.state()[format!("/block-hashes/{height}").as_bytes()],
            hash.to_vec()
        );
    }
    assert_eq!(host.view("blocktracker", 255, b"").expect("view"), tracker);
    assert_eq!(host.view("getblock", 100, b"").expect("view"), blocks[100]);
    let tip: Block = bitcoin::consensus::deserialize(&blocks[255]).expect("tip");
    assert_eq!(
        tip.block_hash().to_string(),
        "00000000d0a75c861fabf9ff7b92022f60e4afeed9331fe5aa073d8e4706fe3c"
    );
}

#[test]
fn spendables_in_wasm_matches_native_and_answers_balances() {
    let blocks = mainnet_blocks();
    let block9: Block = bitcoin::consensus::deserialize(&blocks[9]).expect("block 9");
    let script = block9.txdata[0].output[0].script_pubkey.as_bytes().to_vec();

    let mut host = GuestHost::load(guests::SPENDABLES).expect("guest compiles");
    for (height, block) in blocks.iter().enumerate() {
        host.run_block(height as u32, block, false)
            .expect("block runs");
        if height == 169 || height == 170 {
            let balance = host.view("balance", height as u32, &script).expect("view");
            let expected: u64 = if height == 169 { 50 } else { 40 } * 100_000_000;
            assert_eq!(balance, expected.to_le_bytes().to_vec(), "height {height}");
        }
    }

    // The same logic compiled natively, over the mock host, gives byte-identical state.
    std::thread::spawn(move || {
        mock::reset();
        for (height, block) in blocks.iter().enumerate() {
            mock::set_input(height as u32, block);
            metashrew_core::index_block(spendables::index_block);
        }
        mock::state()
    })
    .join()
    .map(|native| assert!(native == *host.state(), "native and wasm states differ"))
    .expect("native run");
}

#[test]
fn persistent_and_fresh_instances_give_identical_state() {
    let blocks = mainnet_blocks();
    let fresh = run_all(guests::SPENDABLES, &blocks, false);
    let persistent = run_all(guests::SPENDABLES, &blocks, true);
    assert_eq!(fresh.state().len(), persistent.state().len());
    assert!(fresh.state() == persistent.state());
}

fn report(host: &GuestHost, height: u32) -> Vec<u32> {
    let bytes = &host.state()[format!("/probe/report/{height}").as_bytes()];
    assert_eq!(bytes.len(), probe::REPORT_WORDS * 4);
    bytes
        .chunks(4)
        .map(|w| u32::from_le_bytes(w.try_into().expect("word")))
        .collect()
}

#[test]
fn probe_heap_addresses_do_not_depend_on_cache_hits() {
    const BLOCKS: u32 = 6;
    // Persistent: from block 1 on, /probe/a and /probe/b are read from the guest's LRU cache.
    let mut warm = GuestHost::load(guests::PROBE).expect("probe compiles");
    // Fresh: every block starts with an empty cache and reads them from the host.
    let mut cold = GuestHost::load(guests::PROBE).expect("probe compiles");
    for height in 0..BLOCKS {
        warm.run_block(height, b"", true).expect("warm block");
        cold.run_block(height, b"", false).expect("cold block");
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

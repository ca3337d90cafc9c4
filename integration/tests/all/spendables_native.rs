//! The `spendables` indexer's logic, run natively (mock host) over mainnet blocks 0..=255.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};

use bitcoin::{Block, OutPoint};
use metashrew_core::mock;
use metashrew_tests::fixtures::mainnet_blocks;
use spendables::{UNSPENT_ENTRY_LEN, balance_view, index_block, unspent_view};

const COIN: u64 = 100_000_000;

fn run_block(height: u32, block: &[u8]) {
    mock::set_input(height, block);
    metashrew_core::index_block(index_block);
}

fn balance(height: u32, script: &[u8]) -> u64 {
    let bytes = balance_view(height, script).expect("view runs");
    u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
}

/// Unspent totals per script, from a plain in-memory UTXO set.
fn naive_balances(blocks: &[Vec<u8>]) -> BTreeMap<Vec<u8>, u64> {
    let mut utxos: HashMap<OutPoint, (u64, Vec<u8>)> = HashMap::new();
    for raw in blocks {
        let block: Block = bitcoin::consensus::deserialize(raw).expect("fixture block");
        for tx in &block.txdata {
            if !tx.is_coinbase() {
                for input in &tx.input {
                    utxos.remove(&input.previous_output);
                }
            }
            let txid = tx.compute_txid();
            for (vout, out) in tx.output.iter().enumerate() {
                let script = out.script_pubkey.as_bytes().to_vec();
                utxos.insert(
                    OutPoint::new(txid, vout as u32),
                    (out.value.to_sat(), script),
                );
            }
        }
    }
    let mut totals = BTreeMap::new();
    for (value, script) in utxos.into_values() {
        *totals.entry(script).or_insert(0) += value;
    }
    totals
}

#[test]
fn block_170_spends_the_block_9_coinbase() {
    mock::reset();
    let blocks = mainnet_blocks();
    assert_eq!(blocks.len(), 256);
    let block9: Block = bitcoin::consensus::deserialize(&blocks[9]).expect("block 9");
    let script = block9.txdata[0].output[0].script_pubkey.as_bytes().to_vec();
    let coinbase9 = block9.txdata[0].compute_txid();

    for (height, block) in blocks.iter().enumerate().take(170) {
        run_block(height as u32, block);
    }
    assert_eq!(balance(169, &script), 50 * COIN);
    let unspent = unspent_view(169, &script).expect("view runs");
    assert_eq!(unspent.len(), UNSPENT_ENTRY_LEN);
    assert_eq!(
        &unspent[..32],
        bitcoin::hashes::Hash::as_byte_array(&coinbase9)
    );
    assert_eq!(&unspent[32..36], &0u32.to_le_bytes());
    assert_eq!(&unspent[36..44], &(50 * COIN).to_le_bytes());

    run_block(170, &blocks[170]);
    assert_eq!(balance(170, &script), 40 * COIN);
    // The 50 BTC output is spent; the 40 BTC change output of block 170 is what remains.
    let unspent = unspent_view(170, &script).expect("view runs");
    assert_eq!(unspent.len(), UNSPENT_ENTRY_LEN);
    assert_eq!(&unspent[36..44], &(40 * COIN).to_le_bytes());
    assert_ne!(
        &unspent[..32],
        bitcoin::hashes::Hash::as_byte_array(&coinbase9)
    );

    for (height, block) in blocks.iter().enumerate().skip(171) {
        run_block(height as u32, block);
    }
    // Every script's balance equals an independent UTXO-set computation over the same blocks.
    let expected = naive_balances(&blocks);
    assert!(expected.len() > 200);
    for (script, total) in &expected {
        assert_eq!(balance(255, script), *total);
        let unspent = unspent_view(255, script).expect("view runs");
        let listed: u64 = unspent
            .chunks(UNSPENT_ENTRY_LEN)
            .map(|e| u64::from_le_bytes(e[36..44].try_into().expect("value")))
            .sum();
        assert_eq!(listed, *total);
    }
    assert_eq!(balance(255, b"no such script"), 0);
    assert!(
        unspent_view(255, b"no such script")
            .expect("view")
            .is_empty()
    );
}

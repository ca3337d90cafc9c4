//! The `compat` guest (written against Metashrew's public API only, in alkanes-rs's idioms) run
//! through the runtime over mainnet 0..255 and block 840,243, its whole state checked against
//! values computed here independently with the `bitcoin` crate.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::{Address, Block, Network, Script};
use metashrew_runtime::{MetashrewRuntime, RuntimeConfig};
use metashrew_storage::MemStore;
use metashrew_tests::fixtures::{HEAVY_HEIGHT, heavy_block, mainnet_blocks};
use metashrew_tests::guests;

/// The payee text, computed without the SDK: `bitcoin`'s address, else the script in hex.
fn payee(script: &Script) -> String {
    Address::from_script(script, Network::Bitcoin)
        .map(|a| a.to_string())
        .unwrap_or_else(|_| format!("script:{}", hex::encode(script.as_bytes())))
}

#[derive(Default)]
struct Expected {
    received: BTreeMap<String, u64>,
    txids: BTreeMap<String, Vec<Vec<u8>>>,
}

impl Expected {
    fn apply(&mut self, block: &Block) {
        for tx in &block.txdata {
            let txid = tx.compute_txid().to_byte_array();
            if txid[0] < 0x40 {
                continue; // rolled back by the guest
            }
            for output in &tx.output {
                let who = payee(&output.script_pubkey);
                *self.received.entry(who.clone()).or_default() += output.value.to_sat();
                self.txids.entry(who).or_default().push(txid.to_vec());
            }
        }
    }

    /// The exact keys and values the guest must have written under `/received/` and `/txids/`.
    fn state(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut state = BTreeMap::new();
        for (who, total) in &self.received {
            state.insert(
                format!("/received/{who}").into_bytes(),
                total.to_le_bytes().to_vec(),
            );
        }
        for (who, txids) in &self.txids {
            state.insert(
                format!("/txids/{who}/length").into_bytes(),
                (txids.len() as u32).to_le_bytes().to_vec(),
            );
            for (i, txid) in txids.iter().enumerate() {
                state.insert(format!("/txids/{who}/{i}").into_bytes(), txid.clone());
            }
        }
        state
    }
}

fn under(dump: &BTreeMap<Vec<u8>, Vec<u8>>, prefixes: &[&str]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    dump.iter()
        .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p.as_bytes())))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn runtime() -> (Arc<MemStore>, MetashrewRuntime<MemStore>) {
    let store = Arc::new(MemStore::new());
    let wasm = std::fs::read(guests::COMPAT).unwrap();
    let runtime =
        MetashrewRuntime::from_bytes(&wasm, store.clone(), RuntimeConfig::default()).unwrap();
    (store, runtime)
}

fn received(runtime: &MetashrewRuntime<MemStore>, who: &str, height: u32) -> u64 {
    let out = runtime.view("received", who.as_bytes(), height).unwrap();
    u64::from_le_bytes(out.try_into().unwrap())
}

#[test]
fn mainnet_0_255_state_matches_an_independent_computation() {
    let (store, runtime) = runtime();
    let blocks = mainnet_blocks();
    let mut expected = Expected::default();
    let mut at_169 = None;
    for (height, raw) in blocks.iter().enumerate() {
        let block: Block = bitcoin::consensus::deserialize(raw).unwrap();
        runtime.process_block(height as u32, raw).unwrap();
        expected.apply(&block);
        if height == 169 {
            at_169 = Some(expected.received.clone());
        }
        let hash = store.dump_at(height as u32)
            [&[b"/blockhash/".as_slice(), &(height as u32).to_le_bytes()].concat()]
            .clone();
        assert_eq!(hash, block.block_hash().to_byte_array().to_vec());
    }
    let dump = store.dump_at(255);
    assert_eq!(under(&dump, &["/received/", "/txids/"]), expected.state());
    // Views at two heights, for every payee.
    let at_169 = at_169.unwrap();
    for (who, total) in &expected.received {
        assert_eq!(received(&runtime, who, 255), *total, "{who}");
        assert_eq!(
            received(&runtime, who, 169),
            at_169.get(who).copied().unwrap_or(0),
            "{who} at 169"
        );
    }
    // The linked list after Metashrew's delete_value of every odd height below 254.
    let walked = runtime.view("heights", &[], 255).unwrap();
    let heights: Vec<u32> = walked
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let mut want: Vec<u32> = (0..=254).step_by(2).collect();
    want.push(255);
    assert_eq!(heights, want);
    // Metashrew's exact link bytes: next(0) = 2 (written when 1 was deleted).
    assert_eq!(
        dump[&b"/heights/next\x00\x00\x00\x00".to_vec()],
        2u32.to_le_bytes().to_vec()
    );
    assert_eq!(dump[&b"/heights/1".to_vec()], vec![0]);
}

#[test]
fn heavy_block_state_matches_an_independent_computation() {
    let (store, runtime) = runtime();
    let raw = heavy_block();
    let block: Block = bitcoin::consensus::deserialize(&raw).unwrap();
    runtime.process_block(HEAVY_HEIGHT, &raw).unwrap();
    let mut expected = Expected::default();
    expected.apply(&block);
    let dump = store.dump_at(HEAVY_HEIGHT);
    let state = under(&dump, &["/received/", "/txids/"]);
    assert!(state.len() > 10_000, "{} keys", state.len());
    assert_eq!(state, expected.state());
    // Every kind of address appears among the keys, as text.
    for prefix in [
        "/received/1",
        "/received/3",
        "/received/bc1q",
        "/received/bc1p",
    ] {
        assert!(
            state.keys().any(|k| k.starts_with(prefix.as_bytes())),
            "{prefix}"
        );
    }
    let rolled_back = block
        .txdata
        .iter()
        .filter(|tx| tx.compute_txid().to_byte_array()[0] < 0x40)
        .count();
    assert!(rolled_back > 500, "{rolled_back} transactions rolled back");
}

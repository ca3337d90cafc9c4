//! The alkanes-shaped `contracts` guest (a contract run in wasmi inside the guest for every
//! transaction) through the runtime over mainnet 0..255 and block 840,243: its whole state
//! checked against a native execution written here from its documented rules, without its
//! code or an interpreter; its roots the same whether instances are fresh or kept.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bitcoin::hashes::Hash;
use bitcoin::{Block, OutPoint};
use metashrew_runtime::{InstanceMode, MetashrewRuntime};
use metashrew_storage::MemStore;
use metashrew_tests::fixtures::{HEAVY_HEIGHT, heavy_block, mainnet_blocks};
use metashrew_tests::guests;
use metashrew_tests::runtimes::{on_memory, roots};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

const STATE: &[u8] = b"/contracts/state";
const SHEET: &[u8] = b"/contracts/sheet/";
const TRACE: &[u8] = b"/contracts/trace/";

fn outpoint(o: &OutPoint) -> Vec<u8> {
    [o.txid.as_byte_array().as_slice(), &o.vout.to_le_bytes()].concat()
}

/// The contract's mixing, natively.
fn mix(mut state: u64, mut seed: u64, rounds: u32) -> u64 {
    for _ in 0..rounds {
        state = (state ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        state ^= state >> 29;
        seed = seed.rotate_left(7);
    }
    state
}

/// The guest's state (without the stored contract), kept natively.
#[derive(Default, Clone)]
struct Expected {
    state: u64,
    keys: State,
}

impl Expected {
    fn apply(&mut self, block: &Block) {
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            let id = txid.to_byte_array();
            let mut carried = 0u64;
            if !tx.is_coinbase() {
                for input in &tx.input {
                    let sheet = [SHEET, &outpoint(&input.previous_output)].concat();
                    if let Some(v) = self.keys.remove(&sheet) {
                        carried = carried.wrapping_add(u64::from_le_bytes(v.try_into().unwrap()));
                    }
                }
            }
            let seed = u64::from_le_bytes(id[..8].try_into().unwrap());
            self.state = mix(self.state, seed, 64 + u32::from(id[8]));
            let total = carried.wrapping_add(self.state & 0xffff);
            self.keys
                .insert(STATE.to_vec(), self.state.to_le_bytes().to_vec());
            let trace = [self.state.to_le_bytes(), total.to_le_bytes()].concat();
            self.keys.insert([TRACE, &id].concat(), trace);
            let n = tx.output.len() as u64;
            for vout in 0..n {
                let amount = total / n + if vout == 0 { total % n } else { 0 };
                if amount != 0 {
                    let key = [SHEET, &outpoint(&OutPoint::new(txid, vout as u32))].concat();
                    self.keys.insert(key, amount.to_le_bytes().to_vec());
                }
            }
        }
    }
}

/// The guest's keys at `height`, the stored contract aside (checked to be a wasm module).
fn guest_state(rt: &MetashrewRuntime<MemStore>, height: u32) -> State {
    let mut dump = rt.storage().dump_at(height);
    dump.retain(|k, _| k.starts_with(b"/contracts/"));
    let code = dump.remove(b"/contracts/code".as_slice()).expect("stored");
    assert_eq!(&code[..4], b"\0asm");
    dump
}

fn u64_view(rt: &MetashrewRuntime<MemStore>, view: &str, input: &[u8], height: u32) -> u64 {
    u64::from_le_bytes(rt.view(view, input, height).unwrap().try_into().unwrap())
}

#[test]
fn mainnet_0_255_state_matches_a_native_execution_and_roots_agree_across_instances() {
    let blocks = mainnet_blocks();
    let fresh = on_memory(guests::CONTRACTS, InstanceMode::Fresh);
    let kept = on_memory(guests::CONTRACTS, InstanceMode::Persistent);
    let mut expected = Expected::default();
    let mut at = BTreeMap::new();
    for (height, raw) in blocks.iter().enumerate() {
        let height = height as u32;
        fresh.process_block(height, raw).unwrap();
        kept.process_block(height, raw).unwrap();
        expected.apply(&bitcoin::consensus::deserialize(raw).unwrap());
        if [0, 9, 169, 170, 255].contains(&height) {
            at.insert(height, expected.clone());
        }
    }
    assert_eq!(roots(&fresh, 0..256), roots(&kept, 0..256));
    for (&height, want) in &at {
        assert_eq!(guest_state(&fresh, height), want.keys, "state at {height}");
        assert_eq!(u64_view(&fresh, "state", &[], height), want.state);
    }
    // Block 170 spends block 9's coinbase: its balance moves to block 170's outputs.
    let block9: Block = bitcoin::consensus::deserialize(&blocks[9]).unwrap();
    let coinbase9 = outpoint(&OutPoint::new(block9.txdata[0].compute_txid(), 0));
    let before = u64_view(&fresh, "sheet", &coinbase9, 169);
    assert_ne!(before, 0);
    assert_eq!(u64_view(&fresh, "sheet", &coinbase9, 170), 0);
    let block170: Block = bitcoin::consensus::deserialize(&blocks[170]).unwrap();
    let spender = &block170.txdata[1];
    let moved: u64 = (0..spender.output.len() as u32)
        .map(|vout| {
            let o = outpoint(&OutPoint::new(spender.compute_txid(), vout));
            u64_view(&fresh, "sheet", &o, 170)
        })
        .sum();
    assert!(moved >= before, "{moved} carried, {before} spent");
}

#[test]
fn heavy_block_state_matches_a_native_execution() {
    let rt = on_memory(guests::CONTRACTS, InstanceMode::Fresh);
    let raw = heavy_block();
    let block: Block = bitcoin::consensus::deserialize(&raw).unwrap();
    rt.process_block(HEAVY_HEIGHT, &raw).unwrap();
    let mut expected = Expected::default();
    expected.apply(&block);
    let state = guest_state(&rt, HEAVY_HEIGHT);
    assert!(state.len() > 10_000, "{} keys", state.len());
    assert_eq!(state, expected.keys);
}

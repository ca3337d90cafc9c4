//! The generator's chains are valid in shape (linked, committed, mined, BIP34 heights),
//! deterministic, and mainnet-like in their spends and scripts.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use bitcoin::consensus::deserialize;
use bitcoin::{Block, Txid};
use chaingen::{Generator, Settings};

fn settings(seed: u64) -> Settings {
    Settings {
        seed,
        min_txs: 200,
        max_txs: 400,
        ..Settings::default()
    }
}

fn chain(seed: u64, blocks: usize) -> Vec<Vec<u8>> {
    let mut generator = Generator::new(settings(seed));
    (0..blocks).map(|_| generator.next_block()).collect()
}

#[test]
fn blocks_are_linked_committed_mined_and_carry_their_height() {
    let raw = chain(7, 40);
    let mut prev = None;
    for (height, bytes) in raw.iter().enumerate() {
        let block: Block = deserialize(bytes).expect("decodes");
        match prev {
            None => assert_eq!(block.header.prev_blockhash, bitcoin::BlockHash::all_zeros()),
            Some(p) => assert_eq!(block.header.prev_blockhash, p),
        }
        assert!(block.check_merkle_root(), "merkle root at {height}");
        assert!(
            block.check_witness_commitment(),
            "witness commitment at {height}"
        );
        block
            .header
            .validate_pow(block.header.target())
            .expect("mined to its bits");
        // Heights up to 16 are pushed as OP_0 / OP_1..OP_16, as Core's miner does.
        match height {
            0 => assert_eq!(block.txdata[0].input[0].script_sig.as_bytes()[0], 0x00),
            1..=16 => assert_eq!(
                block.txdata[0].input[0].script_sig.as_bytes()[0],
                0x50 + height as u8
            ),
            _ => assert_eq!(block.bip34_block_height().ok(), Some(height as u64)),
        }
        assert!((200..=400).contains(&block.txdata.len()) || height < 10);
        assert_eq!(chaingen::hash_of(bytes), block.block_hash().to_byte_array());
        prev = Some(block.block_hash());
    }
}

use bitcoin::hashes::Hash;

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    assert_eq!(chain(3, 12), chain(3, 12));
    assert_ne!(chain(3, 12)[11], chain(4, 12)[11]);
}

#[test]
fn spends_are_mostly_young_with_a_long_tail_and_scripts_are_mixed() {
    let raw = chain(11, 300);
    let mut created: HashMap<Txid, usize> = HashMap::new();
    let mut ages = Vec::new();
    let mut kinds: HashMap<&'static str, usize> = HashMap::new();
    let mut scripts: HashMap<Vec<u8>, usize> = HashMap::new();
    for (height, bytes) in raw.iter().enumerate() {
        let block: Block = deserialize(bytes).expect("decodes");
        for tx in &block.txdata {
            if !tx.is_coinbase() {
                for input in &tx.input {
                    if let Some(at) = created.get(&input.previous_output.txid) {
                        ages.push(height - at);
                    }
                }
            }
            for out in &tx.output {
                let s = &out.script_pubkey;
                let kind = if s.is_p2wpkh() {
                    "p2wpkh"
                } else if s.is_p2tr() {
                    "p2tr"
                } else if s.is_p2pkh() {
                    "p2pkh"
                } else if s.is_p2sh() {
                    "p2sh"
                } else if s.is_p2wsh() {
                    "p2wsh"
                } else if s.is_op_return() {
                    "op_return"
                } else {
                    "other"
                };
                *kinds.entry(kind).or_default() += 1;
                *scripts.entry(s.to_bytes()).or_default() += 1;
            }
            created.insert(tx.compute_txid(), height);
        }
    }
    ages.sort_unstable();
    let n = ages.len();
    assert!(n > 100_000, "{n} spends of known outputs");
    let young = ages.iter().filter(|&&a| a <= 6).count() as f64 / n as f64;
    let old = ages.iter().filter(|&&a| a >= 144).count() as f64 / n as f64;
    assert!(young > 0.3, "share of spends at most 6 blocks old: {young}");
    assert!(old > 0.02, "share of spends at least a day old: {old}");
    assert!(ages[n - 1] > 250, "oldest spend: {} blocks", ages[n - 1]);
    for kind in [
        "p2wpkh",
        "p2tr",
        "p2pkh",
        "p2sh",
        "p2wsh",
        "op_return",
        "other",
    ] {
        assert!(
            kinds.get(kind).copied().unwrap_or(0) > 100,
            "{kind}: {kinds:?}"
        );
    }
    assert!(kinds["p2wpkh"] > kinds["p2tr"] && kinds["p2tr"] > kinds["p2wsh"]);
    let reused = scripts.values().filter(|&&c| c > 1).count();
    let hottest = scripts.values().max().copied().unwrap_or(0);
    assert!(reused > 1_000, "{reused} scripts paid more than once");
    assert!(
        hottest > 1_000,
        "the hottest script was paid {hottest} times"
    );
}

#[test]
fn the_mainnet_profile_gives_each_era_its_transaction_counts_and_heights() {
    for (era_start, min, max) in [
        (50_000u32, 1, 4),
        (400_000, 1_300, 2_000),
        (900_000, 3_000, 4_000),
    ] {
        let mut generator = Generator::new(Settings {
            first_height: era_start,
            profile: chaingen::Profile::Mainnet,
            ..Settings::default()
        });
        for n in 0..chaingen::FUNDING_BLOCKS + 3 {
            let block: Block = deserialize(&generator.next_block()).expect("decodes");
            assert_eq!(
                block.bip34_block_height().expect("BIP34 height"),
                u64::from(era_start + n)
            );
            if n >= chaingen::FUNDING_BLOCKS {
                let txs = block.txdata.len() as u32;
                assert!(
                    (min..=max).contains(&txs),
                    "{txs} transactions at {}",
                    era_start + n
                );
            }
        }
    }
    assert_eq!(chaingen::mainnet_txs(0), (1, 1));
    assert_eq!(chaingen::mainnet_txs(976_999), (3_000, 4_000));
}

//! AuxPoW parsing on a real merged-mined block: Crown mainnet block 1,671,882
//! (`72a79139…e2f7`, December 2017), merged-mined under a Bitcoin pool's parent block.
//! The test checks the parse against the chain's own commitments: the block hash, the
//! transactions' merkle root, the parent coinbase's merkle path, the commitment of this block
//! in the parent coinbase, and the parent header's proof of work against Crown's target.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use bitcoin::hashes::{Hash, sha256d};
use bitcoin::{BlockHash, Target};
use metashrew_support::block::{
    AuxpowBlock, AuxpowHeader, AuxpowMerkleBranch, AuxpowVersion, VERSION_AUXPOW, VERSION_CHAIN_ID,
};

const CROWN_1671882: &str = include_str!("fixtures/crown-1671882.hex");
const CROWN_1671882_HASH: &str = "72a79139b132951724255181232988eeabc19e9b855a87727a3d8d59b369e2f7";

fn block_bytes() -> Vec<u8> {
    hex::decode(CROWN_1671882.trim()).unwrap()
}

/// Folds `leaf` up a merkle branch: bit i of the side mask set means the branch hash is on the
/// left at level i.
fn fold(leaf: [u8; 32], branch: &AuxpowMerkleBranch) -> [u8; 32] {
    let mut hash = leaf;
    for (i, sibling) in branch.branch_hash.iter().enumerate() {
        let mut pair = Vec::with_capacity(64);
        if (branch.branch_side_mask >> i) & 1 == 1 {
            pair.extend_from_slice(sibling.as_byte_array());
            pair.extend_from_slice(&hash);
        } else {
            pair.extend_from_slice(&hash);
            pair.extend_from_slice(sibling.as_byte_array());
        }
        hash = sha256d::Hash::hash(&pair).to_byte_array();
    }
    hash
}

#[test]
fn real_crown_block_parses_and_its_commitments_hold() {
    let bytes = block_bytes();
    let mut cursor = Cursor::new(bytes.clone());
    let block = AuxpowBlock::parse(&mut cursor).unwrap();
    assert_eq!(cursor.position() as usize, bytes.len(), "every byte read");

    let version = &block.header.version;
    assert!(version.is_auxpow());
    assert!(!version.is_legacy());
    assert!(!version.is_proof_of_stake());
    assert_eq!(version.chain_id(), VERSION_CHAIN_ID);
    assert_eq!(version.base_version(), 2);
    assert_eq!(version.unwrap(), 0x0014_0102);

    // The block as bitcoin sees it: its hash and merkle root are the chain's.
    let consensus = block.to_consensus();
    assert_eq!(consensus.block_hash().to_string(), CROWN_1671882_HASH);
    assert_eq!(consensus.txdata.len(), 3);
    assert!(consensus.check_merkle_root());

    let auxpow = block.header.auxpow.as_ref().unwrap();
    let parent = &auxpow.parent_block;
    assert!(parent.auxpow.is_none());
    let parent_header: bitcoin::block::Header = parent.clone().into();
    // The parent coinbase hangs under the parent's merkle root.
    assert_eq!(auxpow.coinbase_branch.branch_side_mask, 0);
    let coinbase_txid = auxpow.coinbase_txn.compute_txid().to_byte_array();
    assert_eq!(
        fold(coinbase_txid, &auxpow.coinbase_branch),
        parent_header.merkle_root.to_byte_array()
    );
    // The parent coinbase commits (after the merged-mining magic) to the root of the chain
    // merkle tree holding this block's hash; the commitment is stored byte-reversed.
    let chain_root = fold(
        consensus.block_hash().to_byte_array(),
        &auxpow.blockchain_branch,
    );
    let mut committed = chain_root;
    committed.reverse();
    let script = auxpow.coinbase_txn.input[0].script_sig.as_bytes();
    let magic = script
        .windows(4)
        .position(|w| w == [0xfa, 0xbe, b'm', b'm'])
        .expect("merged-mining magic in the parent coinbase");
    assert_eq!(&script[magic + 4..magic + 36], &committed);
    // The parent header's work meets this block's target (Crown's difficulty).
    assert!(Target::from_compact(consensus.header.bits).is_met_by(parent_header.block_hash()));
    assert_ne!(auxpow.block_hash, BlockHash::all_zeros());
}

#[test]
fn truncated_or_lying_blocks_are_errors() {
    let bytes = block_bytes();
    for cut in [0, 79, 80, 200, bytes.len() - 1] {
        let mut cursor = Cursor::new(bytes[..cut].to_vec());
        assert!(AuxpowBlock::parse(&mut cursor).is_err(), "cut at {cut}");
    }
    // A header without the AuxPoW bit: the next bytes are the transaction count.
    let mut plain = bitcoin::consensus::serialize(&bitcoin::constants::genesis_block(
        bitcoin::Network::Bitcoin,
    ));
    let block = AuxpowBlock::parse(&mut Cursor::new(plain.clone())).unwrap();
    assert!(block.header.auxpow.is_none());
    assert_eq!(
        block.to_consensus().block_hash(),
        bitcoin::constants::genesis_block(bitcoin::Network::Bitcoin).block_hash()
    );
    // A transaction count far beyond the bytes left fails instead of allocating.
    plain.truncate(80);
    plain.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert!(AuxpowBlock::parse(&mut Cursor::new(plain)).is_err());
}

#[test]
fn version_flags() {
    let v = AuxpowVersion::new(VERSION_AUXPOW | 0x0062_0004);
    assert!(v.is_auxpow());
    assert_eq!(v.chain_id(), 0x62);
    assert_eq!(v.base_version(), 4);
    assert!(AuxpowVersion::new(1).is_legacy());
    let header = AuxpowHeader::parse_without_auxpow(&mut Cursor::new(vec![0u8; 80])).unwrap();
    assert_eq!(header.version.unwrap(), 0);
}

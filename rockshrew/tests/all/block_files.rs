//! The daemon over real mainnet blocks written as Bitcoin Core writes them: out of order, in
//! several obfuscated files, with a stale branch, and appended to while the daemon follows.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use chaingen::blk::{BlkWriter, MAINNET_MAGIC};
use common::{Daemon, fork, reference_roots};
use metashrew_storage::hashes::block_hash;
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);
const KEY: [u8; 8] = [0x5c, 0x10, 0xe2, 0x07, 0x91, 0x33, 0xab, 0x48];

/// How the RPC shows a block hash.
fn display(hash: metashrew_storage::BlockHash) -> String {
    format!("0x{hash}")
}

/// Blocks in windows of five, each window reversed (children before parents).
fn out_of_order(blocks: &[Vec<u8>]) -> Vec<Vec<u8>> {
    blocks
        .chunks(5)
        .flat_map(|c| c.iter().rev().cloned().collect::<Vec<_>>())
        .collect()
}

fn root_at(d: &Daemon, height: u32) -> String {
    d.call("metashrew_stateroot", json!([height]))["result"]
        .as_str()
        .unwrap_or_else(|| panic!("no root at {height}"))
        .to_string()
}

fn write_all(out: &mut BlkWriter, blocks: &[Vec<u8>]) {
    for block in blocks {
        out.write(block).expect("write");
    }
    out.flush().expect("flush");
}

#[test]
fn mainnet_blocks_out_of_order_obfuscated_with_a_stale_branch_index_as_from_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = mainnet_blocks();
    // A stale branch of two blocks at 120 and 121 (same bits: less work than the real chain).
    let stale = fork(&blocks[..=120], 120, 1);
    let files = dir.path().join("blocks");
    let mut out = BlkWriter::create(&files, MAINNET_MAGIC, Some(KEY), 20_000).expect("create");
    write_all(&mut out, &out_of_order(&blocks[..100]));
    write_all(&mut out, &stale[120..]);
    write_all(&mut out, &out_of_order(&blocks[100..]));
    drop(out);
    assert!(
        std::fs::read_dir(&files).unwrap().count() > 3,
        "several files"
    );

    let heights = [0, 9, 120, 121, 170, 255];
    let reference = reference_roots();
    let expected: Vec<&String> = heights.iter().map(|&h| &reference[h as usize]).collect();
    let db = dir.path().join("db");
    let files_arg = files.to_str().unwrap();
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &db,
        &["--no-pow-check", "--blocks-file", files_arg],
    );
    d.wait_for_height(255, WAIT);
    for (&h, root) in heights.iter().zip(&expected) {
        assert_eq!(
            d.call("metashrew_getblockhash", json!([h]))["result"],
            display(block_hash(&blocks[h as usize]).unwrap()),
            "hash at {h}"
        );
        assert_eq!(&root_at(&d, h), *root, "state root at {h}");
    }
}

#[test]
fn a_followed_directory_is_polled_for_new_blocks_and_reorganisations() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = mainnet_blocks();
    let files = dir.path().join("blocks");
    let mut out = BlkWriter::create(&files, MAINNET_MAGIC, Some(KEY), 1 << 20).expect("create");
    write_all(&mut out, &blocks[..200]);
    let db = dir.path().join("db");
    let files_arg = files.to_str().unwrap();
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &db,
        &["--no-pow-check", "--blocks-file", files_arg],
    );
    d.wait_for_height(199, WAIT);

    // The node appends a branch of blocks 196..=201 (longer: it wins, a reorganisation), then
    // the real blocks 200..=255 (longer again: back to the real chain).
    let branch = fork(&blocks[..=199], 196, 2);
    write_all(&mut out, &branch[196..]);
    d.wait_for_height(201, WAIT);
    assert_eq!(
        d.call("metashrew_getblockhash", json!([201]))["result"],
        display(block_hash(&branch[201]).unwrap())
    );
    write_all(&mut out, &blocks[200..]);
    d.wait_for_height(255, WAIT);
    let expected = reference_roots();
    assert_eq!(root_at(&d, 196), expected[196]);
    assert_eq!(root_at(&d, 255), expected[255]);
    assert!(
        d.log_text().contains("chain reorganisation"),
        "{}",
        d.log_text()
    );
}

#[test]
fn a_gap_in_the_files_is_refused_with_the_missing_block_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut blocks = mainnet_blocks();
    let missing = blocks.remove(130);
    let files = dir.path().join("blocks");
    let mut out = BlkWriter::create(&files, MAINNET_MAGIC, None, 1 << 20).expect("create");
    write_all(&mut out, &blocks);
    drop(out);
    let db = dir.path().join("db");
    let files_arg = files.to_str().unwrap();
    let mut d = Daemon::start(guests::MINIMAL, &db, &["--blocks-file", files_arg]);
    let code = d.wait_exit(WAIT);
    assert_ne!(code, Some(0));
    let log = d.log_text();
    let name = display(block_hash(&missing).unwrap());
    // Mainnet's early blocks state no height (pre-BIP34): the block is named, and the gap
    // is refused rather than the chain cut short.
    let orphan = display(block_hash(&blocks[130]).unwrap());
    assert!(log.contains(orphan.trim_start_matches("0x")), "{log}");
    assert!(log.contains(name.trim_start_matches("0x")), "{log}");
}

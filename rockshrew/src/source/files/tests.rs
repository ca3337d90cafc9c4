//! Chains built with `chaingen` and written as Core writes them.

use std::path::Path;

use chaingen::blk::{BlkWriter, MAINNET_MAGIC, REGTEST_MAGIC, SIGNET_MAGIC, TESTNET4_MAGIC};
use chaingen::{REGTEST_BITS, small_block};

use super::*;

fn hash_of(block: &[u8]) -> BlockHash {
    BlockHash::from(chaingen::hash_of(block))
}

/// `n` linked small blocks on top of `prev`, the first at `height`; `tag` tells branches apart
/// and `version` is the header's (1: no BIP34 height).
fn branch(prev: BlockHash, height: u32, n: u32, bits: u32, tag: u32, version: i32) -> Vec<Vec<u8>> {
    let mut prev = prev;
    (0..n)
        .map(|i| {
            let mut block = small_block(prev.to_bytes(), height + i, bits, tag);
            block[..4].copy_from_slice(&version.to_le_bytes());
            prev = hash_of(&block);
            block
        })
        .collect()
}

fn genesis_chain(n: u32) -> Vec<Vec<u8>> {
    branch(BlockHash::ZERO, 0, n, REGTEST_BITS, 0, 0x2000_0000)
}

fn write(dir: &Path, blocks: &[Vec<u8>], magic: [u8; 4], key: Option<[u8; 8]>, file_bytes: u64) {
    let mut out = BlkWriter::create(dir, magic, key, file_bytes).unwrap();
    for block in blocks {
        out.write(block).unwrap();
    }
    out.flush().unwrap();
}

/// Blocks in windows of `w`, each window reversed: parents after their children, as Core's
/// parallel download writes them.
fn shuffled(blocks: &[Vec<u8>], w: usize) -> Vec<Vec<u8>> {
    blocks
        .chunks(w)
        .flat_map(|c| c.iter().rev().cloned().collect::<Vec<_>>())
        .collect()
}

fn open(dir: &Path, start: u32) -> Result<FileSource, FilesError> {
    FileSource::open(dir, start, Duration::ZERO)
}

fn assert_chain(source: &FileSource, first: u32, blocks: &[Vec<u8>]) {
    assert_eq!(source.first_height(), first);
    assert_eq!(
        source.tip_height().unwrap(),
        first + blocks.len() as u32 - 1
    );
    for (i, block) in blocks.iter().enumerate() {
        let height = first + i as u32;
        let hash = source.block_hash(height).unwrap();
        assert_eq!(hash, hash_of(block), "height {height}");
        assert_eq!(
            source.block(&hash).unwrap().as_slice(),
            block,
            "bytes at {height}"
        );
    }
}

#[test]
fn heights_come_from_the_chain_not_from_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let chain = genesis_chain(23);
    // Small files, so that windows straddle them too.
    write(dir.path(), &shuffled(&chain, 5), MAINNET_MAGIC, None, 1_000);
    assert!(list_blk_files(dir.path()).unwrap().len() > 3);
    let source = open(dir.path(), 0).unwrap();
    assert_chain(&source, 0, &chain);
    // --start-block above the files' first block only says where indexing begins.
    let source = open(dir.path(), 17).unwrap();
    assert_chain(&source, 0, &chain);
}

#[test]
fn the_branch_with_the_most_work_wins_and_stale_ones_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let main = genesis_chain(12);
    let stale = branch(hash_of(&main[5]), 6, 3, REGTEST_BITS, 1, 0x2000_0000);
    let mut files = main.clone();
    files.extend(stale);
    write(dir.path(), &files, REGTEST_MAGIC, None, 1 << 20);
    assert_chain(&open(dir.path(), 0).unwrap(), 0, &main);

    // A shorter branch of harder blocks (work 2^8 each against regtest's 2) outweighs a longer
    // one, wherever it sits in the files.
    let heavy = branch(hash_of(&main[8]), 9, 2, 0x2000_ffff, 2, 0x2000_0000);
    let long = branch(hash_of(&main[8]), 9, 6, REGTEST_BITS, 3, 0x2000_0000);
    let dir = tempfile::tempdir().unwrap();
    let mut files = heavy.clone();
    files.extend(main[..9].iter().cloned());
    files.extend(long);
    write(dir.path(), &files, REGTEST_MAGIC, None, 1 << 20);
    let mut expected = main[..9].to_vec();
    expected.extend(heavy);
    assert_chain(&open(dir.path(), 0).unwrap(), 0, &expected);
}

#[test]
fn obfuscated_files_are_read_with_xor_dat_and_refused_clearly_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let chain = genesis_chain(9);
    let key = [0x3a, 0x01, 0xff, 0x80, 0x17, 0x00, 0xc4, 0x5e];
    write(
        dir.path(),
        &shuffled(&chain, 4),
        MAINNET_MAGIC,
        Some(key),
        1_500,
    );
    assert_chain(&open(dir.path(), 0).unwrap(), 0, &chain);
    // One file, named on its own, still finds the key next to it.
    let one = tempfile::tempdir().unwrap();
    write(one.path(), &chain, MAINNET_MAGIC, Some(key), 1 << 20);
    let file = one.path().join("blk00000.dat");
    assert_chain(
        &FileSource::open(&file, 0, Duration::ZERO).unwrap(),
        0,
        &chain,
    );

    std::fs::remove_file(dir.path().join("xor.dat")).unwrap();
    let err = open(dir.path(), 0).err().expect("refused").to_string();
    assert!(
        err.contains("unknown record magic") && err.contains("xor.dat"),
        "{err}"
    );
}

#[test]
fn every_network_magic_is_accepted_but_not_a_mix() {
    let chain = genesis_chain(4);
    for magic in [MAINNET_MAGIC, TESTNET4_MAGIC, SIGNET_MAGIC, REGTEST_MAGIC] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &chain, magic, None, 1 << 20);
        assert_chain(&open(dir.path(), 0).unwrap(), 0, &chain);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut out = BlkWriter::create(dir.path(), MAINNET_MAGIC, None, 1 << 20).unwrap();
    out.write(&chain[0]).unwrap();
    out.flush().unwrap();
    drop(out);
    let mut other = BlkWriter::create(&dir.path().join("x"), SIGNET_MAGIC, None, 1 << 20).unwrap();
    other.write(&chain[1]).unwrap();
    other.flush().unwrap();
    drop(other);
    let mut mixed = std::fs::read(dir.path().join("blk00000.dat")).unwrap();
    mixed.extend(std::fs::read(dir.path().join("x/blk00000.dat")).unwrap());
    std::fs::write(dir.path().join("blk00000.dat"), mixed).unwrap();
    let err = open(dir.path(), 0).err().expect("refused").to_string();
    assert!(err.contains("another network"), "{err}");
}

#[test]
fn a_fragment_starts_at_its_bip34_height_or_at_start_block_before_bip34() {
    let dir = tempfile::tempdir().unwrap();
    let fragment = branch(
        BlockHash::from_bytes([7; 32]),
        880_000,
        6,
        REGTEST_BITS,
        0,
        0x2000_0000,
    );
    write(
        dir.path(),
        &shuffled(&fragment, 3),
        MAINNET_MAGIC,
        None,
        1 << 20,
    );
    assert_chain(&open(dir.path(), 880_002).unwrap(), 880_000, &fragment);
    let err = open(dir.path(), 0).err().expect("refused").to_string();
    assert!(err.contains("begin at height 880000"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let old = branch(BlockHash::from_bytes([9; 32]), 1_000, 5, REGTEST_BITS, 0, 1);
    write(dir.path(), &old, MAINNET_MAGIC, None, 1 << 20);
    assert_chain(&open(dir.path(), 1_000).unwrap(), 1_000, &old);
    assert_chain(&open(dir.path(), 50).unwrap(), 50, &old);
}

#[test]
fn a_missing_block_in_the_middle_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let chain = genesis_chain(20);
    let mut files = chain.clone();
    files.remove(11);
    write(dir.path(), &files, MAINNET_MAGIC, None, 1 << 20);
    let err = open(dir.path(), 0).err().expect("refused");
    assert!(
        matches!(err, FilesError::MissingParent { height: Some(12), parent, .. } if parent == hash_of(&chain[11])),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(&hash_of(&chain[12]).to_string()), "{text}");
    assert!(text.contains("height 11"), "{text}");
}

#[test]
fn a_partial_last_record_waits_and_appended_blocks_and_reorgs_are_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let chain = genesis_chain(10);
    let key = [1, 2, 3, 4, 5, 6, 7, 8];
    let mut out = BlkWriter::create(dir.path(), MAINNET_MAGIC, Some(key), 1 << 20).unwrap();
    for block in &chain[..8] {
        out.write(block).unwrap();
    }
    // Core is half-way through writing block 8.
    let mut record = MAINNET_MAGIC.to_vec();
    record.extend((chain[8].len() as u32).to_le_bytes());
    record.extend(&chain[8]);
    let (head, tail) = record.split_at(record.len() / 2);
    out.write_raw(head).unwrap();
    out.flush().unwrap();
    let source = open(dir.path(), 0).unwrap();
    assert_chain(&source, 0, &chain[..8]);

    out.write_raw(tail).unwrap();
    out.write(&chain[9]).unwrap();
    out.flush().unwrap();
    assert_chain(&source, 0, &chain);

    // A longer branch from block 7 arrives: a reorganisation.
    let fork = branch(hash_of(&chain[7]), 8, 4, REGTEST_BITS, 5, 0x2000_0000);
    for block in &fork {
        out.write(block).unwrap();
    }
    out.flush().unwrap();
    let mut expected = chain[..8].to_vec();
    expected.extend(fork.iter().cloned());
    assert_chain(&source, 0, &expected);
    drop(out);

    // Several new files at once (a node downloading fast): every one of them is read.
    let more = branch(hash_of(&fork[3]), 12, 30, REGTEST_BITS, 6, 0x2000_0000);
    let extra = tempfile::tempdir().unwrap();
    write(extra.path(), &more, MAINNET_MAGIC, Some(key), 1_000);
    let mut moved = 0;
    for file in list_blk_files(extra.path()).unwrap() {
        let name = format!("blk{:05}.dat", 1 + moved);
        std::fs::rename(&file, dir.path().join(name)).unwrap();
        moved += 1;
    }
    assert!(moved >= 4, "{moved} new files");
    expected.extend(more);
    assert_chain(&source, 0, &expected);
}

#[test]
fn new_files_are_found_after_a_pruning_node_deletes_its_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let chain = genesis_chain(40);
    write(dir.path(), &chain[..20], MAINNET_MAGIC, None, 1_000);
    let files = list_blk_files(dir.path()).unwrap();
    assert!(files.len() >= 3, "{} files", files.len());
    let source = open(dir.path(), 0).unwrap();
    assert_chain(&source, 0, &chain[..20]);
    // The node prunes its oldest file, then writes new ones after its newest.
    std::fs::remove_file(&files[0]).unwrap();
    let extra = tempfile::tempdir().unwrap();
    write(extra.path(), &chain[20..], MAINNET_MAGIC, None, 1_000);
    let next = files.len();
    for (i, file) in list_blk_files(extra.path())
        .unwrap()
        .into_iter()
        .enumerate()
    {
        let name = format!("blk{:05}.dat", next + i);
        std::fs::rename(&file, dir.path().join(name)).unwrap();
    }
    assert_eq!(source.tip_height().unwrap(), 39);
    for height in 20..40 {
        let hash = source.block_hash(height).unwrap();
        assert_eq!(hash, hash_of(&chain[height as usize]), "height {height}");
        assert_eq!(
            source.block(&hash).unwrap().as_slice(),
            chain[height as usize]
        );
    }
}

/// Moves the `blk*.dat` files of `from` into `dir`, numbered on from `next`; how many.
fn move_files(from: &Path, dir: &Path, next: usize) -> usize {
    let files = list_blk_files(from).unwrap();
    for (i, file) in files.iter().enumerate() {
        let name = format!("blk{:05}.dat", next + i);
        std::fs::rename(file, dir.join(name)).unwrap();
    }
    files.len()
}

/// A followed directory holding a fragment from height 880,000 (its first block's height comes
/// from its coinbase, BIP34), in files of ~1 KB: the chain of `n` blocks, the directory, the
/// source and how many files it has.
fn followed_fragment(n: u32) -> (Vec<Vec<u8>>, tempfile::TempDir, FileSource, usize) {
    let chain = branch(
        BlockHash::from_bytes([7; 32]),
        880_000,
        n,
        REGTEST_BITS,
        0,
        0x2000_0000,
    );
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &chain[..12], MAINNET_MAGIC, None, 1_000);
    let files = list_blk_files(dir.path()).unwrap().len();
    assert!(files >= 3, "{files} files");
    let source = open(dir.path(), 880_000).unwrap();
    assert_chain(&source, 880_000, &chain[..12]);
    (chain, dir, source, files)
}

#[test]
fn a_pruned_first_file_stops_nothing_whether_deleted_before_or_after_an_append() {
    let oldest = |dir: &Path| list_blk_files(dir).unwrap()[0].clone();
    // Deleted, then appended to: the chain's first block (whose height was read from its
    // coinbase) is gone when the new blocks are chosen from.
    let (chain, dir, source, files) = followed_fragment(20);
    std::fs::remove_file(oldest(dir.path())).unwrap();
    let extra = tempfile::tempdir().unwrap();
    write(extra.path(), &chain[12..16], MAINNET_MAGIC, None, 1_000);
    move_files(extra.path(), dir.path(), files);
    assert_eq!(source.tip_height().unwrap(), 880_015);
    for height in 880_012..=880_015 {
        let hash = source.block_hash(height).unwrap();
        let block = &chain[(height - 880_000) as usize];
        assert_eq!(hash, hash_of(block), "height {height}");
        assert_eq!(source.block(&hash).unwrap().as_slice(), block);
    }
    assert_eq!(source.first_height(), 880_000);

    // Appended, then deleted, then appended again: every poll goes on.
    let (chain, dir, source, files) = followed_fragment(20);
    let extra = tempfile::tempdir().unwrap();
    write(extra.path(), &chain[12..16], MAINNET_MAGIC, None, 1_000);
    let moved = move_files(extra.path(), dir.path(), files);
    assert_eq!(source.tip_height().unwrap(), 880_015);
    std::fs::remove_file(oldest(dir.path())).unwrap();
    std::fs::remove_file(oldest(dir.path())).unwrap();
    assert_eq!(source.tip_height().unwrap(), 880_015);
    let extra = tempfile::tempdir().unwrap();
    write(extra.path(), &chain[16..], MAINNET_MAGIC, None, 1_000);
    move_files(extra.path(), dir.path(), files + moved);
    assert_eq!(source.tip_height().unwrap(), 880_019);
    let hash = source.block_hash(880_019).unwrap();
    assert_eq!(hash, hash_of(&chain[19]));
    assert_eq!(source.block(&hash).unwrap().as_slice(), chain[19]);
}

#[test]
fn blocks_found_by_a_poll_that_then_failed_are_chosen_at_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let chain = genesis_chain(8);
    write(dir.path(), &chain[..6], MAINNET_MAGIC, None, 1 << 20);
    let source = open(dir.path(), 0).unwrap();
    assert_chain(&source, 0, &chain[..6]);
    // Two new files: the first holds block 6; the second a record of another network, so the
    // poll fails after it found block 6.
    let extra = tempfile::tempdir().unwrap();
    write(extra.path(), &chain[6..7], MAINNET_MAGIC, None, 1 << 20);
    move_files(extra.path(), dir.path(), 1);
    let mut bad = SIGNET_MAGIC.to_vec();
    bad.extend((chain[7].len() as u32).to_le_bytes());
    bad.extend(&chain[7]);
    std::fs::write(dir.path().join("blk00002.dat"), &bad).unwrap();
    assert_eq!(source.tip_height().unwrap(), 5);
    // The bad file goes: block 6, found already, is chosen although nothing new is found.
    std::fs::remove_file(dir.path().join("blk00002.dat")).unwrap();
    assert_eq!(source.tip_height().unwrap(), 6);
    assert_eq!(source.block_hash(6).unwrap(), hash_of(&chain[6]));
}

#[test]
fn coinbase_heights_are_read_from_real_blocks() {
    let blocks = metashrew_tests::fixtures::mainnet_blocks();
    // Version-1 blocks state no height.
    assert_eq!(chain::coinbase_height(&blocks[100]), None);
    let heavy = metashrew_tests::fixtures::heavy_block();
    assert_eq!(chain::coinbase_height(&heavy), Some(840_243));
    for height in [0u32, 1, 16, 17, 255, 256, 70_000, 16_777_216] {
        let block = small_block([1; 32], height, REGTEST_BITS, 0);
        assert_eq!(chain::coinbase_height(&block), Some(height), "{height}");
    }
}

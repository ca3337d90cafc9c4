//! `minimal`: the smallest useful indexer, mirroring Metashrew's own minimal test guest.
//!
//! For each block at height h it stores `/blocks/{h}` = the raw block, `/block-hashes/{h}` =
//! the block hash (32 bytes, internal byte order), and appends the hash's first byte to
//! `/blocktracker`.
//!
//! Views: `getblock` returns the raw block at the view height (the first 4 bytes of the view's
//! input, as in Metashrew); `blocktracker` returns the tracker bytes.
//!
//! Its exports are written by hand against the Metashrew-compatible API (`input`,
//! `consume_sized_int`, `flush`, `export_bytes`), the way Metashrew guests are written, to show
//! that such guests build against this SDK unchanged.

use std::sync::Arc;

use bitcoin::hashes::Hash;
use metashrew_core::{get, set};

/// Why a block could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum MinimalError {
    #[error("block header does not decode: {0}")]
    Header(#[from] bitcoin::consensus::encode::Error),
}

fn key(s: String) -> Arc<Vec<u8>> {
    Arc::new(s.into_bytes())
}

/// Indexes one block.
pub fn index_block(height: u32, block: &[u8]) -> Result<(), MinimalError> {
    let (header, _) = bitcoin::consensus::deserialize_partial::<bitcoin::block::Header>(block)?;
    let hash = header.block_hash().to_byte_array();
    set(key(format!("/blocks/{height}")), Arc::new(block.to_vec()));
    set(
        key(format!("/block-hashes/{height}")),
        Arc::new(hash.to_vec()),
    );
    let tracker = key("/blocktracker".into());
    let mut bytes = (*get(tracker.clone())).clone();
    bytes.push(hash[0]);
    set(tracker, Arc::new(bytes));
    Ok(())
}

/// The raw block at the view height.
pub fn getblock_view(height: u32, _request: &[u8]) -> Result<Vec<u8>, MinimalError> {
    Ok((*get(key(format!("/blocks/{height}")))).clone())
}

/// The tracker: one byte per indexed block.
pub fn blocktracker_view(_height: u32, _request: &[u8]) -> Result<Vec<u8>, MinimalError> {
    Ok((*get(key("/blocktracker".into()))).clone())
}

/// Splits a host input into its height and payload, as Metashrew guests do.
#[cfg(target_arch = "wasm32")]
fn parse_input() -> (u32, Vec<u8>) {
    use metashrew_support::utils::{consume_sized_int, consume_to_end};
    let mut cursor = std::io::Cursor::new(metashrew_core::input());
    match (
        consume_sized_int::<u32>(&mut cursor),
        consume_to_end(&mut cursor),
    ) {
        (Ok(height), Ok(rest)) => (height, rest),
        (Err(err), _) | (_, Err(err)) => panic!("malformed input: {err}"),
    }
}

#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub fn _start() {
    let (height, block) = parse_input();
    if let Err(err) = index_block(height, &block) {
        panic!("block {height}: {err}");
    }
    metashrew_core::flush();
}

#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub fn getblock() -> i32 {
    let (height, request) = parse_input();
    match getblock_view(height, &request) {
        Ok(bytes) => metashrew_support::compat::export_bytes(bytes),
        Err(err) => panic!("getblock: {err}"),
    }
}

#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub fn blocktracker() -> i32 {
    let (height, request) = parse_input();
    match blocktracker_view(height, &request) {
        Ok(bytes) => metashrew_support::compat::export_bytes(bytes),
        Err(err) => panic!("blocktracker: {err}"),
    }
}

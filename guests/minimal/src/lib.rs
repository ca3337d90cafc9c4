//! `minimal`: the smallest useful indexer, mirroring Metashrew's own minimal test guest.
//!
//! For each block at height h it stores `/blocks/{h}` = the raw block, `/block-hashes/{h}` =
//! the block hash (32 bytes, internal byte order), and appends the hash's first byte to
//! `/blocktracker`.
//!
//! Views: `getblock` returns the raw block at the view height (the first 4 bytes of the view's
//! input, as in Metashrew); `blocktracker` returns the tracker bytes.

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

metashrew_core::export_indexer!(index_block);
metashrew_core::export_view!(getblock => getblock_view);
metashrew_core::export_view!(blocktracker => blocktracker_view);

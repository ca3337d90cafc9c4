//! `spendables`: an address (scriptPubKey) / UTXO index.
//!
//! Every output is recorded under its script; every input marks the output it spends as spent.
//! Within a block, transactions are applied in order (inputs, then outputs), so a transaction
//! may spend an output created earlier in the same block.
//!
//! Keys (`sh` = SHA-256 of the scriptPubKey, `outpoint` = txid (32 bytes, internal order) ++
//! vout (u32 LE)):
//!
//! | key | value |
//! | --- | --- |
//! | `/spendables/txout/` ++ outpoint | value (u64 LE) ++ scriptPubKey |
//! | `/spendables/spent/` ++ outpoint | txid of the spending transaction |
//! | `/spendables/balance/` ++ sh | sum of the script's unspent values (u64 LE) |
//! | `/spendables/outpoints/` ++ sh | a `KeyValuePointer` list (`/length`, `/0`, ...) of outpoints |
//!
//! Views (input: the raw scriptPubKey):
//! * `balance`: u64 LE, the script's unspent total at the view height;
//! * `unspent`: the script's unspent outputs at the view height, in creation order, each as
//!   44 bytes: txid (32, internal order) ++ vout (u32 LE) ++ value (u64 LE).
//!
//! Inputs whose output is unknown (e.g. when indexing starts above genesis) are recorded as
//! spent but change no balance.

use std::sync::Arc;

use bitcoin::hashes::{Hash, sha256};
use bitcoin::{Block, OutPoint, Transaction};
use metashrew_core::index_pointer::IndexPointer;
use metashrew_support::KeyValuePointer;

/// Why a block could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum SpendablesError {
    #[error("block does not decode: {0}")]
    Block(#[from] bitcoin::consensus::encode::Error),
    #[error("stored output record is corrupt ({0} bytes; at least 8 expected)")]
    CorruptOutput(usize),
    #[error("balance of a script would overflow or go negative")]
    Balance,
}

/// Size of one `unspent` view entry.
pub const UNSPENT_ENTRY_LEN: usize = 44;

fn outpoint_bytes(outpoint: &OutPoint) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(36);
    bytes.extend_from_slice(outpoint.txid.as_byte_array());
    bytes.extend_from_slice(&outpoint.vout.to_le_bytes());
    bytes
}

fn script_hash(script: &[u8]) -> Vec<u8> {
    sha256::Hash::hash(script).to_byte_array().to_vec()
}

fn txout_ptr(outpoint: &[u8]) -> IndexPointer {
    IndexPointer::from_keyword("/spendables/txout/").select(&outpoint.to_vec())
}

fn spent_ptr(outpoint: &[u8]) -> IndexPointer {
    IndexPointer::from_keyword("/spendables/spent/").select(&outpoint.to_vec())
}

fn balance_ptr(sh: &[u8]) -> IndexPointer {
    IndexPointer::from_keyword("/spendables/balance/").select(&sh.to_vec())
}

fn outpoints_ptr(sh: &[u8]) -> IndexPointer {
    IndexPointer::from_keyword("/spendables/outpoints/").select(&sh.to_vec())
}

fn add_balance(sh: &[u8], delta: u64, add: bool) -> Result<(), SpendablesError> {
    let mut ptr = balance_ptr(sh);
    let current = ptr.get_value::<u64>();
    let next = if add {
        current.checked_add(delta)
    } else {
        current.checked_sub(delta)
    };
    ptr.set_value::<u64>(next.ok_or(SpendablesError::Balance)?);
    Ok(())
}

fn spend(outpoint: &OutPoint, spender: &[u8]) -> Result<(), SpendablesError> {
    let key = outpoint_bytes(outpoint);
    let stored = txout_ptr(&key).get();
    spent_ptr(&key).set(Arc::new(spender.to_vec()));
    if stored.is_empty() {
        return Ok(());
    }
    let value = stored
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(SpendablesError::CorruptOutput(stored.len()))?;
    add_balance(&script_hash(&stored[8..]), value, false)
}

fn index_transaction(tx: &Transaction) -> Result<(), SpendablesError> {
    let txid = tx.compute_txid();
    if !tx.is_coinbase() {
        for input in &tx.input {
            spend(&input.previous_output, txid.as_byte_array())?;
        }
    }
    for (vout, output) in tx.output.iter().enumerate() {
        let outpoint = outpoint_bytes(&OutPoint::new(txid, vout as u32));
        let script = output.script_pubkey.as_bytes();
        let value = output.value.to_sat();
        let mut record = value.to_le_bytes().to_vec();
        record.extend_from_slice(script);
        txout_ptr(&outpoint).set(Arc::new(record));
        let sh = script_hash(script);
        add_balance(&sh, value, true)?;
        outpoints_ptr(&sh).append(Arc::new(outpoint));
    }
    Ok(())
}

/// Indexes one block (consensus-serialized).
pub fn index_block(_height: u32, block: &[u8]) -> Result<(), SpendablesError> {
    let block: Block = bitcoin::consensus::deserialize(block)?;
    for tx in &block.txdata {
        index_transaction(tx)?;
    }
    Ok(())
}

/// The unspent total of the script `request`, u64 LE.
pub fn balance_view(_height: u32, request: &[u8]) -> Result<Vec<u8>, SpendablesError> {
    Ok(balance_ptr(&script_hash(request))
        .get_value::<u64>()
        .to_le_bytes()
        .to_vec())
}

/// The unspent outputs of the script `request` (see the crate docs for the encoding).
pub fn unspent_view(_height: u32, request: &[u8]) -> Result<Vec<u8>, SpendablesError> {
    let list = outpoints_ptr(&script_hash(request));
    let mut out = Vec::new();
    for outpoint in list.get_list() {
        if !spent_ptr(&outpoint).get().is_empty() {
            continue;
        }
        let stored = txout_ptr(&outpoint).get();
        let value = stored
            .get(..8)
            .ok_or(SpendablesError::CorruptOutput(stored.len()))?;
        out.extend_from_slice(&outpoint);
        out.extend_from_slice(value);
    }
    Ok(out)
}

metashrew_core::export_indexer!(index_block);
metashrew_core::export_view!(balance => balance_view);
metashrew_core::export_view!(unspent => unspent_view);

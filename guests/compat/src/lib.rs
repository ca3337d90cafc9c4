//! `compat`: an indexer written in Metashrew's idioms, against Metashrew's public API only (the
//! paths, signatures and receiver types that alkanes-rs and protorune use), so that this
//! repository proves such code builds and writes the expected bytes.
//!
//! Per block:
//! * `/blockhash/` ++ u32le(height) = the block hash (internal byte order);
//! * every transaction runs in its own `AtomicPointer` checkpoint: its outputs add their value to
//!   `/received/` ++ the payee's text (the mainnet address from `AddressEncoding`, else
//!   `script:` ++ hex of the script) and append the txid to `/txids/` ++ payee (a list); a
//!   transaction whose txid starts with a byte below 0x40 (internal order) is rolled back
//!   instead of committed, so about a quarter of them leave no trace; the block's base
//!   checkpoint is committed at the end;
//! * the height is appended to the linked list `/heights` (`append_ll`); at every even height
//!   `h >= 2`, element `h - 1` of that list is deleted with `delete_value`.
//!
//! Views: `received` (input: payee text; output: u64 LE), `heights` (the linked list walked
//! with `map_ll`, as u32 LE values).

use std::io::Cursor;
use std::sync::Arc;

use anyhow::Result;
use bitcoin::hashes::Hash;
use bitcoin::{Block, Transaction};
use metashrew_core::index_pointer::{AtomicPointer, IndexPointer};
#[allow(unused_imports)]
use metashrew_core::{
    flush, input, println,
    stdio::{stdout, Write},
};
use metashrew_support::address::{AddressEncoding, Payload};
use metashrew_support::compat::export_bytes;
use metashrew_support::index_pointer::KeyValuePointer;
use metashrew_support::utils::{consensus_decode, consume_sized_int, consume_to_end};

/// The text a payee is keyed by.
pub fn payee(script: &bitcoin::Script) -> String {
    match Payload::from_script(script) {
        Ok(payload) => AddressEncoding {
            payload: &payload,
            p2pkh_prefix: 0x00,
            p2sh_prefix: 0x05,
            hrp: bitcoin::bech32::hrp::BC,
        }
        .to_string(),
        Err(_) => format!("script:{}", hex::encode(script.as_bytes())),
    }
}

/// Whether a transaction is committed (else rolled back): its txid's first byte is 0x40 or more.
pub fn commits(tx: &Transaction) -> bool {
    tx.compute_txid().to_byte_array()[0] >= 0x40
}

fn index_transaction(atomic: &mut AtomicPointer, tx: &Transaction) -> Result<()> {
    atomic.checkpoint();
    let received = atomic.derive(&IndexPointer::from_keyword("/received/"));
    let txids = atomic.derive(&IndexPointer::from_keyword("/txids/"));
    let txid = tx.compute_txid().to_byte_array().to_vec();
    for output in &tx.output {
        let who = payee(&output.script_pubkey);
        let mut total = received.keyword(&who);
        let sum = total.get_value::<u64>() + output.value.to_sat();
        total.set_value::<u64>(sum);
        txids.keyword(&who).append(Arc::new(txid.clone()));
    }
    if commits(tx) {
        atomic.commit();
    } else {
        atomic.rollback();
    }
    Ok(())
}

pub fn index_block(height: u32, block: &Block) -> Result<()> {
    IndexPointer::from_keyword("/blockhash/")
        .select_value::<u32>(height)
        .set(Arc::new(block.block_hash().to_byte_array().to_vec()));
    let mut atomic = AtomicPointer::default();
    for tx in &block.txdata {
        index_transaction(&mut atomic, tx)?;
    }
    atomic.commit();
    let heights = IndexPointer::from_keyword("/heights");
    heights.append_ll(Arc::new(height.to_le_bytes().to_vec()));
    if height >= 2 && height % 2 == 0 {
        heights.delete_value(heights.length() - 2);
    }
    writeln!(
        stdout(),
        "compat: block {} with {} transactions",
        height,
        block.txdata.len()
    )
    .ok();
    Ok(())
}

fn run() -> Result<()> {
    let mut data = Cursor::new(input());
    let height = consume_sized_int::<u32>(&mut data)?;
    let block: Block = consensus_decode::<Block>(&mut data)?;
    index_block(height, &block)
}

// As Metashrew indexers do: the export would clash with the C runtime's `_start` in a native
// test binary.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn _start() {
    if let Err(e) = run() {
        panic!("compat indexer: {e:#}");
    }
    flush();
}

fn view_input() -> Result<Vec<u8>> {
    let mut data = Cursor::new(input());
    let _height = consume_sized_int::<u32>(&mut data)?;
    consume_to_end(&mut data)
}

#[no_mangle]
pub extern "C" fn received() -> i32 {
    let who = view_input().unwrap_or_default();
    let total = IndexPointer::from_keyword("/received/")
        .select(&who)
        .get_value::<u64>();
    export_bytes(total.to_le_bytes().to_vec())
}

#[no_mangle]
pub extern "C" fn heights() -> i32 {
    let walked: Vec<u8> = IndexPointer::from_keyword("/heights")
        .map_ll(|item, _| item.get().as_ref().clone())
        .concat();
    export_bytes(walked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use metashrew_core::get;
    use metashrew_core::imports::__set_input;

    fn key(k: &[u8]) -> Arc<Vec<u8>> {
        Arc::new(k.to_vec())
    }

    /// Native test through Metashrew's `test-utils` stand-ins, as alkanes' tests run.
    #[test]
    fn indexes_genesis_through_the_test_utils_stand_ins() {
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Bitcoin);
        let mut input = 0u32.to_le_bytes().to_vec();
        input.extend(bitcoin::consensus::serialize(&genesis));
        __set_input(input);
        run().unwrap();
        assert_eq!(
            *get(key(b"/blockhash/\x00\x00\x00\x00")),
            genesis.block_hash().to_byte_array().to_vec()
        );
        assert_eq!(*get(key(b"/heights/length")), vec![1, 0, 0, 0]);
        // The genesis coinbase's txid starts with 0x3b (internal order): rolled back.
        assert!(!commits(&genesis.txdata[0]));
        let who = payee(&genesis.txdata[0].output[0].script_pubkey);
        assert!(who.starts_with("script:4104678afdb0"), "{who}");
        assert!(get(Arc::new(format!("/received/{who}").into_bytes())).is_empty());
        flush();
    }
}

//! `contracts`: an example indexer shaped like alkanes, whose block time goes where alkanes'
//! does: into a WebAssembly interpreter (`wasmi`) inside the guest, running a contract for every
//! transaction, on balance sheets kept in storage.
//!
//! Every transaction runs the contract (`contract.wat`, compiled by `build.rs` and stored under
//! `/contracts/code` by the first block indexed; each block reads it back and compiles it, each
//! transaction instantiates it afresh, with fuel metering on, as alkanes does). The contract is
//! given:
//! * the contract's state (`/contracts/state`, a u64);
//! * a seed, the first 8 bytes of the txid (u64 LE), and `64 + txid[8]` rounds of mixing;
//! * the balances the transaction's inputs carry, which it asks for through a host import.
//!
//! It returns its new state and the total the transaction carries: the inputs' balances plus
//! what it mints (the new state's low 16 bits). The spent inputs' sheets are cleared; the total
//! is shared between the outputs (`total / n` each, the remainder to output 0), and each output
//! with a non-zero share gets a sheet.
//!
//! Keys (`outpoint` = txid (32 bytes, internal order) ++ vout (u32 LE)):
//!
//! | key | value |
//! | --- | --- |
//! | `/contracts/code` | the contract's wasm |
//! | `/contracts/state` | the contract's state (u64 LE) |
//! | `/contracts/sheet/` ++ outpoint | the balance the output carries (u64 LE); empty once spent |
//! | `/contracts/trace/` ++ txid | the state after the transaction (u64 LE) ++ its total (u64 LE) |
//!
//! Views: `sheet` (input: an outpoint, 36 bytes) answers its balance at the view height, u64 LE
//! (0 when none); `state` answers the contract's state, u64 LE.

use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::{Block, OutPoint, Transaction};
use metashrew_core::{get, set};

/// The contract, compiled from `contract.wat` by `build.rs`.
pub const CONTRACT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/contract.wasm"));

/// The key of the stored contract.
pub const CODE_KEY: &[u8] = b"/contracts/code";
/// The key of the contract's state.
pub const STATE_KEY: &[u8] = b"/contracts/state";
/// The prefix of the outputs' balance sheets.
pub const SHEET_PREFIX: &[u8] = b"/contracts/sheet/";
/// The prefix of the transactions' traces.
pub const TRACE_PREFIX: &[u8] = b"/contracts/trace/";
/// Rounds of mixing every transaction runs at least (`txid[8]` more).
pub const BASE_ROUNDS: u32 = 64;
/// Fuel a transaction's contract call may use; far more than the contract needs.
const FUEL: u64 = 1 << 20;

/// Why a block could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum ContractsError {
    #[error("block does not decode: {0}")]
    Block(#[from] bitcoin::consensus::encode::Error),
    #[error("the contract failed: {0}")]
    Contract(String),
    #[error("a stored value is {0} bytes, not 8")]
    Corrupt(usize),
}

impl From<wasmi::Error> for ContractsError {
    fn from(err: wasmi::Error) -> Self {
        Self::Contract(err.to_string())
    }
}

impl From<wasmi::errors::LinkerError> for ContractsError {
    fn from(err: wasmi::errors::LinkerError) -> Self {
        Self::Contract(err.to_string())
    }
}

/// `prefix ++ rest`, as a key.
pub fn key(prefix: &[u8], rest: &[u8]) -> Arc<Vec<u8>> {
    Arc::new([prefix, rest].concat())
}

/// An outpoint's 36 key bytes.
pub fn outpoint_bytes(outpoint: &OutPoint) -> Vec<u8> {
    let mut bytes = outpoint.txid.as_byte_array().to_vec();
    bytes.extend_from_slice(&outpoint.vout.to_le_bytes());
    bytes
}

/// A stored u64: 0 when absent or cleared.
fn read_u64(key: Arc<Vec<u8>>) -> Result<u64, ContractsError> {
    let value = get(key);
    match value.len() {
        0 => Ok(0),
        8 => Ok(u64::from_le_bytes(
            value[..]
                .try_into()
                .map_err(|_| ContractsError::Corrupt(8))?,
        )),
        n => Err(ContractsError::Corrupt(n)),
    }
}

/// The contract compiled once per block, and its import.
struct Contract {
    engine: wasmi::Engine,
    module: wasmi::Module,
    linker: wasmi::Linker<Vec<u64>>,
}

type Run = wasmi::TypedFunc<(i64, i64, i32, i32), (i64, i64)>;

impl Contract {
    fn load() -> Result<Self, ContractsError> {
        let code_key = Arc::new(CODE_KEY.to_vec());
        let mut code = get(code_key.clone());
        if code.is_empty() {
            code = Arc::new(CONTRACT.to_vec());
            set(code_key, code.clone());
        }
        let mut config = wasmi::Config::default();
        config.consume_fuel(true);
        let engine = wasmi::Engine::new(&config);
        let module = wasmi::Module::new(&engine, &code[..])?;
        let mut linker = wasmi::Linker::<Vec<u64>>::new(&engine);
        linker.func_wrap(
            "env",
            "input",
            |caller: wasmi::Caller<'_, Vec<u64>>, i: i32| -> i64 {
                let balance = usize::try_from(i)
                    .ok()
                    .and_then(|i| caller.data().get(i).copied());
                balance.unwrap_or(0) as i64
            },
        )?;
        Ok(Self {
            engine,
            module,
            linker,
        })
    }

    /// Runs the contract for one transaction on a fresh instance: (new state, total).
    fn run(
        &self,
        inputs: Vec<u64>,
        state: u64,
        seed: u64,
        rounds: u32,
    ) -> Result<(u64, u64), ContractsError> {
        let count = inputs.len() as i32;
        let mut store = wasmi::Store::new(&self.engine, inputs);
        store.set_fuel(FUEL)?;
        let instance = self
            .linker
            .instantiate_and_start(&mut store, &self.module)?;
        let run: Run = instance.get_typed_func(&store, "run")?;
        let (state, total) = run.call(
            &mut store,
            (state as i64, seed as i64, count, rounds as i32),
        )?;
        Ok((state as u64, total as u64))
    }
}

fn index_transaction(contract: &Contract, tx: &Transaction) -> Result<(), ContractsError> {
    let id = tx.compute_txid();
    let txid = id.to_byte_array();
    let mut inputs = Vec::new();
    if !tx.is_coinbase() {
        for input in &tx.input {
            let sheet = key(SHEET_PREFIX, &outpoint_bytes(&input.previous_output));
            let balance = read_u64(sheet.clone())?;
            if balance != 0 {
                set(sheet, Arc::new(Vec::new()));
            }
            inputs.push(balance);
        }
    }
    let state_key = Arc::new(STATE_KEY.to_vec());
    let state = read_u64(state_key.clone())?;
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&txid[..8]);
    let rounds = BASE_ROUNDS + u32::from(txid[8]);
    let (state, total) = contract.run(inputs, state, u64::from_le_bytes(seed), rounds)?;
    set(state_key, Arc::new(state.to_le_bytes().to_vec()));
    let mut trace = state.to_le_bytes().to_vec();
    trace.extend_from_slice(&total.to_le_bytes());
    set(key(TRACE_PREFIX, &txid), Arc::new(trace));
    let outputs = tx.output.len() as u64;
    if outputs == 0 {
        return Ok(());
    }
    let share = total / outputs;
    for vout in 0..tx.output.len() as u32 {
        let amount = if vout == 0 {
            share + total % outputs
        } else {
            share
        };
        if amount != 0 {
            let outpoint = outpoint_bytes(&OutPoint::new(id, vout));
            set(
                key(SHEET_PREFIX, &outpoint),
                Arc::new(amount.to_le_bytes().to_vec()),
            );
        }
    }
    Ok(())
}

/// Indexes one block (consensus-serialised).
pub fn index_block(_height: u32, block: &[u8]) -> Result<(), ContractsError> {
    let block: Block = bitcoin::consensus::deserialize(block)?;
    let contract = Contract::load()?;
    for tx in &block.txdata {
        index_transaction(&contract, tx)?;
    }
    Ok(())
}

/// The balance the outpoint `request` (36 bytes) carries, u64 LE.
pub fn sheet_view(_height: u32, request: &[u8]) -> Result<Vec<u8>, ContractsError> {
    Ok(read_u64(key(SHEET_PREFIX, request))?.to_le_bytes().to_vec())
}

/// The contract's state, u64 LE.
pub fn state_view(_height: u32, _request: &[u8]) -> Result<Vec<u8>, ContractsError> {
    Ok(read_u64(Arc::new(STATE_KEY.to_vec()))?
        .to_le_bytes()
        .to_vec())
}

metashrew_core::export_indexer!(index_block);
metashrew_core::export_view!(sheet => sheet_view);
metashrew_core::export_view!(state => state_view);

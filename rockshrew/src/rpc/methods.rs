//! Metashrew's JSON-RPC methods, with its result shapes: `"0x"`-prefixed hex strings, and the
//! height as a decimal string. Block tags are `"latest"`, a decimal string (text after a `:` is
//! ignored, as Metashrew does), a JSON number, or a block hash (64 hex digits in display order,
//! with or without `0x`); a height above the indexed tip is an error.
//!
//! A call tagged with a block hash runs at that block's height if the block is on the indexed
//! chain, and is checked again when it is done: if a reorganisation replaced the block in the
//! meantime, the call fails (-32003) rather than answer for another block. A hash not on the
//! indexed chain fails with -32003 too, saying whether it is unknown or was reorganised away.
//! Hashes are looked up among the last [`HASH_TAG_DEPTH`] blocks.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use metashrew_runtime::{Cancellation, GuestFault, RuntimeError};
use metashrew_storage::Storage;

use super::{
    AppState, BLOCK_NOT_ON_CHAIN, INTERNAL_ERROR, METHOD_NOT_FOUND, RESOURCE_EXHAUSTED, RpcError,
    SERVER_ERROR, UNAVAILABLE,
};
use metashrew_storage::BlockHash;

/// The methods this server answers, named once: [`dispatch`] matches on this enum, so a method
/// cannot be listed without an answer or answered without being listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `metashrew_view [name, inputHex, blockTag]`.
    View,
    /// `metashrew_preview [blockHex, name, inputHex, blockTag]`.
    Preview,
    /// `metashrew_height []`.
    Height,
    /// `metashrew_getblockhash [height]`.
    GetBlockHash,
    /// `metashrew_stateroot [blockTag]`.
    StateRoot,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 5] = [
        Method::View,
        Method::Preview,
        Method::Height,
        Method::GetBlockHash,
        Method::StateRoot,
    ];

    /// Its JSON-RPC name (Metashrew's).
    pub const fn name(self) -> &'static str {
        match self {
            Method::View => "metashrew_view",
            Method::Preview => "metashrew_preview",
            Method::Height => "metashrew_height",
            Method::GetBlockHash => "metashrew_getblockhash",
            Method::StateRoot => "metashrew_stateroot",
        }
    }

    /// The method named `name`, if this server answers it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

fn runtime_error(err: RuntimeError) -> RpcError {
    match err {
        RuntimeError::HeightAboveTip { .. } | RuntimeError::MissingExport(_) => {
            RpcError::invalid_params(err.to_string())
        }
        RuntimeError::ViewFailed {
            fault: GuestFault::MemoryExceeded { .. },
            ..
        }
        | RuntimeError::BlockFailed {
            fault: GuestFault::MemoryExceeded { .. },
            ..
        } => RpcError::new(RESOURCE_EXHAUSTED, format!("Resource exhausted: {err}")),
        RuntimeError::ViewFailed { .. } => {
            RpcError::new(SERVER_ERROR, format!("View function error: {err}"))
        }
        RuntimeError::BlockFailed { .. } | RuntimeError::MalformedBlock { .. } => {
            RpcError::new(SERVER_ERROR, format!("Preview function error: {err}"))
        }
        other => RpcError::new(INTERNAL_ERROR, other.to_string()),
    }
}

/// A client-supplied value as quoted in an error message: at most 64 characters, so that a
/// huge parameter is not echoed back (or logged) whole.
fn brief(value: &impl std::fmt::Display) -> String {
    let text = value.to_string();
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn string_param<'a>(params: &'a [Value], i: usize, name: &str) -> Result<&'a str, RpcError> {
    match params.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(RpcError::invalid_params(format!(
            "parameter {i} ({name}) must be a string, not {}",
            brief(other)
        ))),
        None => Err(RpcError::invalid_params(format!(
            "missing parameter {i} ({name})"
        ))),
    }
}

/// Decodes hex with any number of leading `0x` (Metashrew strips them all).
pub fn decode_hex(text: &str, what: &str) -> Result<Vec<u8>, RpcError> {
    let mut digits = text;
    while let Some(rest) = digits.strip_prefix("0x") {
        digits = rest;
    }
    hex::decode(digits).map_err(|e| RpcError::invalid_params(format!("invalid hex in {what}: {e}")))
}

fn tip<S: Storage>(state: &AppState<S>) -> Result<Option<u32>, RpcError> {
    state.runtime.tip().map_err(runtime_error)
}

/// How far below the tip a block-hash tag is looked for.
pub const HASH_TAG_DEPTH: u32 = 10_000;

/// A block hash given as a tag (64 hex digits, display order, optional `0x`), in internal order.
fn hash_tag(text: &str) -> Option<BlockHash> {
    text.parse().ok()
}

/// A block tag resolved: the height to run at, and the block hash the caller pinned, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The height.
    pub height: u32,
    /// The block the caller named by hash (internal order).
    pub pinned: Option<BlockHash>,
}

fn not_on_chain(hash: &BlockHash, why: String) -> RpcError {
    RpcError::new(
        BLOCK_NOT_ON_CHAIN,
        format!("block {hash} is not on the indexed chain: {why}"),
    )
}

/// Resolves a block tag: a height tag as [`resolve_tag`], a hash tag to its height on the
/// indexed chain.
fn resolve<S: Storage>(state: &AppState<S>, tag: Option<&Value>) -> Result<Resolved, RpcError> {
    let tip = tip(state)?;
    let Some(hash) = tag.and_then(Value::as_str).and_then(hash_tag) else {
        return resolve_tag(tag, tip).map(|height| Resolved {
            height,
            pinned: None,
        });
    };
    let tip = tip.ok_or_else(|| RpcError::new(SERVER_ERROR, "nothing is indexed yet"))?;
    let lowest = tip.saturating_sub(HASH_TAG_DEPTH);
    for height in (lowest..=tip).rev() {
        match state.runtime.block_hash(height).map_err(runtime_error)? {
            Some(h) if h == hash => {
                return Ok(Resolved {
                    height,
                    pinned: Some(hash),
                });
            }
            Some(_) => {}
            // Below the first indexed block.
            None => break,
        }
    }
    Err(not_on_chain(
        &hash,
        match state.abandoned.height_of(&hash) {
            Some(height) => format!("it was at height {height}, and a reorganisation replaced it"),
            None => format!("unknown (looked for among the last {HASH_TAG_DEPTH} blocks)"),
        },
    ))
}

/// `metashrew_stateroot` at `tag`.
fn state_root<S: Storage>(state: &AppState<S>, tag: Option<&Value>) -> Result<Value, RpcError> {
    let at = resolve(state, tag)?;
    let height = at.height;
    match state.runtime.state_root(height).map_err(runtime_error)? {
        Some(root) => still_there(state, &at).map(|()| hex_result(root.as_bytes())),
        None => Err(RpcError::invalid_params(format!(
            "State root not found for height {height}"
        ))),
    }
}

/// After a call pinned to a block hash: fails if that block is no longer at its height.
fn still_there<S: Storage>(state: &AppState<S>, resolved: &Resolved) -> Result<(), RpcError> {
    let Some(pinned) = resolved.pinned else {
        return Ok(());
    };
    match state
        .runtime
        .block_hash(resolved.height)
        .map_err(runtime_error)?
    {
        Some(hash) if hash == pinned => Ok(()),
        _ => Err(not_on_chain(
            &pinned,
            format!(
                "a reorganisation replaced it at height {} during the call",
                resolved.height
            ),
        )),
    }
}

/// Resolves a block tag to a height at or below the tip.
pub fn resolve_tag(tag: Option<&Value>, tip: Option<u32>) -> Result<u32, RpcError> {
    let tip = tip.ok_or_else(|| RpcError::new(SERVER_ERROR, "nothing is indexed yet"))?;
    let height = match tag {
        None | Some(Value::Null) => tip,
        Some(Value::String(s)) if s == "latest" => tip,
        Some(Value::String(s)) => {
            let digits = s.split(':').next().unwrap_or_default().trim();
            digits.parse::<u32>().map_err(|e| {
                RpcError::invalid_params(format!(
                    "invalid block tag {}: {e}",
                    brief(&format!("{s:?}"))
                ))
            })?
        }
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .ok_or_else(|| RpcError::invalid_params(format!("invalid block height {n}")))?,
        Some(other) => {
            return Err(RpcError::invalid_params(format!(
                "a block tag is \"latest\", a decimal string, a number or a block hash, not {}",
                brief(other)
            )));
        }
    };
    if height > tip {
        return Err(RpcError::invalid_params(format!(
            "height {height} is above the indexed tip {tip}"
        )));
    }
    Ok(height)
}

/// Raises its flag when dropped: when the request's future is dropped because the client went
/// away, the view it started stops.
struct CancelOnDrop(Cancellation);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Refuses a new view while the host's available memory is below the floor.
fn check_memory_floor<S: Storage>(state: &AppState<S>) -> Result<(), RpcError> {
    if state.memory_floor_bytes == 0 {
        return Ok(());
    }
    match super::host_memory::available_bytes() {
        Some(available) if available < state.memory_floor_bytes => Err(RpcError::new(
            UNAVAILABLE,
            format!(
                "Unavailable: the host has {} MiB of memory available, below the view memory floor of {} MiB (--view-memory-floor-mib); try again later",
                available >> 20,
                state.memory_floor_bytes >> 20
            ),
        )),
        _ => Ok(()),
    }
}

/// Runs runtime work on a view thread, timing it as a view. The slot is held until the work
/// ends, even when the client has gone (the work is then cancelled and ends promptly).
async fn blocking<S: Storage, T: Send + 'static>(
    state: &Arc<AppState<S>>,
    work: impl FnOnce(&AppState<S>, &Cancellation) -> Result<T, RpcError> + Send + 'static,
) -> Result<T, RpcError> {
    let started = Instant::now();
    let cancel = Cancellation::new();
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let slot = state
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| RpcError::new(INTERNAL_ERROR, format!("view slots closed: {e}")))?;
    check_memory_floor(state)?;
    let worker_state = state.clone();
    state
        .pool
        .run(move || {
            let state = worker_state;
            let pinned = state.replica.as_ref().map(|r| r.pin());
            let r = work(&state, &cancel);
            drop(pinned);
            drop(slot);
            state
                .metrics
                .view_seconds
                .observe(started.elapsed().as_secs_f64());
            r
        })
        .await
        .map_err(|_| RpcError::new(INTERNAL_ERROR, "the view's thread failed"))?
}

fn hex_result(bytes: &[u8]) -> Value {
    Value::String(format!("0x{}", hex::encode(bytes)))
}

/// Answers one JSON-RPC call of a known method.
pub async fn dispatch<S: Storage>(
    state: Arc<AppState<S>>,
    method: String,
    params: Vec<Value>,
) -> Result<Value, RpcError> {
    let Some(known) = Method::from_name(&method) else {
        return Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("Method not found: {}", brief(&method)),
        ));
    };
    match known {
        Method::View => {
            let name = string_param(&params, 0, "view name")?.to_string();
            let input = string_param(&params, 1, "input hex")?.to_string();
            let tag = params.get(2).cloned();
            let out = blocking(&state, move |s, cancel| {
                // Resolved and decoded on the view thread: a hash tag can take thousands of
                // reads, and an input can be large.
                let at = resolve(s, tag.as_ref())?;
                let input = decode_hex(&input, "input")?;
                let out = s
                    .runtime
                    .view_with(&name, &input, at.height, cancel)
                    .map_err(runtime_error)?;
                // Encoded here too: an answer can be megabytes.
                still_there(s, &at).map(|()| hex_result(&out))
            })
            .await?;
            Ok(out)
        }
        Method::Preview => {
            let block = string_param(&params, 0, "block hex")?.to_string();
            let name = string_param(&params, 1, "view name")?.to_string();
            let input = string_param(&params, 2, "input hex")?.to_string();
            let tag = params.get(3).cloned();
            let out = blocking(&state, move |s, cancel| {
                // Resolved and decoded on the view thread: a hash tag can take thousands of
                // reads, and a block is megabytes of hex.
                let at = resolve(s, tag.as_ref())?;
                let (block, input) = (decode_hex(&block, "block")?, decode_hex(&input, "input")?);
                let out = s
                    .runtime
                    .preview_with(&block, &name, &input, at.height, cancel)
                    .map_err(runtime_error)?;
                still_there(s, &at).map(|()| hex_result(&out))
            })
            .await?;
            Ok(out)
        }
        Method::Height => Ok(Value::String(tip(&state)?.unwrap_or(0).to_string())),
        Method::GetBlockHash => {
            let height = match params.first() {
                Some(Value::Number(n)) => n.as_u64().and_then(|h| u32::try_from(h).ok()),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| RpcError::invalid_params("parameter 0 must be a block height"))?;
            match state.runtime.block_hash(height).map_err(runtime_error)? {
                Some(hash) => Ok(Value::String(format!("0x{hash}"))),
                None => Err(RpcError::invalid_params(format!(
                    "Block hash not found for height {height}"
                ))),
            }
        }
        Method::StateRoot => {
            let tag = params.first().cloned();
            // A hash tag can take thousands of reads: resolved on a view thread, so that the
            // server's threads stay free for the cheap calls.
            if tag
                .as_ref()
                .and_then(Value::as_str)
                .and_then(hash_tag)
                .is_some()
            {
                blocking(&state, move |s, _| state_root(s, tag.as_ref())).await
            } else {
                state_root(&state, tag.as_ref())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_tags() {
        assert_eq!(resolve_tag(None, Some(9)), Ok(9));
        assert_eq!(resolve_tag(Some(&json!("latest")), Some(9)), Ok(9));
        assert_eq!(resolve_tag(Some(&json!("7")), Some(9)), Ok(7));
        assert_eq!(resolve_tag(Some(&json!("7:extra")), Some(9)), Ok(7));
        assert_eq!(resolve_tag(Some(&json!(3)), Some(9)), Ok(3));
        assert_eq!(
            resolve_tag(Some(&json!(10)), Some(9)).unwrap_err().code,
            -32602
        );
        assert_eq!(
            resolve_tag(Some(&json!("x")), Some(9)).unwrap_err().code,
            -32602
        );
        assert_eq!(
            resolve_tag(Some(&json!(-1)), Some(9)).unwrap_err().code,
            -32602
        );
        assert_eq!(
            resolve_tag(Some(&json!(1e30)), Some(9)).unwrap_err().code,
            -32602
        );
        assert_eq!(
            resolve_tag(Some(&json!([])), Some(9)).unwrap_err().code,
            -32602
        );
        assert_eq!(resolve_tag(None, None).unwrap_err().code, -32000);
    }

    #[test]
    fn method_names_round_trip() {
        for method in Method::ALL {
            assert_eq!(Method::from_name(method.name()), Some(method));
        }
        assert_eq!(Method::from_name("metashrew_nope"), None);
    }

    #[test]
    fn hash_tags() {
        let shown = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
        let mut internal = hex::decode(shown).unwrap();
        internal.reverse();
        assert_eq!(
            hash_tag(shown).map(|h| h.as_bytes().to_vec()),
            Some(internal.clone())
        );
        assert_eq!(
            hash_tag(&format!("0x{shown}")).map(|h| h.as_bytes().to_vec()),
            Some(internal)
        );
        assert_eq!(hash_tag(&shown[1..]), None);
        assert_eq!(hash_tag(&format!("{}zz", &shown[2..])), None);
        assert_eq!(hash_tag("latest"), None);
        assert_eq!(hash_tag("123"), None);
    }

    #[test]
    fn hex_inputs() {
        assert_eq!(decode_hex("0x0x0a", "x"), Ok(vec![10]));
        assert_eq!(decode_hex("", "x"), Ok(vec![]));
        assert_eq!(decode_hex("0xzz", "x").unwrap_err().code, -32602);
    }
}

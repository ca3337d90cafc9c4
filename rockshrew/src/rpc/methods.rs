//! Metashrew's JSON-RPC methods, with its result shapes: `"0x"`-prefixed hex strings, and the
//! height as a decimal string. Block tags are `"latest"`, a decimal string (text after a `:` is
//! ignored, as Metashrew does), or a JSON number; a height above the indexed tip is an error.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use metashrew_runtime::{Cancellation, GuestFault, RuntimeError, Storage};

use super::{
    AppState, INTERNAL_ERROR, METHOD_NOT_FOUND, RESOURCE_EXHAUSTED, RpcError, SERVER_ERROR,
    UNAVAILABLE,
};
use metashrew_storage::display_hex;

const METHODS: [&str; 5] = [
    "metashrew_view",
    "metashrew_preview",
    "metashrew_height",
    "metashrew_getblockhash",
    "metashrew_stateroot",
];

/// Whether `method` is one this server answers.
pub fn is_known(method: &str) -> bool {
    METHODS.contains(&method)
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
                "a block tag is \"latest\", a decimal string or a number, not {}",
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
    match method.as_str() {
        "metashrew_view" => {
            let name = string_param(&params, 0, "view name")?.to_string();
            let input = decode_hex(string_param(&params, 1, "input hex")?, "input")?;
            let height = resolve_tag(params.get(2), tip(&state)?)?;
            let out = blocking(&state, move |s, cancel| {
                s.runtime
                    .view_with(&name, &input, height, cancel)
                    .map_err(runtime_error)
            })
            .await?;
            Ok(hex_result(&out))
        }
        "metashrew_preview" => {
            let block = decode_hex(string_param(&params, 0, "block hex")?, "block")?;
            let name = string_param(&params, 1, "view name")?.to_string();
            let input = decode_hex(string_param(&params, 2, "input hex")?, "input")?;
            let height = resolve_tag(params.get(3), tip(&state)?)?;
            let out = blocking(&state, move |s, cancel| {
                s.runtime
                    .preview_with(&block, &name, &input, height, cancel)
                    .map_err(runtime_error)
            })
            .await?;
            Ok(hex_result(&out))
        }
        "metashrew_height" => Ok(Value::String(tip(&state)?.unwrap_or(0).to_string())),
        "metashrew_getblockhash" => {
            let height = match params.first() {
                Some(Value::Number(n)) => n.as_u64().and_then(|h| u32::try_from(h).ok()),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| RpcError::invalid_params("parameter 0 must be a block height"))?;
            match state.runtime.block_hash(height).map_err(runtime_error)? {
                Some(hash) => Ok(Value::String(format!("0x{}", display_hex(&hash)))),
                None => Err(RpcError::invalid_params(format!(
                    "Block hash not found for height {height}"
                ))),
            }
        }
        "metashrew_stateroot" => {
            let height = resolve_tag(params.first(), tip(&state)?)?;
            match state.runtime.state_root(height).map_err(runtime_error)? {
                Some(root) => Ok(hex_result(&root)),
                None => Err(RpcError::invalid_params(format!(
                    "State root not found for height {height}"
                ))),
            }
        }
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("Method not found: {}", brief(&other)),
        )),
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
    fn hex_inputs() {
        assert_eq!(decode_hex("0x0x0a", "x"), Ok(vec![10]));
        assert_eq!(decode_hex("", "x"), Ok(vec![]));
        assert_eq!(decode_hex("0xzz", "x").unwrap_err().code, -32602);
    }
}

//! Bitcoin Core over JSON-RPC: `getblockcount`, `getblockhash`, `getblock <hash> 0`, and
//! `getblockchaininfo` once at start (the node's network).
//!
//! Authentication is `user:pass` (HTTP Basic) or Bitcoin Core's cookie file, re-read when the
//! node answers 401 (it changes at every node restart). Transient failures (connection refused or
//! reset, timeouts, HTTP 5xx without an RPC error, RPC error -28 "warming up") are retried with
//! exponential backoff (250 ms doubling to 30 s), logged, for as long as it takes: they are never
//! fatal. Stopping (`shutdown`) interrupts the wait.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use metashrew_storage::BlockHash;

use super::{Block, BlockSource, SourceError};

/// How to authenticate to the node.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No authentication.
    None,
    /// `user:pass`.
    UserPass(String),
    /// A cookie file (`__cookie__:<secret>`), read on use.
    Cookie(PathBuf),
}

/// The default cookie file: `~/.bitcoin/.cookie`.
pub fn default_cookie_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".bitcoin").join(".cookie"))
}

/// The node's URL from `--daemon-rpc-url`: `host:port` (as Metashrew's images pass it) means
/// `http://host:port`; anything but an `http` or `https` URL with a host is refused, with the
/// reason, so that a configuration error is never retried as if the node were down.
pub fn node_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let url = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("--daemon-rpc-url {text:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        other => {
            return Err(format!(
                "--daemon-rpc-url {text:?}: the scheme must be http or https, not {}",
                other.unwrap_or("none")
            ));
        }
    }
    let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
        return Err(format!("--daemon-rpc-url {text:?} names no host"));
    };
    // The URI parser leaves a port that is not a number to the connection; refuse it here.
    let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
    let port = host_port
        .rsplit_once(':')
        .filter(|(host, _)| !host.starts_with('[') || host.ends_with(']'))
        .map(|(_, port)| port);
    match port {
        Some(port) if port.parse::<u16>().is_err() => Err(format!(
            "--daemon-rpc-url {text:?}: the port {port:?} is not a number from 0 to 65535"
        )),
        _ => Ok(url),
    }
}

/// Checks at start that the cookie file can be read: a file that exists but cannot be read,
/// or one in a directory that does not exist (a mistyped path), is refused. A missing file in
/// an existing directory is accepted: the node writes it when it starts, and it is read on use.
pub fn check_cookie(path: &std::path::Path) -> Result<(), String> {
    match std::fs::read(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(dir) if !dir.is_dir() => Err(format!(
                    "the cookie file {}: its directory {} does not exist",
                    path.display(),
                    dir.display()
                )),
                _ => Ok(()),
            }
        }
        Err(e) => Err(format!(
            "cannot read the cookie file {}: {e}",
            path.display()
        )),
    }
}

/// The longest wait between retries of an unavailable node.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A [`BlockSource`] over Bitcoin Core's JSON-RPC, retrying while the node is unavailable.
pub struct RpcSource {
    url: String,
    auth: Auth,
    agent: ureq::Agent,
    shutdown: Arc<AtomicBool>,
    next_id: AtomicU64,
}

/// Largest response accepted (a 4 MB block is 8 MB of hex).
const MAX_RESPONSE_BYTES: u64 = 64 << 20;

enum Attempt {
    Ok(Value),
    Retry(String),
    Fail(SourceError),
}

impl RpcSource {
    /// A client of the node at `url`; a request gives up after `timeout`, and retries stop at `shutdown`.
    pub fn new(url: &str, auth: Auth, timeout: Duration, shutdown: Arc<AtomicBool>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            url: url.to_string(),
            auth,
            agent,
            shutdown,
            next_id: AtomicU64::new(1),
        }
    }

    fn authorization(&self) -> Result<Option<String>, SourceError> {
        let credentials = match &self.auth {
            Auth::None => return Ok(None),
            Auth::UserPass(up) => up.clone(),
            Auth::Cookie(path) => std::fs::read_to_string(path)
                .map_err(|e| {
                    SourceError::Unavailable(format!(
                        "cannot read the cookie file {}: {e}",
                        path.display()
                    ))
                })?
                .trim()
                .to_string(),
        };
        Ok(Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )))
    }

    fn attempt(&self, method: &str, params: &Value) -> Attempt {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params});
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        match self.authorization() {
            Ok(Some(auth)) => request = request.header("Authorization", auth),
            Ok(None) => {}
            Err(SourceError::Unavailable(why)) => return Attempt::Retry(why),
            Err(other) => return Attempt::Fail(other),
        }
        let mut response = match request.send(body.to_string()) {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(format!("{method}: {e}")),
        };
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            // A cookie changes when the node restarts: the next attempt re-reads it.
            return match self.auth {
                Auth::Cookie(_) => Attempt::Retry(format!("{method}: HTTP {status} (cookie)")),
                _ => Attempt::Fail(SourceError::Node(format!(
                    "{method}: the node refused the credentials (HTTP {status})"
                ))),
            };
        }
        let text = match response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
        {
            Ok(t) => t,
            Err(e) => return Attempt::Retry(format!("{method}: reading the response: {e}")),
        };
        let parsed: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) if status >= 500 => {
                return Attempt::Retry(format!("{method}: HTTP {status}"));
            }
            Err(e) => {
                return Attempt::Retry(format!(
                    "{method}: unparsable response (HTTP {status}): {e}"
                ));
            }
        };
        match parsed.get("error") {
            Some(err) if !err.is_null() => {
                let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
                let message = err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)");
                if code == -28 {
                    Attempt::Retry(format!("{method}: node warming up: {message}"))
                } else if code == -8 && method == "getblockhash" {
                    Attempt::Fail(SourceError::NoBlock(
                        params.get(0).and_then(Value::as_u64).unwrap_or(0) as u32,
                    ))
                } else {
                    Attempt::Fail(SourceError::Node(format!(
                        "{method}: RPC error {code}: {message}"
                    )))
                }
            }
            _ => match parsed.get("result") {
                Some(result) if !result.is_null() => Attempt::Ok(result.clone()),
                _ if status >= 500 => Attempt::Retry(format!("{method}: HTTP {status}")),
                _ => Attempt::Fail(SourceError::Node(format!("{method}: no result"))),
            },
        }
    }

    /// Calls `method`, retrying transient failures until they pass or shutdown is requested.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, SourceError> {
        let mut delay = Duration::from_millis(250);
        let mut failures = 0u32;
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                return Err(SourceError::Interrupted);
            }
            match self.attempt(method, &params) {
                Attempt::Ok(v) => {
                    if failures > 0 {
                        log::info!("node reachable again after {failures} failed attempts");
                    }
                    return Ok(v);
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(why) => {
                    failures += 1;
                    log::warn!("{why}; retrying in {delay:?} (attempt {failures})");
                    let deadline = std::time::Instant::now() + delay;
                    while std::time::Instant::now() < deadline {
                        if self.shutdown.load(Ordering::Relaxed) {
                            return Err(SourceError::Interrupted);
                        }
                        std::thread::sleep(Duration::from_millis(50).min(delay));
                    }
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

impl RpcSource {
    /// The network the node follows, as `getblockchaininfo` names it (`main`, `test`,
    /// `testnet4`, `signet`, `regtest`); waits while the node is unavailable.
    pub fn chain_name(&self) -> Result<String, SourceError> {
        let v = self.call("getblockchaininfo", json!([]))?;
        v.get("chain")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| SourceError::Node(format!("getblockchaininfo returned no chain: {v}")))
    }
}

impl BlockSource for RpcSource {
    fn tip_height(&self) -> Result<u32, SourceError> {
        let v = self.call("getblockcount", json!([]))?;
        v.as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .ok_or_else(|| SourceError::Node(format!("getblockcount returned {v}")))
    }

    fn block_hash(&self, height: u32) -> Result<BlockHash, SourceError> {
        let v = self.call("getblockhash", json!([height]))?;
        v.as_str()
            .and_then(|text| text.trim().parse().ok())
            .ok_or_else(|| SourceError::Node(format!("getblockhash {height} returned {v}")))
    }

    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        let hash_hex = hash.to_string();
        let v = self.call("getblock", json!([hash_hex, 0]))?;
        let text = v
            .as_str()
            .ok_or_else(|| SourceError::Node(format!("getblock {hash_hex} returned no hex")))?;
        hex::decode(text)
            .map(Block::new)
            .map_err(|e| SourceError::Node(format!("getblock {hash_hex}: invalid hex: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_scheme_is_http_and_a_malformed_one_is_refused() {
        assert_eq!(
            node_url("127.0.0.1:8332").as_deref(),
            Ok("http://127.0.0.1:8332")
        );
        assert_eq!(
            node_url("bitcoind:8332").as_deref(),
            Ok("http://bitcoind:8332")
        );
        assert_eq!(
            node_url("https://node.example/rpc").as_deref(),
            Ok("https://node.example/rpc")
        );
        assert!(node_url("ftp://node:21").unwrap_err().contains("scheme"));
        assert!(node_url("http://").is_err());
        assert!(node_url("127.0.0.1:notaport").is_err());
        assert!(node_url("http://a b:1").is_err());
    }

    #[test]
    fn an_unreadable_cookie_is_refused_and_one_not_written_yet_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_cookie(&dir.path().join(".cookie")).is_ok());
        let err = check_cookie(&dir.path().join("nodir/.cookie")).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        let err = check_cookie(dir.path()).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }
}

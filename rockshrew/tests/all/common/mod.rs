//! Helpers of the daemon tests: a fake Bitcoin Core, a running `rockshrew`, a JSON-RPC client.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metashrew_storage::hashes::block_hash;
use serde_json::{Value, json};

/// Mainnet blocks 0..255, one hex block per line.
pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../integration/fixtures/blocks-000000-000255.hex"
);

/// The output script of block 9's coinbase (50 BTC at 169, 40 BTC at 170), hex.
pub fn coinbase9_script_hex() -> String {
    hex::encode(metashrew_tests::fixtures::coinbase9_script())
}

/// Runs `rockshrew` with `args` under a shell `prelude` (`ulimit ...`), to completion.
pub fn run_limited(prelude: &str, args: &[&str]) -> std::process::Output {
    let script = format!(
        "{prelude}; exec {} {} --port {}",
        env!("CARGO_BIN_EXE_rockshrew"),
        args.join(" "),
        free_port()
    );
    Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash runs")
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:`, `VmHWM:`); 0 if unknown.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Faults the fake node injects.
#[derive(Default)]
pub struct Faults {
    /// Answer this many next requests with HTTP 503.
    pub unavailable: AtomicU32,
    /// Answer this many `getblock` calls for this height with another block.
    pub lie_height: AtomicU32,
    pub lies_left: AtomicU32,
    /// Requests served.
    pub served: AtomicU32,
    /// Milliseconds to wait before answering each request (a slow node).
    pub delay_ms: AtomicU32,
    /// Close this many next connections after reading the request, without an answer.
    pub resets: AtomicU32,
    /// Answer this many next `getblock` calls with truncated or non-hex text.
    pub bad_hex: AtomicU32,
    /// Answer this many next `getblockhash` calls with the hash of another height.
    pub hash_flips: AtomicU32,
}

/// Takes one from a fault counter; whether there was one.
fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// The chain a fake node serves, with its hashes indexed.
pub struct NodeChain {
    /// The height of `blocks[0]`.
    first: usize,
    blocks: Vec<Vec<u8>>,
    hashes: Vec<String>,
    heights: HashMap<String, usize>,
}

impl NodeChain {
    fn new(first: usize, blocks: Vec<Vec<u8>>) -> Self {
        let hashes: Vec<String> = blocks
            .iter()
            .map(|b| block_hash(b).expect("header").to_string())
            .collect();
        let heights = hashes
            .iter()
            .enumerate()
            .map(|(h, x)| (x.clone(), h))
            .collect();
        Self {
            first,
            blocks,
            hashes,
            heights,
        }
    }
}

/// A Bitcoin Core look-alike serving `getblockcount`, `getblockhash`, `getblock` from a chain
/// that tests can replace (a reorg).
pub struct FakeNode {
    pub port: u16,
    chain: Arc<Mutex<Arc<NodeChain>>>,
    /// What `getblockchaininfo` names its network (`main` unless set).
    network: Arc<Mutex<String>>,
    pub faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
}

fn answer(chain: &NodeChain, network: &str, faults: &Faults, request: &Value) -> (u16, Value) {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let params = request.get("params").cloned().unwrap_or(json!([]));
    let result = match method {
        "getblockcount" => json!(chain.first + chain.blocks.len() - 1),
        "getblockchaininfo" => {
            json!({"chain": network, "blocks": chain.first + chain.blocks.len() - 1})
        }
        "getblockhash" => {
            let asked = params[0].as_u64().unwrap_or(u64::MAX) as usize;
            let mut h = asked.wrapping_sub(chain.first);
            if h < chain.hashes.len() && take(&faults.hash_flips) {
                h = (h + 7) % chain.hashes.len();
            }
            match chain.hashes.get(h) {
                Some(hash) => json!(hash),
                None => {
                    return (
                        500,
                        json!({"result": null, "error": {"code": -8, "message": "Block height out of range"}, "id": id}),
                    );
                }
            }
        }
        "getblock" => {
            let wanted = params[0].as_str().unwrap_or("");
            match chain.heights.get(wanted).copied() {
                Some(h) => {
                    let lie = faults.lie_height.load(Ordering::SeqCst) as usize == h
                        && take(&faults.lies_left);
                    let block = if lie {
                        &chain.blocks[(h + 1) % chain.blocks.len()]
                    } else {
                        &chain.blocks[h]
                    };
                    let mut text = hex::encode(block);
                    if take(&faults.bad_hex) {
                        if faults.bad_hex.load(Ordering::SeqCst).is_multiple_of(2) {
                            text.truncate(text.len() - 3);
                        } else {
                            text.replace_range(10..12, "zz");
                        }
                    }
                    json!(text)
                }
                None => {
                    return (
                        500,
                        json!({"result": null, "error": {"code": -5, "message": "Block not found"}, "id": id}),
                    );
                }
            }
        }
        _ => {
            return (
                500,
                json!({"result": null, "error": {"code": -32601, "message": "Method not found"}, "id": id}),
            );
        }
    };
    (200, json!({"result": result, "error": null, "id": id}))
}

fn serve(
    mut stream: TcpStream,
    chain: &Mutex<Arc<NodeChain>>,
    network: &Mutex<String>,
    faults: &Faults,
) -> Option<()> {
    stream.set_nodelay(true).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        if line.is_empty() {
            return Some(());
        }
        loop {
            line.clear();
            reader.read_line(&mut line).ok()?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().ok()?;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).ok()?;
        faults.served.fetch_add(1, Ordering::SeqCst);
        let delay = faults.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(u64::from(delay)));
        }
        if take(&faults.resets) {
            return None;
        }
        let (status, reply) = if take(&faults.unavailable) {
            (503, Value::String("busy".into()))
        } else {
            let request: Value = serde_json::from_slice(&body).ok()?;
            let chain = chain.lock().ok()?.clone();
            let network = network.lock().ok()?.clone();
            answer(&chain, &network, faults, &request)
        };
        let text = reply.to_string();
        // One write: a head and a body in two segments would meet Nagle and delayed ACKs.
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        stream.write_all(response.as_bytes()).ok()?;
    }
}

impl FakeNode {
    pub fn start(chain: Vec<Vec<u8>>) -> Self {
        Self::start_at(0, chain)
    }

    /// A node whose chain's first block is at height `first` (the heights below it are never
    /// asked by a daemon started at `first`).
    pub fn start_at(first: usize, chain: Vec<Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let chain = Arc::new(Mutex::new(Arc::new(NodeChain::new(first, chain))));
        let network = Arc::new(Mutex::new("main".to_string()));
        let faults = Arc::new(Faults::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, n, f, s) = (chain.clone(), network.clone(), faults.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (c, n, f) = (c.clone(), n.clone(), f.clone());
                std::thread::spawn(move || serve(stream, &c, &n, &f));
            }
        });
        Self {
            port,
            chain,
            network,
            faults,
            stop,
        }
    }

    /// Names the network `getblockchaininfo` answers (`main`, `regtest`, ...).
    pub fn set_network(&self, name: &str) {
        *self.network.lock().expect("network") = name.to_string();
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_chain(&self, chain: Vec<Vec<u8>>) {
        *self.chain.lock().expect("chain") = Arc::new(NodeChain::new(0, chain));
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A JSON-RPC client of a daemon's port.
pub struct Client {
    pub port: u16,
}

impl Client {
    /// Posts a raw body to `POST /`; returns the parsed reply.
    pub fn post(&self, body: &str) -> Value {
        self.post_to("/", body).1
    }

    pub fn call(&self, method: &str, params: Value) -> Value {
        self.post(
            &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(),
        )
    }

    /// Posts `body` to `path` (`/LABEL`); the HTTP status and the parsed reply.
    pub fn post_to(&self, path: &str, body: &str) -> (u16, Value) {
        self.try_post_to(path, body).expect("daemon answers")
    }

    /// [`Client::post_to`], `None` when the daemon does not answer (not up yet, or gone).
    pub fn try_post_to(&self, path: &str, body: &str) -> Option<(u16, Value)> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut response = agent
            .post(&format!("http://127.0.0.1:{}{path}", self.port))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .ok()?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().ok()?;
        Some((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Calls `method` of the indexer labelled `label` (`POST /LABEL`).
    pub fn call_at(&self, label: &str, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        self.post_to(&format!("/{label}"), &body.to_string()).1
    }

    /// The height of the indexer labelled `label`.
    pub fn height_at(&self, label: &str) -> Option<u32> {
        self.call_at(label, "metashrew_height", json!([]))["result"]
            .as_str()
            .and_then(|h| h.parse().ok())
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        match agent
            .get(&format!("http://127.0.0.1:{}{path}", self.port))
            .call()
        {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        }
    }

    /// The height the daemon reports over JSON-RPC (`None` before anything is indexed or when
    /// it does not answer).
    pub fn height(&self) -> Option<u32> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "metashrew_height", "params": []});
        self.try_post_to("/", &body.to_string())?.1["result"]
            .as_str()
            .and_then(|h| h.parse().ok())
    }
}

/// A running daemon; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub log: std::path::PathBuf,
}

impl Daemon {
    pub fn start(indexer: &str, db: &Path, extra: &[&str]) -> Self {
        Self::start_under("", indexer, db, extra)
    }

    /// [`Daemon::start`] under a shell `prelude` (`ulimit ...`), which the daemon's process
    /// replaces (same pid).
    pub fn start_under(prelude: &str, indexer: &str, db: &Path, extra: &[&str]) -> Self {
        Self::start_binary(env!("CARGO_BIN_EXE_rockshrew"), prelude, indexer, db, extra)
    }

    /// [`Daemon::start_under`] with another `rockshrew` binary (an A/B comparison).
    pub fn start_binary(
        binary: &str,
        prelude: &str,
        indexer: &str,
        db: &Path,
        extra: &[&str],
    ) -> Self {
        let command = if prelude.is_empty() {
            Command::new(binary)
        } else {
            let mut shell = Command::new("bash");
            shell.args(["-c", &format!("{prelude}; exec \"$0\" \"$@\""), binary]);
            shell
        };
        Self::spawn(
            command,
            indexer,
            db,
            &[&["--poll-interval-ms", "50"], extra].concat(),
        )
    }

    /// Metashrew's own daemon (`rockshrew-mono`, built elsewhere) with only the flags both
    /// daemons share (`--indexer`, `--db-path`, `--port`) and `extra`.
    pub fn start_metashrew(binary: &str, indexer: &str, db: &Path, extra: &[&str]) -> Self {
        Self::spawn(Command::new(binary), indexer, db, extra)
    }

    /// Runs `command` with the shared flags, then `extra`; its log (stderr) beside `db`.
    fn spawn(mut command: Command, indexer: &str, db: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let log = db.with_extension(format!("{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = command
            .args(["--indexer", indexer, "--db-path"])
            .arg(db)
            .args(["--port", &port.to_string()])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("the daemon starts");
        Self { child, port, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client of its JSON-RPC port.
    pub fn client(&self) -> Client {
        Client { port: self.port }
    }

    /// Posts a raw body; returns the parsed reply.
    pub fn post(&self, body: &str) -> Value {
        self.client().post(body)
    }

    pub fn call(&self, method: &str, params: Value) -> Value {
        self.client().call(method, params)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.client().get(path)
    }

    /// The height the daemon reports over JSON-RPC (`None` before anything is indexed or when
    /// it does not answer).
    pub fn height(&self) -> Option<u32> {
        self.client().height()
    }

    /// A `/proc/<pid>/status` figure of the daemon in KiB (`VmRSS:`, `VmHWM:`); 0 if unknown.
    pub fn status_kib(&self, field: &str) -> u64 {
        proc_status_kib(self.child.id(), field)
    }

    /// Waits until the daemon reports `height` (panics with its log after `timeout`).
    pub fn wait_for_height(&mut self, height: u32, timeout: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("daemon exited ({status}):\n{}", self.log_text());
            }
            let (code, _) = self.get("/metrics");
            if code == 200 && self.height() >= Some(height) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "height {height} not reached in {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every indexer of `labels` reports `height` (panics with the log after
    /// `timeout`).
    pub fn wait_for_heights(&mut self, labels: &[&str], height: u32, timeout: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("daemon exited ({status}):\n{}", self.log_text());
            }
            let (code, _) = self.get("/metrics");
            if code == 200
                && labels
                    .iter()
                    .all(|l| self.client().height_at(l) >= Some(height))
            {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "height {height} not reached by {labels:?} in {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: &str) {
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rewrites `blocks[from..]` into a competing branch: the first block gets another timestamp,
/// every later one is re-linked to its rewritten parent. Proof of work is not checked by the
/// indexer, so the branch is valid for it. `extra` more blocks are appended (copies of the last).
pub fn fork(blocks: &[Vec<u8>], from: usize, extra: usize) -> Vec<Vec<u8>> {
    let mut chain: Vec<Vec<u8>> = blocks[..from].to_vec();
    let mut tail: Vec<Vec<u8>> = blocks[from..].to_vec();
    for _ in 0..extra {
        tail.push(blocks[blocks.len() - 1].clone());
    }
    for (i, mut block) in tail.into_iter().enumerate() {
        let prev = block_hash(&chain[chain.len() - 1]).expect("header");
        block[4..36].copy_from_slice(prev.as_bytes());
        let time = u32::from_le_bytes(block[68..72].try_into().expect("time")) + 1 + i as u32;
        block[68..72].copy_from_slice(&time.to_le_bytes());
        chain.push(block);
    }
    chain
}

/// The roots the daemon serves for heights 0..=`upto`, as RPC hex.
pub fn roots_over_rpc(daemon: &Daemon, upto: u32) -> Vec<String> {
    (0..=upto)
        .map(|h| {
            daemon.call("metashrew_stateroot", json!([h]))["result"]
                .as_str()
                .unwrap_or_else(|| panic!("no root at {h}"))
                .to_string()
        })
        .collect()
}

/// Roots of spendables over the bundled blocks, computed in-process (the reference).
pub fn reference_roots() -> Vec<String> {
    roots_of(&metashrew_tests::fixtures::mainnet_blocks())
}

/// Roots of spendables over `chain` (heights from 0), computed in-process, as RPC hex.
pub fn roots_of(chain: &[Vec<u8>]) -> Vec<String> {
    roots_with(metashrew_tests::guests::SPENDABLES, chain)
}

/// Roots of the guest at `wasm` over `chain` (heights from 0), computed in-process, as RPC hex.
pub fn roots_with(wasm: &str, chain: &[Vec<u8>]) -> Vec<String> {
    let rt = metashrew_tests::runtimes::on_memory(wasm, metashrew_runtime::InstanceMode::Fresh);
    chain
        .iter()
        .enumerate()
        .map(|(h, b)| {
            format!(
                "0x{}",
                hex::encode(rt.process_block(h as u32, b).expect("block").state_root)
            )
        })
        .collect()
}

/// An indexer in WAT whose blocks write `key` = their height, with views that misbehave: `hog`
/// grows its memory 1 MiB at a time and touches every page, up to 512 MiB; `spin` never returns;
/// `chatter` calls the host without end; `fill` grows to 256 MiB and fills it all, one
/// instruction at a time, without end; `height` answers the view height (u32 LE).
pub const HOSTILE_VIEWS_WAT: &str = r#"
  (memory (export "memory") 4)
  ;; The flush: KeyValueFlush { list: ["key", height] }, 11 bytes at 0x104.
  (data (i32.const 0x100) "\0b\00\00\00\0a\03key\0a\04")
  (func $load
    (i32.store (i32.const 0x0FFC) (call $host_len))
    (call $load_input (i32.const 0x1000)))
  (func (export "_start")
    (call $load)
    (i32.store (i32.const 0x10B) (i32.load (i32.const 0x1000)))
    (call $flush (i32.const 0x104)))
  (func (export "height") (result i32)
    (call $load)
    (i32.store (i32.const 0x3000) (i32.const 4))
    (i32.store (i32.const 0x3004) (i32.load (i32.const 0x1000)))
    (i32.const 0x3004))
  (func (export "hog") (result i32)
    (local $at i32) (local $end i32) (local $mib i32)
    (loop $more
      (local.set $at (i32.mul (memory.grow (i32.const 16)) (i32.const 65536)))
      (local.set $end (i32.add (local.get $at) (i32.const 0x100000)))
      (loop $touch
        (i32.store (local.get $at) (i32.const 1))
        (local.set $at (i32.add (local.get $at) (i32.const 4096)))
        (br_if $touch (i32.lt_u (local.get $at) (local.get $end))))
      (local.set $mib (i32.add (local.get $mib) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $mib) (i32.const 512))))
    (i32.store (i32.const 0x3000) (i32.const 0))
    (i32.const 0x3004))
  (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "chatter") (result i32)
    (i32.store (i32.const 0x3000) (i32.const 1))
    (loop $more (drop (call $get_len (i32.const 0x3004))) (br $more))
    (i32.const 0))
  (func (export "fill") (result i32)
    (drop (memory.grow (i32.sub (i32.const 4096) (memory.size))))
    (loop $more
      (memory.fill (i32.const 0) (i32.const 7) (i32.mul (memory.size) (i32.const 65536)))
      (br $more))
    (i32.const 0))
"#;

/// [`HOSTILE_VIEWS_WAT`] as a whole module.
pub fn hostile_views_wasm() -> Vec<u8> {
    wat::parse_str(format!(
        "(module {} {HOSTILE_VIEWS_WAT})",
        metashrew_tests::ABI_IMPORTS
    ))
    .expect("valid WAT")
}

/// [`HOSTILE_VIEWS_WAT`] built and written into `dir`; its path.
pub fn hostile_views_module(dir: &std::path::Path) -> String {
    let path = dir.join("hostile-views.wasm");
    std::fs::write(&path, hostile_views_wasm()).expect("module written");
    path.to_str().expect("UTF-8 path").to_string()
}

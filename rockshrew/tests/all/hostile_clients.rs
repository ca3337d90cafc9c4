//! Hostile JSON-RPC clients: malformed, mistyped, huge and deeply nested requests, random
//! mutations of valid ones, and many concurrent clients while the daemon indexes. The daemon must
//! answer each with a JSON-RPC error (or an HTTP 413 for an oversized body), keep its memory
//! bounded, keep indexing, and keep answering correctly.
//!
//! `METASHREW_FUZZ_CASES` sets the number of random mutations (default 2,000).

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, FIXTURE, FakeNode, coinbase9_script_hex, fork, hostile_views_module};
use metashrew_tests::Rng;
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);
/// `balance` of block 9's coinbase script at 169: 50 BTC, in the view's u64 LE hex.
fn balance_request(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "metashrew_view",
           "params": ["balance", coinbase9_script_hex(), 169]})
}

const FIFTY_BTC: &str = "0x00f2052a01000000";

/// Posts raw bytes; returns the HTTP status and body (status 0: no answer at all).
fn post_bytes(port: u16, body: Vec<u8>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    match agent
        .post(&format!("http://127.0.0.1:{port}/"))
        .header("Content-Type", "application/json")
        .send(&body[..])
    {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

/// Checks that a 200 answer is a JSON-RPC response (or a batch of them) with exactly one of
/// `result`/`error`, and error codes in the standard ranges.
fn check_rpc_answer(body: &str, what: &str) {
    let value: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
    let responses = match &value {
        Value::Array(items) => items.clone(),
        single => vec![single.clone()],
    };
    for r in responses {
        let has_result = r.get("result").is_some();
        let has_error = r.get("error").is_some();
        assert!(has_result != has_error, "{what}: {r}");
        if let Some(code) = r["error"]["code"].as_i64() {
            assert!(
                (-32700..=-32000).contains(&code),
                "{what}: unexpected code {code}"
            );
        }
    }
}

/// Requests a careless or hostile client might send, each with what must come back.
/// `(what, body, HTTP status, whether every answer must be an error)`.
fn catalogue(max_body: usize) -> Vec<(&'static str, Vec<u8>, u16, bool)> {
    let script = coinbase9_script_hex();
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    let big_batch: Vec<Value> = (0..5_000)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "metashrew_height"}))
        .collect();
    let full_batch: Vec<Value> = (0..1_000).map(balance_request).collect();
    vec![
        ("empty body", Vec::new(), 200, true),
        ("truncated", b"{\"jsonrpc\":\"2.0\",\"method\":".to_vec(), 200, true),
        ("not UTF-8", vec![0xff, 0xfe, 0x00, 0x7b], 200, true),
        ("null", b"null".to_vec(), 200, true),
        ("a number", b"42".to_vec(), 200, true),
        ("empty batch", b"[]".to_vec(), 200, true),
        ("batch of numbers", b"[1,2,3]".to_vec(), 200, true),
        ("method not a string", br#"{"method":1,"id":1}"#.to_vec(), 200, true),
        ("params an object", br#"{"method":"metashrew_height","params":{"a":1},"id":1}"#.to_vec(), 200, true),
        ("unknown method", br#"{"method":"admin_shutdown","id":1}"#.to_vec(), 200, true),
        ("view without params", br#"{"method":"metashrew_view","id":1}"#.to_vec(), 200, true),
        ("view name a number", format!(r#"{{"method":"metashrew_view","params":[7,"{script}",1],"id":1}}"#).into_bytes(), 200, true),
        ("odd hex", br#"{"method":"metashrew_view","params":["balance","abc",1],"id":1}"#.to_vec(), 200, true),
        ("height 1e400", format!(r#"{{"method":"metashrew_view","params":["balance","{script}",1e400],"id":1}}"#).into_bytes(), 200, true),
        ("height 2^64", format!(r#"{{"method":"metashrew_view","params":["balance","{script}",18446744073709551616],"id":1}}"#).into_bytes(), 200, true),
        ("height -1", format!(r#"{{"method":"metashrew_view","params":["balance","{script}",-1],"id":1}}"#).into_bytes(), 200, true),
        ("height 1.5", format!(r#"{{"method":"metashrew_view","params":["balance","{script}",1.5],"id":1}}"#).into_bytes(), 200, true),
        ("height above the tip", format!(r#"{{"method":"metashrew_view","params":["balance","{script}","4294967295"],"id":1}}"#).into_bytes(), 200, true),
        ("getblockhash huge", br#"{"method":"metashrew_getblockhash","params":[99999999999999999999],"id":1}"#.to_vec(), 200, true),
        ("preview of garbage", br#"{"method":"metashrew_preview","params":["00","balance","00",1],"id":1}"#.to_vec(), 200, true),
        ("a path as view name", br#"{"method":"metashrew_view","params":["../../etc/passwd","00",1],"id":1}"#.to_vec(), 200, true),
        ("a 512 KiB method name", format!(r#"{{"method":"{}","id":1}}"#, "m".repeat(512 << 10)).into_bytes(), 200, true),
        ("nesting 100 deep", nested(100), 200, true),
        ("nesting 100,000 deep", nested(100_000), 200, true),
        ("batch of 5,000", serde_json::to_vec(&big_batch).expect("json"), 200, true),
        ("batch of 1,000 views", serde_json::to_vec(&full_batch).expect("json"), 200, false),
        ("body over the limit", vec![b' '; max_body + 1], 413, true),
    ]
}

/// A random mutation of a valid request: flipped, inserted, deleted or duplicated bytes, or a
/// JSON token spliced in.
fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    const TOKENS: [&str; 12] = [
        "null",
        "true",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "\"",
        "-0",
        "1e999",
        "\"\\u0000\"",
    ];
    let mut out = valid.to_vec();
    for _ in 0..rng.below(4) + 1 {
        let at = rng.below(out.len() as u64 + 1) as usize;
        match rng.below(5) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 => out.insert(at, rng.next_u64() as u8),
            2 if at < out.len() => {
                out.remove(at);
            }
            3 => {
                let end = (at + rng.below(16) as usize).min(out.len());
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            _ => {
                let token = TOKENS[rng.below(TOKENS.len() as u64) as usize];
                out.splice(at..at, token.bytes());
            }
        }
    }
    out
}

fn fuzz_cases() -> u64 {
    std::env::var("METASHREW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn roots(daemon: &Daemon, upto: u32) -> Vec<Value> {
    (0..=upto)
        .map(|h| daemon.call("metashrew_stateroot", json!([h]))["result"].clone())
        .collect()
}

#[test]
fn malformed_and_random_requests_get_errors_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let max_body = 1 << 20;
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &db,
        &[
            "--blocks-file",
            FIXTURE,
            "--max-request-bytes",
            &max_body.to_string(),
        ],
    );
    d.wait_for_height(255, WAIT);
    let roots_before = roots(&d, 255);
    for (what, body, status, all_errors) in catalogue(max_body) {
        let (got, text) = post_bytes(d.port, body);
        assert_eq!(got, status, "{what}: {text:.300}");
        if got == 200 {
            check_rpc_answer(&text, what);
            let results = text.matches("\"result\"").count();
            if all_errors {
                assert_eq!(results, 0, "{what}: {text:.300}");
            } else {
                assert_eq!(text.matches(FIFTY_BTC).count(), 1_000, "{what}");
            }
        }
        assert!(
            text.len() < 64 << 10 || what.starts_with("batch"),
            "{what}: echoed {} bytes",
            text.len()
        );
    }
    let valid: Vec<Vec<u8>> = [
        balance_request(1),
        json!({"jsonrpc": "2.0", "id": 2, "method": "metashrew_height", "params": []}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "metashrew_getblockhash", "params": [170]}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "metashrew_stateroot", "params": ["latest"]}),
        json!([balance_request(5), {"jsonrpc": "2.0", "id": 6, "method": "metashrew_height"}]),
    ]
    .iter()
    .map(|v| serde_json::to_vec(v).expect("json"))
    .collect();
    let mut rng = Rng::new(0x00c0_ffee);
    let (mut errors, mut results) = (0u64, 0u64);
    for case in 0..fuzz_cases() {
        let body = mutate(&mut rng, &valid[case as usize % valid.len()]);
        let (got, text) = post_bytes(d.port, body.clone());
        assert_eq!(
            got,
            200,
            "case {case} {:?}: {text:.300}",
            String::from_utf8_lossy(&body)
        );
        check_rpc_answer(&text, &format!("case {case}"));
        if text.contains("\"error\"") {
            errors += 1;
        } else {
            results += 1;
        }
    }
    println!(
        "{} catalogue requests and {} random mutations: {errors} errors, {results} results",
        catalogue(max_body).len(),
        fuzz_cases()
    );
    // Still alive, still right, nothing changed.
    assert_eq!(d.call("metashrew_height", json!([]))["result"], "255");
    let reply = post_bytes(
        d.port,
        serde_json::to_vec(&balance_request(9)).expect("json"),
    )
    .1;
    assert!(reply.contains(FIFTY_BTC), "{reply}");
    assert_eq!(roots(&d, 255), roots_before);
}

#[test]
fn many_concurrent_clients_while_indexing_get_correct_answers() {
    const CLIENTS: usize = 32;
    const WINDOW: Duration = Duration::from_secs(4);
    const EXTRA: u32 = 4_000;
    let blocks = mainnet_blocks();
    // A long chain served slowly, so indexing runs during the whole load window.
    let node = FakeNode::start(fork(&blocks, 256, EXTRA as usize));
    node.faults.delay_ms.store(1, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &db,
        &["--no-pow-check", "--daemon-rpc-url", &node.url()],
    );
    d.wait_for_height(200, WAIT);
    let port = d.port;
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (stop, calls) = (stop.clone(), calls.clone());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut last_height = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    if c % 2 == 0 {
                        let body = serde_json::to_vec(&balance_request(c as u64)).expect("json");
                        let (status, text) = post_bytes(port, body);
                        assert_eq!(status, 200, "{text}");
                        assert!(text.contains(FIFTY_BTC), "wrong balance: {text}");
                    } else {
                        let body = br#"{"jsonrpc":"2.0","id":1,"method":"metashrew_height"}"#;
                        let (status, text) = post_bytes(port, body.to_vec());
                        assert_eq!(status, 200, "{text}");
                        let reply: Value = serde_json::from_str(&text).expect("json");
                        let height: u64 = reply["result"]
                            .as_str()
                            .and_then(|h| h.parse().ok())
                            .expect("a height");
                        assert!(height >= last_height, "the height went back");
                        last_height = height;
                    }
                    latencies.push(started.elapsed());
                    calls.fetch_add(1, Ordering::Relaxed);
                }
                latencies
            })
        })
        .collect();
    let h0 = d.height().expect("height");
    std::thread::sleep(WINDOW);
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client failed"))
        .collect();
    let h1 = d.height().expect("height");
    latencies.sort();
    let rss = d.status_kib("VmHWM:");
    println!(
        "{CLIENTS} clients for {WINDOW:?}: {} calls ({:.0}/s), p50 {:?}, p99 {:?}; indexed {} blocks meanwhile; daemon peak RSS {} MiB",
        latencies.len(),
        latencies.len() as f64 / WINDOW.as_secs_f64(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        h1 - h0,
        rss / 1024
    );
    assert!(calls.load(Ordering::Relaxed) > 0);
    assert!(h1 > h0, "indexing stalled under load");
    // Bounded memory: far below what unbounded queues or instances would take.
    assert!(rss < 1 << 20, "daemon peak RSS {rss} KiB");
    // And indexing still reaches the node's tip.
    node.faults.delay_ms.store(0, Ordering::SeqCst);
    d.wait_for_height(255 + EXTRA, Duration::from_secs(300));
}

/// Opens `n` connections that each send half a request header and then nothing.
fn half_open(port: u16, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    (0..n)
        .filter_map(|_| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            stream
                .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Ty")
                .ok()?;
            Some(stream)
        })
        .collect()
}

/// Whether the server closed `stream` (EOF or reset) within `within`.
fn closed_by_server(stream: &mut &std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or similar before closing is fine; keep reading until the close.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn half_open_and_idle_connections_are_dropped_and_bounded_while_clients_are_served() {
    const CONNECTIONS: usize = 4_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &db,
        &[
            "--blocks-file",
            FIXTURE,
            "--header-timeout-ms",
            "20000",
            "--max-connections",
            "1000",
        ],
    );
    d.wait_for_height(255, WAIT);
    let rss_before = d.status_kib("VmRSS:");

    // Thousands of strangers that never finish a header: at most 1,000 are accepted at once.
    let started = Instant::now();
    let strangers = half_open(d.port, CONNECTIONS);
    assert_eq!(strangers.len(), CONNECTIONS, "connections opened");
    let opened_after = started.elapsed();
    let rss_loaded = d.status_kib("VmRSS:");
    let open_fds = std::fs::read_dir(format!("/proc/{}/fd", d.child.id()))
        .map(|e| e.count())
        .unwrap_or(0);
    assert!(
        open_fds < 1_000 + 100,
        "the daemon holds {open_fds} descriptors"
    );

    // A normal client is served meanwhile: the server sheds the oldest silent connection for it
    // (waiting for slots to time out would take longer than the client's 30 s limit).
    let started = Instant::now();
    let reply = d.post(&balance_request(1).to_string());
    assert_eq!(reply["result"], FIFTY_BTC, "{reply}");
    let served_after = started.elapsed();

    // Every stranger is closed by the server: shed, or after the header timeout.
    let deadline = Duration::from_secs(40);
    let still_open = strangers
        .iter()
        .filter(|s| !closed_by_server(&mut &**s, deadline))
        .count();
    assert_eq!(still_open, 0, "half-open connections still held");

    // An idle keep-alive connection is closed after the same timeout.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", d.port)).expect("connect");
    {
        use std::io::Write;
        let body = balance_request(2).to_string();
        write!(
            idle,
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("request");
    }
    let keep_alive_started = Instant::now();
    assert!(closed_by_server(&mut &idle, Duration::from_secs(40)));
    let idle_closed_after = keep_alive_started.elapsed();

    let rss_after = d.status_kib("VmRSS:");
    eprintln!(
        "{CONNECTIONS} half-open connections: RSS {rss_before} -> {rss_loaded} -> {rss_after} KiB, \
         {open_fds} descriptors, all opened after {opened_after:?}, normal client served {served_after:?} later, idle keep-alive closed after {idle_closed_after:?}"
    );
    assert!(
        rss_loaded < rss_before + 64 * 1024,
        "RSS grew from {rss_before} to {rss_loaded} KiB"
    );
    // Still serving.
    assert_eq!(d.call("metashrew_height", json!([]))["result"], "255");
}

/// The state roots of the module at `wasm` over `chain`, computed in-process, as RPC hex.
fn roots_in_process(wasm: &str, chain: &[Vec<u8>]) -> Vec<String> {
    let rt = metashrew_runtime::MetashrewRuntime::load(
        wasm,
        Arc::new(metashrew_storage::MemStore::new()),
        metashrew_runtime::RuntimeConfig::default(),
    )
    .unwrap();
    (0..chain.len())
        .map(|h| {
            let report = rt.process_block(h as u32, &chain[h]).unwrap();
            format!("0x{}", hex::encode(report.state_root))
        })
        .collect()
}

#[test]
fn memory_hungry_views_fail_cleanly_while_indexing_goes_on_in_bounded_memory() {
    const VIEWS: usize = 16;
    const VIEW_MIB: u64 = 64;
    let blocks = mainnet_blocks();
    let chain = fork(&blocks, 256, 1_500);
    let node = FakeNode::start(chain.clone());
    node.faults.delay_ms.store(2, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = hostile_views_module(dir.path());
    let mut d = Daemon::start(
        &wasm,
        &dir.path().join("db"),
        &[
            "--daemon-rpc-url",
            &node.url(),
            "--view-memory-mib",
            &VIEW_MIB.to_string(),
            "--no-pow-check",
            // This test is about memory: views at the default idle priority can wait past
            // their time limit on a loaded machine before they reach their memory bound.
            "--view-class",
            "normal",
        ],
    );
    d.wait_for_height(100, WAIT);
    let (hwm_before, rss_before) = (d.status_kib("VmHWM:"), d.status_kib("VmRSS:"));
    assert!(
        hwm_before > 0 && rss_before > 0,
        "the daemon's memory is readable"
    );
    let height_before = d.height().unwrap();
    let port = d.port;
    let callers: Vec<_> = (0..VIEWS)
        .map(|_| {
            std::thread::spawn(move || {
                let client = common::Client { port };
                (0..4)
                    .map(|_| client.call("metashrew_view", json!(["hog", "0x", "latest"])))
                    .collect::<Vec<Value>>()
            })
        })
        .collect();
    for caller in callers {
        for answer in caller.join().unwrap() {
            assert_eq!(answer["error"]["code"], -32002, "{answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains("64 MiB"), "{message}");
        }
    }
    let hwm_growth_mib = d.status_kib("VmHWM:").saturating_sub(hwm_before) >> 10;
    let rss_after = d.status_kib("VmRSS:");
    eprintln!(
        "{VIEWS} hungry views: peak RSS {} MiB before, +{hwm_growth_mib} MiB during; RSS {} MiB before, {} MiB after",
        hwm_before >> 10,
        rss_before >> 10,
        rss_after >> 10
    );
    // Bounded by the views' bound (16 x 64 MiB) plus room for the caches filling meanwhile;
    // without the bound each view would take 512 MiB (8 GiB in all).
    assert!(
        hwm_growth_mib <= VIEWS as u64 * VIEW_MIB + 256,
        "peak RSS grew by {hwm_growth_mib} MiB"
    );
    // The views' memory was given back.
    assert!(
        rss_after < rss_before + (200 << 10),
        "RSS {rss_before} KiB before the views, {rss_after} KiB after"
    );
    assert!(d.height().unwrap() > height_before, "indexing stalled");
    let last = chain.len() as u32 - 1;
    d.wait_for_height(last, WAIT);
    let served: Vec<String> = (0..=last)
        .map(|h| {
            d.call("metashrew_stateroot", json!([h]))["result"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(served, roots_in_process(&wasm, &chain));
    let height = d.call("metashrew_view", json!(["height", "0x", "latest"]));
    assert_eq!(
        height["result"],
        format!("0x{}", hex::encode(last.to_le_bytes()))
    );
}

#[test]
fn a_view_whose_client_disconnects_is_cancelled_and_frees_its_slot() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = hostile_views_module(dir.path());
    let mut d = Daemon::start(
        &wasm,
        &dir.path().join("db"),
        &[
            "--blocks-file",
            FIXTURE,
            "--max-concurrent-views",
            "1",
            "--view-timeout-ms",
            "600000",
        ],
    );
    d.wait_for_height(255, WAIT);
    // A client starts a view that never ends, then goes away.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "metashrew_view",
                      "params": ["spin", "0x", "latest"]})
    .to_string();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(stream);
    // The only view slot is free again: without the cancellation it would stay taken for the
    // 600 s of the view timeout, and this call would wait past the client's 30 s.
    let answer = d.call("metashrew_view", json!(["height", "0x", "latest"]));
    assert_eq!(answer["result"], "0xff000000", "{answer}");
}

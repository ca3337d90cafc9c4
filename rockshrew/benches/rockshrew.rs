//! The project's benchmark: `cargo bench -p rockshrew --bench rockshrew [-- SECTION...]`.
//!
//! Sections (all by default): `overhead`, `heavy`, `assemblyscript`, `daemon`, `views`,
//! `contention`, `deadlines`, `pow`, `replicas`, `history`, `rollback`, `indexers`; and `scale`, `sync` and `projection`
//! (minutes long: only when named; see `scale/mod.rs`), `ab` (two daemons in interleaved pairs)
//! and `flat` (a long run beside a reference workload), also only when named (`ab/mod.rs`), and
//! `bounded` (indexing with the memory, page cache included, limited to a fraction of the
//! database; only when named, `bounded/mod.rs`).
//! Everything runs on RocksDB in temporary directories and on the bundled mainnet blocks; the
//! daemon sections run the real `rockshrew` binary against a local fake Bitcoin Core. Each
//! figure is printed as `median [min .. max]` over its samples. Nothing here is pass/fail.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ab;
mod bounded;
#[path = "../tests/all/common/mod.rs"]
mod common;
mod indexers;
mod scale;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, FakeNode, fork};
use metashrew_core::mock;
use metashrew_runtime::{InstanceMode, MetashrewRuntime, RuntimeConfig};
use metashrew_storage::hashes::{block_hash, sha256};
use metashrew_storage::{BlockCommit, BlockHash, CachedStore, PipelinedStore, StateRoot, Storage};
use metashrew_tests::fixtures::{HEAVY_HEIGHT, heavy_block, mainnet_blocks};
use metashrew_tests::guests;
use rockshrew::store::{IndexIdentity, RocksStore};
use serde_json::{Value, json};

/// The daemon's store stack.
type Store = CachedStore<PipelinedStore<RocksStore>>;

/// Samples of one measurement.
struct Samples(Vec<f64>);

impl Samples {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    fn quantile(&self, q: f64) -> f64 {
        let v = self.sorted();
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
    }
    fn median(&self) -> f64 {
        self.quantile(0.5)
    }
    /// `median [min .. max]` with `digits` decimals.
    fn show(&self, digits: usize) -> String {
        let v = self.sorted();
        format!(
            "{:.digits$} [{:.digits$} .. {:.digits$}]",
            self.median(),
            v[0],
            v[v.len() - 1]
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn open_store(dir: &Path, wasm: &[u8]) -> Arc<Store> {
    let identity = IndexIdentity {
        module_hash: sha256(wasm),
        max_memory_bytes: RuntimeConfig::default().max_memory_bytes,
        max_wasm_stack_bytes: RuntimeConfig::default().max_wasm_stack_bytes as u64,
    };
    let store = RocksStore::open(dir, None, &identity, false).expect("RocksDB opens");
    Arc::new(CachedStore::new(PipelinedStore::new(store), 256 << 20))
}

fn runtime(wasm_path: &str, dir: &Path, mode: InstanceMode) -> MetashrewRuntime<Store> {
    let wasm = std::fs::read(wasm_path).expect("guest built");
    let config = RuntimeConfig {
        instance_mode: mode,
        ..RuntimeConfig::default()
    };
    MetashrewRuntime::from_bytes(&wasm, open_store(dir, &wasm), config).expect("guest loads")
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// Fixed per-block cost: mainnet 0..255 with `minimal` on RocksDB.
fn overhead(blocks: &[Vec<u8>]) {
    println!("\n## Fixed per-block overhead: mainnet 0..255, `minimal`, RocksDB, 5 runs");
    for mode in [InstanceMode::Fresh, InstanceMode::Persistent] {
        let (mut rate, mut per_block) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let dir = tempdir();
            let rt = runtime(guests::MINIMAL, dir.path(), mode);
            let started = Instant::now();
            for (h, block) in blocks.iter().enumerate() {
                rt.process_block(h as u32, block).expect("block");
            }
            let took = started.elapsed();
            rate.push(blocks.len() as f64 / took.as_secs_f64());
            per_block.push(ms(took) / blocks.len() as f64);
        }
        println!(
            "{mode:?} instance: {} blocks/s, {} ms/block",
            Samples(rate).show(0),
            Samples(per_block).show(3)
        );
    }
}

const REPLAYS: u32 = 7;

/// Block 840,243 with `spendables` replayed at successive heights, wasm and native.
fn heavy() {
    println!(
        "\n## Block {HEAVY_HEIGHT} with `spendables`, replayed at {REPLAYS} successive heights on RocksDB"
    );
    let block = heavy_block();
    for (label, wasm) in [
        ("guest cache 1 GiB", guests::SPENDABLES),
        ("guest cache off", guests::SPENDABLES_NOCACHE),
    ] {
        let dir = tempdir();
        let rt = runtime(wasm, dir.path(), InstanceMode::Fresh);
        let (mut total, mut guest, mut commit) = (Vec::new(), Vec::new(), Vec::new());
        let mut io = Vec::new();
        for i in 0..REPLAYS {
            let started = Instant::now();
            let report = rt.process_block(HEAVY_HEIGHT + i, &block).expect("block");
            total.push(ms(started.elapsed()));
            guest.push(ms(report.execute_time));
            commit.push(ms(report.commit_time));
            io.push(format!("{}r/{}w", report.reads, report.writes));
        }
        let first = total[0];
        println!(
            "wasm ({label}): first {first:.1} ms, all {} ms/block (guest {} + commit {}); host reads/writes per block: {}",
            Samples(total).show(1),
            Samples(guest).show(1),
            Samples(commit).show(1),
            io.join(" ")
        );
    }
    contracts_heavy(&block);
    let native = native_heavy(&block);
    println!(
        "native (same spendables code, same RocksDB store, flush committed the same way): first {:.1} ms, all {} ms/block",
        native.0[0],
        native.show(1)
    );
}

/// Block 840,243 with the alkanes-shaped `contracts` guest (a contract run in wasmi for each of
/// its 4,851 transactions): ms a block, and the guest's and the host's shares of it.
fn contracts_heavy(block: &[u8]) {
    let dir = tempdir();
    let rt = runtime(guests::CONTRACTS, dir.path(), InstanceMode::Fresh);
    let (mut total, mut guest, mut host) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..REPLAYS {
        let started = Instant::now();
        let report = rt.process_block(HEAVY_HEIGHT + i, block).expect("block");
        let all = ms(started.elapsed());
        let code = ms(report.start_time) - ms(report.host_call_time);
        total.push(all);
        guest.push(100.0 * code / all);
        host.push(100.0 * (all - code) / all);
    }
    println!(
        "wasm (`contracts`, alkanes-shaped: wasmi inside the guest): {} ms/block; guest code {} %, host {} %",
        Samples(total).show(1),
        Samples(guest).show(1),
        Samples(host).show(1)
    );
}

/// Where the time of a heavy block goes, for guests that allocate as AssemblyScript guests do:
/// our `spendables` without the preallocated region (its heap grows from nothing in every fresh
/// instance, as an AssemblyScript guest's does), and any guests named in
/// `METASHREW_BENCH_GUESTS` (comma-separated paths, e.g. the shipped metashrew-spendables
/// `build/release.wasm`), each with the default configuration. The host's share is everything
/// but the guest's own code: instantiation, host functions, commit, instance teardown.
fn assemblyscript() {
    println!(
        "\n## Block {HEAVY_HEIGHT}, guests that grow their heap per block, default flags, {REPLAYS} heights on RocksDB"
    );
    let block = heavy_block();
    let mut guests_to_run = vec![guests::SPENDABLES_NOCACHE.to_string()];
    if let Ok(extra) = std::env::var("METASHREW_BENCH_GUESTS") {
        guests_to_run.extend(extra.split(',').filter(|p| !p.is_empty()).map(String::from));
    }
    for path in guests_to_run {
        let dir = tempdir();
        let rt = runtime(&path, dir.path(), InstanceMode::Fresh);
        let mut parts: [Vec<f64>; 6] = Default::default();
        for i in 0..REPLAYS {
            let started = Instant::now();
            let report = rt.process_block(HEAVY_HEIGHT + i, &block).expect("block");
            let total = ms(started.elapsed());
            let guest = ms(report.start_time) - ms(report.host_call_time);
            let teardown =
                ms(report.execute_time) - ms(report.instantiate_time) - ms(report.start_time);
            for (part, value) in parts.iter_mut().zip([
                total,
                guest,
                ms(report.instantiate_time),
                ms(report.host_call_time),
                ms(report.commit_time),
                teardown,
            ]) {
                part.push(value);
            }
        }
        let share: Vec<f64> = parts[0]
            .iter()
            .zip(&parts[1])
            .map(|(total, guest)| 100.0 * (total - guest) / total)
            .collect();
        let [total, guest, instantiate, host_calls, commit, teardown] = parts.map(Samples);
        println!(
            "{}: {} ms/block = guest code {} + instantiate {} + host calls {} + commit {} + teardown {}; host share {} %",
            guest_name(&path),
            total.show(1),
            guest.show(1),
            instantiate.show(2),
            host_calls.show(1),
            commit.show(1),
            teardown.show(2),
            Samples(share).show(1)
        );
    }
}

/// Runs `spendables` compiled natively against a RocksDB store through the mock host, committing
/// each block's flush as the runtime does. Returns ms per block.
fn native_heavy(block: &[u8]) -> Samples {
    let dir = tempdir();
    let store = open_store(dir.path(), b"native spendables");
    let tip = Rc::new(Cell::new(None::<u32>));
    let (reader, at) = (store.clone(), tip.clone());
    mock::reset();
    mock::set_backing(Box::new(move |key| match at.get() {
        Some(h) => reader
            .get_at(key, h)
            .expect("store read")
            .unwrap_or_default(),
        None => Vec::new(),
    }));
    let hash = block_hash(block).expect("header");
    let mut root = StateRoot::ZERO;
    let mut samples = Vec::new();
    for i in 0..REPLAYS {
        let height = HEAVY_HEIGHT + i;
        mock::clear_state();
        mock::set_input(height, block);
        let started = Instant::now();
        metashrew_core::index_block(spendables::index_block);
        let writes: Vec<(Vec<u8>, Vec<u8>)> = mock::take_flushes()
            .into_iter()
            .flatten()
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        root = commit(&store, &root, height, hash, writes);
        tip.set(Some(height));
        samples.push(ms(started.elapsed()));
    }
    mock::reset();
    Samples(samples)
}

fn daemon_sync_rate(log: &str) -> Option<f64> {
    let line = log.lines().rev().find(|l| l.contains("blocks/s)"))?;
    let rate = line.rsplit('(').next()?.split_whitespace().next()?;
    rate.parse().ok()
}

/// Runs `rockshrew --exit-at 255` `runs` times; returns (sync blocks/s, process seconds).
fn daemon_runs(source: &[&str], runs: usize) -> (Samples, Samples) {
    let (mut rate, mut wall) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let dir = tempdir();
        let db = dir.path().join("db");
        let started = Instant::now();
        let mut args = source.to_vec();
        args.extend(["--exit-at", "255"]);
        let mut d = Daemon::start(guests::MINIMAL, &db, &args);
        let code = d.wait_exit(Duration::from_secs(120));
        wall.push(started.elapsed().as_secs_f64());
        assert_eq!(code, Some(0), "daemon failed:\n{}", d.log_text());
        rate.push(daemon_sync_rate(&d.log_text()).expect("summary line"));
    }
    (Samples(rate), Samples(wall))
}

fn fixture_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../integration/fixtures/blocks-000000-000255.hex")
}

/// The daemon end to end: block files and JSON-RPC from a fake node; start-up time.
fn daemon(blocks: &[Vec<u8>]) {
    println!("\n## Daemon end to end: `rockshrew --exit-at 255` with `minimal`, 5 runs");
    let file = fixture_file();
    let (rate, wall) = daemon_runs(&["--blocks-file", file.to_str().expect("path")], 5);
    println!(
        "block file: {} blocks/s while syncing; whole process {} s",
        rate.show(0),
        wall.show(3)
    );
    let node = FakeNode::start(blocks.to_vec());
    let url = node.url();
    let (rate, wall) = daemon_runs(&["--daemon-rpc-url", &url, "--auth", "u:p"], 5);
    println!(
        "JSON-RPC from a local fake node: {} blocks/s while syncing; whole process {} s",
        rate.show(0),
        wall.show(3)
    );

    let dir = tempdir();
    let db = dir.path().join("db");
    let mut d = Daemon::start(guests::SPENDABLES, &db, &["--daemon-rpc-url", &url]);
    d.wait_for_height(255, Duration::from_secs(120));
    drop(d);
    let mut startup = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let d = Daemon::start(guests::SPENDABLES, &db, &["--daemon-rpc-url", &url]);
        while d.get("/metrics").0 != 200 {
            std::thread::sleep(Duration::from_millis(2));
        }
        startup.push(ms(started.elapsed()));
    }
    println!(
        "start-up of `spendables` on an indexed database until RPC answers: {} ms",
        Samples(startup).show(1)
    );
}

/// One load window: `clients` threads calling `body` for `window`; checks every answer. A call
/// still running at the end of the window is given up (the daemon then cancels it).
fn load(port: u16, body: &str, clients: usize, window: Duration) -> (Vec<Duration>, usize) {
    let until = Instant::now() + window;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let body = body.to_string();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let url = format!("http://127.0.0.1:{port}/");
                let (mut latencies, mut bad) = (Vec::new(), 0);
                while Instant::now() < until {
                    let started = Instant::now();
                    let left = until.saturating_duration_since(started);
                    let reply = agent
                        .post(&url)
                        .config()
                        .timeout_global(Some(left.max(Duration::from_millis(1))))
                        .build()
                        .header("Content-Type", "application/json")
                        .send(body.as_str())
                        .ok()
                        .and_then(|mut r| r.body_mut().read_to_string().ok());
                    latencies.push(started.elapsed());
                    let ok = reply
                        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                        .and_then(|v| v["result"].as_str().map(|r| r.len() > 2))
                        .unwrap_or(false);
                    bad += usize::from(!ok);
                }
                (latencies, bad)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut bad = 0;
    for t in threads {
        let (l, b) = t.join().expect("client thread");
        all.extend(l);
        bad += b;
    }
    (all, bad)
}

/// View latency with 1 and 8 clients while the daemon indexes a long chain at full speed.
fn views(blocks: &[Vec<u8>]) {
    const WINDOW: Duration = Duration::from_secs(4);
    println!(
        "\n## Views over JSON-RPC while indexing (fake node, mainnet 0..255 + 60,000 linked copies of block 255)"
    );
    let chain = fork(blocks, 256, 60_000);
    let script9 = {
        use bitcoin::consensus::deserialize;
        let b: bitcoin::Block = deserialize(&blocks[9]).expect("block 9");
        hex::encode(b.txdata[0].output[0].script_pubkey.as_bytes())
    };
    for (guest, view, input) in [
        (guests::SPENDABLES, "balance", script9.as_str()),
        (guests::MINIMAL, "getblock", ""),
    ] {
        let node = FakeNode::start(chain.clone());
        let dir = tempdir();
        let db = dir.path().join("db");
        let mut d = Daemon::start(
            guest,
            &db,
            &["--no-pow-check", "--daemon-rpc-url", &node.url()],
        );
        d.wait_for_height(300, Duration::from_secs(120));
        let pid = d.child.id();
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (peak, sampling) = (peak.clone(), sampling.clone());
            std::thread::spawn(move || {
                while sampling.load(Ordering::Relaxed) {
                    peak.fetch_max(common::proc_status_kib(pid, "VmRSS:"), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let h0 = d.height().unwrap_or(0);
        std::thread::sleep(Duration::from_secs(2));
        let idle_rate = f64::from(d.height().unwrap_or(0) - h0) / 2.0;
        println!(
            "`{view}` ({guest_name}): indexing alone {idle_rate:.0} blocks/s",
            guest_name = guest_name(guest)
        );
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "metashrew_view", "params": [view, input, "latest"]}).to_string();
        for clients in [1, 8] {
            let h0 = d.height().unwrap_or(0);
            let (latencies, bad) = load(d.port, &body, clients, WINDOW);
            let rate = f64::from(d.height().unwrap_or(0) - h0) / WINDOW.as_secs_f64();
            let calls = latencies.len() as f64 / WINDOW.as_secs_f64();
            let latency = Samples(latencies.into_iter().map(ms).collect());
            println!(
                "  {clients} client(s): {calls:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms, {bad} bad answers; indexing meanwhile {rate:.0} blocks/s",
                latency.median(),
                latency.quantile(0.99)
            );
        }
        sampling.store(false, Ordering::Relaxed);
        sampler.join().expect("sampler");
        println!(
            "  daemon resident memory while indexing and serving: peak {} MiB (VmHWM {} MiB)",
            peak.load(Ordering::Relaxed) / 1024,
            d.status_kib("VmHWM:") / 1024
        );
    }
}

/// Cheap calls timed in a loop for `window`: (method, latencies).
fn cheap_calls(port: u16, window: Duration) -> Vec<(&'static str, Samples)> {
    std::thread::spawn(move || cheap_calls_here(port, window))
        .join()
        .expect("cheap calls")
}

fn cheap_calls_here(port: u16, window: Duration) -> Vec<(&'static str, Samples)> {
    // The measuring client shares the daemon's two CPUs, where a real client (a gateway) runs on
    // its own host: so that its own wake-ups are not counted as the daemon's, it runs in the
    // real-time class when the benchmark may (root), else with the server's short time slice.
    let realtime = rockshrew::placement::Placement {
        class: rockshrew::placement::Class::Realtime,
        ..Default::default()
    };
    if realtime.apply_to_current_thread().is_err() {
        let short = rockshrew::placement::Placement {
            slice: Some(Duration::from_micros(100)),
            ..Default::default()
        };
        let _ = short.apply_to_current_thread();
    }
    // One keep-alive connection, as a client that polls would hold.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://127.0.0.1:{port}/");
    let call = |method: &str, params: &Value| -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut reply = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .expect("daemon answers");
        serde_json::from_str(&reply.body_mut().read_to_string().expect("body")).expect("JSON")
    };
    let calls: [(&str, Value); 3] = [
        ("metashrew_height", json!([])),
        ("metashrew_getblockhash", json!([100])),
        ("metashrew_stateroot", json!(["latest"])),
    ];
    let mut out: Vec<(&str, Vec<f64>)> = calls.iter().map(|(m, _)| (*m, Vec::new())).collect();
    let started = Instant::now();
    while started.elapsed() < window {
        for (i, (method, params)) in calls.iter().enumerate() {
            let t = Instant::now();
            let reply = call(method, params);
            assert!(reply["result"].is_string(), "{method}: {reply}");
            out[i].1.push(ms(t.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    out.into_iter().map(|(m, v)| (m, Samples(v))).collect()
}

/// Indexing heavy blocks while every view slot runs a heavy preview (the heavy block itself,
/// then `balance`): indexing speed with the views busy against its speed without them, and the
/// p99 of the cheap calls (height, block hash, state root) in both. Quiet and busy windows
/// alternate, so that the database's growth slows both alike. With the defaults (views at
/// SCHED_IDLE, the server's threads with a short time slice), with the server's threads in the
/// real-time class, without the short slice, and with the views at nice 19 (Metashrew's way) and
/// at 0 (the indexer's own priority).
///
/// `METASHREW_CONTENTION_ROUNDS` (default 3) sets the rounds; `METASHREW_CONTENTION=defaults`
/// runs the defaults alone and `METASHREW_CONTENTION=realtime` the real-time server alone (for
/// repeated runs of one).
fn contention(blocks: &[Vec<u8>]) {
    const WINDOW: Duration = Duration::from_secs(8);
    let rounds: usize = scale::env_or("METASHREW_CONTENTION_ROUNDS", 3);
    let only = std::env::var("METASHREW_CONTENTION").ok();
    const VIEW_SLOTS: usize = 16;
    println!(
        "\n## Contention: indexing heavy blocks (block {HEAVY_HEIGHT} relinked) with {VIEW_SLOTS} heavy previews in flight (`spendables`); {ROUNDS} rounds of a quiet and a busy {}-s window",
        WINDOW.as_secs(),
        ROUNDS = rounds
    );
    let heavy = heavy_block();
    let mut base = blocks.to_vec();
    base.push(heavy.clone());
    let chain = fork(&base, 256, 500);
    let preview = json!({"jsonrpc": "2.0", "id": 1, "method": "metashrew_preview",
        "params": [hex::encode(&heavy), "balance", hex::encode(metashrew_tests::fixtures::coinbase9_script()), "latest"]})
    .to_string();
    let placements: [&[&str]; 5] = [
        // The defaults: views at SCHED_IDLE, the server's threads with a 100 µs slice.
        &["--view-class", "idle"],
        &["--view-class", "idle", "--rpc-realtime"],
        &["--view-class", "idle", "--rpc-slice-us", "0"],
        // Metashrew's way: views at nice 19.
        &["--view-class", "normal", "--view-nice", "19"],
        &["--view-class", "normal", "--view-nice", "0"],
    ];
    let placements = match only.as_deref() {
        Some("defaults") => &placements[..1],
        Some("realtime") => &placements[1..2],
        _ => &placements[..],
    };
    for &placement in placements {
        let node = FakeNode::start(chain.clone());
        let dir = tempdir();
        let db = dir.path().join("db");
        let url = node.url();
        let mut args = vec!["--no-pow-check", "--daemon-rpc-url", url.as_str()];
        args.extend_from_slice(placement);
        let mut d = Daemon::start(guests::SPENDABLES, &db, &args);
        d.wait_for_height(262, Duration::from_secs(300));
        let (mut quiet, mut busy) = (Vec::new(), Vec::new());
        // method -> [quiet latencies, busy latencies]
        let mut calls: BTreeMap<&str, [Vec<f64>; 2]> = BTreeMap::new();
        let mut time_calls = |busy: usize| {
            for (method, latencies) in cheap_calls(d.port, WINDOW) {
                calls.entry(method).or_default()[busy].extend(latencies.0);
            }
        };
        let (mut previews, mut bad) = (Vec::new(), 0);
        for _ in 0..rounds {
            let h0 = d.height().unwrap_or(0);
            time_calls(0);
            quiet.push(f64::from(d.height().unwrap_or(0) - h0) / WINDOW.as_secs_f64());
            let views = {
                let (port, body) = (d.port, preview.clone());
                std::thread::spawn(move || load(port, &body, VIEW_SLOTS, WINDOW))
            };
            let h0 = d.height().unwrap_or(0);
            time_calls(1);
            busy.push(f64::from(d.height().unwrap_or(0) - h0) / WINDOW.as_secs_f64());
            let (latencies, failed) = views.join().expect("views");
            previews.extend(latencies.into_iter().map(ms));
            bad += failed;
            // The given-up previews are cancelled by the daemon within ~100 ms.
            std::thread::sleep(Duration::from_millis(300));
        }
        let (quiet, busy) = (Samples(quiet), Samples(busy));
        let previews = Samples(previews);
        println!(
            "{}: indexing {} blocks/s quiet, {} with the views busy ({:.0}% of quiet, medians); previews p50 {:.0} ms ({} calls, {bad} failed or given up at the window's end)",
            placement.join(" "),
            quiet.show(2),
            busy.show(2),
            100.0 * busy.median() / quiet.median().max(1e-9),
            previews.median(),
            previews.0.len()
        );
        for (method, [quiet, busy]) in calls {
            let (quiet, busy) = (Samples(quiet), Samples(busy));
            println!(
                "  {method}: p50/p99 {:.2}/{:.2} ms quiet, {:.2}/{:.2} ms busy",
                quiet.median(),
                quiet.quantile(0.99),
                busy.median(),
                busy.quantile(0.99)
            );
        }
    }
}

/// How far past its deadline a view runs, in-process: a loop in guest code (`spin`), a loop of
/// host calls (`chatter`), and 256 MiB filled per instruction (`fill`), under a 100 ms limit;
/// and how long a cancelled `spin` takes to stop.
fn deadlines(blocks: &[Vec<u8>]) {
    use metashrew_runtime::Cancellation;
    use metashrew_storage::MemStore;
    const LIMIT: Duration = Duration::from_millis(100);
    println!(
        "\n## View deadlines: time past a 100 ms limit, and from a cancellation to the stop (ms, 10 runs)"
    );
    let config = RuntimeConfig {
        view_timeout: LIMIT,
        ..RuntimeConfig::default()
    };
    let rt = Arc::new(
        MetashrewRuntime::from_bytes(
            &common::hostile_views_wasm(),
            Arc::new(MemStore::new()),
            config,
        )
        .expect("loads"),
    );
    rt.process_block(0, &blocks[0]).expect("block 0");
    for view in ["spin", "chatter", "fill"] {
        let past = Samples(
            (0..10)
                .map(|_| {
                    let started = Instant::now();
                    assert!(rt.view(view, &[], 0).is_err());
                    ms(started.elapsed()) - ms(LIMIT)
                })
                .collect(),
        );
        println!("`{view}`: {} ms past the limit", past.show(1));
    }
    let stops = Samples(
        (0..10)
            .map(|_| {
                let cancel = Cancellation::new();
                let call = {
                    let (rt, cancel) = (rt.clone(), cancel.clone());
                    std::thread::spawn(move || rt.view_with("spin", &[], 0, &cancel).is_err())
                };
                std::thread::sleep(Duration::from_millis(30));
                let cancelled = Instant::now();
                cancel.cancel();
                assert!(call.join().expect("view thread"));
                ms(cancelled.elapsed())
            })
            .collect(),
    );
    println!(
        "cancelled `spin`: stopped {} ms after the cancellation",
        stops.show(1)
    );
}

/// The proof-of-work check's cost per block: mainnet 0..255 (each with its previous header)
/// and the heavy block's header, checked in a loop.
fn pow(blocks: &[Vec<u8>]) {
    use rockshrew::pow::{Chain, HeaderStore, Rules, header_of};
    struct Previous(Vec<bitcoin::block::Header>);
    impl HeaderStore for Previous {
        fn header(
            &self,
            height: u32,
        ) -> Result<Option<bitcoin::block::Header>, metashrew_storage::StorageError> {
            Ok(self.0.get(height as usize).copied())
        }
    }
    println!("\n## Proof-of-work check per block (mainnet 0..255, 200 rounds)");
    let rules = Rules::new(Chain::Main);
    let known = Previous(
        blocks
            .iter()
            .map(|b| header_of(b).expect("header"))
            .collect(),
    );
    let mut per_block = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        for (h, block) in blocks.iter().enumerate() {
            rules
                .check(h as u32, block, &known)
                .expect("real blocks pass");
        }
        per_block.push(started.elapsed().as_secs_f64() * 1e6 / blocks.len() as f64);
    }
    println!("{} µs per block", Samples(per_block).show(2));
}

/// Read replicas of a primary indexing a long chain: the primary's speed alone and with two
/// replicas; view latency and throughput on the primary and on a replica; the replica's lag
/// from the primary showing a height over RPC to the replica showing it.
fn replicas(blocks: &[Vec<u8>]) {
    const WINDOW: Duration = Duration::from_secs(4);
    println!(
        "\n## Read replicas (`spendables`, fake node, mainnet 0..255 + 60,000 linked copies of block 255)"
    );
    let chain = fork(blocks, 256, 60_000);
    let node = FakeNode::start(chain);
    let dir = tempdir();
    let db = dir.path().join("db");
    let mut primary = Daemon::start(
        guests::SPENDABLES,
        &db,
        &["--no-pow-check", "--daemon-rpc-url", &node.url()],
    );
    primary.wait_for_height(300, Duration::from_secs(120));
    let rate = |d: &Daemon| {
        let h0 = d.height().unwrap_or(0);
        std::thread::sleep(WINDOW);
        f64::from(d.height().unwrap_or(0) - h0) / WINDOW.as_secs_f64()
    };
    println!("primary alone: {:.0} blocks/s", rate(&primary));
    let db_arg = db.to_str().expect("path").to_string();
    let mut replicas: Vec<Daemon> = ["r1", "r2"]
        .iter()
        .map(|name| {
            Daemon::start(
                guests::SPENDABLES,
                &dir.path().join(name),
                &["--replica-of", &db_arg],
            )
        })
        .collect();
    for r in &mut replicas {
        r.wait_for_height(300, Duration::from_secs(120));
    }
    println!(
        "primary with 2 replicas following: {:.0} blocks/s",
        rate(&primary)
    );

    // Lag: when each height first shows on the primary, and then on the replica.
    let (primary_client, replica_client) = (primary.client(), replicas[0].client());
    let mut seen_primary = BTreeMap::new();
    let mut lags = Vec::new();
    let started = Instant::now();
    while started.elapsed() < WINDOW {
        let now = Instant::now();
        if let Some(h) = primary_client.height() {
            seen_primary.entry(h).or_insert(now);
        }
        if let Some(h) = replica_client.height() {
            let caught: Vec<u32> = seen_primary.range(..=h).map(|(h, _)| *h).collect();
            for c in caught {
                if let Some(at) = seen_primary.remove(&c) {
                    lags.push(ms(now.duration_since(at)));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let lags = Samples(lags);
    println!(
        "replica lag (default --replica-interval-ms 200), primary's RPC to replica's RPC: p50 {:.0} ms, p99 {:.0} ms over {} heights",
        lags.median(),
        lags.quantile(0.99),
        lags.0.len()
    );

    let script9 = hex::encode(metashrew_tests::fixtures::coinbase9_script());
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "metashrew_view", "params": ["balance", script9, "latest"]}).to_string();
    for (name, port) in [("primary", primary.port), ("replica", replicas[0].port)] {
        for clients in [1, 8] {
            let (latencies, bad) = load(port, &body, clients, WINDOW);
            let calls = latencies.len() as f64 / WINDOW.as_secs_f64();
            let latency = Samples(latencies.into_iter().map(ms).collect());
            println!(
                "  views on the {name}, {clients} client(s): {calls:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms, {bad} bad answers",
                latency.median(),
                latency.quantile(0.99)
            );
        }
    }
    let (_, metrics) = replicas[0].get("/metrics");
    let reopens = metrics
        .lines()
        .find(|l| l.starts_with("rockshrew_replica_reopens_total"))
        .unwrap_or("rockshrew_replica_reopens_total ?");
    println!("  replica: {reopens} (fresh instances after primary flushes)");
}

fn guest_name(path: &str) -> &str {
    Path::new(path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(path)
}

/// Commits `blocks` synthetic blocks of `per_block` random 32-byte keys (plus `extra` on every
/// block) to a fresh store.
fn synthetic(store: &Store, from: u32, blocks: u32, per_block: u32, extra: &[u8]) {
    let tip = store.tip().expect("tip");
    let mut root = tip
        .and_then(|t| store.state_root(t).expect("root"))
        .unwrap_or_default();
    for height in from..from + blocks {
        let mut writes: Vec<(Vec<u8>, Vec<u8>)> = (0..per_block)
            .map(|i| {
                let key = sha256(&[height.to_be_bytes(), i.to_be_bytes()].concat()).to_vec();
                (key, height.to_le_bytes().repeat(8))
            })
            .collect();
        if !extra.is_empty() {
            writes.push((extra.to_vec(), height.to_le_bytes().to_vec()));
        }
        writes.sort();
        root = commit(
            store,
            &root,
            height,
            BlockHash::from_bytes(sha256(&height.to_be_bytes())),
            writes,
        );
    }
}

/// Commits sorted `writes` as block `height` over `parent`, as the runtime does; returns the root.
fn commit(
    store: &Store,
    parent: &StateRoot,
    height: u32,
    hash: BlockHash,
    writes: Vec<(Vec<u8>, Vec<u8>)>,
) -> StateRoot {
    let commit = BlockCommit::chained(height, hash, parent, writes);
    store.commit_block(&commit).expect("commit");
    *commit.state_root()
}

fn time_reads(store: &RocksStore, key: &[u8], height: u32, expect: &[u8]) -> Samples {
    let mut samples = Vec::new();
    for _ in 0..20_000 {
        let started = Instant::now();
        let value = store.get_at(key, height).expect("read");
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        assert_eq!(value.as_deref(), Some(expect));
    }
    Samples(samples)
}

/// Reads of a key with 5,000 versions: at the tip and deep in history.
fn history() {
    const VERSIONS: u32 = 5_000;
    println!(
        "\n## Historical reads on RocksDB: one key with {VERSIONS} versions among 100 other writes per block, 20,000 reads each (µs)"
    );
    let dir = tempdir();
    let store = open_store(dir.path(), b"history");
    let key = b"/hot/key";
    synthetic(&store, 0, VERSIONS, 100, key);
    let rocks = store.inner().inner();
    for (what, height) in [
        ("at the tip", VERSIONS - 1),
        ("half-way back", VERSIONS / 2),
        ("deep (height 10)", 10),
    ] {
        let s = time_reads(rocks, key, height, &height.to_le_bytes());
        println!("{what}: p50 {:.1} p99 {:.1}", s.median(), s.quantile(0.99));
    }
}

/// Rollbacks of 1 and 6 blocks on a small and on a large database.
fn rollback() {
    println!("\n## Rollback on RocksDB (100 writes per block), 5 runs each (ms)");
    for (label, blocks) in [
        ("small: 300 blocks", 300u32),
        ("large: 20,000 blocks", 20_000),
    ] {
        let dir = tempdir();
        let store = open_store(dir.path(), b"rollback");
        synthetic(&store, 0, blocks, 100, b"");
        let tip = blocks - 1;
        for depth in [1u32, 6] {
            let mut samples = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                store.rollback_to(tip - depth).expect("rollback");
                samples.push(ms(started.elapsed()));
                synthetic(&store, tip - depth + 1, depth, 100, b"");
            }
            println!(
                "{label} ({} keys), {depth} block(s): {}",
                blocks * 100,
                Samples(samples).show(2)
            );
        }
    }
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    println!(
        "rockshrew benchmark on {} CPU(s)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let blocks = mainnet_blocks();
    if run("overhead") {
        overhead(&blocks);
    }
    if run("heavy") {
        heavy();
    }
    if run("assemblyscript") {
        assemblyscript();
    }
    if run("daemon") {
        daemon(&blocks);
    }
    if run("views") {
        views(&blocks);
    }
    if run("contention") {
        contention(&blocks);
    }
    if run("deadlines") {
        deadlines(&blocks);
    }
    if run("pow") {
        pow(&blocks);
    }
    if run("replicas") {
        replicas(&blocks);
    }
    if run("history") {
        history();
    }
    if run("rollback") {
        rollback();
    }
    if run("indexers") {
        indexers::indexers(&blocks);
    }
    // Minutes long, or needing settings: only when named.
    let named: [(&str, fn()); 6] = [
        ("scale", scale::scale),
        ("sync", scale::daemon_sync),
        ("projection", scale::projection),
        ("ab", ab::ab),
        ("flat", ab::flat),
        ("bounded", bounded::bounded),
    ];
    for (name, section) in named {
        if wanted.iter().any(|w| w == name) {
            section();
        }
    }
}

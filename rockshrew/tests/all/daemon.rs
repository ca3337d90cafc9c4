//! The daemon end to end: bundled mainnet blocks from a file, a fake Bitcoin Core that reorgs,
//! lies and fails, the JSON-RPC surface, metrics, signals, restarts.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::{Daemon, FIXTURE, FakeNode, coinbase9_script_hex, fork, reference_roots};
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);
fn balance(daemon: &Daemon, height: Value) -> u64 {
    let reply = daemon.call(
        "metashrew_view",
        json!(["balance", coinbase9_script_hex(), height]),
    );
    let hex = reply["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{reply}"));
    let bytes = hex::decode(hex.trim_start_matches("0x")).expect("hex");
    u64::from_le_bytes(bytes.try_into().expect("u64"))
}

use common::roots_over_rpc as roots;

#[test]
fn indexes_the_bundled_blocks_serves_json_rpc_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut d = Daemon::start(guests::SPENDABLES, &db, &["--blocks-file", FIXTURE]);
    d.wait_for_height(255, WAIT);

    assert_eq!(balance(&d, json!("169")), 50 * 100_000_000);
    assert_eq!(balance(&d, json!(170)), 40 * 100_000_000);
    assert_eq!(d.call("metashrew_height", json!([]))["result"], "255");
    assert_eq!(
        d.call("metashrew_getblockhash", json!([255]))["result"],
        "0x00000000d0a75c861fabf9ff7b92022f60e4afeed9331fe5aa073d8e4706fe3c"
    );
    let root = d.call("metashrew_stateroot", json!(["latest"]))["result"].clone();
    assert_eq!(root.as_str().map(str::len), Some(66));

    // Errors: standard codes, useful messages, never a crash.
    assert_eq!(d.post("{not json")["error"]["code"], -32700);
    assert_eq!(d.post("[]")["error"]["code"], -32600);
    assert_eq!(d.post("42")["error"]["code"], -32600);
    assert_eq!(d.call("nope", json!([]))["error"]["code"], -32601);
    assert_eq!(
        d.call("metashrew_view", json!(["balance"]))["error"]["code"],
        -32602
    );
    assert_eq!(
        d.call("metashrew_view", json!(["balance", "zz", "latest"]))["error"]["code"],
        -32602
    );
    assert_eq!(
        d.call("metashrew_view", json!(["balance", "00", 256]))["error"]["code"],
        -32602
    );
    assert_eq!(
        d.call("metashrew_view", json!(["no_such_view", "00", 1]))["error"]["code"],
        -32602
    );
    assert_eq!(
        d.call("metashrew_getblockhash", json!(["x"]))["error"]["code"],
        -32602
    );
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    assert_eq!(d.post(&deep)["error"]["code"], -32700);
    // Batches answer each entry, in order, with its id.
    let batch = d.post(
        &json!([
            {"jsonrpc": "2.0", "id": "a", "method": "metashrew_height"},
            {"jsonrpc": "2.0", "id": 7, "method": "nope"},
            {"jsonrpc": "2.0", "id": null, "method": "metashrew_getblockhash", "params": [0]}
        ])
        .to_string(),
    );
    assert_eq!(batch[0]["id"], "a");
    assert_eq!(batch[0]["result"], "255");
    assert_eq!(batch[1]["error"]["code"], -32601);
    assert_eq!(
        batch[2]["result"],
        "0x000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    );
    // Previewing block 255 again on top of 254 changes nothing stored.
    let block255 = hex::encode(&mainnet_blocks()[255]);
    let preview = d.call(
        "metashrew_preview",
        json!([block255, "balance", coinbase9_script_hex(), 254]),
    );
    assert!(preview["result"].as_str().is_some(), "{preview}");
    assert_eq!(
        d.call("metashrew_stateroot", json!(["latest"]))["result"],
        root
    );

    let (code, metrics) = d.get("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("rockshrew_indexed_height 255"),
        "{metrics}"
    );
    assert!(metrics.contains("rockshrew_block_phase_seconds_bucket{phase=\"guest\""));
    assert!(metrics.contains("rockshrew_view_seconds_count"));

    d.signal("-TERM");
    assert_eq!(
        d.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        d.log_text()
    );

    // A restart resumes after the tip: nothing is indexed twice, the root is the same.
    let mut again = Daemon::start(guests::SPENDABLES, &db, &["--blocks-file", FIXTURE]);
    again.wait_for_height(255, WAIT);
    assert_eq!(
        again.call("metashrew_stateroot", json!(["latest"]))["result"],
        root
    );
    let (status, metrics) = again.get("/metrics");
    assert_eq!(status, 200);
    let committed = metrics
        .lines()
        .find(|l| l.contains("blocks_indexed_total") && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no blocks_indexed_total in {metrics}"));
    assert_eq!(committed, "0", "the restart indexed blocks again");
    // 255 blocks behind at the start (the default --bulk-sync-behind is 144): the store was
    // written with its bulk settings, and with its tip settings again near the end.
    let first_log = d.log_text();
    let bulk = first_log.find("the store uses its Bulk settings");
    let tip = first_log.find("the store uses its Tip settings");
    assert!(bulk.is_some() && bulk < tip, "{first_log}");
    // The first start compiled the module and kept it beside the database; the restart
    // loaded it from there.
    assert!(
        d.log_text().contains("compiled-module cache: Miss"),
        "{}",
        d.log_text()
    );
    assert!(
        again.log_text().contains("compiled-module cache: Hit"),
        "{}",
        again.log_text()
    );
    drop(again);

    // Another indexer on the same database is refused with a clear message.
    let mut other = Daemon::start(guests::MINIMAL, &db, &["--blocks-file", FIXTURE]);
    assert_eq!(other.wait_exit(Duration::from_secs(20)), Some(1));
    assert!(
        other.log_text().contains("written by another indexer"),
        "{}",
        other.log_text()
    );
}

#[test]
fn follows_a_node_through_faults_lies_and_a_reorg() {
    let blocks = mainnet_blocks();
    let node = FakeNode::start(blocks[..=200].to_vec());
    // The node starts out unavailable, and lies about block 120 twice.
    node.faults
        .unavailable
        .store(3, std::sync::atomic::Ordering::SeqCst);
    node.faults
        .lie_height
        .store(120, std::sync::atomic::Ordering::SeqCst);
    node.faults
        .lies_left
        .store(2, std::sync::atomic::Ordering::SeqCst);

    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &dir.path().join("db"),
        &[
            // The reorganisations below are forged branches, with no proof of work.
            "--no-pow-check",
            "--daemon-rpc-url",
            &node.url(),
            "--auth",
            "user:pass",
            "--max-reorg-depth",
            "20",
        ],
    );
    d.wait_for_height(200, WAIT);
    let log = d.log_text();
    assert!(
        log.contains("retrying"),
        "transient failures are logged: {log}"
    );
    assert!(
        log.contains("does not hash to the announced"),
        "lies are detected: {log}"
    );
    assert_eq!(
        d.call("metashrew_getblockhash", json!([120]))["result"],
        format!(
            "0x{}",
            hex::encode({
                let b: bitcoin::Block = bitcoin::consensus::deserialize(&blocks[120]).unwrap();
                let mut h = bitcoin::hashes::Hash::to_byte_array(b.block_hash());
                h.reverse();
                h
            })
        )
    );

    // The node grows, then reorganises: 225.. is replaced by a longer branch.
    node.set_chain(blocks[..=230].to_vec());
    d.wait_for_height(230, WAIT);
    // Views and roots pinned to a block by its hash, with or without 0x, answer for it.
    let hash_228 = d.call("metashrew_getblockhash", json!([228]))["result"]
        .as_str()
        .unwrap()
        .to_string();
    let bare_228 = hash_228.trim_start_matches("0x").to_string();
    assert_eq!(balance(&d, json!(hash_228)), balance(&d, json!(228)));
    assert_eq!(
        d.call("metashrew_stateroot", json!([bare_228]))["result"],
        d.call("metashrew_stateroot", json!([228]))["result"]
    );
    let unknown = format!("0x{}", "ab".repeat(32));
    let reply = d.call(
        "metashrew_view",
        json!(["balance", coinbase9_script_hex(), unknown]),
    );
    assert_eq!(reply["error"]["code"], -32003, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown")
    );
    let branch = fork(&blocks[..=230], 225, 3);
    node.set_chain(branch.clone());
    d.wait_for_height(233, WAIT);
    let log = d.log_text();
    assert!(log.contains("chain reorganisation: rolling back"), "{log}");
    // The block the pinned calls named was reorganised away, and they say so.
    let reply = d.call(
        "metashrew_view",
        json!(["balance", coinbase9_script_hex(), hash_228]),
    );
    assert_eq!(reply["error"]["code"], -32003, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("at height 228, and a reorganisation replaced it"),
        "{message}"
    );
    let (_, metrics) = d.get("/metrics");
    assert!(metrics.contains("rockshrew_reorgs_total 1"), "{metrics}");

    // A daemon that only ever saw the branch has the same roots at every height.
    let dir2 = tempfile::tempdir().unwrap();
    let mut fresh = Daemon::start(
        guests::SPENDABLES,
        &dir2.path().join("db"),
        &["--no-pow-check", "--daemon-rpc-url", &node.url()],
    );
    fresh.wait_for_height(233, WAIT);
    assert_eq!(roots(&d, 233), roots(&fresh, 233));
    drop(fresh);

    // A reorg deeper than --max-reorg-depth stops the daemon with a clear error.
    node.set_chain(fork(&blocks[..=230], 150, 10));
    assert_eq!(d.wait_exit(WAIT), Some(1), "{}", d.log_text());
    assert!(
        d.log_text().contains("deeper than --max-reorg-depth 20"),
        "{}",
        d.log_text()
    );
}

#[test]
fn a_flaky_node_that_resets_sends_bad_hex_and_changes_hashes_is_never_indexed_wrongly() {
    use std::sync::atomic::Ordering::SeqCst;
    let node = FakeNode::start(mainnet_blocks());
    node.faults.resets.store(4, SeqCst);
    node.faults.bad_hex.store(6, SeqCst);
    node.faults.hash_flips.store(3, SeqCst);
    node.faults.lie_height.store(77, SeqCst);
    node.faults.lies_left.store(1, SeqCst);
    node.faults.delay_ms.store(1, SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &dir.path().join("db"),
        &["--daemon-rpc-url", &node.url()],
    );
    d.wait_for_height(255, WAIT);
    let log = d.log_text();
    assert!(log.contains("invalid hex"), "bad hex is detected: {log}");
    assert!(log.contains("retrying"), "resets are retried: {log}");
    assert!(log.contains("does not hash to the announced"), "{log}");
    for fault in [
        &node.faults.resets,
        &node.faults.bad_hex,
        &node.faults.hash_flips,
    ] {
        assert_eq!(fault.load(SeqCst), 0, "every fault was served");
    }
    assert_eq!(roots(&d, 255), reference_roots());
}

#[test]
fn kill_9_at_any_point_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // A slow node (3 ms per request, one block in flight) so that the kills land mid-sync.
    let node = FakeNode::start(mainnet_blocks());
    node.faults
        .delay_ms
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let url = node.url();
    let args = ["--daemon-rpc-url", url.as_str(), "--fetch-workers", "1"];
    let mut tips = Vec::new();
    for target in [20u32, 60, 110, 170, 230] {
        let mut d = Daemon::start(guests::SPENDABLES, &db, &args);
        // Kill as soon as the target is passed: the sync is in full flight.
        d.wait_for_height(target, WAIT);
        d.signal("-KILL");
        d.wait_exit(Duration::from_secs(10));
        let store = rockshrew::store::RocksStore::open_read_only(&db, None).expect("db opens");
        tips.push(metashrew_storage::Storage::tip(&store).expect("tip"));
    }
    eprintln!("tips after each kill -9: {tips:?}");
    let mid_sync = tips
        .iter()
        .filter(|t| matches!(t, Some(h) if *h < 255))
        .count();
    assert!(mid_sync >= 2, "kills must land mid-sync: {tips:?}");
    // Also a clean stop at a fixed height.
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &db,
        &[&args[..], &["--exit-at", "200"]].concat(),
    );
    assert_eq!(d.wait_exit(WAIT), Some(0), "{}", d.log_text());
    let mut d = Daemon::start(guests::SPENDABLES, &db, &args);
    d.wait_for_height(255, WAIT);
    assert_eq!(roots(&d, 255), reference_roots());
}

#[test]
fn views_are_served_while_the_block_files_are_still_being_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &db,
        &["--blocks-file", FIXTURE, "--exit-at", "200"],
    );
    assert_eq!(d.wait_exit(WAIT), Some(0), "{}", d.log_text());
    // A block file whose scan cannot finish: a FIFO that no one writes, so the daemon's open of
    // it waits for ever (as a scan of a whole chain on a cold disk takes seconds).
    let stuck = dir.path().join("blk00000.dat");
    let made = std::process::Command::new("mkfifo")
        .arg(&stuck)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let stuck_arg = stuck.to_str().unwrap();
    let mut d = Daemon::start(guests::SPENDABLES, &db, &["--blocks-file", stuck_arg]);
    d.wait_for_height(200, WAIT);
    assert_eq!(balance(&d, json!(169)), 50 * 100_000_000);
    assert_eq!(balance(&d, json!(170)), 40 * 100_000_000);
    assert_eq!(roots(&d, 200), reference_roots()[..=200]);
    let log = d.log_text();
    assert!(
        !log.contains("blocks on the chain"),
        "the scan ended:\n{log}"
    );
    assert_eq!(d.child.try_wait().ok().flatten(), None, "{log}");
}

#[test]
fn a_host_that_cannot_back_guest_memory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // 3 GiB of address space: less than one guest memory reservation needs.
    let db_arg = db.display().to_string();
    let out = common::run_limited(
        "ulimit -v 3145728",
        &[
            "--indexer",
            guests::SPENDABLES,
            "--db-path",
            &db_arg,
            "--blocks-file",
            FIXTURE,
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("cannot instantiate the guest"), "{log}");
    // Nothing was indexed.
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &db,
        &["--blocks-file", FIXTURE, "--exit-at", "0"],
    );
    assert_eq!(d.wait_exit(WAIT), Some(0), "{}", d.log_text());
    assert!(d.log_text().contains("empty"), "{}", d.log_text());
}

#[test]
fn probe_addresses_are_the_same_across_processes_and_instance_modes() {
    let mut reports = Vec::new();
    for mode in ["fresh", "persistent", "fresh"] {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Daemon::start(
            guests::PROBE,
            &dir.path().join("db"),
            &["--blocks-file", FIXTURE, "--instance-mode", mode],
        );
        d.wait_for_height(255, WAIT);
        let report: Vec<String> = [1u32, 2, 20, 40]
            .iter()
            .map(|h| {
                let r = d.call("metashrew_view", json!(["report", "", h]))["result"].clone();
                let words =
                    hex::decode(r.as_str().expect("report").trim_start_matches("0x")).unwrap();
                // Skip the cache hit/miss counters: only addresses and sizes must agree.
                hex::encode(&words[8..])
            })
            .collect();
        reports.push(report);
    }
    eprintln!("probe reports (heights 1, 2, 20, 40): {:?}", reports[0]);
    assert_eq!(reports[0], reports[1], "fresh vs persistent");
    assert_eq!(reports[0], reports[2], "two processes");
}

/// A database of many SST files: `namespaces` namespaces of one flushed block each (every
/// column family of each holds a file).
fn many_sst_files(db: &std::path::Path, namespaces: usize) -> usize {
    use metashrew_storage::Storage;
    use rockshrew::store::{IndexIdentity, RocksStore};
    let identity = IndexIdentity {
        module_hash: [7; 32],
        max_memory_bytes: 1 << 30,
        max_wasm_stack_bytes: 1 << 20,
    };
    for n in 0..namespaces {
        let store = RocksStore::open(db, Some(&format!("filler{n}")), &identity, false).unwrap();
        let commit = metashrew_storage::BlockCommit::new(
            0,
            metashrew_storage::BlockHash::from_bytes([1; 32]),
            metashrew_storage::StateRoot::from_bytes([2; 32]),
            vec![(b"k".to_vec(), b"v".to_vec())],
        );
        store.commit_block(&commit).unwrap();
        store.flush().unwrap();
    }
    std::fs::read_dir(db)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sst")
        })
        .count()
}

#[test]
fn a_low_open_file_limit_is_raised_and_budgeted_or_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let files = many_sst_files(&db, 70);
    assert!(files > 320, "{files} SST files");
    let db_arg = db.display().to_string();
    let args = [
        "--indexer",
        guests::SPENDABLES,
        "--db-path",
        &db_arg,
        "--blocks-file",
        FIXTURE,
        "--max-connections",
        "64",
    ];

    // A hard limit below what the daemon needs: refused at once, saying what is missing.
    let refused = common::run_limited("ulimit -n 200", &args);
    let log = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{log}");
    assert!(log.contains("the open-file limit is 200"), "{log}");
    assert!(log.contains("at least 256"), "{log}");

    // A soft limit of 100 under a hard one of 320, with more SST files than that: the daemon
    // raises the soft limit, gives RocksDB its share (128), and syncs every block while 64
    // clients (its --max-connections) hold connections open and are answered.
    let mut d = Daemon::start_under(
        "ulimit -n 320; ulimit -Sn 100",
        guests::SPENDABLES,
        &db,
        &["--blocks-file", FIXTURE, "--max-connections", "64"],
    );
    d.wait_for_height(0, WAIT);
    // Each client connects and is answered while the sync goes on, and keeps its connection.
    let request = r#"{"jsonrpc":"2.0","id":1,"method":"metashrew_height","params":[]}"#;
    let clients: Vec<std::net::TcpStream> = (0..64)
        .map(|i| {
            use std::io::{Read, Write};
            let mut client = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
            write!(
                client,
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{request}",
                request.len()
            )
            .unwrap();
            client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut reply = [0u8; 1024];
            let n = client.read(&mut reply).unwrap_or_else(|e| panic!("client {i}: {e}"));
            let reply = String::from_utf8_lossy(&reply[..n]);
            assert!(reply.contains("\"result\""), "client {i}: {reply}");
            client
        })
        .collect();
    d.wait_for_height(255, WAIT);
    drop(clients);
    let log = d.log_text();
    assert!(
        log.contains("open-file limit raised from 100 to 320"),
        "{log}"
    );
    assert!(log.contains("128 for RocksDB's files"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
    assert_eq!(balance(&d, json!(170)), 40 * 100_000_000);
}

/// The `/metrics` count of blocks refused by the proof-of-work checks.
fn pow_refused(daemon: &Daemon) -> u64 {
    let (_, metrics) = daemon.get("/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("rockshrew_pow_refused_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits until the daemon has refused at least `count` blocks.
fn wait_for_refusals(daemon: &Daemon, count: u64) {
    let started = std::time::Instant::now();
    while pow_refused(daemon) < count {
        assert!(
            started.elapsed() < WAIT,
            "no refusal:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn display_hash(block: &[u8]) -> String {
    let header: bitcoin::block::Header = bitcoin::consensus::deserialize(&block[..80]).unwrap();
    header.block_hash().to_string()
}

#[test]
fn unworked_blocks_and_branches_are_refused_and_nothing_of_them_is_indexed() {
    let blocks = mainnet_blocks();
    let node = FakeNode::start(blocks[..=200].to_vec());
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &dir.path().join("db"),
        &["--daemon-rpc-url", &node.url()],
    );
    d.wait_for_height(200, WAIT);
    let ours = roots(&d, 200);
    let hash_195 = d.call("metashrew_getblockhash", json!([195]));

    // A longer branch replacing 190.., linked but never mined, served as a reorganisation.
    let branch = fork(&blocks[..=200], 190, 5);
    node.set_chain(branch.clone());
    wait_for_refusals(&d, 1);
    let log = d.log_text();
    let refused = format!(
        "block 190 ({}) is refused: its hash is above the target of its nBits 0x1d00ffff",
        display_hash(&branch[190])
    );
    assert!(log.contains(&refused), "{log}");
    assert!(log.contains("nothing is rolled back"), "{log}");
    assert!(!log.contains("rolling back"), "{log}");

    // A next block that links to our tip but carries no work.
    let mut forged = blocks[..=201].to_vec();
    forged[201][76..80].copy_from_slice(&7u32.to_le_bytes());
    node.set_chain(forged.clone());
    wait_for_refusals(&d, pow_refused(&d) + 1);
    let log = d.log_text();
    assert!(
        log.contains(&format!(
            "block 201 ({}) is refused",
            display_hash(&forged[201])
        )),
        "{log}"
    );
    assert_eq!(d.height(), Some(200));
    assert_eq!(roots(&d, 200), ours);
    assert_eq!(d.call("metashrew_getblockhash", json!([195])), hash_195);

    // The real chain goes on.
    node.set_chain(blocks.clone());
    d.wait_for_height(255, WAIT);
    assert_eq!(roots(&d, 255), reference_roots());
}

#[test]
fn blocks_of_another_network_or_with_the_wrong_difficulty_are_refused() {
    use bitcoin::CompactTarget;
    use bitcoin::block::Header;
    let text = std::fs::read_to_string(metashrew_tests::fixtures::REGTEST_0_206_PATH).unwrap();
    let regtest: Vec<Vec<u8>> = text.lines().map(|l| hex::decode(l).unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();

    // Mainnet's rules by default: regtest's genesis is not worked enough for them. Asking
    // again cannot cure that: the daemon stops with the flag to pass.
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &dir.path().join("main"),
        &[
            "--blocks-file",
            metashrew_tests::fixtures::REGTEST_0_206_PATH,
        ],
    );
    assert_eq!(d.wait_exit(WAIT), Some(1), "{}", d.log_text());
    let log = d.log_text();
    assert!(
        log.contains(&format!(
            "block 0 ({}) is refused: its nBits 0x207fffff is above the network's proof-of-work limit; nothing of it is indexed. block 0 has nBits 0x207fffff: it is of regtest, not of main (--network main): pass --network regtest",
            display_hash(&regtest[0])
        )),
        "{log}"
    );
    drop(d);

    // Mainnet's genesis is worked enough for regtest's rules, but it is not regtest's genesis.
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &dir.path().join("regtest-of-mainnet"),
        &["--network", "regtest", "--blocks-file", FIXTURE],
    );
    assert_eq!(d.wait_exit(WAIT), Some(1), "{}", d.log_text());
    let log = d.log_text();
    assert!(
        log.contains(&format!(
            "block 0 ({}) is refused: it is not the genesis block of regtest ({}); nothing of it is indexed. block 0 is the genesis block of main, not of regtest (--network regtest): pass --network main",
            display_hash(&mainnet_blocks()[0]),
            display_hash(&regtest[0])
        )),
        "{log}"
    );
    drop(d);

    // Block 207 mined at a harder target than regtest's: its work is done, its nBits is wrong.
    let parent: Header = bitcoin::consensus::deserialize(&regtest[206][..80]).unwrap();
    let mut header = Header {
        prev_blockhash: parent.block_hash(),
        bits: CompactTarget::from_consensus(0x2000ffff),
        time: parent.time + 600,
        ..parent
    };
    while !header.target().is_met_by(header.block_hash()) {
        header.nonce += 1;
    }
    let mut wrong = bitcoin::consensus::serialize(&header);
    wrong.extend_from_slice(&regtest[206][80..]);
    let file = dir.path().join("regtest.hex");
    let mut lines: Vec<String> = regtest.iter().map(hex::encode).collect();
    lines.push(hex::encode(&wrong));
    std::fs::write(&file, lines.join("\n")).unwrap();

    let mut d = Daemon::start(
        guests::SPENDABLES,
        &dir.path().join("regtest"),
        &[
            "--network",
            "regtest",
            "--blocks-file",
            file.to_str().unwrap(),
        ],
    );
    d.wait_for_height(206, WAIT);
    wait_for_refusals(&d, 1);
    let log = d.log_text();
    assert!(
        log.contains(&format!(
            "block 207 ({}) is refused: its nBits 0x2000ffff is not the 0x207fffff the difficulty rules give",
            header.block_hash()
        )),
        "{log}"
    );
    assert_eq!(d.height(), Some(206));
}

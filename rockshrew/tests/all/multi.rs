//! Several indexers in one daemon: one block source, one database, each indexer its own
//! namespace, roots, failure and endpoint.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::common::{self, Daemon, FIXTURE, FakeNode, fork, roots_with};
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(180);

/// The three indexers of these tests, by label.
const THREE: [(&str, &str); 3] = [
    ("minimal", guests::MINIMAL),
    ("spendables", guests::SPENDABLES),
    ("compat", guests::COMPAT),
];

fn indexer_args(indexers: &[(&str, &str)]) -> Vec<String> {
    indexers
        .iter()
        .flat_map(|(label, path)| ["--indexer".to_string(), format!("{label}={path}")])
        .collect()
}

/// Starts a daemon over `indexers` (the first through `Daemon::start`'s own `--indexer`).
fn start(indexers: &[(&str, &str)], db: &std::path::Path, extra: &[&str]) -> Daemon {
    let (first, rest) = indexers.split_first().expect("an indexer");
    let more = indexer_args(rest);
    let args: Vec<&str> = more
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    Daemon::start(&format!("{}={}", first.0, first.1), db, &args)
}

fn roots_at(d: &Daemon, label: &str, upto: usize) -> Vec<String> {
    (0..=upto)
        .map(|h| {
            let reply = d.client().call_at(label, "metashrew_stateroot", json!([h]));
            reply["result"]
                .as_str()
                .unwrap_or_else(|| panic!("{label} has no root at {h}: {reply}"))
                .to_string()
        })
        .collect()
}

fn status(d: &Daemon) -> Vec<Value> {
    let (code, text) = d.get("/status");
    assert_eq!(code, 200, "{text}");
    let page: Value = serde_json::from_str(&text).expect("JSON");
    page["indexers"].as_array().expect("a list").clone()
}

fn verify(db: &std::path::Path, label: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rockshrew"))
        .args(["verify", "--label", label, "--db-path"])
        .arg(db)
        .output()
        .expect("verify runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "verify {label}: {text}");
    text
}

#[test]
fn three_indexers_follow_one_node_through_a_reorg_and_a_kill_each_as_if_alone() {
    let blocks = mainnet_blocks();
    let node = FakeNode::start(blocks[..=150].to_vec());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let url = node.url();
    let extra = [
        // The reorganisation below is a forged branch, with no proof of work.
        "--no-pow-check",
        "--daemon-rpc-url",
        url.as_str(),
        "--max-reorg-depth",
        "20",
    ];
    let labels: Vec<&str> = THREE.iter().map(|(l, _)| *l).collect();
    let mut d = start(&THREE, &db, &extra);
    d.wait_for_heights(&labels, 150, WAIT);

    // With several indexers, POST / names them; an unknown label is refused the same way.
    let (code, reply) = d.client().post_to(
        "/",
        r#"{"jsonrpc":"2.0","id":1,"method":"metashrew_height"}"#,
    );
    assert_eq!(code, 404);
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("minimal, spendables, compat"), "{reply}");
    let (code, reply) = d.client().post_to(
        "/nope",
        r#"{"jsonrpc":"2.0","id":1,"method":"metashrew_height"}"#,
    );
    assert_eq!(code, 404);
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`nope`")
    );

    // A reorganisation replaces 140.., then the node grows to 255 plus three; the daemon is
    // killed while it indexes, and restarted.
    let branch = fork(&blocks, 140, 3);
    node.set_chain(branch.clone());
    d.wait_for_heights(&["minimal"], 200, WAIT);
    d.signal("-KILL");
    d.wait_exit(Duration::from_secs(10));
    let mut d = start(&THREE, &db, &extra);
    let tip = (branch.len() - 1) as u32;
    d.wait_for_heights(&labels, tip, WAIT);
    let log = d.log_text();

    // Every indexer's roots are those of the same indexer run alone over the final chain.
    for (label, wasm) in THREE {
        assert_eq!(
            roots_at(&d, label, tip as usize),
            roots_with(wasm, &branch),
            "{label}'s roots"
        );
    }
    // Each namespace has its own status, metrics and stored state.
    let listed = status(&d);
    assert_eq!(listed.len(), 3);
    for (entry, (label, wasm)) in listed.iter().zip(THREE) {
        assert_eq!(entry["label"], label);
        assert_eq!(entry["height"], tip);
        assert_eq!(entry["state"], "at tip", "{entry}");
        assert_eq!(entry["last_error"], Value::Null);
        let module = std::fs::read(wasm).unwrap();
        assert_eq!(
            entry["module_hash"],
            hex::encode(metashrew_storage::hashes::sha256(&module))
        );
    }
    let (_, metrics) = d.get("/metrics");
    for label in labels.iter() {
        let line = format!("rockshrew_indexed_height{{label=\"{label}\"}} {tip}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    // A snapshot through the running daemon is of the whole database: every namespace in it
    // verifies, and its manifest describes the label asked for.
    let snap = dir.path().join("snap");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rockshrew"))
        .args(["snapshot", "--label", "compat", "--db-path"])
        .arg(&db)
        .arg("--out")
        .arg(&snap)
        .output()
        .expect("snapshot runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(&out.stdout).expect("a manifest");
    assert_eq!(manifest["height"], tip, "{manifest}");
    let compat_root = roots_with(guests::COMPAT, &branch)[tip as usize].clone();
    assert_eq!(
        format!("0x{}", manifest["state_root"].as_str().unwrap()),
        compat_root
    );
    for label in labels.iter() {
        assert!(verify(&snap, label).starts_with(&format!("ok: blocks 0..={tip}")));
    }
    // A read replica serves one indexer of the database.
    let mut replica = Daemon::start(
        &format!("spendables={}", guests::SPENDABLES),
        &dir.path().join("replica"),
        &[
            "--replica-of",
            db.to_str().unwrap(),
            "--replica-interval-ms",
            "50",
        ],
    );
    replica.wait_for_height(tip, WAIT);
    assert_eq!(
        replica.call("metashrew_stateroot", json!([tip]))["result"],
        d.client()
            .call_at("spendables", "metashrew_stateroot", json!([tip]))["result"]
    );
    drop(replica);
    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT), Some(0), "{}", d.log_text());
    let log = log + &d.log_text();
    // Blocks were fetched once for the three of them, mostly.
    let counts = log
        .lines()
        .rev()
        .filter_map(|l| l.split_once("shared block source: "))
        .find_map(|(_, rest)| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            Some((
                words.first()?.parse::<u64>().ok()?,
                words.get(3)?.parse::<u64>().ok()?,
            ))
        });
    let (fetched, reused) = counts.unwrap_or_else(|| panic!("no shared-source line: {log}"));
    // The budget holds the whole chain, so after the restart each block of the branch above
    // the lowest indexer (or the fork) was fetched once, whatever the indexers' pace.
    let lowest = labels
        .iter()
        .map(|label| {
            let resumed = format!("index `{label}` (");
            log.lines()
                .find_map(|l| {
                    l.split_once(&resumed)?
                        .1
                        .rsplit_once("tip ")?
                        .1
                        .parse()
                        .ok()
                })
                .unwrap_or_else(|| panic!("no resume line for {label}: {log}"))
        })
        .fold(140u32, u32::min);
    assert!(
        fetched <= u64::from(tip - lowest) && reused > 0,
        "{fetched} fetched, {reused} reused, blocks {lowest}..={tip}"
    );
    for label in labels {
        assert!(verify(&db, label).starts_with(&format!("ok: blocks 0..={tip}")));
    }
}

/// An indexer in WAT whose blocks write `key` = their height, and that traps at block 100.
fn trapping_module(dir: &std::path::Path) -> String {
    let wat = format!(
        r#"(module {}
  (memory (export "memory") 2)
  (data (i32.const 0x100) "\0b\00\00\00\0a\03key\0a\04")
  (func (export "_start")
    (i32.store (i32.const 0x0FFC) (call $host_len))
    (call $load_input (i32.const 0x1000))
    (if (i32.ge_u (i32.load (i32.const 0x1000)) (i32.const 100)) (then unreachable))
    (i32.store (i32.const 0x10B) (i32.load (i32.const 0x1000)))
    (call $flush (i32.const 0x104))))"#,
        metashrew_tests::ABI_IMPORTS
    );
    let path = dir.join("trap-at-100.wasm");
    std::fs::write(&path, wat::parse_str(wat).expect("valid WAT")).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn an_indexer_that_fails_on_a_block_stops_alone_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let bad = trapping_module(dir.path());
    let indexers = [("bad", bad.as_str()), ("spendables", guests::SPENDABLES)];
    let mut d = start(
        &indexers,
        &db,
        &["--blocks-file", FIXTURE, "--default-indexer", "spendables"],
    );
    d.wait_for_heights(&["spendables"], 255, WAIT);
    let started = std::time::Instant::now();
    let entry = loop {
        let listed = status(&d);
        if listed[0]["state"] == "stopped" || started.elapsed() > WAIT {
            break listed[0].clone();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(entry["state"], "stopped", "{entry}");
    assert_eq!(entry["height"], 99);
    let error = entry["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("failed on block 100"), "{entry}");
    // The stopped indexer still answers for what it indexed; the other indexed everything.
    assert_eq!(d.client().height_at("bad"), Some(99));
    assert_eq!(roots_at(&d, "spendables", 255), common::reference_roots());
    // POST / answers for --default-indexer.
    assert_eq!(d.height(), Some(255));
    let (_, metrics) = d.get("/metrics");
    assert!(
        metrics.contains("rockshrew_indexer_stopped{label=\"bad\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("rockshrew_indexer_stopped{label=\"spendables\"} 0"));
    assert!(d.log_text().contains("indexer `bad` stopped"));
    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT), Some(0), "{}", d.log_text());
}

#[test]
fn a_manifest_pins_each_module_and_a_single_labelled_indexer_answers_at_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let module = std::fs::read(guests::MINIMAL).unwrap();
    let hash = hex::encode(metashrew_storage::hashes::sha256(&module));
    let manifest = dir.path().join("indexers.toml");
    let wrong = "00".repeat(32);
    std::fs::write(
        &manifest,
        format!(
            "[[indexer]]\nlabel = \"minimal\"\npath = \"{}\"\nsha256 = \"{wrong}\"\n",
            guests::MINIMAL
        ),
    )
    .unwrap();
    let out = common::run_limited(
        "true",
        &[
            "--indexers",
            manifest.to_str().unwrap(),
            "--db-path",
            dir.path().join("db").to_str().unwrap(),
            "--blocks-file",
            FIXTURE,
        ],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains(&hash) && text.contains(&wrong), "{text}");
    // Pinned right, with a start height: it indexes from there, at / and at /minimal.
    std::fs::write(
        &manifest,
        format!(
            "[[indexer]]\nlabel = \"minimal\"\npath = \"{}\"\nsha256 = \"{hash}\"\nstart_height = 200\n",
            guests::MINIMAL
        ),
    )
    .unwrap();
    let db = dir.path().join("db");
    let port = common::free_port();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_rockshrew"))
        .args([
            "--indexers",
            manifest.to_str().unwrap(),
            "--blocks-file",
            FIXTURE,
        ])
        .args(["--port", &port.to_string(), "--db-path"])
        .arg(&db)
        .stderr(log)
        .spawn()
        .unwrap();
    let mut d = Daemon {
        child,
        port,
        log: dir.path().join("log"),
    };
    d.wait_for_heights(&["minimal"], 255, WAIT);
    assert_eq!(d.height(), Some(255));
    d.signal("-TERM");
    assert_eq!(d.wait_exit(WAIT), Some(0), "{}", d.log_text());
    assert!(verify(&db, "minimal").starts_with("ok: blocks 200..=255"));
}

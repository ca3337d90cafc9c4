//! An operator's daily work: rolling an index back (live through the admin socket, and on a
//! stopped daemon with kills midway), upgrading the indexer at a height, inspecting keys, the
//! container entrypoint and the systemd unit, and configuration errors refused at start.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Daemon, FIXTURE, FakeNode, roots_over_rpc};
use metashrew_runtime::{MetashrewRuntime, RuntimeConfig};
use metashrew_storage::{MemStore, Storage};
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;
use rockshrew::store::RocksStore;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(300);
const TIP: u32 = 255;

/// Runs a `rockshrew` tool to completion.
fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rockshrew"))
        .args(args)
        .output()
        .expect("rockshrew runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn roots_in(db: &Path, label: Option<&str>) -> Vec<String> {
    let store = RocksStore::open_read_only(db, label).expect("the database opens");
    let tip = store.tip().unwrap().expect("something indexed");
    (0..=tip)
        .map(|h| format!("0x{}", hex::encode(store.state_root(h).unwrap().unwrap())))
        .collect()
}

/// Roots of `first` over heights below `switch` and `second` from it, in one state: an index
/// that switched modules at `switch` from the start.
fn switched_roots(first: &str, second: &str, switch: u32, chain: &[Vec<u8>]) -> Vec<String> {
    let store = Arc::new(MemStore::new());
    let load = |wasm: &str| {
        MetashrewRuntime::load(wasm, store.clone(), RuntimeConfig::default()).expect("loads")
    };
    let (a, b) = (load(first), load(second));
    chain
        .iter()
        .enumerate()
        .map(|(h, block)| {
            let rt = if (h as u32) < switch { &a } else { &b };
            let root = rt.process_block(h as u32, block).expect("block").state_root;
            format!("0x{}", hex::encode(root))
        })
        .collect()
}

fn verifies(db: &Path) {
    let out = tool(&["verify", "--db-path", db.to_str().unwrap()]);
    assert!(out.status.success(), "verify: {}", text(&out));
}

#[test]
fn rollback_live_and_stopped_with_kills_midway_reindexes_to_the_same_roots() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db_arg = db.to_str().unwrap();
    let reference = common::reference_roots();
    let mut d = Daemon::start(guests::SPENDABLES, &db, &["--blocks-file", FIXTURE]);
    d.wait_for_height(TIP, WAIT);

    // Live, through the admin socket: the daemon rolls back at a block boundary and indexes
    // again from the next height.
    let out = tool(&["rollback", "--db-path", db_arg, "--height", "200", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("rolled back from {TIP} to 200")),
        "{}",
        text(&out)
    );
    d.wait_for_height(TIP, WAIT);
    assert!(
        d.log_text().contains(&format!(
            "rolling back from {TIP} to 200, as the operator asked"
        )),
        "{}",
        d.log_text()
    );
    assert_eq!(roots_over_rpc(&d, TIP), reference);
    // Out of range, or not confirmed (no terminal, no --yes): refused, nothing changed.
    let out = tool(&["rollback", "--db-path", db_arg, "--height", "300", "--yes"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("the tip is 255"), "{}", text(&out));
    let out = tool(&["rollback", "--db-path", db_arg, "--height", "100"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("pass --yes"), "{}", text(&out));
    d.signal("-TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(0));
    drop(d);

    // Stopped: each rollback is killed at a different instant. The index is then at the old
    // tip or at the height asked, never between, and it verifies; run again, it completes.
    let mut tip = TIP;
    for (i, height) in [230u32, 190, 150, 120, 100].into_iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rockshrew"))
            .args(["rollback", "--db-path", db_arg, "--height"])
            .arg(height.to_string())
            .arg("--yes")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5 + 15 * i as u64));
        let _ = child.kill();
        let _ = child.wait();
        let found = RocksStore::open_read_only(&db, None)
            .unwrap()
            .tip()
            .unwrap();
        assert!(
            found == Some(tip) || found == Some(height),
            "after a kill the tip is {found:?}, neither {tip} nor {height}"
        );
        verifies(&db);
        let out = tool(&[
            "rollback",
            "--db-path",
            db_arg,
            "--height",
            &height.to_string(),
            "--yes",
        ]);
        assert!(out.status.success(), "{}", text(&out));
        tip = height;
    }
    let store = RocksStore::open_read_only(&db, None).unwrap();
    assert_eq!(store.tip().unwrap(), Some(100));
    assert_eq!(roots_in(&db, None), reference[..=100]);
    drop(store);

    // Restarted, the daemon indexes 101.. again to the same roots.
    let mut d = Daemon::start(guests::SPENDABLES, &db, &["--blocks-file", FIXTURE]);
    d.wait_for_height(TIP, WAIT);
    assert_eq!(roots_over_rpc(&d, TIP), reference);
}

#[test]
fn an_upgrade_at_a_height_gives_the_roots_of_an_index_that_switched_there() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db_arg = db.to_str().unwrap();
    let switch = 200u32;
    let mut d = Daemon::start(guests::SPENDABLES, &db, &["--blocks-file", FIXTURE]);
    d.wait_for_height(TIP, WAIT);
    d.signal("-TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(0));
    drop(d);

    // Another module without the upgrade: refused, naming the way to ask.
    let mut refused = Daemon::start(guests::COMPAT, &db, &["--blocks-file", FIXTURE]);
    assert_eq!(refused.wait_exit(Duration::from_secs(30)), Some(1));
    assert!(
        refused.log_text().contains("rockshrew upgrade --db-path"),
        "{}",
        refused.log_text()
    );
    drop(refused);

    let upgrade = |module: &str, height: &str| {
        tool(&[
            "upgrade",
            "--db-path",
            db_arg,
            "--indexer",
            module,
            "--height",
            height,
            "--yes",
        ])
    };
    let out = upgrade(guests::COMPAT, "200");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("56 blocks rolled back"),
        "{}",
        text(&out)
    );
    // Asked again: nothing to do.
    let out = upgrade(guests::COMPAT, "210");
    assert!(
        text(&out).contains("already indexes from height 200"),
        "{}",
        text(&out)
    );
    // Not above the first height, not past the next block: refused.
    for height in ["0", "300"] {
        let out = upgrade(guests::MINIMAL, height);
        assert!(!out.status.success(), "{}", text(&out));
    }

    let mut d = Daemon::start(guests::COMPAT, &db, &["--blocks-file", FIXTURE]);
    d.wait_for_height(TIP, WAIT);
    let expected = switched_roots(
        guests::SPENDABLES,
        guests::COMPAT,
        switch,
        &mainnet_blocks(),
    );
    assert_eq!(roots_over_rpc(&d, TIP), expected);
    assert_ne!(expected, common::reference_roots(), "the modules differ");
    let (code, body) = d.get("/status");
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&body).unwrap();
    let modules = &status["indexers"][0]["modules"];
    assert_eq!(modules[0]["from"], 0);
    assert_eq!(modules[0]["to"], switch - 1);
    assert_eq!(modules[1]["from"], switch);
    assert_eq!(modules[1]["to"], TIP);
    assert_ne!(modules[0]["module_hash"], modules[1]["module_hash"]);
    assert!(
        d.log_text().contains("module heights 200..=255")
            || d.log_text().contains("module from height 200"),
        "{}",
        d.log_text()
    );
    d.signal("-TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(0));
    drop(d);
    verifies(&db);

    // Rolled back below the upgrade, the index is the old module's again.
    let out = tool(&["rollback", "--db-path", db_arg, "--height", "150", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = tool(&["inspect", "--db-path", db_arg, "--json", "status"]);
    let status: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(status["tip"], 150);
    assert_eq!(status["modules"].as_array().map(Vec::len), Some(1));
    let mut refused = Daemon::start(guests::COMPAT, &db, &["--blocks-file", FIXTURE]);
    assert_eq!(refused.wait_exit(Duration::from_secs(30)), Some(1));
}

#[test]
fn inspect_prints_values_histories_prefixes_and_block_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db_arg = db.to_str().unwrap();
    let mut d = Daemon::start(guests::SPENDABLES, &db, &["--blocks-file", FIXTURE]);
    d.wait_for_height(TIP, WAIT);
    d.signal("-TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(0));
    drop(d);
    let inspect = |args: &[&str]| -> Value {
        let out = tool(&[&["inspect", "--db-path", db_arg, "--json"], args].concat());
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).expect("json")
    };

    // Block 170 spends 10 BTC of block 9's coinbase: its writes, as the store holds them.
    let block = inspect(&["block", "170"]);
    let store = RocksStore::open_read_only(&db, None).unwrap();
    let keys = store.touched_keys(170).unwrap();
    assert_eq!(block["writes"], keys.len());
    let shown = block["shown"].as_array().unwrap();
    assert_eq!(shown.len(), keys.len());
    for (write, key) in shown.iter().zip(&keys) {
        assert_eq!(write["key"]["hex"], hex::encode(key));
        assert_eq!(
            write["value"]["hex"],
            hex::encode(store.get_at(key, 170).unwrap().unwrap_or_default())
        );
    }

    // A key's value at a height and its history, newest first.
    let key = &keys[0];
    let key_arg = format!("0x{}", hex::encode(key));
    let got = inspect(&["get", &key_arg, "--height", "170"]);
    assert_eq!(got["written_at"], 170);
    let history = inspect(&["history", &key_arg]);
    let versions = history["versions"].as_array().unwrap();
    let heights: Vec<u64> = versions
        .iter()
        .map(|v| v["height"].as_u64().unwrap())
        .collect();
    assert!(heights.windows(2).all(|w| w[0] > w[1]), "{heights:?}");
    assert!(heights.contains(&170));
    for v in versions {
        let h = v["height"].as_u64().unwrap() as u32;
        assert_eq!(
            v["value"]["hex"],
            hex::encode(store.get_at(key, h).unwrap().unwrap_or_default())
        );
    }

    // The keys under a prefix are exactly those of the full state, in pages.
    let dump = store.dump_at(TIP).unwrap();
    let prefix = &key[..key.len().min(3)];
    let expected: Vec<String> = {
        let mut under: Vec<&Vec<u8>> = dump
            .iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(prefix))
            .collect();
        under.sort_by(|a, b| (a.len(), a.as_slice()).cmp(&(b.len(), b.as_slice())));
        under.into_iter().map(hex::encode).collect()
    };
    assert!(expected.len() > 2, "a prefix with several keys");
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let prefix_arg = format!("0x{}", hex::encode(prefix));
        let mut args = vec!["keys", prefix_arg.as_str(), "--limit", "7"];
        if let Some(a) = &after {
            args.extend(["--after", a.as_str()]);
        }
        let page = inspect(&args);
        for entry in page["keys"].as_array().unwrap() {
            listed.push(entry["key"]["hex"].as_str().unwrap().to_string());
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(listed, expected);

    // Text output: hex and the printable rendering; a text key after `=`.
    let out = tool(&["inspect", "--db-path", db_arg, "get", &key_arg]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0x"), "{}", text(&out));
    let out = tool(&["inspect", "--db-path", db_arg, "get", "=no such key"]);
    assert!(text(&out).contains("never written"), "{}", text(&out));
    let out = tool(&["inspect", "--db-path", db_arg, "block", "999"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not indexed"), "{}", text(&out));
}

#[test]
fn a_node_address_without_a_scheme_is_http_and_bad_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let node = FakeNode::start(mainnet_blocks()[..=20].to_vec());
    let bare = node.url().trim_start_matches("http://").to_string();
    let mut d = Daemon::start(
        guests::MINIMAL,
        &dir.path().join("db"),
        &["--daemon-rpc-url", &bare, "--exit-at", "20"],
    );
    assert_eq!(d.wait_exit(WAIT), Some(0), "{}", d.log_text());
    let log = d.log_text();
    assert!(
        log.contains(&format!("following the node at http://{bare}")),
        "{log}"
    );
    assert!(log.contains("indexed 21 blocks"), "{log}");
    drop(d);

    for (i, bad) in [
        vec!["--daemon-rpc-url", "ftp://127.0.0.1:1"],
        vec!["--daemon-rpc-url", "127.0.0.1:port"],
        vec!["--cookie-file", "/nonexistent/dir/.cookie"],
    ]
    .into_iter()
    .enumerate()
    {
        let started = Instant::now();
        let mut d = Daemon::start(guests::MINIMAL, &dir.path().join(format!("bad{i}")), &bad);
        assert_eq!(d.wait_exit(Duration::from_secs(30)), Some(1), "{bad:?}");
        assert!(started.elapsed() < Duration::from_secs(30));
        let log = d.log_text();
        assert!(
            log.contains("daemon-rpc-url") || log.contains("cookie file"),
            "{bad:?}: {log}"
        );
        assert!(!log.contains("retrying"), "{bad:?}: {log}");
    }
}

/// The container's entrypoint, run with a stand-in binary that prints its arguments.
fn entrypoint(env: &[(&str, &str)], args: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let echo = dir.path().join("echo-args");
    std::fs::write(
        &echo,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\necho \"RUST_LOG=$RUST_LOG\"\n",
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&echo).status().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/docker-entrypoint.sh"
    );
    let out = Command::new("sh")
        .arg(script)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("ROCKSHREW_BIN", &echo)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_entrypoint_reads_the_metashrew_images_variables_and_the_unit_verifies() {
    let defaults = entrypoint(&[], &[]);
    assert_eq!(
        defaults,
        [
            "--daemon-rpc-url",
            "127.0.0.1:8332",
            "--db-path",
            "/metashrew/rocksdb",
            "--indexer",
            "/metashrew/indexer.wasm",
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
            "--start-block",
            "0",
            "RUST_LOG=info",
        ]
    );
    let set = entrypoint(
        &[
            ("DAEMON_RPC_ADDR", "bitcoind:8332"),
            ("AUTH", "user:pass word"),
            ("DB_PATH", "/data/db"),
            ("INDEXER", "/data/alkanes.wasm"),
            ("HOST", "127.0.0.1"),
            ("PORT", "18888"),
            ("START_BLOCK", "880000"),
            ("EXIT_AT", "880100"),
            ("LABEL", "alkanes"),
            ("LOG_FILTERS", "debug"),
        ],
        &["--cors", "*"],
    );
    assert_eq!(
        set,
        [
            "--daemon-rpc-url",
            "bitcoind:8332",
            "--db-path",
            "/data/db",
            "--indexer",
            "/data/alkanes.wasm",
            "--host",
            "127.0.0.1",
            "--port",
            "18888",
            "--start-block",
            "880000",
            "--auth",
            "user:pass word",
            "--exit-at",
            "880100",
            "--label",
            "alkanes",
            "--cors",
            "*",
            "RUST_LOG=debug",
        ]
    );
    // Each argument the entrypoint passes is one the daemon knows.
    let help = text(&tool(&["--help"]));
    for flag in set.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(flag.as_str()),
            "{flag} is not a rockshrew option"
        );
    }
    // A tool's name runs the tool.
    assert_eq!(
        entrypoint(
            &[("DB_PATH", "/x")],
            &["inspect", "--db-path", "/x", "status"]
        ),
        ["inspect", "--db-path", "/x", "status", "RUST_LOG="]
    );

    // The systemd unit, pointed at this build's binary, passes `systemd-analyze verify`.
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/rockshrew.service"
    ))
    .unwrap();
    assert!(unit.contains("LimitNOFILE=") && unit.contains("CAP_SYS_NICE"));
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if available {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rockshrew.service");
        std::fs::write(
            &path,
            unit.replace("/usr/local/bin/rockshrew", env!("CARGO_BIN_EXE_rockshrew")),
        )
        .unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    } else {
        eprintln!("systemd-analyze is not installed: the unit was not verified");
    }
}

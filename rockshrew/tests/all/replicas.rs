//! Read replicas, snapshots and `verify`, with real processes: a primary indexing from the fake
//! node while replicas follow its database, a reorganisation and a SIGKILL on the primary
//! during replica traffic, a snapshot of a live primary restored and resumed, and `verify`
//! finding a value changed on disk.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Client, Daemon, FakeNode, coinbase9_script_hex, fork, reference_roots, roots_of};
use metashrew_storage::Storage;
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;
use rockshrew::store::RocksStore;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

fn replica(primary_db: &Path, own_dir: &Path) -> Daemon {
    Daemon::start(
        guests::SPENDABLES,
        own_dir,
        &[
            "--replica-of",
            primary_db.to_str().unwrap(),
            "--replica-interval-ms",
            "50",
        ],
    )
}

fn root(d: &Client, h: u32) -> Value {
    d.call("metashrew_stateroot", json!([h]))["result"].clone()
}

fn view(d: &Client, h: u32) -> Value {
    d.call(
        "metashrew_view",
        json!(["balance", coinbase9_script_hex(), h]),
    )["result"]
        .clone()
}

#[test]
fn replicas_follow_the_primary_through_a_reorganisation_and_a_kill() {
    let blocks = mainnet_blocks();
    let main_roots = roots_of(&blocks[..=150]);
    let branch = fork(&blocks[..=150], 145, 3);
    let branch_roots = roots_of(&branch);
    let node = FakeNode::start(blocks[..=120].to_vec());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let args = ["--no-pow-check", "--daemon-rpc-url", &node.url()];
    let mut primary = Daemon::start(guests::SPENDABLES, &db, &args);
    primary.wait_for_height(1, WAIT);
    let mut replicas = [
        replica(&db, &dir.path().join("r1")),
        replica(&db, &dir.path().join("r2")),
    ];
    primary.wait_for_height(120, WAIT);
    for r in &mut replicas {
        r.wait_for_height(120, WAIT);
        for h in [0, 9, 57, 100, 119, 120] {
            assert_eq!(root(&r.client(), h), main_roots[h as usize]);
            assert_eq!(
                r.call("metashrew_getblockhash", json!([h])),
                primary.call("metashrew_getblockhash", json!([h]))
            );
            assert_eq!(view(&r.client(), h), view(&primary.client(), h));
        }
        let (code, metrics) = r.get("/metrics");
        assert_eq!(code, 200);
        assert!(
            metrics.contains("rockshrew_replica_lag_seconds_count"),
            "{metrics}"
        );
    }
    // Reads at a height a replica does not have are refused, as on the primary.
    assert_eq!(
        replicas[0].call("metashrew_stateroot", json!([121]))["error"]["code"],
        -32602
    );

    // Traffic on both replicas while the primary grows to 150, then reorganises 145.. onto
    // a longer branch: every root a replica answers belongs to one branch at that height, and
    // no height is above what the primary has had.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic: Vec<_> = replicas
        .iter()
        .map(|r| {
            let (port, stop) = (r.port, stop.clone());
            let (main_roots, branch_roots) = (main_roots.clone(), branch_roots.clone());
            std::thread::spawn(move || {
                let client = Client { port };
                let mut answers = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    let Some(h) = client.height() else { continue };
                    assert!(
                        (h as usize) < branch_roots.len(),
                        "height {h} above every tip"
                    );
                    let got = root(&client, h);
                    if got.is_null() {
                        continue; // rolled back between the two calls: refused, not wrong
                    }
                    let h = h as usize;
                    assert!(
                        main_roots.get(h) == got.as_str().map(String::from).as_ref()
                            || branch_roots.get(h) == got.as_str().map(String::from).as_ref(),
                        "root at {h} is on neither branch: {got}"
                    );
                    answers += 1;
                }
                answers
            })
        })
        .collect();
    node.set_chain(blocks[..=150].to_vec());
    primary.wait_for_height(150, WAIT);
    node.set_chain(branch.clone());
    primary.wait_for_height(153, WAIT);
    for r in &mut replicas {
        r.wait_for_height(153, WAIT);
    }
    stop.store(true, Ordering::SeqCst);
    for t in traffic {
        assert!(
            t.join().unwrap() > 0,
            "the replicas answered during the reorganisation"
        );
    }
    for r in &replicas {
        for h in [0u32, 120, 144, 145, 150, 153] {
            assert_eq!(root(&r.client(), h), branch_roots[h as usize], "height {h}");
            assert_eq!(view(&r.client(), h), view(&primary.client(), h));
        }
    }

    // The primary dies hard: replicas go on serving what they have; when it comes back and
    // indexes on, they follow.
    primary.signal("-KILL");
    let _ = primary.wait_exit(WAIT);
    std::thread::sleep(Duration::from_millis(300));
    for r in &replicas {
        assert_eq!(r.height(), Some(153));
        assert_eq!(root(&r.client(), 153), branch_roots[153]);
    }
    let grown = fork(&blocks[..=150], 145, 8);
    let grown_roots = roots_of(&grown);
    node.set_chain(grown);
    let mut primary = Daemon::start(guests::SPENDABLES, &db, &args);
    primary.wait_for_height(158, WAIT);
    for r in &mut replicas {
        r.wait_for_height(158, WAIT);
        assert_eq!(root(&r.client(), 158), grown_roots[158]);
        assert_eq!(root(&r.client(), 153), grown_roots[153]);
    }
    drop(primary);
}

fn rockshrew(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rockshrew"))
        .args(args)
        .output()
        .expect("rockshrew runs")
}

#[test]
fn a_snapshot_of_a_live_primary_verifies_restores_and_resumes_to_the_same_roots() {
    let reference = reference_roots();
    let node = FakeNode::start(mainnet_blocks());
    // Slow enough that the snapshot is taken while the primary indexes.
    node.faults.delay_ms.store(20, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let args = [
        "--no-pow-check",
        "--daemon-rpc-url",
        &node.url(),
        "--fetch-workers",
        "1",
    ];
    let mut primary = Daemon::start(guests::SPENDABLES, &db, &args);
    primary.wait_for_height(40, WAIT);
    let snap = dir.path().join("snap");
    let out = rockshrew(&[
        "snapshot",
        "--db-path",
        db.to_str().unwrap(),
        "--out",
        snap.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    let height = manifest["height"].as_u64().unwrap() as usize;
    assert!(
        (40..255).contains(&height),
        "taken while indexing: {manifest}"
    );
    assert_eq!(
        format!("0x{}", manifest["state_root"].as_str().unwrap()),
        reference[height]
    );
    node.faults.delay_ms.store(0, Ordering::SeqCst);

    // It verifies, against a root from a trusted node too; a wrong expected root fails.
    let trusted = format!("{height}:{}", reference[height]);
    let ok = rockshrew(&[
        "verify",
        "--db-path",
        snap.to_str().unwrap(),
        "--expect-root",
        &trusted,
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let wrong = format!("{}:{}", height - 1, reference[height]);
    let bad = rockshrew(&[
        "verify",
        "--db-path",
        snap.to_str().unwrap(),
        "--expect-root",
        &wrong,
    ]);
    assert_eq!(bad.status.code(), Some(1));

    // Restored elsewhere, it resumes to the same roots as the primary that never stopped.
    let restored = dir.path().join("restored");
    let copied = Command::new("cp")
        .args(["-r", snap.to_str().unwrap(), restored.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
    let mut resumed = Daemon::start(guests::SPENDABLES, &restored, &args);
    resumed.wait_for_height(255, WAIT);
    primary.wait_for_height(255, WAIT);
    assert!(
        resumed.log_text().contains(&format!("tip {height}")),
        "{}",
        resumed.log_text()
    );
    for h in (0..=255).step_by(15).chain([height as u32, 255]) {
        assert_eq!(root(&resumed.client(), h), reference[h as usize]);
        assert_eq!(root(&primary.client(), h), reference[h as usize]);
    }
    drop(resumed);

    // A value changed on disk in a copy is found, with its block and key.
    let changed_at = 170u32;
    let store = RocksStore::open_read_only(&restored, None).unwrap();
    let key = store.touched_keys(changed_at).unwrap().swap_remove(0);
    drop(store);
    tamper(&restored, &key, changed_at, b"tampered");
    let found = rockshrew(&["verify", "--db-path", restored.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&found.stdout);
    assert_eq!(found.status.code(), Some(1), "{report}");
    assert!(report.contains(&format!("block {changed_at}")), "{report}");
    assert!(report.contains(&hex::encode(&key)), "{report}");
    assert!(report.contains(&hex::encode(b"tampered")), "{report}");
}

/// Overwrites the history entry of `key` at `height`, as a failing disk would, through
/// RocksDB itself (so checksums still pass).
fn tamper(db: &Path, key: &[u8], height: u32, value: &[u8]) {
    let opts = rocksdb::Options::default();
    let names = rocksdb::DB::list_cf(&opts, db).unwrap();
    let raw = rocksdb::DB::open_cf(&opts, db, &names).unwrap();
    let history = raw.cf_handle("default/history").unwrap();
    raw.put_cf(
        history,
        rockshrew::store::keys::history_key(key, height),
        value,
    )
    .unwrap();
    raw.flush_cf(history).unwrap();
}

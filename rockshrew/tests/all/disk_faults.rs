//! A failing disk, on `faultfs`: EIO on a read while a block runs, on the write-ahead log's
//! sync and on a write of it, on a read inside a view, and ENOSPC. Each stops (or fails) what it touches with the
//! cause named, never indexes a failed read as an absent key, and loses nothing committed: after
//! the disk heals the daemon resumes to the roots and state of an uninterrupted run.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::crash::{chain, check_prefix, reference, resume_and_compare};

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Daemon, FakeNode, coinbase9_script_hex};
use faultfs::Op;
use metashrew_tests::guests;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

/// Waits until the daemon serves JSON-RPC.
fn serving(d: &Daemon) {
    let started = std::time::Instant::now();
    while d.get("/metrics").0 != 200 {
        assert!(started.elapsed() < WAIT, "{}", d.log_text());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The daemon's error lines, for the test's output.
fn errors(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("ERROR"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn eio_and_enospc_stop_or_fail_what_they_touch_and_lose_nothing() {
    let chain = chain();
    let reference = reference(&chain);
    let node = FakeNode::start(chain.clone());
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let fs = faultfs::Mounted::mount(&dir.path().join("backing"), &mnt).unwrap();
    let control = fs.control();
    let db = mnt.join("db");
    let url = node.url();
    let start = |extra: &[&str]| {
        Daemon::start(
            guests::SPENDABLES,
            &db,
            &[&["--no-pow-check", "--daemon-rpc-url", url.as_str()], extra].concat(),
        )
    };

    // Starts the daemon up to 230 with `extra` while the node is slow, arms the fault, lets the
    // node go on, and returns the log of the daemon, which must stop with exit code 1.
    let stopped_by = |extra: &[&str], op: Op, name: &str, count: u32| {
        node.faults.delay_ms.store(300, Ordering::SeqCst);
        let mut d = start(&[&["--exit-at", "230"], extra].concat());
        serving(&d);
        control.fail_next(op, name, count);
        node.faults.delay_ms.store(0, Ordering::SeqCst);
        assert_eq!(d.wait_exit(WAIT), Some(1), "{}", d.log_text());
        control.clear_faults();
        d.log_text()
    };

    // Blocks 0..=200, stopped cleanly: in SST files, which later reads must go to.
    let mut d = start(&["--exit-at", "200"]);
    assert_eq!(d.wait_exit(WAIT), Some(0), "{}", d.log_text());

    // EIO on reads while a block runs: the block commits nothing and the daemon stops, naming
    // the block and the file; never is the failed read taken for an absent key.
    let log = stopped_by(&[], Op::Read, ".sst", 1_000);
    assert!(
        log.contains("the database failed while indexing block 201")
            || log.contains("the database failed while checking that block 201")
            || log.contains("before block 201"),
        "{log}"
    );
    assert!(
        log.contains(".sst") && log.contains("Input/output error"),
        "{log}"
    );
    assert!(control.injected() > 0);
    eprintln!("EIO on reads in a block:\n{}", errors(&log));
    assert_eq!(check_prefix(&db, &reference), Some(200));

    // EIO on the write-ahead log's sync: RocksDB's background error. The daemon stops
    // accepting blocks and says why; restarted on a healthy disk it is consistent.
    let log = stopped_by(&["--sync-every-block"], Op::Sync, ".log", 1);
    assert!(log.contains("Input/output error"), "{log}");
    eprintln!("EIO on the log's sync:\n{}", errors(&log));
    let tip = check_prefix(&db, &reference).unwrap();
    assert!((200..230).contains(&tip), "{tip}");
    // EIO on a write of the write-ahead log: the same.
    let log = stopped_by(&[], Op::Write, ".log", 1);
    assert!(log.contains("Input/output error"), "{log}");
    eprintln!("EIO on a write of the log:\n{}", errors(&log));
    let after = check_prefix(&db, &reference).unwrap();
    assert!((tip..230).contains(&after), "{after}");
    let mut d = start(&["--exit-at", "230"]);
    assert_eq!(d.wait_exit(WAIT), Some(0), "{}", d.log_text());
    assert_eq!(check_prefix(&db, &reference), Some(230));

    // EIO inside a view: that view fails with a JSON-RPC error; the daemon goes on.
    // The node stops at 230, so that the sync loop waits at the tip.
    node.set_chain(chain[..=230].to_vec());
    let mut d = start(&[]);
    d.wait_for_height(230, WAIT);
    // The sync loop's polls at the tip (every 50 ms) have read its block entries by now, and
    // find them in the block cache from here on.
    std::thread::sleep(Duration::from_millis(1_000));
    let before = control.injected();
    // One failed read of a table file: the view's own (the sync loop, at the tip, reads only
    // what its block cache holds).
    control.fail_next(Op::Read, ".sst", 1);
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "metashrew_view",
        "params": ["balance", coinbase9_script_hex(), 169]});
    let failed = match d.client().try_post_to("/", &request.to_string()) {
        Some((_, reply)) => reply,
        None => panic!("no answer to a view whose read failed:\n{}", d.log_text()),
    };
    assert_eq!(control.injected(), before + 1, "{}", d.log_text());
    control.clear_faults();
    assert!(failed["error"]["code"].is_i64(), "{failed}");
    eprintln!("EIO in a view: {failed}");
    let ok = d.call(
        "metashrew_view",
        json!(["balance", coinbase9_script_hex(), 169]),
    );
    assert!(ok["result"].is_string(), "{ok}");
    assert_eq!(d.height(), Some(230));
    drop(d);

    // ENOSPC: the disk fills while the heavy blocks are written; the daemon stops cleanly.
    node.set_chain(chain.clone());
    control.set_budget(Some(control.used() + (2 << 20)));
    let mut d = start(&[]);
    assert_eq!(d.wait_exit(WAIT), Some(1), "{}", d.log_text());
    let log = d.log_text();
    assert!(log.contains("No space left on device"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    eprintln!("ENOSPC:\n{}", errors(&log));
    control.set_budget(None);
    resume_and_compare(&db, &node, &reference);
}

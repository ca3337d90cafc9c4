//! Crash consistency: the daemon killed with SIGKILL at random instants, and a disk that fills
//! up mid-write. After each, the database holds whole blocks only; resumed, it ends with the
//! same roots and the same key/value state as an uninterrupted run, and it verifies (its
//! latest-value family equal to history at the tip).
//!
//! The chain is mainnet 0..255 followed by block 840,243 twice (re-linked at 256 and 257), so
//! kills also land while a large block is being written in the background.
//! `METASHREW_CRASH_CYCLES` sets the number of kills (default 12).

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Daemon, FakeNode, fork};
use metashrew_runtime::{MetashrewRuntime, RuntimeConfig};
use metashrew_storage::{MemStore, Storage};
use metashrew_tests::fixtures::{heavy_block, mainnet_blocks};
use metashrew_tests::{Rng, guests};
use rockshrew::store::RocksStore;

const WAIT: Duration = Duration::from_secs(300);

pub(crate) fn chain() -> Vec<Vec<u8>> {
    let mut blocks = mainnet_blocks();
    blocks.push(heavy_block());
    fork(&blocks, 256, 1)
}

pub(crate) struct Reference {
    pub(crate) roots: Vec<metashrew_storage::StateRoot>,
    pub(crate) state: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The uninterrupted run, in process.
pub(crate) fn reference(chain: &[Vec<u8>]) -> Reference {
    let store = Arc::new(MemStore::new());
    let rt = MetashrewRuntime::load(guests::SPENDABLES, store.clone(), RuntimeConfig::default())
        .expect("guest loads");
    let roots = chain
        .iter()
        .enumerate()
        .map(|(h, b)| rt.process_block(h as u32, b).expect("block").state_root)
        .collect();
    Reference {
        roots,
        state: store.dump_at(chain.len() as u32 - 1),
    }
}

/// The committed tip of a database no daemon has open, checking every root up to it.
pub(crate) fn check_prefix(db: &std::path::Path, reference: &Reference) -> Option<u32> {
    let store = RocksStore::open_read_only(db, None).expect("the database opens after a crash");
    let tip = store.tip().expect("tip");
    for h in tip.into_iter().flat_map(|t| 0..=t) {
        assert_eq!(
            store.state_root(h).expect("root"),
            Some(reference.roots[h as usize]),
            "root {h} after a crash"
        );
    }
    // The latest-value family equals history at the tip, whatever the instant of the crash.
    if tip.is_some()
        && let Err(err) = rockshrew::store::verify::verify(&store, &[], 0)
    {
        panic!("the database after a crash does not verify: {err}");
    }
    tip
}

/// Resumes to the tip and compares every root and the whole state with the reference.
pub(crate) fn resume_and_compare(db: &std::path::Path, node: &FakeNode, reference: &Reference) {
    let last = reference.roots.len() as u32 - 1;
    let mut d = Daemon::start(
        guests::SPENDABLES,
        db,
        &[
            "--no-pow-check",
            "--daemon-rpc-url",
            &node.url(),
            "--exit-at",
            &last.to_string(),
        ],
    );
    assert_eq!(d.wait_exit(WAIT), Some(0), "{}", d.log_text());
    assert_eq!(check_prefix(db, reference), Some(last));
    let store = RocksStore::open_read_only(db, None).expect("db opens");
    let state: BTreeMap<Vec<u8>, Vec<u8>> =
        store.dump_at(last).expect("dump").into_iter().collect();
    assert!(state == reference.state, "the final state differs");
}

#[test]
fn sigkill_at_random_instants_loses_nothing() {
    let cycles: usize = std::env::var("METASHREW_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let chain = chain();
    let reference = reference(&chain);
    let node = FakeNode::start(chain);
    // A slow node (and one fetch at a time) stretches the sync over the kill cycles, so that
    // random instants land all along it.
    node.faults.delay_ms.store(15, Ordering::SeqCst);
    let last = reference.roots.len() as u32 - 1;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("kill instants from seed {seed}");
    let mut rng = Rng::new(seed);
    let mut tips = Vec::new();
    let mut rounds = 0;
    let started = Instant::now();
    // A round syncs a new database from scratch under kills, until a kill finds it complete;
    // then it is resumed and compared with the reference.
    while tips.len() < cycles {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        while tips.len() < cycles {
            let d = Daemon::start(
                guests::SPENDABLES,
                &db,
                &[
                    "--no-pow-check",
                    "--daemon-rpc-url",
                    &node.url(),
                    "--fetch-workers",
                    "1",
                ],
            );
            // Most kills land while syncing (after the start-up, which compiles the guest);
            // some during the start-up itself.
            if !rng.next_u64().is_multiple_of(4) {
                while d.get("/metrics").0 != 200 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            std::thread::sleep(Duration::from_millis(rng.next_u64() % 2_500));
            d.signal("-KILL");
            drop(d);
            let tip = check_prefix(&db, &reference);
            tips.push(tip);
            if tip == Some(last) {
                break;
            }
        }
        node.faults.delay_ms.store(0, Ordering::SeqCst);
        resume_and_compare(&db, &node, &reference);
        node.faults.delay_ms.store(15, Ordering::SeqCst);
        rounds += 1;
    }
    eprintln!(
        "{cycles} kill -9 cycles in {rounds} round(s), {:?}; tips after each: {tips:?}",
        started.elapsed()
    );
    let mid_sync = tips.iter().filter(|t| t.is_some_and(|h| h < last)).count();
    assert!(mid_sync >= cycles / 2, "kills must land mid-sync: {tips:?}");
}

#[test]
fn a_disk_that_fills_up_stops_the_daemon_cleanly_and_loses_nothing() {
    let chain = chain();
    let reference = reference(&chain);
    let node = FakeNode::start(chain);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    // Files may not grow past 4 MiB: the write-ahead log of the first large block hits it. The
    // signal is ignored, so the write fails with EFBIG, as on a full disk.
    let (db_arg, url) = (db.display().to_string(), node.url());
    let out = common::run_limited(
        "ulimit -f 4096; trap '' XFSZ",
        &[
            "--indexer",
            guests::SPENDABLES,
            "--db-path",
            &db_arg,
            "--no-pow-check",
            "--daemon-rpc-url",
            &url,
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a clear failure, not a crash: {log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("File too large"), "the cause is named: {log}");
    let tip = check_prefix(&db, &reference);
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    eprintln!(
        "stopped on a full disk with the tip at {tip:?}:\n{}",
        errors.join("\n")
    );
    assert!(tip.is_some_and(|t| t < 257), "{tip:?}");
    // With room again, it resumes and ends exactly where an uninterrupted run does.
    resume_and_compare(&db, &node, &reference);
}

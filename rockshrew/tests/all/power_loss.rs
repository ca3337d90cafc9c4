//! Power cuts: the daemon runs on `faultfs`, which keeps what was not synced in memory and
//! drops it when the power is cut. At seeded random instants (mid-block, mid-commit, during a
//! reorganisation, during a live snapshot) the power is cut and the daemon killed; the file
//! system is mounted again from what was synced, and every time the database must open at a
//! whole block that verifies, with roots that are a prefix of the chain's. With
//! `--sync-every-block` no block the daemon had served may be lost. At the end the daemon
//! resumes to the tip with the roots and state of an uninterrupted run. Also under cuts: a read
//! replica, two indexers in one daemon, and `rockshrew migrate`.
//!
//! `METASHREW_POWER_CUTS` sets the number of cuts (default 20), `METASHREW_POWER_SEED` the
//! seed (default fixed, printed).

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::crash::{Reference, chain, reference, resume_and_compare};

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Daemon, FakeNode, fork};
use metashrew_storage::Storage;
use metashrew_tests::{Rng, guests};
use rockshrew::store::RocksStore;

/// The roots of namespace `label` in `db` up to its tip, as RPC hex, after checking that it
/// opens and verifies; empty when the database or the namespace holds nothing yet.
fn namespace_roots(db: &Path, label: &str) -> Vec<String> {
    if !db.join("CURRENT").exists() || !RocksStore::namespaces(db).iter().any(|n| n == label) {
        return Vec::new();
    }
    let store =
        RocksStore::open_read_only(db, Some(label)).expect("the database opens after a cut");
    let Some(tip) = store.tip().expect("tip") else {
        return Vec::new();
    };
    if let Err(err) = rockshrew::store::verify::verify(&store, &[], 0) {
        panic!("`{label}` after a cut does not verify: {err}");
    }
    (0..=tip)
        .map(|h| {
            let root = store.state_root(h).expect("root");
            format!("0x{}", hex::encode(root.expect("a root at every height")))
        })
        .collect()
}

/// The tip of the database at `db`, which must verify and whose roots must be those of one of
/// `chains` up to it.
fn whole_prefix(db: &Path, chains: &[&Reference]) -> Option<u32> {
    let roots = namespace_roots(db, rockshrew::store::DEFAULT_NAMESPACE);
    let tip = u32::try_from(roots.len().checked_sub(1)?).ok()?;
    assert!(
        chains.iter().any(|c| c.roots.len() >= roots.len()
            && c.roots
                .iter()
                .zip(&roots)
                .all(|(r, hex)| format!("0x{}", hex::encode(r)) == *hex)),
        "after a cut the roots up to {tip} are no chain's"
    );
    Some(tip)
}

/// Starts a `rockshrew` tool with `args`, its output thrown away.
fn spawn_tool(args: &[&std::ffi::OsStr]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_rockshrew"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn median(values: &mut [u32]) -> Option<u32> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

#[test]
fn power_cuts_at_seeded_instants_lose_only_what_was_not_synced() {
    let cuts: usize = std::env::var("METASHREW_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("METASHREW_POWER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_0037);
    eprintln!("{cuts} power cuts from seed {seed}");
    let mut rng = Rng::new(seed);
    let main = chain();
    // A competing branch from 240: a node switching to it makes the daemon roll back.
    let branch = fork(&main, 240, 2);
    let (main_ref, branch_ref) = (reference(&main), reference(&branch));
    let node = FakeNode::start(main.clone());
    node.faults.delay_ms.store(15, Ordering::SeqCst);

    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let mut fs = faultfs::Mounted::mount(&dir.path().join("backing"), &mnt).unwrap();
    let control = fs.control();
    let db = mnt.join("db");
    let url = node.url();
    let mut on_branch = false;
    let mut lost_default = Vec::new();
    let mut lost_synced = Vec::new();
    let mut snapshots_whole = 0;
    let started = Instant::now();
    for cut in 0..cuts {
        let synced = cut % 2 == 1;
        // Every fifth cycle the node follows the other branch: a reorganisation.
        let switched = cut % 5 == 4;
        if switched {
            on_branch = !on_branch;
            node.set_chain(if on_branch {
                branch.clone()
            } else {
                main.clone()
            });
        }
        let mut args = vec![
            "--no-pow-check",
            "--daemon-rpc-url",
            url.as_str(),
            "--fetch-workers",
            "1",
        ];
        if synced {
            args.push("--sync-every-block");
        }
        let mut d = Daemon::start(guests::SPENDABLES, &db, &args);
        if cut == 1 {
            // The compiled-module cache is rebuilt when its entry is torn: the daemon wrote it,
            // the directory (not the entry's data) reached the disk.
            d.wait_for_height(1, Duration::from_secs(120));
            if let Ok(dir) = std::fs::File::open(db.join("module-cache")) {
                let _ = dir.sync_all();
            }
        } else if !rng.next_u64().is_multiple_of(4) {
            while d.get("/metrics").0 != 200 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        std::thread::sleep(Duration::from_millis(rng.next_u64() % 2_500));
        let mut snapshot = (cut % 7 == 6).then(|| {
            let out = mnt.join(format!("snap-{cut}"));
            let child = spawn_tool(&[
                "snapshot".as_ref(),
                "--db-path".as_ref(),
                db.as_os_str(),
                "--out".as_ref(),
                out.as_os_str(),
            ]);
            std::thread::sleep(Duration::from_millis(rng.next_u64() % 300));
            (out, child)
        });
        let seen = d.height();
        control.cut_power();
        d.signal("-KILL");
        let _ = d.wait_exit(Duration::from_secs(30));
        let log = d.log_text();
        drop(d);
        if let Some((_, child)) = snapshot.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        fs.power_cycle().unwrap();

        let tip = whole_prefix(&db, &[&main_ref, &branch_ref]);
        let lost = match (seen, tip) {
            (Some(seen), Some(tip)) => seen.saturating_sub(tip),
            (Some(seen), None) => seen + 1,
            (None, _) => 0,
        };
        eprintln!(
            "cut {cut}: {} served {seen:?}, after the cut {tip:?}: {lost} lost{}",
            if synced {
                "--sync-every-block,"
            } else {
                "default,"
            },
            if switched { " (reorganisation)" } else { "" }
        );
        if synced && !switched {
            assert_eq!(
                lost, 0,
                "a served block was lost with --sync-every-block:\n{log}"
            );
        }
        if synced {
            &mut lost_synced
        } else {
            &mut lost_default
        }
        .push(lost);
        if let Some((out, _)) = snapshot
            && out.join("rockshrew-snapshot.json").exists()
        {
            whole_prefix(&out, &[&main_ref, &branch_ref]).expect("a whole snapshot");
            snapshots_whole += 1;
        }
        if cut == 1 {
            let d = Daemon::start(guests::SPENDABLES, &db, &args);
            let started = Instant::now();
            while !d.log_text().contains("compiled-module cache:") {
                assert!(started.elapsed() < Duration::from_secs(120));
                std::thread::sleep(Duration::from_millis(20));
            }
            let log = d.log_text();
            assert!(
                log.contains("compiled-module cache: Rebuilt")
                    || log.contains("compiled-module cache: Miss"),
                "a torn entry is never trusted: {log}"
            );
        }
    }
    eprintln!(
        "{cuts} cuts in {:?}; blocks lost per cut, default: min/median/max {:?}/{:?}/{:?}; --sync-every-block: {:?}/{:?}/{:?}; {snapshots_whole} interrupted snapshots were whole",
        started.elapsed(),
        lost_default.iter().min(),
        median(&mut lost_default.clone()),
        lost_default.iter().max(),
        lost_synced.iter().min(),
        median(&mut lost_synced.clone()),
        lost_synced.iter().max(),
    );
    node.faults.delay_ms.store(0, Ordering::SeqCst);
    let final_ref = if on_branch { &branch_ref } else { &main_ref };
    resume_and_compare(&db, &node, final_ref);
}

#[test]
fn a_replica_of_a_primary_that_loses_power_catches_up_again_without_a_restart() {
    let main = chain();
    let reference = reference(&main);
    let node = FakeNode::start(main.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut fs =
        faultfs::Mounted::mount(&dir.path().join("backing"), &dir.path().join("mnt")).unwrap();
    let control = fs.control();
    let db = dir.path().join("mnt/db");
    let url = node.url();
    let primary = |extra: &[&str]| {
        Daemon::start(
            guests::SPENDABLES,
            &db,
            &[
                &[
                    "--no-pow-check",
                    "--daemon-rpc-url",
                    url.as_str(),
                    "--sync-every-block",
                    "--fetch-workers",
                    "1",
                ],
                extra,
            ]
            .concat(),
        )
    };
    let mut d = primary(&["--exit-at", "120"]);
    assert_eq!(
        d.wait_exit(Duration::from_secs(120)),
        Some(0),
        "{}",
        d.log_text()
    );
    node.faults.delay_ms.store(20, Ordering::SeqCst);
    let mut d = primary(&[]);
    let db_arg = db.to_str().unwrap().to_string();
    let mut replica = Daemon::start(
        guests::SPENDABLES,
        &dir.path().join("replica"),
        &["--replica-of", &db_arg, "--replica-interval-ms", "50"],
    );
    replica.wait_for_height(130, Duration::from_secs(120));
    d.wait_for_height(140, Duration::from_secs(120));

    let seen = d.height().unwrap();
    control.cut_power();
    d.signal("-KILL");
    let _ = d.wait_exit(Duration::from_secs(30));
    drop(d);
    // The power stays off until the replica has tried to follow and failed at least once: on a
    // busy machine its 50 ms refresh may not come round within the moments the cut takes.
    let failures = |replica: &Daemon| {
        let (_, page) = replica.get("/metrics");
        page.lines()
            .find_map(|l| l.strip_prefix("rockshrew_replica_refresh_failures_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let cut = std::time::Instant::now();
    while failures(&replica) < 1.0 {
        assert!(
            cut.elapsed() < Duration::from_secs(60),
            "the replica never failed to follow a primary without power:\n{}",
            replica.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fs.power_cycle().unwrap();
    let tip = whole_prefix(&db, &[&reference]).unwrap();
    assert!(tip >= seen, "--sync-every-block: {tip} < {seen}");

    // The primary comes back and indexes to the end; the replica follows without a restart.
    node.faults.delay_ms.store(0, Ordering::SeqCst);
    let last = reference.roots.len() as u32 - 1;
    let mut d = primary(&["--exit-at", &last.to_string()]);
    assert_eq!(
        d.wait_exit(Duration::from_secs(180)),
        Some(0),
        "{}",
        d.log_text()
    );
    replica.wait_for_height(last, Duration::from_secs(120));
    for h in [0, 100, tip, last] {
        let root = replica.call("metashrew_stateroot", serde_json::json!([h]))["result"].clone();
        assert_eq!(
            root.as_str(),
            Some(format!("0x{}", hex::encode(reference.roots[h as usize])).as_str()),
            "replica root at {h}"
        );
    }
    let log = replica.log_text();
    assert!(log.contains("cannot follow the primary"), "{log}");
    assert!(log.contains("following the primary again"), "{log}");
}

/// The height the indexer `label` serves; `None` before it serves one or when the daemon does
/// not answer.
fn served(client: &common::Client, label: &str) -> Option<u32> {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"metashrew_height","params":[]}"#;
    let (_, reply) = client.try_post_to(&format!("/{label}"), body)?;
    reply["result"].as_str()?.parse().ok()
}

#[test]
fn several_indexers_in_one_daemon_each_stay_whole_through_power_cuts() {
    let main = chain();
    let expected = [
        (
            "s",
            guests::SPENDABLES,
            common::roots_with(guests::SPENDABLES, &main),
        ),
        (
            "c",
            guests::COMPAT,
            common::roots_with(guests::COMPAT, &main),
        ),
    ];
    let node = FakeNode::start(main.clone());
    node.faults.delay_ms.store(15, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let mut fs =
        faultfs::Mounted::mount(&dir.path().join("backing"), &dir.path().join("mnt")).unwrap();
    let control = fs.control();
    let db = dir.path().join("mnt/db");
    let (url, s_spec, c_spec) = (
        node.url(),
        format!("s={}", guests::SPENDABLES),
        format!("c={}", guests::COMPAT),
    );
    let mut rng = Rng::new(0x5eed_0038);
    let log = dir.path().join("daemon.log");
    let start = |extra: &[&str]| {
        let port = common::free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_rockshrew"));
        command
            .args(["--indexer", &s_spec, "--indexer", &c_spec, "--db-path"])
            .arg(&db)
            .args([
                "--no-pow-check",
                "--daemon-rpc-url",
                &url,
                "--fetch-workers",
                "1",
            ])
            .args(["--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        (command.spawn().unwrap(), common::Client { port })
    };
    for cut in 0..6 {
        let synced = cut % 2 == 1;
        let (mut daemon, client) = start(if synced { &["--sync-every-block"] } else { &[] });
        let started = Instant::now();
        while served(&client, "c").is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(rng.next_u64() % 2_000));
        let seen = [served(&client, "s"), served(&client, "c")];
        control.cut_power();
        let _ = daemon.kill();
        let _ = daemon.wait();
        fs.power_cycle().unwrap();
        let kept: Vec<usize> = expected
            .iter()
            .map(|(label, _, roots)| {
                let found = namespace_roots(&db, label);
                assert_eq!(found[..], roots[..found.len()], "`{label}` after cut {cut}");
                found.len()
            })
            .collect();
        eprintln!(
            "cut {cut}{}: served {seen:?}, blocks kept per indexer {kept:?}",
            if synced { " (--sync-every-block)" } else { "" }
        );
        if synced {
            for (seen, kept) in seen.iter().zip(&kept) {
                assert!(
                    seen.is_none_or(|h| (h as usize) < *kept),
                    "a served block was lost: {seen:?} {kept}"
                );
            }
        }
    }
    node.faults.delay_ms.store(0, Ordering::SeqCst);
    let last = main.len() - 1;
    let (mut daemon, _) = start(&["--exit-at", &last.to_string()]);
    assert!(
        daemon.wait().unwrap().success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    for (label, _, roots) in &expected {
        assert_eq!(&namespace_roots(&db, label), roots, "`{label}` resumed");
    }
}

/// Makes the default namespace of `db` look as the previous layout left it: no layout version,
/// no latest values (as `rockshrew-store`'s own migration test does), durably.
fn make_layout_one(db: &Path) {
    use rockshrew::store::Family;
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), db).unwrap();
    let raw = rocksdb::DB::open_cf(&rocksdb::Options::default(), db, &names).unwrap();
    let meta = raw.cf_handle(&Family::Meta.name_in("default")).unwrap();
    raw.delete_cf(meta, b"format").unwrap();
    let latest = raw.cf_handle(&Family::Latest.name_in("default")).unwrap();
    raw.delete_range_cf(latest, [].as_slice(), [0xff; 8].as_slice())
        .unwrap();
    raw.flush_wal(true).unwrap();
    for name in &names {
        raw.flush_cf(raw.cf_handle(name).unwrap()).unwrap();
    }
}

#[test]
fn a_migration_cut_by_power_loss_is_refused_or_whole_and_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut fs =
        faultfs::Mounted::mount(&dir.path().join("backing"), &dir.path().join("mnt")).unwrap();
    let control = fs.control();
    let db = dir.path().join("mnt/db");
    let mut d = Daemon::start(
        guests::SPENDABLES,
        &db,
        &["--blocks-file", common::FIXTURE, "--exit-at", "255"],
    );
    assert_eq!(
        d.wait_exit(Duration::from_secs(120)),
        Some(0),
        "{}",
        d.log_text()
    );
    let reference = common::reference_roots();
    let mut rng = Rng::new(0x5eed_0039);
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        make_layout_one(&db);
        let mut migrate = spawn_tool(&["migrate".as_ref(), "--db-path".as_ref(), db.as_os_str()]);
        std::thread::sleep(Duration::from_millis(rng.next_u64() % 120));
        control.cut_power();
        let _ = migrate.kill();
        let _ = migrate.wait();
        fs.power_cycle().unwrap();
        match RocksStore::open_read_only(&db, None) {
            Err(rockshrew::store::OpenError::Layout { found: 1, .. }) => outcomes.push("refused"),
            Ok(store) => {
                rockshrew::store::verify::verify(&store, &[], 0)
                    .expect("a migrated namespace verifies");
                outcomes.push("whole");
            }
            Err(other) => panic!("after a cut mid-migration: {other}"),
        }
    }
    eprintln!("after each cut mid-migration: {outcomes:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_rockshrew"))
        .args(["migrate", "--db-path"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(namespace_roots(&db, "default"), reference);
}

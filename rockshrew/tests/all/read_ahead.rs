//! `--read-ahead`: the next block cut into parts run speculatively side by side, their reads
//! made through the store many at a time. Its results must be the daemon's without it.

use std::time::Duration;

use chaingen::{Generator, Settings};
use metashrew_tests::guests;
use serde_json::json;

use crate::common::{Daemon, FakeNode, fork, roots_of};

/// A generated chain whose blocks are large enough to be read ahead (more than 64 KiB each), in
/// which every block spends outputs of the blocks just before it: the keys one block writes are
/// the keys the next one reads.
fn chain(blocks: usize) -> Vec<Vec<u8>> {
    let mut generator = Generator::new(Settings {
        min_txs: 500,
        max_txs: 600,
        ..Settings::default()
    });
    (0..blocks).map(|_| generator.next_block()).collect()
}

fn roots(daemon: &Daemon, upto: u32) -> Vec<String> {
    (0..=upto)
        .map(|h| {
            daemon.call("metashrew_stateroot", json!([h]))["result"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The figure `what` in the read-ahead summary line (`read ahead: N speculative runs ...`).
fn summary_figure(log: &str, what: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("read ahead:"))
        .unwrap_or_else(|| panic!("no read-ahead summary:\n{log}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == what)
        .unwrap_or_else(|| panic!("no `{what}` in {line}"));
    words[at - 1]
        .trim_start_matches('(')
        .parse()
        .expect("a count")
}

#[test]
fn read_ahead_changes_no_root_through_a_kill_and_a_reorganisation() {
    let blocks = chain(16);
    assert!(
        blocks.iter().all(|b| b.len() > 64 << 10),
        "blocks too small"
    );
    let reference = roots_of(&blocks[..12]);
    let node = FakeNode::start(blocks[..12].to_vec());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let url = node.url();
    let args = [
        "--daemon-rpc-url",
        &url,
        "--no-pow-check",
        "--read-ahead",
        "16",
        "--read-ahead-always",
    ];
    let mut d = Daemon::start(guests::SPENDABLES, &db, &args);
    d.wait_for_height(5, Duration::from_secs(300));
    d.signal("-KILL");
    assert!(d.wait_exit(Duration::from_secs(30)).is_none_or(|c| c != 0));
    drop(d);

    let mut d = Daemon::start(guests::SPENDABLES, &db, &args);
    d.wait_for_height(11, Duration::from_secs(300));
    assert_eq!(roots(&d, 11), reference, "after a kill -9 and a restart");

    // A branch from 9: blocks 10 and 11 are replaced, and four more follow.
    let branch = fork(&blocks, 10, 0);
    node.set_chain(branch.clone());
    d.wait_for_height(15, Duration::from_secs(300));
    let expected = roots_of(&branch);
    // The old blocks 10 and 11 may be seen at 15 before the rollback: wait for the branch's.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while roots(&d, 15) != expected && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(roots(&d, 15), expected, "through the reorganisation");
    d.signal("-TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(0));
    let log = d.log_text();
    assert!(
        log.contains("chain reorganisation"),
        "no reorganisation:\n{log}"
    );
    // It did run: blocks were cut into parts, run speculatively, and keys read ahead.
    let blocks = summary_figure(&log, "blocks");
    assert!(blocks > 0, "{log}");
    assert!(summary_figure(&log, "speculative") > blocks, "{log}");
    assert!(summary_figure(&log, "keys") > 0, "{log}");
}

/// By default read-ahead runs only while blocks wait for the disk: with a fresh database, all
/// of it in the page cache, it stands down for every block, large as they are.
#[test]
fn read_ahead_stands_down_while_blocks_do_not_wait_for_the_disk() {
    let blocks = chain(6);
    let node = FakeNode::start(blocks.clone());
    let dir = tempfile::tempdir().unwrap();
    let url = node.url();
    let args = ["--daemon-rpc-url", &url, "--no-pow-check", "--exit-at", "5"];
    let mut d = Daemon::start(guests::SPENDABLES, &dir.path().join("db"), &args);
    assert_eq!(d.wait_exit(Duration::from_secs(300)), Some(0));
    let log = d.log_text();
    assert_eq!(summary_figure(&log, "blocks"), 0, "{log}");
    assert_eq!(summary_figure(&log, "speculative"), 0, "{log}");
    assert!(!log.contains("reading ahead"), "{log}");
}

/// `runtime` with genesis indexed, and read-ahead on it with `parallel` threads, for every block.
fn reading_ahead<S: metashrew_storage::Storage>(
    runtime: metashrew_runtime::MetashrewRuntime<S>,
    parallel: usize,
) -> rockshrew::read_ahead::ReadAhead {
    let genesis = metashrew_tests::fixtures::mainnet_blocks()[0].clone();
    runtime.process_block(0, &genesis).unwrap();
    rockshrew::read_ahead::ReadAhead::start(
        std::sync::Arc::new(runtime),
        rockshrew::read_ahead::ReadAheadConfig {
            parallel,
            min_block_bytes: 0,
            always: true,
            // At the normal class: the tests around keep the CPUs busy.
            class: rockshrew::placement::Class::Normal,
        },
    )
    .unwrap()
}

/// Offers `block` as block 1 until read-ahead takes it (an offer made while it is not waiting
/// for one is skipped).
fn offer_until_taken(
    read_ahead: &rockshrew::read_ahead::ReadAhead,
    block: &std::sync::Arc<Vec<u8>>,
) {
    let waited = std::time::Instant::now();
    while read_ahead
        .stats()
        .blocks
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(waited.elapsed() < Duration::from_secs(10), "never started");
        read_ahead.offer(1, block);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A guest whose block 0 flushes nothing and whose every later block runs for ever.
const SPIN_AFTER_GENESIS_WAT: &str = r#"
  (memory (export "memory") 2)
  (func (export "_start")
    (i32.store (i32.const 0x0FFC) (call $host_len))
    (call $load_input (i32.const 0x1000))
    (if (i32.load (i32.const 0x1000)) (then (loop $spin (br $spin))))
    (call $flush (i32.const 0x104)))
"#;

/// A reorganisation cancels the speculative run in progress: it ends within moments, not at the
/// view timeout (10 s), and frees its view slot.
#[test]
fn a_speculative_run_in_progress_is_cancelled_at_once() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use metashrew_runtime::{MetashrewRuntime, RuntimeConfig};
    use metashrew_storage::MemStore;

    let wasm = wat::parse_str(format!(
        "(module {} {SPIN_AFTER_GENESIS_WAT})",
        metashrew_tests::ABI_IMPORTS
    ))
    .unwrap();
    let runtime =
        MetashrewRuntime::from_bytes(&wasm, Arc::new(MemStore::new()), RuntimeConfig::default())
            .unwrap();
    let read_ahead = reading_ahead(runtime, 2);
    let stats = read_ahead.stats();
    let block = Arc::new(metashrew_tests::fixtures::mainnet_blocks()[0].clone());
    offer_until_taken(&read_ahead, &block);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        stats.runs.load(Ordering::SeqCst),
        1,
        "the block, whole (one transaction)"
    );
    assert_eq!(stats.runs_failed.load(Ordering::SeqCst), 0, "still running");
    let cancelled = std::time::Instant::now();
    read_ahead.cancel();
    while stats.runs_failed.load(Ordering::SeqCst) == 0 {
        assert!(
            cancelled.elapsed() < Duration::from_secs(3),
            "the run went on after its cancellation"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A store whose reads take a while, counting how many are in flight at once.
#[derive(Default)]
struct SlowReads {
    inner: metashrew_storage::MemStore,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    reads: std::sync::atomic::AtomicUsize,
}

impl metashrew_storage::Storage for SlowReads {
    fn get_at(
        &self,
        key: &[u8],
        height: u32,
    ) -> Result<Option<Vec<u8>>, metashrew_storage::StorageError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        self.reads.fetch_add(1, SeqCst);
        std::thread::sleep(Duration::from_micros(100));
        let value = self.inner.get_at(key, height);
        self.in_flight.fetch_sub(1, SeqCst);
        value
    }

    fn commit_block(
        &self,
        commit: &metashrew_storage::BlockCommit,
    ) -> Result<(), metashrew_storage::StorageError> {
        self.inner.commit_block(commit)
    }

    fn rollback_to(&self, height: u32) -> Result<(), metashrew_storage::StorageError> {
        self.inner.rollback_to(height)
    }

    metashrew_storage::forward_block_metadata!(self => self.inner);
}

/// The parts of a block run side by side, never more at once than read-ahead's threads: with
/// 3 threads, 3 reads are in flight, never 4. Every part ends, none fails, and their reads are
/// the store's.
#[test]
fn parts_run_side_by_side_with_at_most_its_threads() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering::SeqCst;

    use metashrew_runtime::{MetashrewRuntime, RuntimeConfig};
    use rockshrew::read_ahead::PARTS_PER_RUN;

    let store = Arc::new(SlowReads::default());
    let wasm = std::fs::read(guests::SPENDABLES).unwrap();
    let runtime =
        MetashrewRuntime::from_bytes(&wasm, store.clone(), RuntimeConfig::default()).unwrap();
    let read_ahead = reading_ahead(runtime, 3);
    // Genesis is indexed: from here every read is a speculative run's.
    let before = store.reads.load(SeqCst);
    let stats = read_ahead.stats();
    // A block of 500-600 transactions (the first of `chain` only creates outputs).
    let block = Arc::new(chain(2).swap_remove(1));
    offer_until_taken(&read_ahead, &block);
    let waited = std::time::Instant::now();
    while stats.blocks_done.load(SeqCst) == 0 {
        assert!(waited.elapsed() < Duration::from_secs(300), "never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(stats.runs.load(SeqCst), 3 * PARTS_PER_RUN as u64);
    assert_eq!(stats.runs_failed.load(SeqCst), 0);
    assert_eq!(store.most.load(SeqCst), 3, "reads in flight at once");
    let reads = (store.reads.load(SeqCst) - before) as u64;
    assert_eq!(stats.keys_read.load(SeqCst), reads);
    // Every input and output of 500 transactions reads at least one key.
    assert!(reads > 1_000, "{reads}");
}

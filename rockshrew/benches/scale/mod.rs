//! The `scale` section: indexing speed, storage and memory as the database grows, on a
//! generated mainnet-shaped chain (`chaingen`) read from `blk*.dat` files, with `spendables`.
//!
//! `METASHREW_SCALE_BLOCKS` (default 450: a database of about 5 GB) sets the chain's length,
//! `METASHREW_SCALE_INGEST` the store's settings (`tip`, the default, or `bulk`: see
//! `rockshrew_store::IngestMode`),
//! `METASHREW_SCALE_DIR` where the chain and the database go (default: a temporary directory,
//! removed afterwards). The series goes to `target/scale/scale.csv` and is drawn in
//! `target/scale/scale.svg`.

use std::fmt::Write as _;

use bitcoin::consensus::deserialize;
use chaingen::blk::{BlkWriter, MAINNET_MAGIC, MAX_FILE_BYTES};
use chaingen::{Generator, Settings};
use plotters::prelude::*;
use rockshrew::source::BlockSource;
use rockshrew::source::files::FileSource;

use super::*;

/// Blocks per row of the series.
const WINDOW: u32 = 25;
/// View calls per (script, height) combination.
const VIEW_CALLS: usize = 200;
/// The "old" height of the views.
const OLD_HEIGHT: u32 = 10;

struct Row {
    height: u32,
    blocks_per_s: f64,
    ms_per_block: f64,
    guest_ms: f64,
    host_calls_ms: f64,
    commit_ms: f64,
    reads: f64,
    /// Host-function time per guest read, in µs (median over the row's blocks).
    us_per_read: f64,
    writes: f64,
    /// Share of the row's host-cache lookups that found their key (every read here is at the
    /// tip, where a held entry answers; reads the block being committed answered are not lookups).
    cache_hit_rate: f64,
    db_bytes: u64,
    stats: rockshrew::store::EngineStats,
    rss_mib: f64,
    /// Where the row's time went, per block: see [`ThreadTimes`].
    threads: ThreadTimes,
}

/// Time of this process's threads, in ms (per block once divided): the indexing thread's time on
/// a CPU and waiting for one (the kernel's run-queue delay), and the CPU time of RocksDB's
/// threads (flushes and compactions) and of the others (background writer, cache filler,
/// instance teardown). The indexing thread's wall time less the first two is time it was
/// blocked (I/O, locks).
#[derive(Clone, Copy, Default)]
struct ThreadTimes {
    index_cpu: f64,
    index_wait: f64,
    rocksdb_cpu: f64,
    other_cpu: f64,
}

impl ThreadTimes {
    /// The totals so far. The indexing thread is the process's main thread, which runs the
    /// blocks here.
    fn now() -> Self {
        let mut t = Self::default();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return t;
        };
        let main = std::process::id().to_string();
        for task in tasks.filter_map(Result::ok) {
            let path = task.path();
            let read = |name: &str| std::fs::read_to_string(path.join(name)).unwrap_or_default();
            let ns: Vec<f64> = read("schedstat")
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let (cpu, wait) = (
                ns.first().copied().unwrap_or(0.0) / 1e6,
                ns.get(1).copied().unwrap_or(0.0) / 1e6,
            );
            if task.file_name().to_str() == Some(main.as_str()) {
                t.index_cpu += cpu;
                t.index_wait += wait;
            } else if read("comm").starts_with("rocksdb") {
                t.rocksdb_cpu += cpu;
            } else {
                t.other_cpu += cpu;
            }
        }
        t
    }

    /// What accrued since `earlier`, per block of `blocks`. Threads that ended in between
    /// (instance teardown) lose their time: a small undercount of `other_cpu`.
    fn per_block_since(self, earlier: Self, blocks: usize) -> Self {
        let n = blocks.max(1) as f64;
        Self {
            index_cpu: (self.index_cpu - earlier.index_cpu) / n,
            index_wait: (self.index_wait - earlier.index_wait) / n,
            rocksdb_cpu: ((self.rocksdb_cpu - earlier.rocksdb_cpu) / n).max(0.0),
            other_cpu: ((self.other_cpu - earlier.other_cpu) / n).max(0.0),
        }
    }
}

/// The words of environment variable `var` (daemon flags), none when it is unset.
pub(crate) fn words(var: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// The value of the environment variable `name`, or `default` when it is unset or unreadable.
pub(crate) fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Resident memory of process `pid` in KiB: (all of it, the guest memory pool's part). The pool
/// is the one kind of mapping of 4 GiB or more (wasmtime reserves each guest memory slot whole,
/// with its guard pages), so its part is the resident size of those mappings.
fn rss_split_kib(pid: u32) -> (u64, u64) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let field = |line: &str, name: &str| -> Option<u64> {
        line.strip_prefix(name)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let (mut all, mut guest, mut in_pool) = (0, 0, false);
    for line in smaps.lines() {
        if let Some(size) = field(line, "Size:") {
            in_pool = size >= 4 << 20;
        } else if let Some(rss) = field(line, "Rss:") {
            all += rss;
            if in_pool {
                guest += rss;
            }
        }
    }
    (all, guest)
}

pub(crate) fn generate(dir: &Path, blocks: u32) {
    let started = Instant::now();
    let mut generator = Generator::new(Settings::default());
    let mut out = BlkWriter::create(dir, MAINNET_MAGIC, None, MAX_FILE_BYTES).expect("blk files");
    let mut bytes = 0u64;
    for _ in 0..blocks {
        let block = generator.next_block();
        bytes += block.len() as u64;
        out.write(&block).expect("write block");
    }
    out.flush().expect("flush");
    println!(
        "generated {blocks} blocks ({:.0} MB of blk files) in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
}

/// The output scripts of `block`'s first transactions (up to `n`), skipping OP_RETURN.
fn scripts_of(block: &[u8], n: usize) -> Vec<Vec<u8>> {
    let block: bitcoin::Block = deserialize(block).expect("block decodes");
    block
        .txdata
        .iter()
        .skip(1)
        .flat_map(|tx| tx.output.iter())
        .filter(|out| !out.script_pubkey.is_op_return())
        .map(|out| out.script_pubkey.to_bytes())
        .take(n)
        .collect()
}

/// Mean µs of a RocksDB read at the tip (no host cache, nothing else running) of the keys
/// blocks `heights` wrote: young and old state.
fn quiet_reads(rt: &MetashrewRuntime<Store>, heights: [u32; 2], tip: u32) -> String {
    let rocks = rt.storage().inner().inner();
    let mut line = String::new();
    for h in heights {
        let keys = rocks.touched_keys(h).expect("touched keys");
        let keys: Vec<&Vec<u8>> = keys.iter().step_by((keys.len() / 20_000).max(1)).collect();
        let started = Instant::now();
        for key in &keys {
            std::hint::black_box(rocks.get_at(key, tip).expect("read"));
        }
        let us = started.elapsed().as_secs_f64() * 1e6 / keys.len().max(1) as f64;
        let _ = write!(line, "keys of block {h}: {us:.2} µs; ");
    }
    line
}

/// p50 and p99 of `balance` views, in µs, per (script age, height) combination.
fn views(rt: &MetashrewRuntime<Store>, old: &[Vec<u8>], new: &[Vec<u8>], tip: u32) -> String {
    let mut line = String::new();
    for (label, scripts, height) in [
        ("old script @ old height", old, OLD_HEIGHT),
        ("old script @ tip", old, tip),
        ("new script @ tip", new, tip),
    ] {
        let mut samples = Vec::with_capacity(VIEW_CALLS);
        for i in 0..VIEW_CALLS {
            let script = &scripts[i % scripts.len()];
            let started = Instant::now();
            rt.view("balance", script, height).expect("view");
            samples.push(started.elapsed().as_secs_f64() * 1e6);
        }
        let s = Samples(samples);
        let _ = write!(
            line,
            "{label}: p50 {:.0} µs, p99 {:.0} µs; ",
            s.quantile(0.5),
            s.quantile(0.99)
        );
    }
    line
}

fn write_csv(path: &Path, rows: &[Row]) {
    let mut csv = String::from(
        "height,blocks_per_s,ms_per_block,guest_ms,host_calls_ms,commit_ms,reads,us_per_read,writes,db_bytes,live_sst_bytes,pending_compaction_bytes,write_amplification,stall_seconds,rss_mib,cache_hit_rate,index_cpu_ms,index_wait_ms,rocksdb_cpu_ms,other_cpu_ms\n",
    );
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{:.3},{:.1},{:.1},{:.1},{:.1},{:.0},{:.2},{:.0},{},{},{},{:.2},{:.3},{:.0},{:.3},{:.1},{:.1},{:.1},{:.1}",
            r.height,
            r.blocks_per_s,
            r.ms_per_block,
            r.guest_ms,
            r.host_calls_ms,
            r.commit_ms,
            r.reads,
            r.us_per_read,
            r.writes,
            r.db_bytes,
            r.stats.live_sst_bytes,
            r.stats.pending_compaction_bytes,
            r.stats.write_amplification(),
            r.stats.stall_seconds,
            r.rss_mib,
            r.cache_hit_rate,
            r.threads.index_cpu,
            r.threads.index_wait,
            r.threads.rocksdb_cpu,
            r.threads.other_cpu
        );
    }
    std::fs::write(path, csv).expect("write CSV");
}

fn plot(path: &Path, rows: &[Row]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(320);
    let max_height = rows.last().map_or(1, |r| r.height).max(1);
    let max_rate = rows.iter().map(|r| r.blocks_per_s).fold(0.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            "indexing speed (spendables, chaingen blocks)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0u32..max_height, 0f64..max_rate.max(0.1))?;
    chart
        .configure_mesh()
        .x_desc("height")
        .y_desc("blocks/s")
        .draw()?;
    chart.draw_series(LineSeries::new(
        rows.iter().map(|r| (r.height, r.blocks_per_s)),
        &BLUE,
    ))?;
    let max_gb = rows
        .iter()
        .map(|r| r.db_bytes as f64 / 1e9)
        .fold(0.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("database size", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0u32..max_height, 0f64..max_gb.max(0.1))?;
    chart
        .configure_mesh()
        .x_desc("height")
        .y_desc("GB")
        .draw()?;
    chart.draw_series(LineSeries::new(
        rows.iter().map(|r| (r.height, r.db_bytes as f64 / 1e9)),
        &RED,
    ))?;
    root.present()?;
    Ok(())
}

/// Drops the kernel's page cache (as after a reboot), when this process may: whether it did.
pub(crate) fn drop_page_cache() -> bool {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Daemon start-up on the final database, until its RPC answers.
fn startup_ms(db: &Path, files: &Path) -> f64 {
    let started = Instant::now();
    let files = files.to_str().expect("path");
    let daemon = Daemon::start(
        guests::SPENDABLES,
        db,
        &["--no-pow-check", "--blocks-file", files],
    );
    loop {
        if daemon.get("/metrics").0 == 200 {
            return ms(started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The run's directory (`METASHREW_SCALE_DIR`, else `temp`) and the `blk*.dat` directory in it,
/// holding a generated chain of `blocks` blocks; prints the section's title (`title` and the
/// directory) first.
fn chain_in(temp: &tempfile::TempDir, blocks: u32, title: &str) -> (PathBuf, PathBuf) {
    let dir =
        std::env::var_os("METASHREW_SCALE_DIR").map_or(temp.path().to_path_buf(), PathBuf::from);
    println!("\n## {title} ({})", dir.display());
    let files = dir.join("blocks");
    generate(&files, blocks);
    (dir, files)
}

pub fn scale() {
    let blocks: u32 = env_or("METASHREW_SCALE_BLOCKS", 450);
    let temp = tempdir();
    let (dir, files) = chain_in(
        &temp,
        blocks,
        &format!(
            "Scale: {blocks} generated mainnet-shaped blocks, `spendables`, RocksDB, rows of {WINDOW} blocks"
        ),
    );
    let source = FileSource::open(&files, 0, Duration::from_secs(3600)).expect("block files");
    let db = dir.join("db");
    let rt = runtime(guests::SPENDABLES, &db, InstanceMode::Fresh);
    let ingest = match std::env::var("METASHREW_SCALE_INGEST").as_deref() {
        Ok("bulk") => rockshrew::store::IngestMode::Bulk,
        _ => rockshrew::store::IngestMode::Tip,
    };
    rt.storage()
        .inner()
        .inner()
        .set_ingest_mode(ingest)
        .expect("ingest settings");
    println!("store settings: {ingest:?}");
    let block_at = |h: u32| {
        let hash = source.block_hash(h).expect("hash");
        source.block(&hash).expect("block")
    };
    let old_scripts = scripts_of(&block_at(OLD_HEIGHT), 50);
    let mut rows = Vec::new();
    let mut start_views = String::new();
    let (mut window_ms, mut guest, mut commit) = (Vec::new(), Vec::new(), Vec::new());
    let (mut host, mut reads, mut writes) = (Vec::new(), Vec::new(), Vec::new());
    let mut per_read = Vec::new();
    let mut window_started = Instant::now();
    let cache_counts = || {
        rt.storage()
            .stats()
            .map_or((0, 0), |s| (s.hits, s.hits + s.misses))
    };
    let mut window_counts = cache_counts();
    let mut window_threads = ThreadTimes::now();
    for h in 0..blocks {
        let block = block_at(h);
        let started = Instant::now();
        let report = rt.process_block(h, &block).expect("block");
        window_ms.push(ms(started.elapsed()));
        guest.push(ms(report.execute_time) - ms(report.host_call_time));
        host.push(ms(report.host_call_time));
        commit.push(ms(report.commit_time));
        reads.push(report.reads as f64);
        per_read.push(ms(report.host_call_time) * 1e3 / report.reads.max(1) as f64);
        writes.push(report.writes as f64);
        if (h + 1) % WINDOW != 0 && h + 1 != blocks {
            continue;
        }
        let elapsed = window_started.elapsed().as_secs_f64();
        let per_block_threads = ThreadTimes::now().per_block_since(window_threads, window_ms.len());
        rt.storage().inner().settle().expect("settled");
        let counts = cache_counts();
        let (hits, lookups) = (counts.0 - window_counts.0, counts.1 - window_counts.1);
        window_counts = counts;
        let row = Row {
            height: h,
            blocks_per_s: window_ms.len() as f64 / elapsed,
            ms_per_block: Samples(std::mem::take(&mut window_ms)).median(),
            guest_ms: Samples(std::mem::take(&mut guest)).median(),
            host_calls_ms: Samples(std::mem::take(&mut host)).median(),
            commit_ms: Samples(std::mem::take(&mut commit)).median(),
            reads: Samples(std::mem::take(&mut reads)).median(),
            us_per_read: Samples(std::mem::take(&mut per_read)).median(),
            writes: Samples(std::mem::take(&mut writes)).median(),
            cache_hit_rate: hits as f64 / lookups.max(1) as f64,
            db_bytes: dir_bytes(&db),
            stats: rt.storage().inner().inner().engine_stats(),
            rss_mib: rss_mib(),
            threads: per_block_threads,
        };
        println!(
            "height {:>6}: {:.2} blocks/s, {:.0} ms/block (guest {:.0} + host calls {:.0} + commit {:.0}; {:.0} reads at {:.2} µs, {:.0}% from the host cache, {:.0} writes), db {:.2} GB, compaction debt {:.2} GB, write amp {:.2}, stalls {:.1} s, RSS {:.0} MiB",
            row.height,
            row.blocks_per_s,
            row.ms_per_block,
            row.guest_ms,
            row.host_calls_ms,
            row.commit_ms,
            row.reads,
            row.us_per_read,
            100.0 * row.cache_hit_rate,
            row.writes,
            row.db_bytes as f64 / 1e9,
            row.stats.pending_compaction_bytes as f64 / 1e9,
            row.stats.write_amplification(),
            row.stats.stall_seconds,
            row.rss_mib
        );
        println!(
            "    per block: indexing thread {:.0} ms on a CPU + {:.0} ms waiting for one; RocksDB threads {:.0} ms CPU, others {:.0} ms CPU",
            row.threads.index_cpu,
            row.threads.index_wait,
            row.threads.rocksdb_cpu,
            row.threads.other_cpu
        );
        rows.push(row);
        if rows.len() == 2 {
            start_views = views(&rt, &old_scripts, &scripts_of(&block, 50), h);
            println!(
                "quiet RocksDB reads at the tip: {}",
                quiet_reads(&rt, [OLD_HEIGHT, h], h)
            );
        }
        window_started = Instant::now();
        window_threads = ThreadTimes::now();
    }
    let tip = blocks - 1;
    let end_views = views(&rt, &old_scripts, &scripts_of(&block_at(tip), 50), tip);
    println!(
        "quiet RocksDB reads at the tip: {}",
        quiet_reads(&rt, [OLD_HEIGHT, tip], tip)
    );
    println!("views at height {}: {start_views}", 2 * WINDOW - 1);
    println!("views at height {tip}: {end_views}");
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let tail: Vec<f64> = rows.iter().rev().take(3).map(|r| r.blocks_per_s).collect();
        let head: Vec<f64> = rows
            .iter()
            .skip(1)
            .take(3)
            .map(|r| r.blocks_per_s)
            .collect();
        let (head, tail) = (
            head.iter().sum::<f64>() / head.len().max(1) as f64,
            tail.iter().sum::<f64>() / tail.len().max(1) as f64,
        );
        let read_cost = |rows: &mut dyn Iterator<Item = &Row>| {
            let v: Vec<f64> = rows.take(3).map(|r| r.us_per_read).collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let (read_head, read_tail) = (
            read_cost(&mut rows.iter().skip(1)),
            read_cost(&mut rows.iter().rev()),
        );
        println!(
            "host time per read: {read_head:.2} µs over rows 2-4, {read_tail:.2} over the last 3 rows ({:.2}x)",
            read_tail / read_head.max(1e-9)
        );
        println!(
            "speed: {head:.2} blocks/s over rows 2-4, {tail:.2} over the last 3 rows ({:.0}%); database {:.2} -> {:.2} GB; RSS {:.0} -> {:.0} MiB",
            100.0 * tail / head.max(1e-9),
            first.db_bytes as f64 / 1e9,
            last.db_bytes as f64 / 1e9,
            first.rss_mib,
            last.rss_mib
        );
    }
    // As the daemon does when it stops.
    rt.storage().inner().settle().expect("settled");
    rt.storage().inner().inner().flush().expect("flush");
    drop(rt);
    // The first start compiles the module into the database's module cache; the second
    // loads it from there, as every restart after the first does.
    println!(
        "daemon start-up on the final database until RPC answers: {:.0} ms compiling the module, {:.0} ms with it cached",
        startup_ms(&db, &files),
        startup_ms(&db, &files)
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scale");
    std::fs::create_dir_all(&out).expect("output directory");
    write_csv(&out.join("scale.csv"), &rows);
    match plot(&out.join("scale.svg"), &rows) {
        Ok(()) => println!(
            "series: {}/scale.csv, plot: {}/scale.svg",
            out.display(),
            out.display()
        ),
        Err(e) => println!("series: {}/scale.csv; no plot: {e}", out.display()),
    }
}

/// The `sync` section: the daemon itself syncing a generated chain from its `blk*.dat` files,
/// as an operator's first sync does. `METASHREW_SYNC_BLOCKS` (default 450) sets the length,
/// `METASHREW_SYNC_ARGS` gives more daemon flags.
/// Prints blocks/s per row of [`WINDOW`] blocks and the daemon's peak RSS; the series goes to
/// `target/scale/sync.csv`.
pub fn daemon_sync() {
    let blocks: u32 = env_or("METASHREW_SYNC_BLOCKS", 450);
    let temp = tempdir();
    let (dir, files) = chain_in(
        &temp,
        blocks,
        &format!(
            "Daemon sync: {blocks} generated mainnet-shaped blocks from blk files, `spendables`, default settings"
        ),
    );
    let db = dir.join("sync-db");
    let last = blocks - 1;
    let files_arg = files.to_str().expect("path").to_string();
    let last_arg = last.to_string();
    let extra = words("METASHREW_SYNC_ARGS");
    let mut args = vec![
        "--no-pow-check",
        "--blocks-file",
        &files_arg,
        "--exit-at",
        &last_arg,
    ];
    args.extend(extra.iter().map(String::as_str));
    let mut daemon = Daemon::start(guests::SPENDABLES, &db, &args);
    let started = Instant::now();
    // When each height was first seen committed.
    let mut reached: Vec<Option<f64>> = vec![None; blocks as usize];
    let mut peak_kib = 0;
    // The largest resident size outside the guest memory pool, and the pool's at that moment.
    let (mut host_peak_kib, mut guest_then_kib) = (0, 0);
    let mut sampled = Instant::now();
    loop {
        peak_kib = peak_kib.max(daemon.status_kib("VmHWM:"));
        if sampled.elapsed() >= Duration::from_secs(1) {
            sampled = Instant::now();
            let (all, guest) = rss_split_kib(daemon.child.id());
            if all - guest > host_peak_kib {
                (host_peak_kib, guest_then_kib) = (all - guest, guest);
            }
        }
        if let Ok(Some(_)) = daemon.child.try_wait() {
            break;
        }
        // From the metrics page: it answers from the start, and never fails the poll.
        let (status, metrics) = daemon.get("/metrics");
        let indexed = metrics
            .lines()
            .find_map(|l| l.strip_prefix("rockshrew_indexed_height "))
            .and_then(|v| v.trim().parse::<u32>().ok());
        if let (200, Some(h)) = (status, indexed) {
            let now = started.elapsed().as_secs_f64();
            for slot in reached.iter_mut().take(h as usize + 1) {
                slot.get_or_insert(now);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = daemon.log_text();
    let total = started.elapsed().as_secs_f64();
    // The daemon exits at --exit-at; the last heights are those of the exit.
    for slot in reached.iter_mut() {
        slot.get_or_insert(total);
    }
    let times: Vec<f64> = reached.into_iter().map(|t| t.unwrap_or(total)).collect();
    let mut csv = String::from("height,blocks_per_s\n");
    let rate = |from: u32, to: u32| {
        f64::from(to - from) / (times[to as usize] - times[from as usize]).max(1e-9)
    };
    let mut h = WINDOW - 1;
    while h + WINDOW <= last {
        let r = rate(h, h + WINDOW);
        let _ = writeln!(csv, "{},{r:.3}", h + WINDOW);
        println!("blocks {:>5}..{:>5}: {r:.2} blocks/s", h + 1, h + WINDOW);
        h += WINDOW;
    }
    let first = rate(WINDOW - 1, (4 * WINDOW - 1).min(last));
    let tail = rate(last.saturating_sub(3 * WINDOW), last);
    println!(
        "blocks {}..{}: {first:.2} blocks/s; last {}: {tail:.2} blocks/s ({:.0}%); whole sync {total:.1} s; peak RSS {:.0} MiB",
        WINDOW,
        4 * WINDOW,
        3 * WINDOW,
        100.0 * tail / first.max(1e-9),
        peak_kib as f64 / 1024.0
    );
    println!(
        "resident memory outside the guest memory pool (sampled each second): at most {:.0} MiB, with the pool's {:.0} MiB beside it then",
        host_peak_kib as f64 / 1024.0,
        guest_then_kib as f64 / 1024.0
    );
    if let Some(line) = log
        .lines()
        .rev()
        .find(|l| l.contains("indexed ") && l.contains("blocks/s"))
    {
        println!("daemon: {line}");
    }
    if let Some(line) = log.lines().rev().find(|l| l.contains("read ahead:")) {
        println!("daemon: {line}");
    }
    let warm = [startup_ms(&db, &files), startup_ms(&db, &files)];
    let cold = drop_page_cache().then(|| startup_ms(&db, &files));
    println!(
        "daemon start-up on the final database until RPC answers: {:.0} / {:.0} ms warm, {} after dropping the page cache",
        warm[0],
        warm[1],
        cold.map_or("not measured (no permission)".to_string(), |c| format!(
            "{c:.0} ms"
        ))
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scale");
    std::fs::create_dir_all(&out).expect("output directory");
    std::fs::write(out.join("sync.csv"), csv).expect("write CSV");
}

/// The tip height the full-chain projection runs to (mainnet, late 2026).
const PROJECTION_TIP: u32 = 977_000;

/// The `projection` section: the hours a full mainnet index with `spendables` takes, projected
/// from blocks shaped like each era's (`chaingen::MAINNET_ERAS`). For each era, a fresh
/// database indexes `METASHREW_PROJECTION_BLOCKS` (default 40) generated blocks of the era's
/// transaction counts starting at the era's first height; the median ms/block of the second
/// half (and never of the chain's funding blocks), times the era's block count, is the era's
/// time. `METASHREW_PROJECTION_SLOWDOWN`
/// (default 1.0) multiplies the total: the last/first ms/block ratio of a `scale` run, for the
/// cost of a grown database that a fresh one does not show.
pub fn projection() {
    let per_era: u32 = env_or("METASHREW_PROJECTION_BLOCKS", 40);
    let slowdown: f64 = env_or("METASHREW_PROJECTION_SLOWDOWN", 1.0);
    println!(
        "\n## Full-chain projection: `spendables`, {per_era} generated blocks per mainnet era, fresh RocksDB each, to height {PROJECTION_TIP}"
    );
    let mut hours = 0.0;
    let mut csv = String::from("first_height,last_height,min_txs,max_txs,ms_per_block,hours\n");
    for (i, &(from, min, max)) in chaingen::MAINNET_ERAS.iter().enumerate() {
        let to = chaingen::MAINNET_ERAS
            .get(i + 1)
            .map_or(PROJECTION_TIP, |next| next.0);
        let dir = tempdir();
        let rt = runtime(guests::SPENDABLES, dir.path(), InstanceMode::Fresh);
        let mut generator = Generator::new(Settings {
            first_height: from,
            profile: chaingen::Profile::Mainnet,
            ..Settings::default()
        });
        let mut samples = Vec::new();
        for n in 0..per_era {
            let block = generator.next_block();
            let started = Instant::now();
            rt.process_block(from + n, &block).expect("block");
            if n >= (per_era / 2).max(chaingen::FUNDING_BLOCKS) {
                samples.push(ms(started.elapsed()));
            }
        }
        let per_block = Samples(samples).median();
        let era_hours = f64::from(to - from) * per_block / 3.6e6;
        hours += era_hours;
        println!(
            "heights {from:>7}..{to:>7}: {min:>5}-{max:>5} transactions, {per_block:>8.2} ms/block, {era_hours:>6.2} h"
        );
        let _ = writeln!(csv, "{from},{to},{min},{max},{per_block:.3},{era_hours:.3}");
    }
    println!(
        "projected full index: {hours:.1} h on fresh databases; x{slowdown:.2} for a grown database: {:.1} h",
        hours * slowdown
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scale");
    std::fs::create_dir_all(&out).expect("output directory");
    std::fs::write(out.join("projection.csv"), csv).expect("write CSV");
}

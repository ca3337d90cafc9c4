//! The `bounded` section (only when named): indexing where the database does not fit in memory,
//! as on an operator's machine.
//!
//! A generated mainnet-shaped chain (`chaingen`, blk files) of `METASHREW_BOUNDED_BLOCKS` blocks
//! (default 450) is indexed once by the daemon with `spendables`, all but its last
//! `METASHREW_BOUNDED_TAIL` blocks (default 40): the base database. Each run then indexes the
//! tail on a copy of it (its SST files hard-linked, as a RocksDB checkpoint does) after the
//! kernel's page cache was dropped, twice over in alternating order:
//!
//! - `unlimited`: the machine's whole memory;
//! - `limited`: the daemon in a memory cgroup whose limit (`METASHREW_BOUNDED_MIB`, default an
//!   eighth of the database) counts its page cache with its own memory, so the database is read
//!   from the disk as on a machine with that much RAM;
//! - `unlimited+B` and `limited+B`, when `METASHREW_BOUNDED_B_ARGS` gives more daemon flags (a
//!   setting compared with the same memory).
//!
//! `METASHREW_BOUNDED_A_ARGS` gives flags for the runs without `+B` (e.g. `--read-ahead 0`),
//! `METASHREW_BOUNDED_ARGS` flags for every run (e.g. `--host-cache-mib 64`: the limit
//! must leave the daemon its own memory, its caches and its guest, or the page cache gets
//! nothing and a run that commits no block for 10 minutes is stopped).
//!
//! Each run reports blocks/s, the guest's reads a block and how many of them waited for a read
//! of RocksDB's files (its block cache missed: page cache or disk) and for the device (the
//! indexing thread's reads that missed the page cache too), µs of host-function time a
//! read, the device's reads a guest read (from `/sys/dev/block/*/stat`: the share of reads that
//! went to the disk; the machine should be otherwise idle) and the peak memory (the cgroup's,
//! page cache included, or the daemon's RSS). The disk's floor is measured in the same run: 4
//! KiB random reads with `O_DIRECT` on a file beside the database at queue depth 1 and 16.
//!
//! The limit uses the cgroup v1 memory controller (`/sys/fs/cgroup/memory`, as root), mounted on
//! these machines; `docs/operations.md` gives the cgroup v2 equivalent for operators. Without it
//! (or without root to drop the page cache), only `unlimited` runs. `METASHREW_BOUNDED_DIR` keeps
//! the chain and the base database between runs (default: a temporary directory);
//! `METASHREW_BOUNDED_ROUNDS` (default 2) sets the rounds, 0 only prepares them.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, MetadataExt as _, OpenOptionsExt as _};

use super::*;
use crate::scale::{dir_bytes, drop_page_cache, env_or, generate, words};

/// Where cgroup v1's memory controller is mounted.
const CGROUP_MEMORY: &str = "/sys/fs/cgroup/memory";
/// Bytes of one disk read in the floor measurement.
const PAGE: usize = 4096;

/// A memory cgroup of this process's making, removed on drop.
struct MemoryCgroup {
    path: PathBuf,
}

impl MemoryCgroup {
    /// A new cgroup limited to `bytes` (memory and page cache together), or `None` without the
    /// controller or the right to make one.
    fn new(name: &str, bytes: u64) -> Option<Self> {
        let path = Path::new(CGROUP_MEMORY).join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&path).ok()?;
        let cgroup = Self { path };
        std::fs::write(cgroup.path.join("memory.limit_in_bytes"), bytes.to_string()).ok()?;
        Some(cgroup)
    }

    /// A shell prelude that moves the shell (then the daemon it becomes) into the cgroup.
    fn prelude(&self) -> String {
        format!("echo $$ > {}/cgroup.procs", self.path.display())
    }

    /// The most the cgroup held at once (memory and page cache), in MiB.
    fn peak_mib(&self) -> f64 {
        std::fs::read_to_string(self.path.join("memory.max_usage_in_bytes"))
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(f64::NAN, |b| b / MIB)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Empty once its process has exited; the kernel may take a moment to let go of it.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;
/// A run that commits no block for this long is stopped.
const STALL: Duration = Duration::from_secs(600);

/// Reads completed by the block device holding `path` (`/sys/dev/block/MAJ:MIN/stat`).
fn device_reads(path: &Path) -> Option<u64> {
    let dev = std::fs::metadata(path).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let stat = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// µs a read and reads/s of 4 KiB random `O_DIRECT` reads of `file` (`pages` pages) by `depth`
/// threads, each issuing one read at a time, for about `seconds`.
fn random_reads(file: &Path, pages: u64, depth: usize, seconds: f64) -> (f64, f64) {
    let started = Instant::now();
    let per_thread: Vec<(u64, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..depth)
            .map(|t| {
                scope.spawn(move || {
                    let f = std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_DIRECT)
                        .open(file)
                        .expect("open for direct reads");
                    // O_DIRECT wants a page-aligned buffer: a page-aligned window of a larger one.
                    let mut space = vec![0u8; 2 * PAGE];
                    let offset = space.as_ptr().align_offset(PAGE);
                    let buffer = &mut space[offset..offset + PAGE];
                    // xorshift: a fixed sequence per thread.
                    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                    let (mut n, mut busy) = (0u64, Duration::ZERO);
                    while started.elapsed().as_secs_f64() < seconds {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let at = (x % pages) * PAGE as u64;
                        let one = Instant::now();
                        f.read_exact_at(buffer, at).expect("direct read");
                        busy += one.elapsed();
                        n += 1;
                    }
                    (n, busy)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("reader"))
            .collect()
    });
    let reads: u64 = per_thread.iter().map(|(n, _)| n).sum();
    let busy: f64 = per_thread.iter().map(|(_, b)| b.as_secs_f64()).sum();
    let wall = started.elapsed().as_secs_f64();
    (1e6 * busy / reads.max(1) as f64, reads as f64 / wall)
}

/// The disk's floor: queue depth 1 and 16 on a `mib` MiB file written in `dir` (then removed).
fn disk_floor(dir: &Path, mib: u64) -> String {
    let path = dir.join("floor.bin");
    let mut f = File::create(&path).expect("floor file");
    let mut chunk = vec![0u8; 1 << 20];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for byte in chunk.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    for i in 0..mib {
        chunk[..8].copy_from_slice(&i.to_le_bytes());
        f.write_all(&chunk).expect("write floor file");
    }
    f.sync_all().expect("sync floor file");
    drop(f);
    let pages = mib * (1 << 20) / PAGE as u64;
    let (qd1_us, qd1_iops) = random_reads(&path, pages, 1, 3.0);
    let (_, qd16_iops) = random_reads(&path, pages, 16, 3.0);
    let _ = std::fs::remove_file(&path);
    format!(
        "disk floor ({mib} MiB file, 4 KiB random O_DIRECT reads): queue depth 1 {qd1_us:.0} µs a read ({qd1_iops:.0}/s); queue depth 16 {qd16_iops:.0}/s ({:.1} µs a read in effect, {:.1}x)",
        1e6 / qd16_iops.max(1e-9),
        qd16_iops / qd1_iops.max(1e-9)
    )
}

/// A copy of the database `from` at `to`: SST files (immutable) hard-linked, the rest copied.
fn clone_db(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("database copy");
    for entry in std::fs::read_dir(from).expect("base database") {
        let entry = entry.expect("entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().expect("type").is_dir() {
            clone_db(&src, &dst);
        } else if src.extension().is_some_and(|e| e == "sst") {
            std::fs::hard_link(&src, &dst).expect("link SST");
        } else {
            std::fs::copy(&src, &dst).expect("copy file");
        }
    }
}

/// A counter or a histogram's sum from a `/metrics` page (0 when absent).
fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// Flags for every run's daemon (`METASHREW_BOUNDED_ARGS`: smaller caches under a small limit).
fn common_args() -> &'static [String] {
    static ARGS: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| words("METASHREW_BOUNDED_ARGS"));
    &ARGS
}

/// What one run of the tail measured.
struct Run {
    blocks_per_s: f64,
    reads_per_block: f64,
    /// Reads of RocksDB's files by the indexing thread a block: those it waited on.
    file_reads_per_block: f64,
    /// Reads the indexing thread waited on the device for, a block.
    device_waits_per_block: f64,
    us_per_read: f64,
    disk_reads_per_read: f64,
    peak_mib: f64,
}

/// Indexes `first..=last` from `files` on a copy of `base`, under `cgroup` if given.
fn run_tail(
    base: &Path,
    files: &Path,
    (first, last): (u32, u32),
    cgroup: Option<&MemoryCgroup>,
    extra: &[String],
) -> Run {
    let db = base.with_file_name("run-db");
    clone_db(base, &db);
    drop_page_cache();
    let prelude = cgroup.map(MemoryCgroup::prelude).unwrap_or_default();
    let files_arg = files.to_str().expect("path");
    let mut args = vec!["--no-pow-check", "--blocks-file", files_arg];
    args.extend(extra.iter().map(String::as_str));
    args.extend(common_args().iter().map(String::as_str));
    let before = device_reads(&db);
    let mut daemon = Daemon::start_binary(
        env!("CARGO_BIN_EXE_rockshrew"),
        &prelude,
        guests::SPENDABLES,
        &db,
        &args,
    );
    let (mut started, mut peak_rss) = (None, 0u64);
    let (mut seen, mut progressed) = (0u32, Instant::now());
    let page = loop {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!("the daemon exited ({status}):\n{}", daemon.log_text());
        }
        peak_rss = peak_rss.max(daemon.status_kib("VmHWM:"));
        let (status, page) = daemon.get("/metrics");
        let height = metric(&page, "rockshrew_indexed_height") as u32;
        if height > seen {
            (seen, progressed) = (height, Instant::now());
        }
        assert!(
            progressed.elapsed() < STALL,
            "no block in {STALL:?} at height {seen}: a limit below what the daemon itself needs \
             (its caches, its guest) leaves the page cache nothing; raise METASHREW_BOUNDED_MIB \
             or shrink the caches with METASHREW_BOUNDED_ARGS"
        );
        if status == 200 && height >= first && started.is_none() {
            // Start-up and the first block are not counted: from here the tail runs.
            started = Some((Instant::now(), page.clone()));
        }
        if status == 200 && height >= last {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let disk = device_reads(&db).zip(before).map(|(a, b)| a - b);
    let (since, start_page) = started.expect("the first block was seen");
    let seconds = since.elapsed().as_secs_f64();
    let delta = |name: &str| metric(&page, name) - metric(&start_page, name);
    let blocks = delta("rockshrew_blocks_indexed_total");
    let reads = delta("rockshrew_block_reads_total");
    let file_reads = delta("rockshrew_block_file_reads_total");
    let device_waits = delta("rockshrew_block_device_reads_total");
    let host = delta("rockshrew_block_phase_seconds_sum{phase=\"host_calls\"}");
    drop(daemon);
    let _ = std::fs::remove_dir_all(&db);
    Run {
        blocks_per_s: blocks / seconds,
        reads_per_block: reads / blocks.max(1.0),
        file_reads_per_block: file_reads / blocks.max(1.0),
        device_waits_per_block: device_waits / blocks.max(1.0),
        us_per_read: 1e6 * host / reads.max(1.0),
        disk_reads_per_read: disk.map_or(f64::NAN, |d| d as f64 / reads.max(1.0)),
        peak_mib: cgroup.map_or(peak_rss as f64 / 1024.0, MemoryCgroup::peak_mib),
    }
}

/// The chain and the base database in `dir`, made unless a previous run left them.
fn prepare(dir: &Path, blocks: u32, base_last: u32) -> (PathBuf, PathBuf) {
    let files = dir.join("blocks");
    let chain_mark = dir.join(format!("chain-{blocks}.done"));
    if !chain_mark.exists() {
        let _ = std::fs::remove_dir_all(&files);
        generate(&files, blocks);
        std::fs::write(&chain_mark, b"").expect("mark");
    }
    let base = dir.join("base-db");
    let base_mark = dir.join(format!("base-{base_last}.done"));
    if !base_mark.exists() {
        let _ = std::fs::remove_dir_all(&base);
        let started = Instant::now();
        let files_arg = files.to_str().expect("path");
        let last = base_last.to_string();
        let mut daemon = Daemon::start(
            guests::SPENDABLES,
            &base,
            &[
                "--no-pow-check",
                "--blocks-file",
                files_arg,
                "--exit-at",
                &last,
            ],
        );
        let code = daemon.wait_exit(Duration::from_secs(6 * 3600));
        assert_eq!(code, Some(0), "base database:\n{}", daemon.log_text());
        println!(
            "base database: blocks 0..={base_last} indexed in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        std::fs::write(&base_mark, b"").expect("mark");
    }
    (files, base)
}

/// The `bounded` section.
pub fn bounded() {
    let blocks: u32 = env_or("METASHREW_BOUNDED_BLOCKS", 450);
    let tail: u32 = env_or("METASHREW_BOUNDED_TAIL", 40).clamp(2, blocks - 1);
    let temp = tempdir();
    let dir =
        std::env::var_os("METASHREW_BOUNDED_DIR").map_or(temp.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("run directory");
    println!(
        "\n## Bounded memory: the last {tail} of {blocks} generated mainnet-shaped blocks, `spendables` ({})",
        dir.display()
    );
    let base_last = blocks - tail - 1;
    let (files, base) = prepare(&dir, blocks, base_last);
    let db_bytes = dir_bytes(&base);
    let limit_mib: u64 = env_or("METASHREW_BOUNDED_MIB", (db_bytes / 8) >> 20);
    println!(
        "database {:.2} GB at block {base_last}; limit {limit_mib} MiB ({:.1}x smaller)",
        db_bytes as f64 / 1e9,
        db_bytes as f64 / (limit_mib << 20) as f64
    );
    println!(
        "{}",
        disk_floor(&dir, env_or("METASHREW_BOUNDED_FLOOR_MIB", 2048))
    );
    let b_args = words("METASHREW_BOUNDED_B_ARGS");
    let a_args = words("METASHREW_BOUNDED_A_ARGS");
    if !a_args.is_empty() {
        println!("runs without +B: {}", a_args.join(" "));
    }
    if !common_args().is_empty() {
        println!("every run: {}", common_args().join(" "));
    }
    let can_limit = drop_page_cache() && MemoryCgroup::new("rockshrew-probe", 1 << 30).is_some();
    if !can_limit {
        println!("(no memory cgroup or no right to drop the page cache: unlimited only)");
    }
    let mut kinds: Vec<(&str, bool, Vec<String>)> = vec![("unlimited", false, a_args.clone())];
    if !b_args.is_empty() {
        kinds.push(("unlimited+B", false, b_args.clone()));
    }
    if can_limit {
        kinds.push(("limited", true, a_args.clone()));
        if !b_args.is_empty() {
            kinds.push(("limited+B", true, b_args.clone()));
        }
    }
    let rounds: usize = env_or("METASHREW_BOUNDED_ROUNDS", 2);
    if rounds == 0 {
        return;
    }
    let mut results: BTreeMap<&str, Vec<Run>> = BTreeMap::new();
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..kinds.len()).collect()
        } else {
            (0..kinds.len()).rev().collect()
        };
        for i in order {
            let (name, limited, extra) = &kinds[i];
            let cgroup = limited
                .then(|| MemoryCgroup::new("rockshrew-bounded", limit_mib << 20))
                .flatten();
            let run = run_tail(
                &base,
                &files,
                (base_last + 1, blocks - 1),
                cgroup.as_ref(),
                extra,
            );
            println!(
                "round {} {name:>11}: {:.2} blocks/s, {:.0} reads a block ({:.0} waited for a file read, {:.0} for the device), {:.1} µs a read, {:.3} disk reads a read, peak {} {:.0} MiB",
                round + 1,
                run.blocks_per_s,
                run.reads_per_block,
                run.file_reads_per_block,
                run.device_waits_per_block,
                run.us_per_read,
                run.disk_reads_per_read,
                if *limited {
                    "memory and page cache"
                } else {
                    "RSS"
                },
                run.peak_mib
            );
            results.entry(name).or_default().push(run);
        }
    }
    let speed = |name: &str| {
        Samples(
            results
                .get(name)
                .map(|r| r.iter().map(|x| x.blocks_per_s).collect())
                .unwrap_or_default(),
        )
    };
    let unlimited = speed("unlimited").median();
    for (name, _, _) in &kinds {
        let s = speed(name);
        println!(
            "{name}: {} blocks/s, {:.0}% of unlimited{}",
            s.show(2),
            100.0 * s.median() / unlimited,
            if name.ends_with("+B") {
                format!(" (B: {})", b_args.join(" "))
            } else {
                String::new()
            }
        );
    }
}

//! Comparisons that a noisy machine cannot fool: the `ab` and `flat` sections (only when named).
//!
//! Both run the real daemon on relinked copies of heavy real blocks (`relinked`), served by a
//! local fake node: every heavy block found in `METASHREW_HEAVY_DIR` (default
//! `../shared/blocks/mainnet` beside the checkout; `block-*.hex` files of more than 1 MB of hex),
//! else the bundled block 840,243, repeated in turn and each linked to the one before.
//!
//! `ab` runs two daemons, A and B, in interleaved pairs on the same blocks, in alternating order
//! (A then B, then B then A), each on a fresh database, and takes each run's indexing time from
//! the daemon's own summary line. The machine's drift hits both halves of a pair alike, so the
//! pair's ratio B/A measures the code; the section prints each pair, both medians, and the
//! geometric mean of the ratios with its 95% confidence interval (Student's t on the log
//! ratios). Settings: `METASHREW_AB_A` and `METASHREW_AB_B` (the `rockshrew` binaries; default
//! this build's, for both; `metashrew:PATH` names Metashrew's own `rockshrew-mono`, which is then
//! given only the flags both daemons share, and both sides are timed from spawn until
//! `metashrew_height` answers the last height, module compilation and database creation
//! included), `METASHREW_AB_A_ARGS` and `METASHREW_AB_B_ARGS`
//! (extra flags, split on spaces: two settings of one binary), `METASHREW_AB_PAIRS` (default 6),
//! `METASHREW_AB_BLOCKS` (default 24), `METASHREW_AB_FIRST_HEIGHT` (the chain's first height,
//! default 0; alkanes indexes from 880,000) and `METASHREW_AB_GUEST` (default the
//! alkanes-shaped `contracts`; a path for any other module).
//!
//! `flat` indexes a long run (`METASHREW_FLAT_BLOCKS`, default 300, with `METASHREW_FLAT_GUEST`,
//! default `spendables`) and reports each quarter's speed beside a fixed reference workload (a
//! single-threaded integer loop, [`reference_ms`]) timed every 2 s in the same windows: a
//! quarter that is slower with its reference equally slower is the machine, one whose reference
//! held is the daemon.

use super::*;
use crate::scale::{env_or, words};

/// Heavy blocks: those of `METASHREW_HEAVY_DIR`, else the bundled one.
fn heavy_blocks() -> Vec<Vec<u8>> {
    let dir = std::env::var("METASHREW_HEAVY_DIR").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/blocks/mainnet"),
        PathBuf::from,
    );
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    name.starts_with("block-")
                        && name.ends_with(".hex")
                        && p.metadata().is_ok_and(|m| m.len() > 1_000_000)
                })
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    let blocks: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| hex::decode(std::fs::read_to_string(p).expect("read").trim()).expect("hex"))
        .collect();
    if blocks.is_empty() {
        println!(
            "(no heavy blocks in {}: block {HEAVY_HEIGHT} only)",
            dir.display()
        );
        return vec![heavy_block()];
    }
    println!(
        "heavy blocks from {}: {}",
        dir.display(),
        paths
            .iter()
            .filter_map(|p| p.file_stem()?.to_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    blocks
}

/// `n` blocks: `heavy` in turn, each relinked to the one before (the first to nothing).
pub fn relinked(heavy: &[Vec<u8>], n: usize) -> Vec<Vec<u8>> {
    let mut chain: Vec<Vec<u8>> = Vec::with_capacity(n);
    for i in 0..n {
        let mut block = heavy[i % heavy.len()].clone();
        let prev = chain
            .last()
            .map_or([0u8; 32], |b| block_hash(b).expect("header").to_bytes());
        block[4..36].copy_from_slice(&prev);
        chain.push(block);
    }
    chain
}

/// The guest named by `var` (`contracts`, `spendables`, `minimal` or a path), else `default`.
fn guest_from(var: &str, default: &'static str) -> String {
    match std::env::var(var).as_deref() {
        Ok("contracts") => guests::CONTRACTS.into(),
        Ok("spendables") => guests::SPENDABLES.into(),
        Ok("minimal") => guests::MINIMAL.into(),
        Ok(path) if !path.is_empty() => path.into(),
        _ => default.into(),
    }
}

/// The seconds of indexing a daemon's summary line reports (`indexed N blocks in X s of
/// indexing`).
fn indexing_seconds(log: &str) -> Option<f64> {
    let line = log.lines().rev().find(|l| l.contains("s of indexing"))?;
    let (before, _) = line.split_once(" s of indexing")?;
    before.rsplit(' ').next()?.parse().ok()
}

/// One side of an A/B comparison: a daemon binary and its extra flags.
struct Side {
    binary: String,
    extra: Vec<String>,
    /// Metashrew's own `rockshrew-mono` (`metashrew:` before its path): only the flags both
    /// daemons share are passed, and both sides are timed from spawn to the last height.
    metashrew: bool,
}

impl Side {
    /// Side `name` (`A` or `B`) from `METASHREW_AB_<name>` (default `this`) and its `_ARGS`.
    fn of(name: &str, this: &str) -> Self {
        let binary = std::env::var(format!("METASHREW_AB_{name}")).unwrap_or_else(|_| this.into());
        let extra = words(&format!("METASHREW_AB_{name}_ARGS"));
        match binary.strip_prefix("metashrew:") {
            Some(path) => Self {
                binary: path.into(),
                extra,
                metashrew: true,
            },
            None => Self {
                binary,
                extra,
                metashrew: false,
            },
        }
    }

    /// One run over the fake node's chain from `first` to `last`: its seconds of indexing
    /// (the daemon's summary line), or, when `wall`, from spawn until its `metashrew_height`
    /// answers `last`, then it is killed (Metashrew's `--exit-at` stops fetching without
    /// exiting, so neither side is given it).
    fn run(&self, guest: &str, url: &str, first: usize, last: usize, wall: bool) -> f64 {
        let dir = tempdir();
        let db = dir.path().join("db");
        let (first, last_arg) = (first.to_string(), last.to_string());
        let mut args: Vec<&str> = vec!["--daemon-rpc-url", url];
        if first != "0" || self.metashrew {
            args.extend(["--start-block", &first]);
        }
        if !self.metashrew {
            args.push("--no-pow-check");
        }
        if !wall {
            args.extend(["--exit-at", &last_arg]);
        }
        args.extend(self.extra.iter().map(String::as_str));
        let started = Instant::now();
        let mut d = if self.metashrew {
            Daemon::start_metashrew(&self.binary, guest, &db, &args)
        } else {
            Daemon::start_binary(&self.binary, "", guest, &db, &args)
        };
        if wall {
            loop {
                if d.client().height().is_some_and(|h| h as usize >= last) {
                    return started.elapsed().as_secs_f64();
                }
                if let Ok(Some(status)) = d.child.try_wait() {
                    panic!("{} exited ({status}):\n{}", self.binary, d.log_text());
                }
                assert!(
                    started.elapsed() < Duration::from_secs(3600),
                    "{} did not reach {last}",
                    self.binary
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let code = d.wait_exit(Duration::from_secs(3600));
        assert_eq!(code, Some(0), "{} failed:\n{}", self.binary, d.log_text());
        indexing_seconds(&d.log_text()).expect("summary line")
    }

    fn show(&self) -> String {
        let kind = if self.metashrew { " (Metashrew)" } else { "" };
        format!("{}{kind} {}", self.binary, self.extra.join(" "))
    }
}

/// The two-sided 95% quantile of Student's t with `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    TABLE.get(df.wrapping_sub(1)).copied().unwrap_or(1.96)
}

/// The geometric mean of `ratios` and its 95% confidence interval.
pub fn paired_ratio(ratios: &[f64]) -> (f64, f64, f64) {
    let logs: Vec<f64> = ratios.iter().map(|r| r.ln()).collect();
    let n = logs.len() as f64;
    let mean = logs.iter().sum::<f64>() / n;
    if logs.len() < 2 {
        return (mean.exp(), f64::NAN, f64::NAN);
    }
    let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let half = t95(logs.len() - 1) * (var / n).sqrt();
    (mean.exp(), (mean - half).exp(), (mean + half).exp())
}

/// The `ab` section.
pub fn ab() {
    let this = env!("CARGO_BIN_EXE_rockshrew");
    let (a, b) = (Side::of("A", this), Side::of("B", this));
    let wall = a.metashrew || b.metashrew;
    let pairs: usize = env_or("METASHREW_AB_PAIRS", 6);
    let n: usize = env_or("METASHREW_AB_BLOCKS", 24);
    let first: usize = env_or("METASHREW_AB_FIRST_HEIGHT", 0);
    let guest = guest_from("METASHREW_AB_GUEST", guests::CONTRACTS);
    println!(
        "\n## A/B in {pairs} interleaved pairs: {n} relinked heavy blocks from height {first}, `{}`",
        guest_name(&guest)
    );
    println!("A: {}\nB: {}", a.show(), b.show());
    if wall {
        println!(
            "(Metashrew's daemon on one side: both timed from spawn until the last height answers)"
        );
    }
    let chain = relinked(&heavy_blocks(), n);
    let node = FakeNode::start_at(first, chain);
    let url = node.url();
    let (mut times_a, mut times_b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 0..pairs {
        let run_a = || a.run(&guest, &url, first, first + n - 1, wall);
        let run_b = || b.run(&guest, &url, first, first + n - 1, wall);
        let (ta, tb) = if pair % 2 == 0 {
            let ta = run_a();
            (ta, run_b())
        } else {
            let tb = run_b();
            (run_a(), tb)
        };
        println!(
            "pair {}: A {ta:.3} s, B {tb:.3} s, B/A {:.3}",
            pair + 1,
            tb / ta
        );
        times_a.push(ta);
        times_b.push(tb);
        ratios.push(tb / ta);
    }
    let (mean, low, high) = paired_ratio(&ratios);
    println!(
        "A {} s, B {} s {}; paired ratio B/A {mean:.3} (95% CI {low:.3} .. {high:.3}; median {:.3})",
        Samples(times_a).show(3),
        Samples(times_b).show(3),
        if wall {
            "from spawn to the last height"
        } else {
            "of indexing"
        },
        Samples(ratios).median()
    );
}

/// Milliseconds of a fixed single-threaded integer loop: the machine's speed now.
pub fn reference_ms() -> f64 {
    let started = Instant::now();
    let mut state = 0x0123_4567_89ab_cdefu64;
    for i in 0..20_000_000u64 {
        state = (state ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        state ^= state >> 29;
    }
    std::hint::black_box(state);
    ms(started.elapsed())
}

/// The `flat` section.
pub fn flat() {
    let n: u32 = env_or("METASHREW_FLAT_BLOCKS", 300);
    let guest = guest_from("METASHREW_FLAT_GUEST", guests::SPENDABLES);
    println!(
        "\n## Flatness: {n} relinked heavy blocks, `{}`, by quarter, beside a reference workload",
        guest_name(&guest)
    );
    let chain = relinked(&heavy_blocks(), n as usize);
    let node = FakeNode::start(chain);
    let dir = tempdir();
    let last = (n - 1).to_string();
    let url = node.url();
    let mut d = Daemon::start(
        &guest,
        &dir.path().join("db"),
        &[
            "--daemon-rpc-url",
            &url,
            "--no-pow-check",
            "--exit-at",
            &last,
        ],
    );
    // The reference is timed every 2 s on a thread of its own; heights are sampled meanwhile.
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let reference = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                samples.push((started.elapsed().as_secs_f64(), reference_ms()));
                std::thread::sleep(Duration::from_secs(2));
            }
            samples
        })
    };
    let mut crossed: Vec<(u32, f64)> = Vec::new();
    let mut peak_kib = 0;
    loop {
        if let Ok(Some(_)) = d.child.try_wait() {
            break;
        }
        peak_kib = peak_kib.max(d.status_kib("VmHWM:"));
        // `height` needs the server up; `/metrics` answers (or not) without panicking.
        if d.get("/metrics").0 == 200
            && let Some(h) = d.height()
            && crossed.last().is_none_or(|&(seen, _)| seen < h)
        {
            crossed.push((h, started.elapsed().as_secs_f64()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    done.store(true, Ordering::Relaxed);
    let reference = reference.join().expect("reference thread");
    let log = d.log_text();
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0), "{log}");
    let first_seen = crossed.first().map_or(0.0, |c| c.1);
    let time_at = |h: u32| {
        crossed
            .iter()
            .find(|&&(seen, _)| seen >= h)
            .map_or(started.elapsed().as_secs_f64(), |c| c.1)
    };
    let mut first = None;
    for q in 0..4 {
        let (from, to) = (n * q / 4, n * (q + 1) / 4);
        let (t0, t1) = (
            if q == 0 { first_seen } else { time_at(from) },
            time_at(to.saturating_sub(1)),
        );
        let blocks_per_s = f64::from(to - from) / (t1 - t0).max(1e-9);
        let window: Vec<f64> = reference
            .iter()
            .filter(|&&(t, _)| t >= t0 && t <= t1)
            .map(|&(_, m)| m)
            .collect();
        let reference = if window.is_empty() {
            f64::NAN
        } else {
            Samples(window).median()
        };
        let (rate0, ref0) = *first.get_or_insert((blocks_per_s, reference));
        println!(
            "quarter {} (blocks {from}..{}): {blocks_per_s:.2} blocks/s ({:.0}% of the first), reference {reference:.1} ms ({:.0}% of the first's speed); speed over the machine's: {:.0}% of the first",
            q + 1,
            to - 1,
            100.0 * blocks_per_s / rate0,
            100.0 * ref0 / reference,
            100.0 * (blocks_per_s / rate0) / (ref0 / reference)
        );
    }
    println!(
        "peak RSS of the daemon (VmHWM) {} MiB; {}",
        peak_kib / 1024,
        log.lines()
            .rev()
            .find(|l| l.contains("s of indexing"))
            .unwrap_or("(none)")
    );
}

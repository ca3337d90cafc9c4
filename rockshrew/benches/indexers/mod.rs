//! The `indexers` section: two and three indexers in one daemon against the same indexers as
//! separate daemons (run at the same time, one database each), over the bundled chain and a
//! heavy chain, from one fake node. Reports each indexer's blocks/s, the wall time, peak RSS
//! (summed over the separate daemons) and whether every tip root agrees.

use super::*;

/// The indexer sets compared, by label.
const TWO: [(&str, &str); 2] = [
    ("minimal", guests::MINIMAL),
    ("spendables", guests::SPENDABLES),
];
const THREE: [(&str, &str); 3] = [
    ("minimal", guests::MINIMAL),
    ("spendables", guests::SPENDABLES),
    ("compat", guests::COMPAT),
];

/// What one configuration did.
struct Outcome {
    wall: f64,
    rss_mib: f64,
    /// Blocks/s of each indexer while it indexed, by label.
    rates: Vec<(String, f64)>,
    /// Each indexer's tip root, as `rockshrew verify` reports it.
    roots: Vec<(String, String)>,
}

/// Waits for every daemon to exit; their peak RSS summed, in MiB (sampled while they run).
fn wait_all(daemons: &mut [Daemon]) -> f64 {
    let mut peaks = vec![0u64; daemons.len()];
    let deadline = Instant::now() + Duration::from_secs(1200);
    loop {
        let mut running = false;
        for (d, peak) in daemons.iter_mut().zip(&mut peaks) {
            match d.child.try_wait() {
                Ok(Some(status)) => assert!(status.success(), "daemon failed:\n{}", d.log_text()),
                _ => {
                    running = true;
                    *peak = (*peak).max(d.status_kib("VmHWM:"));
                }
            }
        }
        if !running {
            return peaks.iter().sum::<u64>() as f64 / 1024.0;
        }
        assert!(Instant::now() < deadline, "the daemons did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The tip root of `label` in the database at `db`.
fn tip_root(db: &Path, label: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rockshrew"))
        .args(["verify", "--label", label, "--db-path"])
        .arg(db)
        .output()
        .expect("verify runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    text.rsplit("root ")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The blocks/s of the summary line `` `label`: indexed ... (R blocks/s) `` (or the only one).
fn rate_of(log: &str, label: Option<&str>) -> f64 {
    let mine = |l: &&str| label.is_none_or(|label| l.contains(&format!("`{label}`: indexed")));
    let line = log
        .lines()
        .filter(|l| l.contains("blocks/s); up"))
        .rfind(mine)
        .unwrap_or_else(|| panic!("no summary for {label:?}:\n{log}"));
    line.rsplit('(')
        .next()
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .expect("a rate")
}

fn together(set: &[(&str, &str)], url: &str, exit: u32) -> Outcome {
    let dir = tempdir();
    let db = dir.path().join("db");
    let exit = exit.to_string();
    let mut args: Vec<String> = [
        "--no-pow-check",
        "--daemon-rpc-url",
        url,
        "--exit-at",
        &exit,
    ]
    .map(String::from)
    .to_vec();
    for (label, path) in &set[1..] {
        args.extend(["--indexer".into(), format!("{label}={path}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let mut daemons = [Daemon::start(
        &format!("{}={}", set[0].0, set[0].1),
        &db,
        &args,
    )];
    let rss_mib = wait_all(&mut daemons);
    let wall = started.elapsed().as_secs_f64();
    let log = daemons[0].log_text();
    if let Some(line) = log.lines().rfind(|l| l.contains("shared block source:")) {
        println!(
            "|   shared: {} | | | |",
            line.rsplit("source: ").next().unwrap_or_default()
        );
    }
    Outcome {
        wall,
        rss_mib,
        rates: set
            .iter()
            .map(|(l, _)| (l.to_string(), rate_of(&log, Some(l))))
            .collect(),
        roots: set
            .iter()
            .map(|(l, _)| (l.to_string(), tip_root(&db, l)))
            .collect(),
    }
}

fn apart(set: &[(&str, &str)], url: &str, exit: u32) -> Outcome {
    let dirs: Vec<_> = set.iter().map(|_| tempdir()).collect();
    let exit = exit.to_string();
    let started = Instant::now();
    let mut daemons: Vec<Daemon> = set
        .iter()
        .zip(&dirs)
        .map(|((label, path), dir)| {
            let args = [
                "--no-pow-check",
                "--daemon-rpc-url",
                url,
                "--exit-at",
                &exit,
            ];
            Daemon::start(&format!("{label}={path}"), &dir.path().join("db"), &args)
        })
        .collect();
    let rss_mib = wait_all(&mut daemons);
    let wall = started.elapsed().as_secs_f64();
    Outcome {
        wall,
        rss_mib,
        rates: set
            .iter()
            .zip(&daemons)
            .map(|((l, _), d)| (l.to_string(), rate_of(&d.log_text(), None)))
            .collect(),
        roots: set
            .iter()
            .zip(&dirs)
            .map(|((l, _), dir)| (l.to_string(), tip_root(&dir.path().join("db"), l)))
            .collect(),
    }
}

fn show(what: &str, outcome: &Outcome) {
    let rates: Vec<String> = outcome
        .rates
        .iter()
        .map(|(l, r)| format!("{l} {r:.1}"))
        .collect();
    println!(
        "| {what} | {} | {:.2} s | {:.0} MiB |",
        rates.join(", "),
        outcome.wall,
        outcome.rss_mib
    );
}

/// The section.
pub fn indexers(blocks: &[Vec<u8>]) {
    let mut heavy = blocks.to_vec();
    heavy.push(heavy_block());
    let heavy = fork(&heavy, 256, 29);
    let chains: [(&str, Vec<Vec<u8>>); 2] = [
        ("bundled chain, blocks 0..255", blocks.to_vec()),
        (
            "heavy chain: 0..255, then 30 relinked copies of block 840,243",
            heavy,
        ),
    ];
    for (title, chain) in chains {
        let exit = (chain.len() - 1) as u32;
        println!("\n## Several indexers: {title}, from one fake node, `--exit-at {exit}`");
        println!("| run | blocks/s while indexing | wall | peak RSS |\n| --- | --- | --- | --- |");
        let node = FakeNode::start(chain);
        let url = node.url();
        for set in [&TWO[..], &THREE[..]] {
            let one = together(set, &url, exit);
            let separate = apart(set, &url, exit);
            show(&format!("{} in one daemon", set.len()), &one);
            show(&format!("{} separate daemons", set.len()), &separate);
            let agree = one.roots == separate.roots;
            println!(
                "| {} indexers: tip roots equal | {agree} | wall ratio one/separate {:.2} | |",
                set.len(),
                one.wall / separate.wall
            );
            assert!(agree, "{:?} against {:?}", one.roots, separate.roots);
        }
    }
}

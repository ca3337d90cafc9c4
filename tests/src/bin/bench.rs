//! Benchmarks of the runtime on the bundled blocks (run with `--release`). Prints medians.
//!
//! * mainnet 0..255 with `minimal` and `spendables`, fresh vs persistent instances (in-memory
//!   store): blocks/s and the fixed per-block cost;
//! * block 840,243 with `spendables` (wasm, fresh instance) vs the same logic compiled natively;
//! * view latency (`minimal`'s `getblock`), single-threaded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metashrew_core::mock;
use metashrew_runtime::{InstanceMode, MemStore, MetashrewRuntime, RuntimeConfig};
use metashrew_tests::fixtures::{HEAVY_HEIGHT, heavy_block, mainnet_blocks};
use metashrew_tests::guests;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn runtime(wasm: &str, mode: InstanceMode) -> MetashrewRuntime<MemStore> {
    let config = RuntimeConfig {
        instance_mode: mode,
        ..RuntimeConfig::default()
    };
    MetashrewRuntime::load(wasm, Arc::new(MemStore::new()), config).expect("guest loads")
}

fn chain(name: &str, wasm: &str, blocks: &[Vec<u8>]) {
    for mode in [InstanceMode::Fresh, InstanceMode::Persistent] {
        let mut runs = Vec::new();
        for _ in 0..5 {
            let rt = runtime(wasm, mode);
            let started = Instant::now();
            for (h, block) in blocks.iter().enumerate() {
                rt.process_block(h as u32, block).expect("block");
            }
            runs.push(started.elapsed());
        }
        let m = median(runs);
        println!(
            "{name:<11} {mode:<10?} mainnet 0..255: {:>8.1} blocks/s ({:.3} ms/block, median of 5)",
            blocks.len() as f64 / m.as_secs_f64(),
            m.as_secs_f64() * 1e3 / blocks.len() as f64
        );
    }
}

fn heavy(label: &str, wasm: &str) {
    let block = heavy_block();
    let mut wasm_runs = Vec::new();
    let mut writes = 0;
    let (mut execute, mut commit) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let rt = runtime(wasm, InstanceMode::Fresh);
        let started = Instant::now();
        let report = rt.process_block(HEAVY_HEIGHT, &block).expect("block");
        wasm_runs.push(started.elapsed());
        writes = report.writes;
        execute.push(report.execute_time);
        commit.push(report.commit_time);
    }
    let mut native_runs = Vec::new();
    for _ in 0..5 {
        mock::reset();
        mock::set_input(HEAVY_HEIGHT, &block);
        let started = Instant::now();
        metashrew_core::index_block(spendables::index_block);
        native_runs.push(started.elapsed());
    }
    let (w, n) = (median(wasm_runs), median(native_runs));
    println!(
        "spendables ({label}) block {HEAVY_HEIGHT}: wasm {:.1} ms (guest {:.1} + commit {:.1}; {writes} writes), native {:.1} ms, ratio {:.2}x",
        w.as_secs_f64() * 1e3,
        median(execute).as_secs_f64() * 1e3,
        median(commit).as_secs_f64() * 1e3,
        n.as_secs_f64() * 1e3,
        w.as_secs_f64() / n.as_secs_f64()
    );
}

fn views(blocks: &[Vec<u8>]) {
    let rt = runtime(guests::MINIMAL, InstanceMode::Fresh);
    for (h, block) in blocks.iter().enumerate() {
        rt.process_block(h as u32, block).expect("block");
    }
    let mut samples = Vec::new();
    for i in 0..2000u32 {
        let started = Instant::now();
        rt.view("getblock", &[], i % 256).expect("view");
        samples.push(started.elapsed());
    }
    samples.sort();
    let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "view getblock (1 thread, 2000 calls): p50 {:?} p99 {:?}",
        p(0.5),
        p(0.99)
    );
}

fn main() {
    let blocks = mainnet_blocks();
    chain("minimal", guests::MINIMAL, &blocks);
    chain("spendables", guests::SPENDABLES, &blocks);
    heavy("guest cache 1 GiB", guests::SPENDABLES);
    heavy("guest cache off", guests::SPENDABLES_NOCACHE);
    views(&blocks);
}

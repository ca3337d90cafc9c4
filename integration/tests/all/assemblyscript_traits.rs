//! Guests with the traits of shipped AssemblyScript indexers (metashrew-spendables,
//! metashrew-runes): a declared memory maximum of 32,768 pages (2 GiB), only part of the ABI
//! imported (`abort` and no `__log`), AssemblyScript's runtime exports, memory grown per block.
//! They must run under the default configuration (a 4 GiB ceiling), under their own maximum.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use metashrew_runtime::{GuestFault, MetashrewRuntime, RuntimeConfig, RuntimeError};
use metashrew_storage::MemStore;
use metashrew_tests::fixtures::{heavy_block, mainnet_blocks};

/// Counts blocks under `/count` (u32 LE), growing memory by 16 pages per block; calls `abort`
/// on an input above 100,000 bytes. View `count` returns the
/// counter at the view height.
fn assemblyscript_like(memory: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (import "env" "__host_len" (func $host_len (result i32)))
  (import "env" "__load_input" (func $load_input (param i32)))
  (import "env" "__get_len" (func $get_len (param i32) (result i32)))
  (import "env" "__get" (func $get (param i32 i32)))
  (import "env" "__flush" (func $flush (param i32)))
  {memory}
  (global $rtti i32 (i32.const 0x500))
  (export "__rtti_base" (global $rtti))
  ;; "/count" with its length header at 0x1FFC
  (data (i32.const 0x1FFC) "\06\00\00\00/count")
  ;; the flush: header (14) at 0x3FFC, then 0a 06 "/count" 0a 04 <u32>
  (data (i32.const 0x3FFC) "\0e\00\00\00\0a\06/count\0a\04")
  (func $read_count (result i32)
    (local $len i32)
    (local.set $len (call $get_len (i32.const 0x2000)))
    (i32.store (i32.const 0x2FFC) (local.get $len))
    (if (result i32) (i32.eq (local.get $len) (i32.const 4))
      (then (call $get (i32.const 0x2000) (i32.const 0x3000)) (i32.load (i32.const 0x3000)))
      (else (i32.const 0))))
  (func (export "_start")
    (local $n i32)
    (local.set $n (call $host_len))
    (if (i32.gt_u (local.get $n) (i32.const 0x8000)) (then (drop (memory.grow (i32.const 32)))))
    (i32.store (i32.const 0x4FFC) (local.get $n))
    (call $load_input (i32.const 0x5000))
    (if (i32.gt_u (local.get $n) (i32.const 100000))
      (then (call $abort (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 1)) (unreachable)))
    (drop (memory.grow (i32.const 16)))
    (i32.store (i32.const 0x400A) (i32.add (call $read_count) (i32.const 1)))
    (call $flush (i32.const 0x4000)))
  (func (export "count") (result i32)
    (drop (call $read_count))
    (i32.const 0x3000))
  ;; AssemblyScript's runtime interface, as shipped guests export it.
  (func (export "__new") (param i32 i32) (result i32) (i32.const 0x6000))
  (func (export "__pin") (param i32) (result i32) (local.get 0))
  (func (export "__unpin") (param i32))
  (func (export "__collect")))"#
    ))
    .unwrap()
}

fn load(wasm: &[u8], config: RuntimeConfig) -> Result<MetashrewRuntime<MemStore>, RuntimeError> {
    MetashrewRuntime::from_bytes(wasm, Arc::new(MemStore::new()), config)
}

#[test]
fn a_declared_2_gib_maximum_runs_with_default_flags() {
    let wasm = assemblyscript_like(r#"(memory (export "memory") 1 32768)"#);
    let runtime = load(&wasm, RuntimeConfig::default()).unwrap();
    assert_eq!(runtime.config().max_memory_bytes, 2 << 30);
    for (height, block) in mainnet_blocks().iter().enumerate().take(12) {
        runtime.process_block(height as u32, block).unwrap();
    }
    let count = |height| {
        let out = runtime.view("count", &[], height).unwrap();
        u32::from_le_bytes(out.try_into().unwrap())
    };
    assert_eq!(count(11), 12);
    assert_eq!(count(4), 5);
    // A lower configured ceiling still wins.
    let lower = RuntimeConfig {
        max_memory_bytes: 1 << 30,
        ..RuntimeConfig::default()
    };
    assert_eq!(
        load(&wasm, lower).unwrap().config().max_memory_bytes,
        1 << 30
    );
}

#[test]
fn abort_fails_the_block_and_commits_nothing() {
    let wasm = assemblyscript_like(r#"(memory (export "memory") 1 32768)"#);
    let runtime = load(&wasm, RuntimeConfig::default()).unwrap();
    let blocks = mainnet_blocks();
    runtime.process_block(0, &blocks[0]).unwrap();
    let root = runtime.state_root(0).unwrap();
    match runtime.process_block(1, &heavy_block()) {
        Err(RuntimeError::BlockFailed {
            height: 1,
            fault: GuestFault::Trapped { message, .. },
        }) => assert!(message.contains("abort"), "{message}"),
        other => panic!("expected the block to fail, got {other:?}"),
    }
    assert_eq!(runtime.tip().unwrap(), Some(0));
    assert_eq!(runtime.state_root(0).unwrap(), root);
    runtime.process_block(1, &blocks[1]).unwrap();
}

#[test]
fn a_minimum_above_the_ceiling_is_refused_at_load() {
    let wasm = assemblyscript_like(r#"(memory (export "memory") 20000 32768)"#);
    let config = RuntimeConfig {
        max_memory_bytes: 1 << 30,
        ..RuntimeConfig::default()
    };
    let err = load(&wasm, config).err().expect("refused").to_string();
    assert!(err.contains("starts at 20000 pages"), "{err}");
    // Under the default ceiling the same module loads (its minimum fits in 2 GiB), given a
    // view memory bound its views fit in.
    let roomy_views = RuntimeConfig {
        view_memory_bytes: 2 << 30,
        ..RuntimeConfig::default()
    };
    assert!(load(&wasm, roomy_views).is_ok());
}

/// A guest with a wasm start function, as AssemblyScript guests have: it bumps a counter in
/// memory (1 in a fresh instance) and, in the `calls_host` variant, keeps what `__host_len`
/// said. `_start` grows memory by 20 MiB (so the instance is torn down, and the next one made,
/// in the background), reads the word at 20 MiB before writing it, and flushes
/// `/start` = counter ++ start's host_len ++ that word ++ height (u32 LE each).
fn with_start_function(calls_host: bool) -> Vec<u8> {
    let start_extra = if calls_host {
        "(i32.store (i32.const 0x104) (call $host_len))"
    } else {
        ""
    };
    wat::parse_str(format!(
        r#"(module
  (import "env" "__host_len" (func $host_len (result i32)))
  (import "env" "__load_input" (func $load_input (param i32)))
  (import "env" "__flush" (func $flush (param i32)))
  (memory (export "memory") 1 32768)
  ;; the flush: header (22) at 0x1FFC, then 0a 06 "/start" 0a 10 <16 bytes at 0x200A>
  (data (i32.const 0x1FFC) "\1a\00\00\00\0a\06/start\0a\10")
  (func $init
    (i32.store (i32.const 0x100) (i32.add (i32.load (i32.const 0x100)) (i32.const 1)))
    {start_extra})
  (start $init)
  (func (export "_start")
    (drop (memory.grow (i32.const 320)))
    (i32.store (i32.const 0x200A) (i32.load (i32.const 0x100)))
    (i32.store (i32.const 0x200E) (i32.load (i32.const 0x104)))
    (i32.store (i32.const 0x2012) (i32.load (i32.const 0x1400000)))
    (i32.store (i32.const 0x1400000) (i32.const 7))
    (if (i32.gt_u (call $host_len) (i32.const 0x4000)) (then (unreachable)))
    (i32.store (i32.const 0x2FFC) (call $host_len))
    (call $load_input (i32.const 0x3000))
    (i32.store (i32.const 0x2016) (i32.load (i32.const 0x3000)))
    (call $flush (i32.const 0x2000))))"#
    ))
    .unwrap()
}

/// Each block's instance is as fresh as if the block had made it: the start function ran once
/// in it, with the block's own input when it asks the host (an instance made ahead of the block
/// may not call the host), and the memory the previous instance of the slot wrote reads zero.
#[test]
fn start_functions_run_once_per_block_with_that_blocks_input() {
    let blocks = mainnet_blocks();
    for calls_host in [false, true] {
        let store = Arc::new(MemStore::new());
        let runtime = MetashrewRuntime::from_bytes(
            &with_start_function(calls_host),
            store.clone(),
            RuntimeConfig::default(),
        )
        .unwrap();
        for (height, block) in blocks.iter().enumerate().take(8) {
            let height = height as u32;
            runtime.process_block(height, block).unwrap();
            let value = metashrew_storage::Storage::get_at(&*store, b"/start", height)
                .unwrap()
                .unwrap();
            let words: Vec<u32> = value
                .chunks(4)
                .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
                .collect();
            let host_len = if calls_host {
                4 + block.len() as u32
            } else {
                0
            };
            assert_eq!(words, [1, host_len, 0, height], "calls_host {calls_host}");
        }
    }
}

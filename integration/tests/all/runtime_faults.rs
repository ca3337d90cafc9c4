//! Hostile and broken guests: every failure is a clear error and commits nothing.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use metashrew_runtime::{GuestFault, MetashrewRuntime, RuntimeConfig, RuntimeError};
use metashrew_storage::{MemStore, Storage};
use metashrew_tests::ABI_IMPORTS;
use metashrew_tests::fixtures::mainnet_blocks;

/// A module with the ABI imports, one page of memory, and `body` inside.
fn guest(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        "(module {ABI_IMPORTS} (memory (export \"memory\") 1) {body})"
    ))
    .expect("valid WAT")
}

/// A `_start` that runs `code` and then flushes an empty KeyValueFlush (length 0 at 0x100).
fn start_then_flush(code: &str) -> Vec<u8> {
    guest(&format!(
        "(func (export \"_start\") {code} (call $flush (i32.const 0x104)))"
    ))
}

fn load(wasm: &[u8], config: RuntimeConfig) -> Result<MetashrewRuntime<MemStore>, RuntimeError> {
    MetashrewRuntime::from_bytes(wasm, Arc::new(MemStore::new()), config)
}

fn genesis() -> Vec<u8> {
    mainnet_blocks().swap_remove(0)
}

/// Runs block 0 and returns the failure reason; asserts nothing was committed.
fn fails(wasm: &[u8], config: RuntimeConfig) -> String {
    let rt = load(wasm, config).expect("module loads");
    match rt.process_block(0, &genesis()) {
        Err(RuntimeError::BlockFailed { height: 0, fault }) => {
            let reason = fault.to_string();
            eprintln!("block failed: {reason}");
            assert_eq!(rt.tip().unwrap(), None, "a failed block commits nothing");
            assert!(rt.storage().dump_at(u32::MAX).is_empty());
            reason
        }
        other => panic!("expected a failed block, got {other:?}"),
    }
}

#[test]
fn an_empty_flush_commits_a_block() {
    let rt = load(&start_then_flush(""), RuntimeConfig::default()).unwrap();
    let report = rt.process_block(0, &genesis()).unwrap();
    assert_eq!(report.writes, 0);
    assert_eq!(rt.tip().unwrap(), Some(0));
    assert!(
        rt.process_block(2, &genesis()).is_err(),
        "heights must follow the tip"
    );
}

#[test]
fn malformed_modules_are_refused_at_load() {
    let err = |wasm: &[u8]| match load(wasm, RuntimeConfig::default()) {
        Err(RuntimeError::InvalidModule(reason)) => reason,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("module loaded"),
    };
    assert!(!err(b"\0asm garbage").is_empty());
    let no_memory = wat::parse_str("(module (func (export \"_start\")))").unwrap();
    assert!(err(&no_memory).contains("memory"));
    let no_start = guest("");
    assert!(err(&no_start).contains("_start"));
    let bad_start = guest("(func (export \"_start\") (param i32))");
    assert!(err(&bad_start).contains("_start"));
}

#[test]
fn traps_and_faults_fail_the_block() {
    let config = RuntimeConfig::default;
    assert!(fails(&start_then_flush("unreachable"), config()).contains("unreachable"));
    let no_flush = guest("(func (export \"_start\"))");
    assert!(fails(&no_flush, config()).contains("without calling __flush"));
    // A key pointer below 4 has no room for a length header.
    let bad_pointer = start_then_flush("(drop (call $get_len (i32.const 2)))");
    assert!(fails(&bad_pointer, config()).contains("out of bounds"));
    // A buffer whose length runs past the end of memory.
    let past_end = start_then_flush(
        "(i32.store (i32.const 0x200) (i32.const 0x10000)) (drop (call $get_len (i32.const 0x204)))",
    );
    assert!(fails(&past_end, config()).contains("out of bounds"));
    // __load_input into a buffer whose header announces less than the input.
    let small = start_then_flush(
        "(i32.store (i32.const 0x200) (i32.const 3)) (call $load_input (i32.const 0x204))",
    );
    assert!(fails(&small, config()).contains("holds 3 bytes"));
    let abort =
        start_then_flush("(call $abort (i32.const 0) (i32.const 0) (i32.const 7) (i32.const 9))");
    assert!(fails(&abort, config()).contains("abort"));
    // A flush with one item: a key without its value.
    let odd = guest(
        r#"(data (i32.const 0x300) "\03\00\00\00\0a\01\6b")
           (func (export "_start") (call $flush (i32.const 0x304)))"#,
    );
    assert!(fails(&odd, config()).contains("odd number"));
}

#[test]
fn unknown_imports_trap_when_called_or_are_refused() {
    let wasm = wat::parse_str(format!(
        r#"(module {ABI_IMPORTS}
             (import "wbg" "__wbindgen_now" (func $now (result f64)))
             (memory (export "memory") 1)
             (func (export "_start") (drop (call $now)) (call $flush (i32.const 0x104)))
             (func (export "quiet") (result i32) (i32.const 0x104)))"#
    ))
    .unwrap();
    // Linked as a trap: the module loads, a view that never calls it works...
    let rt = load(&wasm, RuntimeConfig::default()).unwrap();
    assert!(matches!(
        rt.view("quiet", &[], 0),
        Err(RuntimeError::HeightAboveTip { .. })
    ));
    // ...and calling it fails the block, naming the import.
    assert!(fails(&wasm, RuntimeConfig::default()).contains("__wbindgen_now"));
    // Or refused at load when asked.
    let strict = RuntimeConfig {
        reject_unknown_imports: true,
        ..RuntimeConfig::default()
    };
    match load(&wasm, strict) {
        Err(RuntimeError::InvalidModule(reason)) => assert!(reason.contains("wbg::__wbindgen_now")),
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
}

#[test]
fn the_memory_ceiling_fails_the_same_way_every_time() {
    // Grows by 1 MiB until it cannot: with a 4 MiB ceiling the 4th growth traps.
    let wasm = start_then_flush(
        "(loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))",
    );
    let config = || RuntimeConfig {
        max_memory_bytes: 4 << 20,
        ..RuntimeConfig::default()
    };
    let first = fails(&wasm, config());
    assert!(first.contains("grow"), "{first}");
    assert_eq!(fails(&wasm, config()), first);
    assert!(matches!(
        load(
            &wasm,
            RuntimeConfig {
                max_memory_bytes: 5 << 30,
                ..RuntimeConfig::default()
            }
        ),
        Err(RuntimeError::Config(_))
    ));
}

#[test]
fn buffers_above_2_gib_work() {
    // 32,769 pages: just over 2 GiB. The flush buffer sits at 0x8000_0100 (negative as i32).
    let wasm = wat::parse_str(format!(
        r#"(module {ABI_IMPORTS}
             (memory (export "memory") 32769)
             (func (export "_start")
               ;; KeyValueFlush with ("k", "v"): 0a 01 6b 0a 01 76, length 6
               (i32.store (i32.const 0x80000100) (i32.const 6))
               (i32.store (i32.const 0x80000104) (i32.const 0x0a6b010a))
               (i32.store16 (i32.const 0x80000108) (i32.const 0x7601))
               (call $flush (i32.const 0x80000104))))"#
    ))
    .unwrap();
    // Views need the memory the module starts with too.
    let config = RuntimeConfig {
        view_memory_bytes: 4 << 30,
        ..RuntimeConfig::default()
    };
    let rt = load(&wasm, config).unwrap();
    rt.process_block(0, &genesis()).unwrap();
    assert_eq!(rt.storage().get_at(b"k", 0).unwrap(), Some(b"v".to_vec()));
}

#[test]
fn a_looping_view_is_interrupted() {
    let wasm = guest(
        r#"(func (export "_start") (call $flush (i32.const 0x104)))
           (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))"#,
    );
    let config = RuntimeConfig {
        view_timeout: Duration::from_millis(100),
        ..RuntimeConfig::default()
    };
    let rt = load(&wasm, config).unwrap();
    rt.process_block(0, &genesis()).unwrap();
    match rt.view("spin", &[], 0) {
        Err(RuntimeError::ViewFailed {
            fault: GuestFault::TimedOut { limit },
            ..
        }) => assert_eq!(limit, Duration::from_millis(100)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(matches!(
        rt.view("nope", &[], 0),
        Err(RuntimeError::MissingExport(_))
    ));
}

#[test]
fn a_views_flush_changes_nothing() {
    let wasm = guest(
        r#"(data (i32.const 0x300) "\06\00\00\00\0a\01\6b\0a\01\76")
           (func (export "_start") (call $flush (i32.const 0x104)))
           (func (export "write") (result i32) (call $flush (i32.const 0x304)) (i32.const 0x104))"#,
    );
    let rt = load(&wasm, RuntimeConfig::default()).unwrap();
    rt.process_block(0, &genesis()).unwrap();
    assert_eq!(rt.view("write", &[], 0).unwrap(), Vec::<u8>::new());
    assert_eq!(rt.storage().get_at(b"k", u32::MAX).unwrap(), None);
}

/// A guest whose `_start` grows its memory to 16 MiB, and whose views `hog` (grows 1 MiB at a
/// time, touching every page, without end), `chatter` (calls the host without end) and `fill`
/// (fills its whole memory without end) never finish by themselves.
fn unbounded_views() -> Vec<u8> {
    guest(
        r#"(func $grow_and_touch (param $pages i32)
             (local $at i32) (local $end i32)
             (local.set $at (i32.mul (memory.grow (local.get $pages)) (i32.const 65536)))
             (local.set $end (i32.add (local.get $at) (i32.mul (local.get $pages) (i32.const 65536))))
             (loop $touch
               (i32.store (local.get $at) (i32.const 1))
               (local.set $at (i32.add (local.get $at) (i32.const 4096)))
               (br_if $touch (i32.lt_u (local.get $at) (local.get $end)))))
           (func (export "_start")
             (call $grow_and_touch (i32.const 255))
             (call $flush (i32.const 0x104)))
           (func (export "hog") (result i32)
             (loop $more (call $grow_and_touch (i32.const 16)) (br $more))
             (i32.const 0))
           (func (export "chatter") (result i32)
             (i32.store (i32.const 0x200) (i32.const 1))
             (loop $more (drop (call $get_len (i32.const 0x204))) (br $more))
             (i32.const 0))
           (func (export "fill") (result i32)
             (drop (memory.grow (i32.const 127)))
             (loop $more
               (memory.fill (i32.const 0) (i32.const 7) (i32.mul (memory.size) (i32.const 65536)))
               (br $more))
             (i32.const 0))"#,
    )
}

#[test]
fn a_view_past_its_memory_bound_fails_while_blocks_keep_their_ceiling() {
    let config = RuntimeConfig {
        view_memory_bytes: 8 << 20,
        ..RuntimeConfig::default()
    };
    let rt = load(&unbounded_views(), config).unwrap();
    // The block grows to 16 MiB, twice the view bound: blocks have their own ceiling.
    rt.process_block(0, &genesis()).unwrap();
    for _ in 0..3 {
        match rt.view("hog", &[], 0) {
            Err(RuntimeError::ViewFailed {
                fault:
                    GuestFault::MemoryExceeded {
                        limit_bytes,
                        requested_bytes,
                    },
                ..
            }) => {
                assert_eq!(limit_bytes, 8 << 20);
                assert!(requested_bytes > 8 << 20);
            }
            other => panic!("expected the view memory bound, got {other:?}"),
        }
    }
    // A preview's block part runs under the view bound too.
    match rt.preview(&genesis(), "hog", &[], 0) {
        Err(RuntimeError::BlockFailed {
            fault: GuestFault::MemoryExceeded { limit_bytes, .. },
            height: 1,
        }) => assert_eq!(limit_bytes, 8 << 20),
        other => panic!("expected the view memory bound, got {other:?}"),
    }
    assert_eq!(rt.tip().unwrap(), Some(0));
}

#[test]
fn a_view_bound_below_the_modules_initial_memory_is_refused_at_load() {
    let wasm = wat::parse_str(format!(
        "(module {ABI_IMPORTS} (memory (export \"memory\") 160) (func (export \"_start\")))"
    ))
    .unwrap();
    let config = RuntimeConfig {
        view_memory_bytes: 8 << 20,
        ..RuntimeConfig::default()
    };
    match load(&wasm, config) {
        Err(RuntimeError::Config(reason)) => {
            assert!(reason.contains("--view-memory-mib"), "{reason}")
        }
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("expected a configuration error"),
    }
}

#[test]
fn views_stop_at_their_deadline_in_host_calls_and_bulk_memory_loops() {
    let config = RuntimeConfig {
        view_timeout: Duration::from_millis(150),
        ..RuntimeConfig::default()
    };
    let rt = load(&unbounded_views(), config).unwrap();
    rt.process_block(0, &genesis()).unwrap();
    for view in ["chatter", "fill"] {
        match rt.view(view, &[], 0) {
            Err(RuntimeError::ViewFailed {
                fault: GuestFault::TimedOut { limit },
                ..
            }) => assert_eq!(limit, Duration::from_millis(150)),
            other => panic!("{view}: expected a timeout, got {other:?}"),
        }
    }
    // A preview whose view never ends is stopped by the same deadline as its block.
    match rt.preview(&genesis(), "chatter", &[], 0) {
        Err(RuntimeError::ViewFailed {
            fault: GuestFault::TimedOut { .. },
            height: 1,
            ..
        }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn a_cancelled_view_stops_with_its_own_fault() {
    let config = RuntimeConfig {
        view_timeout: Duration::from_secs(600),
        ..RuntimeConfig::default()
    };
    let rt = Arc::new(load(&unbounded_views(), config).unwrap());
    rt.process_block(0, &genesis()).unwrap();
    for view in ["chatter", "fill"] {
        let cancel = metashrew_runtime::Cancellation::new();
        let call = {
            let (rt, cancel) = (rt.clone(), cancel.clone());
            std::thread::spawn(move || rt.view_with(view, &[], 0, &cancel))
        };
        std::thread::sleep(Duration::from_millis(50));
        cancel.cancel();
        match call.join().unwrap() {
            Err(RuntimeError::ViewFailed {
                fault: GuestFault::Cancelled,
                ..
            }) => {}
            other => panic!("{view}: expected a cancellation, got {other:?}"),
        }
    }
}

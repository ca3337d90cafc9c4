//! Property test of the host ABI from inside a guest.
//!
//! The guest below is a small interpreter: its block input (and its view input) is a program of
//! 13-byte instructions `op: u8, a: i32, b: i32, c: i32` that poke the host with arbitrary
//! pointers and lengths, write arbitrary length headers, flush arbitrary bytes (odd item counts,
//! malformed flushes, flushes of a million items), grow memory up to the ceiling, recurse without end, loop, abort.
//! Random programs (seeded, reproducible) are run as blocks and as views. The properties:
//!
//! * the host never crashes;
//! * a block either commits (tip advances by one) or fails with a non-empty reason, and then the
//!   store is exactly as before (tip, every key);
//! * the outcome is deterministic: a second runtime fed the same programs commits and fails the
//!   same blocks, with the same state roots;
//! * a view either answers or fails with a reason (a loop is interrupted by the view timeout),
//!   and never changes the store.
//!
//! `METASHREW_FUZZ_CASES` sets the number of programs (default 300, a few seconds);
//! `METASHREW_FUZZ_SEED` the first seed. Long runs: see `docs/testing.md`.

// A test, benchmark or build script fails by panicking: unwrap/expect are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use metashrew_runtime::{MetashrewRuntime, RuntimeConfig, RuntimeError};
use metashrew_storage::MemStore;
use metashrew_tests::{ABI_IMPORTS, Rng};

/// The interpreter (after the ABI imports). Memory: page 0 holds the input (header at 0x0FFC,
/// data from 0x1000).
const INTERPRETER: &str = r#"
  (memory (export "memory") 2)
  (global $sink (mut i32) (i32.const 0))

  (func $recurse (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $recurse (i32.sub (local.get $n) (i32.const 1)))))))

  ;; Loads the input at 0x1000 and runs its instructions, which start `skip` bytes in.
  (func $run (param $skip i32)
    (local $n i32) (local $p i32) (local $end i32) (local $op i32)
    (local $a i32) (local $b i32) (local $c i32)
    (local.set $n (call $host_len))
    (i32.store (i32.const 0x0FFC) (local.get $n))
    (call $load_input (i32.const 0x1000))
    (local.set $p (i32.add (i32.const 0x1000) (local.get $skip)))
    (local.set $end (i32.add (i32.const 0x1000) (local.get $n)))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (local.get $p) (i32.const 13)) (local.get $end)))
        (local.set $op (i32.load8_u (local.get $p)))
        (local.set $a (i32.load (i32.add (local.get $p) (i32.const 1))))
        (local.set $b (i32.load (i32.add (local.get $p) (i32.const 5))))
        (local.set $c (i32.load (i32.add (local.get $p) (i32.const 9))))
        (local.set $p (i32.add (local.get $p) (i32.const 13)))
        (block $op_done
          (br_if $op_done (i32.ge_u (local.get $op) (i32.const 12)))
          (block $l11 (block $l10 (block $l9 (block $l8 (block $l7 (block $l6 (block $l5
          (block $l4 (block $l3 (block $l2 (block $l1 (block $l0
            (br_table $l0 $l1 $l2 $l3 $l4 $l5 $l6 $l7 $l8 $l9 $l10 $l11 (local.get $op)))
            ;; 0: store b at a
            (i32.store (local.get $a) (local.get $b)) (br $op_done))
            ;; 1: __get_len(a)
            (global.set $sink (call $get_len (local.get $a))) (br $op_done))
            ;; 2: __get(a, b)
            (call $get (local.get $a) (local.get $b)) (br $op_done))
            ;; 3: __flush(a)
            (call $flush (local.get $a)) (br $op_done))
            ;; 4: __log(a)
            (call $log (local.get $a)) (br $op_done))
            ;; 5: __load_input(a)
            (call $load_input (local.get $a)) (br $op_done))
            ;; 6: memory.grow(a)
            (global.set $sink (memory.grow (local.get $a))) (br $op_done))
            ;; 7: recurse a levels
            (global.set $sink (call $recurse (local.get $a))) (br $op_done))
            ;; 8: loop a times (a < 0: forever)
            (block $out (loop $spin
              (br_if $out (i32.eqz (local.get $a)))
              (local.set $a (i32.sub (local.get $a) (i32.const 1)))
              (br $spin)))
            (br $op_done))
            ;; 9: memory.fill(a, b, c)
            (memory.fill (local.get $a) (local.get $b) (local.get $c)) (br $op_done))
          ;; 10: abort(a, b, c, 0)
          (call $abort (local.get $a) (local.get $b) (local.get $c) (i32.const 0)) (br $op_done))
          ;; 11: b empty protobuf items (0a 00) at a, with the length header at a - 4
          (i32.store (i32.sub (local.get $a) (i32.const 4)) (i32.shl (local.get $b) (i32.const 1)))
          (block $out (loop $fill
            (br_if $out (i32.eqz (local.get $b)))
            (i32.store16 (local.get $a) (i32.const 0x000a))
            (local.set $a (i32.add (local.get $a) (i32.const 2)))
            (local.set $b (i32.sub (local.get $b) (i32.const 1)))
            (br $fill))))
        (br $next))))

  ;; A block's program follows the height and an 80-byte header.
  (func (export "_start") (call $run (i32.const 84)))
  ;; A view's follows the height; it returns the buffer at 0x1000 (its input).
  (func (export "v") (result i32) (call $run (i32.const 4)) (i32.const 0x1000))
)
"#;

const MEMORY_CEILING: u64 = 8 << 20;

/// A pointer or length a hostile guest would try.
fn interesting(rng: &mut Rng) -> i32 {
    const EDGES: [i64; 16] = [
        0,
        1,
        3,
        4,
        0x0FFC,
        0x1000,
        0x2000,
        65_532,
        65_536,
        131_068,
        131_072,
        MEMORY_CEILING as i64 - 4,
        i32::MAX as i64,
        -1,
        -4,
        i32::MIN as i64,
    ];
    match rng.below(4) {
        0 => EDGES[rng.below(EDGES.len() as u64) as usize] as i32,
        1 => rng.below(0x3_0000) as i32,
        2 => rng.next_u64() as i32,
        _ => (rng.below(64) * 4 + 0x2000) as i32,
    }
}

/// An address in the guest's first two pages, above the input, 4-aligned; now and then a wild one.
fn in_bounds(rng: &mut Rng) -> i32 {
    match rng.below(10) {
        0 => interesting(rng),
        _ => (0x2000 + 4 * rng.below(0x3800)) as i32,
    }
}

/// A protobuf `KeyValueFlush` of `items` short items, written with op 0 at `at` (length header
/// at `at - 4`); returns the instructions.
fn well_formed_flush(rng: &mut Rng, at: i32, items: usize) -> Vec<[i32; 4]> {
    let mut bytes = Vec::new();
    for _ in 0..items {
        let len = rng.below(5) as u8;
        bytes.extend_from_slice(&[0x0a, len]);
        for _ in 0..len {
            bytes.push(b'a' + rng.below(3) as u8);
        }
    }
    let mut ops = vec![[0, at - 4, bytes.len() as i32, 0]];
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        ops.push([0, at + 4 * i as i32, i32::from_le_bytes(word), 0]);
    }
    ops
}

/// A random program. `view` programs may also loop without end.
fn program(rng: &mut Rng, view: bool) -> Vec<u8> {
    let mut ops: Vec<[i32; 4]> = Vec::new();
    for _ in 0..rng.below(8) + 1 {
        match rng.below(18) {
            // Mostly in-bounds stores: headers and bytes the host calls below will read.
            0..=2 => ops.push([0, in_bounds(rng), interesting(rng), 0]),
            3 => ops.push([1, interesting(rng), 0, 0]),
            4 => ops.push([2, interesting(rng), interesting(rng), 0]),
            5 => ops.push([3, interesting(rng), 0, 0]),
            6 => ops.push([4, interesting(rng), 0, 0]),
            7 => ops.push([5, interesting(rng), 0, 0]),
            8 => ops.push([6, rng.below(200) as i32 - 20, 0, 0]),
            9 => ops.push([7, [10, 1_000, 1_000_000][rng.below(3) as usize], 0, 0]),
            10 if view => ops.push([8, -1, 0, 0]),
            10 => ops.push([8, rng.below(100_000) as i32, 0, 0]),
            11 => ops.push([
                9,
                in_bounds(rng),
                interesting(rng),
                rng.below(0x1000) as i32,
            ]),
            12 if rng.below(3) == 0 => {
                ops.push([10, interesting(rng), interesting(rng), interesting(rng)])
            }
            // A giant flush: up to a million empty items, an odd or even count.
            13 => {
                let items = rng.below(1_200_000) as i32;
                ops.push([6, 40, 0, 0]);
                ops.push([11, 0x2_0004, items, 0]);
                ops.push([3, 0x2_0004, 0, 0]);
            }
            // Well-formed flushes (even or odd item counts).
            _ => {
                let at = 0x4000 + 0x400 * rng.below(8) as i32;
                let items = rng.below(7) as usize;
                ops.extend(well_formed_flush(rng, at, items));
                ops.push([3, at, 0, 0]);
            }
        }
    }
    // Usually end with an empty flush, so that many programs commit.
    if rng.below(4) > 0 {
        ops.extend(EMPTY_FLUSH);
    }
    encode(&ops)
}

/// Instructions flushing an empty `KeyValueFlush` from 0x4000.
const EMPTY_FLUSH: [[i32; 4]; 2] = [[0, 0x3FFC, 0, 0], [3, 0x4000, 0, 0]];

fn encode(ops: &[[i32; 4]]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for [op, a, b, c] in ops {
        bytes.push(*op as u8);
        for x in [a, b, c] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    bytes
}

/// A block: an 80-byte "header" (the host hashes it; it carries the seed) and the program.
fn block(seed: u64, program: &[u8]) -> Vec<u8> {
    let mut block = vec![0u8; 80];
    block[..8].copy_from_slice(&seed.to_le_bytes());
    block.extend_from_slice(program);
    block
}

/// The gist of a failure reason, to show what the programs ran into.
fn kind_of(reason: &str) -> String {
    let gist: String = reason
        .split([':', '(', ';'])
        .next()
        .unwrap_or(reason)
        .trim()
        .chars()
        .collect();
    // Numbers and addresses vary; the kind of failure does not.
    gist.split_whitespace()
        .map(|w| {
            if w.starts_with(|c: char| c.is_ascii_digit()) {
                "N"
            } else {
                w
            }
        })
        .take(6)
        .collect::<Vec<_>>()
        .join(" ")
}

fn cases() -> u64 {
    std::env::var("METASHREW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn first_seed() -> u64 {
    std::env::var("METASHREW_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed)
}

fn runtime() -> MetashrewRuntime<MemStore> {
    let config = RuntimeConfig {
        max_memory_bytes: MEMORY_CEILING,
        max_wasm_stack_bytes: 256 << 10,
        view_timeout: Duration::from_millis(200),
        ..RuntimeConfig::default()
    };
    let wasm = wat::parse_str(format!("(module {ABI_IMPORTS} {INTERPRETER}")).expect("valid WAT");
    MetashrewRuntime::from_bytes(&wasm, Arc::new(MemStore::new()), config).expect("loads")
}

#[test]
fn random_abi_programs_commit_whole_blocks_or_nothing() {
    let (rt, twin) = (runtime(), runtime());
    let (mut committed, mut failed) = (0u64, 0u64);
    let mut reasons = std::collections::BTreeMap::new();
    let mut height = 0u32;
    // A first block, so that failures have a state to leave untouched.
    for r in [&rt, &twin] {
        r.process_block(height, &block(0, &encode(&EMPTY_FLUSH)))
            .expect("an empty flush commits");
    }
    for case in 0..cases() {
        let seed = first_seed().wrapping_add(case);
        let mut rng = Rng::new(seed);
        let block = block(seed, &program(&mut rng, false));
        let before = rt.storage().dump_at(height);
        let outcome = rt.process_block(height + 1, &block);
        let again = twin.process_block(height + 1, &block);
        assert_eq!(
            outcome
                .as_ref()
                .map(|r| r.state_root)
                .map_err(|e| e.to_string()),
            again
                .as_ref()
                .map(|r| r.state_root)
                .map_err(|e| e.to_string()),
            "seed {seed}: the twin runtime disagrees"
        );
        match outcome {
            Ok(report) => {
                committed += 1;
                height += 1;
                assert_eq!(report.height, height, "seed {seed}");
                assert_eq!(rt.tip().expect("tip"), Some(height), "seed {seed}");
            }
            Err(RuntimeError::BlockFailed { fault, .. }) => {
                let reason = fault.to_string();
                failed += 1;
                *reasons.entry(kind_of(&reason)).or_insert(0u64) += 1;
                assert!(!reason.trim().is_empty(), "seed {seed}: empty reason");
                assert_eq!(rt.tip().expect("tip"), Some(height), "seed {seed}");
                assert!(
                    rt.storage().dump_at(height) == before,
                    "seed {seed}: state changed"
                );
            }
            Err(other) => panic!("seed {seed}: not a block failure: {other}"),
        }
    }
    println!(
        "{} block programs: {committed} committed, {failed} failed cleanly: {reasons:?}",
        cases()
    );
    assert!(
        committed > 0 && failed > 0,
        "the generator must produce both outcomes"
    );
}

#[test]
fn random_view_programs_answer_or_fail_and_change_nothing() {
    let rt = runtime();
    rt.process_block(0, &block(0, &encode(&EMPTY_FLUSH)))
        .expect("an empty flush commits");
    let before = rt.storage().dump_at(0);
    let (mut answered, mut failed) = (0u64, 0u64);
    for case in 0..cases() / 4 {
        let seed = first_seed().wrapping_add(case);
        let mut rng = Rng::new(seed);
        match rt.view("v", &program(&mut rng, true), 0) {
            Ok(_) => answered += 1,
            Err(RuntimeError::ViewFailed { fault, .. }) => {
                let reason = fault.to_string();
                failed += 1;
                assert!(!reason.trim().is_empty(), "seed {seed}: empty reason");
            }
            Err(other) => panic!("seed {seed}: not a view failure: {other}"),
        }
    }
    assert_eq!(rt.tip().expect("tip"), Some(0));
    assert!(
        rt.storage().dump_at(0) == before,
        "a view changed the store"
    );
    println!(
        "{} view programs: {answered} answered, {failed} failed cleanly",
        cases() / 4
    );
    assert!(answered > 0 && failed > 0);
}

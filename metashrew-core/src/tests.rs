use super::*;
use crate::index_pointer::{AtomicPointer, IndexPointer, KeyValuePointer};

fn k(s: &str) -> Arc<Vec<u8>> {
    Arc::new(s.as_bytes().to_vec())
}

#[test]
fn input_is_height_prefixed() {
    mock::reset();
    mock::set_input(840_000, b"block");
    let input = input();
    assert_eq!(&input[..4], &[0x40, 0xD1, 0x0C, 0x00]);
    assert_eq!(&input[4..], b"block");
}

#[test]
fn reads_see_host_state_then_own_writes() {
    mock::reset();
    mock::set_state(b"/a", b"host");
    assert_eq!(*get(k("/a")), b"host".to_vec());
    assert!(get(k("/absent")).is_empty());
    set(k("/a"), k("mine"));
    assert_eq!(*get(k("/a")), b"mine".to_vec());
    // The host does not see the write before the flush.
    assert_eq!(mock::get_state(b"/a"), b"host".to_vec());
    flush();
    assert_eq!(mock::get_state(b"/a"), b"mine".to_vec());
}

#[test]
fn flush_sends_keys_in_first_set_order_with_last_values() {
    mock::reset();
    set(k("/b"), k("1"));
    set(k("/a"), k("2"));
    set(k("/b"), k("3"));
    let _ = get(k("/read-only"));
    flush();
    let flushes = mock::take_flushes();
    assert_eq!(
        flushes,
        vec![vec![
            (b"/b".to_vec(), b"3".to_vec()),
            (b"/a".to_vec(), b"2".to_vec()),
        ]]
    );
}

#[test]
fn flush_is_sent_even_when_empty() {
    mock::reset();
    flush();
    flush();
    assert_eq!(mock::take_flushes(), vec![vec![], vec![]]);
}

#[test]
fn state_carries_across_blocks_through_the_cache() {
    mock::reset();
    for height in 0..5u32 {
        let mut counter = IndexPointer::from_keyword("/counter");
        let n = counter.get_value::<u32>();
        assert_eq!(n, height);
        counter.set_value::<u32>(n + 1);
        flush();
    }
    assert_eq!(mock::get_state(b"/counter"), 5u32.to_le_bytes().to_vec());
    assert!(
        lru_cache_stats().hits >= 4,
        "later blocks read the counter from the cache"
    );
}

#[test]
fn index_pointer_writes_metashrew_keys() {
    mock::reset();
    let list = IndexPointer::from_keyword("/storage");
    list.append(Arc::new(vec![1]));
    list.append(Arc::new(vec![2]));
    flush();
    let state = mock::state();
    assert_eq!(state.get(&b"/storage/length"[..]), Some(&vec![2, 0, 0, 0]));
    assert_eq!(state.get(&b"/storage/0"[..]), Some(&vec![1]));
    assert_eq!(state.get(&b"/storage/1"[..]), Some(&vec![2]));
}

/// The pairs of each flush, sorted by key (the order of a flush never changes the state).
fn flushed_sorted() -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    mock::take_flushes()
        .into_iter()
        .map(|mut pairs| {
            pairs.sort();
            pairs
        })
        .collect()
}

fn pair(key: &[u8], value: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (key.to_vec(), value.to_vec())
}

#[test]
fn atomic_pointer_commit_and_rollback_write_metashrew_bytes() {
    mock::reset();
    // As indexers write it: one base pointer, a checkpoint per transaction.
    let mut atomic = AtomicPointer::default();
    assert_eq!(atomic.checkpoint_depth(), 1);
    let balances = atomic.derive(&IndexPointer::from_keyword("/balances/"));
    let mut alice = balances.keyword("alice");
    // Transaction 1 commits.
    atomic.checkpoint();
    alice.set_value::<u64>(50);
    balances.keyword("list").append(k("alice"));
    atomic.commit();
    assert_eq!(atomic.checkpoint_depth(), 1);
    // Transaction 2 fails and rolls back.
    atomic.checkpoint();
    alice.set_value::<u64>(0);
    balances.keyword("bob").set_value::<u64>(7);
    atomic.rollback();
    assert_eq!(alice.get_value::<u64>(), 50);
    assert!(
        get(k("/balances/bob")).is_empty(),
        "nothing before the base commit"
    );
    // The base commit writes the base checkpoint's entries and keeps them.
    atomic.commit();
    flush();
    let expected = vec![
        pair(b"/balances/alice", &50u64.to_le_bytes()),
        pair(b"/balances/list/0", b"alice"),
        pair(b"/balances/list/length", &[1, 0, 0, 0]),
    ];
    assert_eq!(flushed_sorted(), vec![expected.clone()]);
    // A direct write, then a second base commit: the kept entries are written again and win.
    IndexPointer::from_keyword("/balances/alice").set_value::<u64>(1);
    atomic.commit();
    flush();
    assert_eq!(flushed_sorted(), vec![expected]);
    assert_eq!(
        mock::get_state(b"/balances/alice"),
        50u64.to_le_bytes().to_vec()
    );
}

#[test]
fn atomic_pointer_nested_checkpoints_fold_down() {
    mock::reset();
    let mut atomic = AtomicPointer::default();
    let mut x = atomic.derive(&IndexPointer::from_keyword("/x"));
    atomic.checkpoint();
    atomic.checkpoint();
    x.set_value::<u32>(2);
    assert_eq!(atomic.checkpoint_depth(), 3);
    atomic.commit();
    atomic.commit();
    assert_eq!(atomic.checkpoint_depth(), 1);
    assert_eq!(x.get_value::<u32>(), 2);
    assert_eq!(
        x.get_pointer().get_value::<u32>(),
        0,
        "not in the store yet"
    );
    atomic.commit();
    assert_eq!(x.get_pointer().get_value::<u32>(), 2);
}

#[test]
fn atomic_pointer_at_depth_zero_behaves_as_metashrew() {
    mock::reset();
    let mut atomic = AtomicPointer::default();
    let mut x = atomic.derive(&IndexPointer::from_keyword("/x"));
    x.set_value::<u32>(1);
    atomic.rollback();
    assert_eq!(atomic.checkpoint_depth(), 0);
    atomic.rollback();
    assert_eq!(
        atomic.checkpoint_depth(),
        0,
        "rollback at depth 0 does nothing"
    );
    assert_eq!(
        x.get_value::<u32>(),
        0,
        "the base checkpoint's writes are gone"
    );
    let set = std::panic::catch_unwind(move || x.set_value::<u32>(2));
    assert!(set.is_err(), "a write at depth 0 panics");
    let mut again = atomic.clone();
    assert!(std::panic::catch_unwind(move || again.commit()).is_err());
    // A new checkpoint makes the pointer usable again.
    atomic.checkpoint();
    atomic
        .derive(&IndexPointer::from_keyword("/x"))
        .set_value::<u32>(3);
    atomic.commit();
    assert_eq!(*get(k("/x")), 3u32.to_le_bytes().to_vec());
}

#[test]
fn get_cache_is_a_static_snapshot() {
    mock::reset();
    set(k("/a"), k("1"));
    let first: &'static HashMap<Arc<Vec<u8>>, Arc<Vec<u8>>> = get_cache();
    assert_eq!(first.get(&k("/a")), Some(&k("1")));
    assert!(std::ptr::eq(first, get_cache()), "no change, same snapshot");
    set(k("/b"), k("2"));
    let second = get_cache();
    assert_eq!(first.len(), 1, "a snapshot never changes");
    assert_eq!(second.len(), 2);
}

#[test]
fn the_leak_free_forms_see_what_get_cache_sees() {
    mock::reset();
    set(k("/a"), k("1"));
    let owned = cache_snapshot();
    set(k("/b"), k("2"));
    assert_eq!(
        owned.len(),
        1,
        "an owned snapshot does not follow later writes"
    );
    assert_eq!(with_cache(|c| c.len()), 2, "a lent map is the live one");
    assert_eq!(
        with_cache(|c| c.get(&k("/b")).cloned()),
        get_cache().get(&k("/b")).cloned()
    );
}

#[test]
fn writeln_to_stdout_as_indexers_write_it() {
    use crate::stdio::{Write, stdout};
    mock::reset();
    writeln!(stdout(), "block {}", 840_000).unwrap();
    assert_eq!(mock::log_text(), "block 840000\n");
    let _: Option<crate::stdio::Error> = None;
}

#[test]
fn import_stand_ins_serve_tests() {
    mock::reset();
    crate::imports::__set_input([7u32.to_le_bytes().to_vec(), b"abc".to_vec()].concat());
    assert_eq!(crate::imports::__host_len(), 7);
    assert_eq!(
        input(),
        [7u32.to_le_bytes().to_vec(), b"abc".to_vec()].concat()
    );
    assert!(crate::imports::__now() > 1_600_000_000_000);
}

#[cfg(feature = "debug-log")]
#[test]
fn println_reaches_the_host_log_with_debug_log() {
    mock::reset();
    crate::println!("height {}", 7);
    crate::print!("x");
    crate::debug_log!("!");
    assert_eq!(mock::log_text(), "height 7\nx!\n");
}

#[cfg(not(feature = "debug-log"))]
#[test]
fn println_is_silent_and_unevaluated_without_debug_log() {
    mock::reset();
    let mut evaluated = false;
    let mut touch = || {
        evaluated = true;
        7
    };
    crate::println!("height {}", touch());
    crate::print!("x");
    crate::debug_log!("{}", touch());
    assert!(!evaluated);
    assert_eq!(mock::log_text(), "");
    use crate::stdio::Write;
    writeln!(crate::stdio::stdout(), "always").unwrap();
    assert_eq!(mock::log_text(), "always\n");
}

#[test]
fn view_writes_are_discarded() {
    mock::reset();
    mock::set_input(3, b"req");
    let out = view_bytes(|height, request| {
        set(k("/v"), k("w"));
        Ok::<_, String>([height.to_le_bytes().to_vec(), request.to_vec()].concat())
    })
    .unwrap();
    assert_eq!(out, [3u32.to_le_bytes().to_vec(), b"req".to_vec()].concat());
    set_cache_mode(CacheAllocationMode::Indexer);
    flush();
    assert_eq!(mock::take_flushes(), vec![vec![]]);
}

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
    let mut list = IndexPointer::from_keyword("/storage");
    list.append(Arc::new(vec![1]));
    list.append(Arc::new(vec![2]));
    flush();
    let state = mock::state();
    assert_eq!(state.get(&b"/storage/length"[..]), Some(&vec![2, 0, 0, 0]));
    assert_eq!(state.get(&b"/storage/0"[..]), Some(&vec![1]));
    assert_eq!(state.get(&b"/storage/1"[..]), Some(&vec![2]));
}

#[test]
fn atomic_pointer_commits_and_rolls_back() {
    mock::reset();
    let mut root = AtomicPointer::default();
    let mut x = root.derive(&IndexPointer::from_keyword("/x"));
    x.set_value::<u32>(1);
    root.checkpoint();
    x.set_value::<u32>(2);
    assert_eq!(x.get_value::<u32>(), 2);
    root.rollback();
    assert_eq!(x.get_value::<u32>(), 1);
    // Nothing reaches the store until the base commits.
    assert!(get(k("/x")).is_empty());
    root.commit();
    assert_eq!(*get(k("/x")), 1u32.to_le_bytes().to_vec());
    // Rolling back the base keeps the pointer usable.
    root.rollback();
    x.set_value::<u32>(9);
    assert_eq!(root.checkpoint_depth(), 1);
    assert_eq!(x.get_value::<u32>(), 9);
}

#[test]
fn println_reaches_the_host_log() {
    mock::reset();
    crate::println!("height {}", 7);
    crate::print!("x");
    assert_eq!(mock::log_text(), "height 7\nx");
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

//! The exact writes of every list and pointer helper, pinned as byte vectors: these are the
//! bytes Metashrew's helpers persist, so an indexer moved to this SDK writes the same state.

use super::*;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

type Pair = (Vec<u8>, Vec<u8>);

#[derive(Default)]
struct Backend {
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Every `set`, in order.
    writes: Vec<Pair>,
}

/// A pointer over an in-memory map that records each write.
#[derive(Clone, Default)]
struct Recorder {
    key: Arc<Vec<u8>>,
    backend: Rc<RefCell<Backend>>,
}

impl KeyValuePointer for Recorder {
    fn wrap(word: &Vec<u8>) -> Self {
        Self {
            key: Arc::new(word.clone()),
            backend: Rc::default(),
        }
    }
    fn unwrap(&self) -> Arc<Vec<u8>> {
        self.key.clone()
    }
    fn set(&mut self, v: Arc<Vec<u8>>) {
        let mut b = self.backend.borrow_mut();
        b.state.insert((*self.key).clone(), (*v).clone());
        b.writes.push(((*self.key).clone(), (*v).clone()));
    }
    fn get(&self) -> Arc<Vec<u8>> {
        Arc::new(
            self.backend
                .borrow()
                .state
                .get(&*self.key)
                .cloned()
                .unwrap_or_default(),
        )
    }
    fn inherits(&mut self, from: &Self) {
        self.backend = from.backend.clone();
    }
}

impl Recorder {
    /// The writes since the last call.
    fn take(&self) -> Vec<Pair> {
        std::mem::take(&mut self.backend.borrow_mut().writes)
    }
}

fn w(key: &[u8], value: &[u8]) -> Pair {
    (key.to_vec(), value.to_vec())
}

#[test]
fn derived_keys_are_byte_exact() {
    let p = Recorder::from_keyword("/storage");
    assert_eq!(*p.length_key().unwrap(), b"/storage/length".to_vec());
    assert_eq!(*p.head_key().unwrap(), b"/storage/head".to_vec());
    assert_eq!(*p.select_index(0).unwrap(), b"/storage/0".to_vec());
    assert_eq!(*p.select_index(17).unwrap(), b"/storage/17".to_vec());
    assert_eq!(
        *p.next_key(2).unwrap(),
        b"/storage/next\x02\x00\x00\x00".to_vec()
    );
    assert_eq!(*p.keyword("/x").unwrap(), b"/storage/x".to_vec());
    assert_eq!(*p.prefix("/pre").unwrap(), b"/pre/storage".to_vec());
    assert_eq!(
        *p.select_value::<u32>(0x0102_0304).unwrap(),
        b"/storage\x04\x03\x02\x01".to_vec()
    );
    assert_eq!(
        *p.select_value::<u128>(1).unwrap(),
        [b"/storage".as_slice(), &[1], &[0; 15]].concat()
    );
    assert_eq!(*p.select(&vec![0xff]).unwrap(), b"/storage\xff".to_vec());
}

#[test]
fn set_value_nullify_and_set_or_nullify() {
    // Non-`mut` bindings for every list helper, as indexers write them; `mut` only where
    // Metashrew takes `&mut self`.
    let mut p = Recorder::from_keyword("/k");
    p.set_value::<u64>(5);
    p.nullify();
    p.set_or_nullify(Arc::new(vec![0, 0, 0, 0]));
    p.set_or_nullify(Arc::new(vec![1, 0, 0, 0]));
    p.set(Arc::new(b"raw".to_vec()));
    assert_eq!(
        p.take(),
        vec![
            w(b"/k", &[5, 0, 0, 0, 0, 0, 0, 0]),
            w(b"/k", &[0]),
            w(b"/k", &[0]),
            w(b"/k", &[1, 0, 0, 0]),
            w(b"/k", b"raw"),
        ]
    );
    let list = Recorder::from_keyword("/l");
    list.drop_index(3);
    assert_eq!(list.take(), vec![w(b"/l/3", &[0])]);
}

#[test]
fn extend_append_and_append_value() {
    let list = Recorder::from_keyword("/s");
    let mut first = list.extend();
    assert_eq!(list.take(), vec![w(b"/s/length", &[1, 0, 0, 0])]);
    first.set(Arc::new(vec![0xaa]));
    list.append(Arc::new(vec![0xbb]));
    list.append_value::<u32>(7);
    assert_eq!(
        list.take(),
        vec![
            w(b"/s/0", &[0xaa]),
            w(b"/s/length", &[2, 0, 0, 0]),
            w(b"/s/1", &[0xbb]),
            w(b"/s/length", &[3, 0, 0, 0]),
            w(b"/s/2", &[7, 0, 0, 0]),
        ]
    );
    assert_eq!(list.length(), 3);
    assert_eq!(
        list.get_list(),
        vec![
            Arc::new(vec![0xaa]),
            Arc::new(vec![0xbb]),
            Arc::new(vec![7, 0, 0, 0])
        ]
    );
    // Ten and more elements: decimal indices.
    for _ in 0..8 {
        list.append(Arc::new(vec![1]));
    }
    list.take();
    list.append(Arc::new(vec![2]));
    assert_eq!(
        list.take(),
        vec![w(b"/s/length", &[12, 0, 0, 0]), w(b"/s/11", &[2])]
    );
}

#[test]
fn pop_and_pop_value() {
    let list = Recorder::from_keyword("/s");
    assert!(list.pop().is_empty());
    assert_eq!(
        list.pop_value::<u32>(),
        0,
        "empty list pops zero, not a panic"
    );
    assert!(
        list.take().is_empty(),
        "popping an empty list writes nothing"
    );
    list.append_value::<u32>(7);
    list.append_value::<u32>(9);
    list.take();
    assert_eq!(list.pop_value::<u32>(), 9);
    assert_eq!(list.take(), vec![w(b"/s/length", &[1, 0, 0, 0])]);
    assert_eq!(*list.pop(), vec![7, 0, 0, 0]);
    assert_eq!(list.take(), vec![w(b"/s/length", &[0, 0, 0, 0])]);
    // The popped elements stay stored.
    assert_eq!(*list.select_index(1).get(), vec![9, 0, 0, 0]);
    assert_eq!(list.get_list_values::<u32>(), Vec::<u32>::new());
}

#[test]
fn extend_ll_links_before_the_length() {
    let ll = Recorder::from_keyword("/ll");
    ll.append_ll(Arc::new(vec![10]));
    assert_eq!(
        ll.take(),
        vec![w(b"/ll/length", &[1, 0, 0, 0]), w(b"/ll/0", &[10])]
    );
    ll.append_ll(Arc::new(vec![11]));
    assert_eq!(
        ll.take(),
        vec![
            w(b"/ll/next\x00\x00\x00\x00", &[1, 0, 0, 0]),
            w(b"/ll/length", &[2, 0, 0, 0]),
            w(b"/ll/1", &[11]),
        ]
    );
    let mut third = ll.extend_ll();
    third.set(Arc::new(vec![12]));
    assert_eq!(
        ll.take(),
        vec![
            w(b"/ll/next\x01\x00\x00\x00", &[2, 0, 0, 0]),
            w(b"/ll/length", &[3, 0, 0, 0]),
            w(b"/ll/2", &[12]),
        ]
    );
    ll.set_next_for(7, 9);
    assert_eq!(
        ll.take(),
        vec![w(b"/ll/next\x07\x00\x00\x00", &[9, 0, 0, 0])]
    );
}

fn linked(n: u8) -> Recorder {
    let ll = Recorder::from_keyword("/ll");
    for i in 0..n {
        ll.append_ll(Arc::new(vec![10 + i]));
    }
    ll.take();
    ll
}

fn walk(ll: &Recorder) -> Vec<u8> {
    ll.map_ll(|item, _| item.get()[0])
}

#[test]
fn delete_value_writes_what_metashrew_writes() {
    let ll = linked(4);
    // The head (0 when `/head` was never written): `/head` takes next(0).
    ll.delete_value(0);
    assert_eq!(
        ll.take(),
        vec![w(b"/ll/head", &[1, 0, 0, 0]), w(b"/ll/0", &[0])]
    );
    assert_eq!(walk(&ll), vec![11, 12, 13]);
    // Not the head: next(i - 1) takes next(i).
    ll.delete_value(2);
    assert_eq!(
        ll.take(),
        vec![
            w(b"/ll/next\x01\x00\x00\x00", &[3, 0, 0, 0]),
            w(b"/ll/2", &[0])
        ]
    );
    assert_eq!(walk(&ll), vec![11, 13]);
    // Deleting 3 now rewrites next(2) (a deleted element), not next(1), the real predecessor:
    // the list still reaches the deleted element. This is Metashrew's persisted behaviour.
    ll.delete_value(3);
    assert_eq!(
        ll.take(),
        vec![
            w(b"/ll/next\x02\x00\x00\x00", &[0, 0, 0, 0]),
            w(b"/ll/3", &[0])
        ]
    );
    assert_eq!(walk(&ll), vec![11, 0]);
}

#[test]
fn delete_value_of_zero_when_not_head_wraps_to_u32_max() {
    let ll = linked(3);
    ll.head_key().set_value::<u32>(1);
    ll.take();
    ll.delete_value(0);
    assert_eq!(
        ll.take(),
        vec![
            w(b"/ll/next\xff\xff\xff\xff", &[1, 0, 0, 0]),
            w(b"/ll/0", &[0])
        ]
    );
}

#[test]
fn delete_value_linked_tracks_the_real_predecessor() {
    let ll = linked(4);
    ll.delete_value_linked(2);
    assert_eq!(
        ll.take(),
        vec![
            w(b"/ll/next\x01\x00\x00\x00", &[3, 0, 0, 0]),
            w(b"/ll/2", &[0])
        ]
    );
    ll.delete_value_linked(3);
    assert_eq!(
        ll.take(),
        vec![
            w(b"/ll/next\x01\x00\x00\x00", &[0, 0, 0, 0]),
            w(b"/ll/3", &[0])
        ]
    );
    assert_eq!(walk(&ll), vec![10, 11]);
    ll.delete_value_linked(0);
    assert_eq!(
        ll.take(),
        vec![w(b"/ll/head", &[1, 0, 0, 0]), w(b"/ll/0", &[0])]
    );
    assert_eq!(walk(&ll), vec![11]);
}

#[test]
fn map_ll_passes_indices_and_writes_nothing_itself() {
    let ll = linked(3);
    let seen = ll.map_ll(|item, i| (i, item.get()[0]));
    assert_eq!(seen, vec![(0, 10), (1, 11), (2, 12)]);
    assert!(ll.take().is_empty());
    // A cycle ends the walk instead of hanging.
    ll.set_next_for(2, 1);
    assert_eq!(walk(&ll).len(), 4);
}

#[test]
fn get_value_of_absent_key_is_zero() {
    let p = Recorder::from_keyword("/absent");
    assert_eq!(p.get_value::<u64>(), 0);
    assert_eq!(p.get_value::<u128>(), 0);
}

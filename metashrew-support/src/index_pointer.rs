//! `KeyValuePointer`: typed access to a key and the keys derived from it.
//!
//! Keys are plain byte concatenation; no separator is ever inserted automatically (callers put
//! `/` in their keywords). The derived keys are byte-identical to Metashrew's, so that indexers
//! ported from it persist the same bytes:
//!
//! | method | key |
//! | --- | --- |
//! | `keyword(w)` / `select(b)` | `P ++ w` / `P ++ b` |
//! | `prefix(w)` | `w ++ P` |
//! | `select_value(x)` | `P ++ x.to_le_bytes()` |
//! | `length_key()` | `P ++ "/length"` (value: u32 LE; empty means 0) |
//! | `head_key()` | `P ++ "/head"` (u32 LE) |
//! | `next_key(i)` | `P ++ "/next" ++ u32le(i)` |
//! | `select_index(i)` | `P ++ "/" ++ decimal(i)` |
//!
//! `nullify()` stores the single byte `[0]` (not an empty value).

use std::sync::Arc;

use crate::byte_view::ByteView;

/// A handle on one key of the store. Implementors supply the raw access; everything else is
/// derived.
// `&Vec<u8>` parameters are Metashrew's signatures, kept so that ported indexers compile.
#[allow(clippy::ptr_arg)]
pub trait KeyValuePointer {
    /// A pointer at the raw key `word`.
    fn wrap(word: &Vec<u8>) -> Self;
    /// The raw key.
    fn unwrap(&self) -> Arc<Vec<u8>>;
    /// Stores `v` at the key.
    fn set(&mut self, v: Arc<Vec<u8>>);
    /// Loads the key's value (empty when absent).
    fn get(&self) -> Arc<Vec<u8>>;
    /// Takes context (e.g. a transaction) from the pointer this one was derived from.
    fn inherits(&mut self, from: &Self);

    fn from_keyword(word: &str) -> Self
    where
        Self: Sized,
    {
        Self::wrap(&word.as_bytes().to_vec())
    }

    /// `P ++ word`.
    fn keyword(&self, word: &str) -> Self
    where
        Self: Sized,
    {
        self.select(&word.as_bytes().to_vec())
    }

    /// `P ++ word`.
    fn select(&self, word: &Vec<u8>) -> Self
    where
        Self: Sized,
    {
        let mut key = (*self.unwrap()).clone();
        key.extend_from_slice(word);
        let mut ptr = Self::wrap(&key);
        ptr.inherits(self);
        ptr
    }

    /// `P ++ key.to_bytes()` (little-endian).
    fn select_value<T: ByteView>(&self, key: T) -> Self
    where
        Self: Sized,
    {
        self.select(&key.to_bytes())
    }

    /// `keyword ++ P`.
    fn prefix(&self, keyword: &str) -> Self
    where
        Self: Sized,
    {
        let mut key = keyword.as_bytes().to_vec();
        key.extend_from_slice(&self.unwrap());
        let mut ptr = Self::wrap(&key);
        ptr.inherits(self);
        ptr
    }

    fn set_value<T: ByteView>(&mut self, v: T) {
        self.set(Arc::new(v.to_bytes()));
    }

    /// The stored value; an empty (absent) value reads as zero.
    ///
    /// # Panics
    /// If the stored value has a length other than `size_of::<T>()` (as Metashrew).
    fn get_value<T: ByteView>(&self) -> T {
        let value = self.get();
        if value.is_empty() {
            T::zero()
        } else {
            T::from_bytes((*value).clone())
        }
    }

    fn length_key(&self) -> Self
    where
        Self: Sized,
    {
        self.keyword("/length")
    }

    fn head_key(&self) -> Self
    where
        Self: Sized,
    {
        self.keyword("/head")
    }

    fn next_key(&self, i: u32) -> Self
    where
        Self: Sized,
    {
        self.keyword("/next").select_value(i)
    }

    /// The list length stored at `length_key()`.
    fn length(&self) -> u32
    where
        Self: Sized,
    {
        self.length_key().get_value::<u32>()
    }

    /// `P ++ "/" ++ decimal(index)`.
    fn select_index(&self, index: u32) -> Self
    where
        Self: Sized,
    {
        self.keyword(&format!("/{index}"))
    }

    /// Nullifies element `index` (the list length is unchanged).
    fn drop_index(&self, index: u32)
    where
        Self: Sized,
    {
        self.select_index(index).nullify();
    }

    /// Elements `0..length()`.
    fn get_list(&self) -> Vec<Arc<Vec<u8>>>
    where
        Self: Sized,
    {
        (0..self.length())
            .map(|i| self.select_index(i).get())
            .collect()
    }

    fn get_list_values<T: ByteView>(&self) -> Vec<T>
    where
        Self: Sized,
    {
        (0..self.length())
            .map(|i| self.select_index(i).get_value::<T>())
            .collect()
    }

    /// Stores the single byte `[0]`.
    fn nullify(&mut self) {
        self.set(Arc::new(vec![0]));
    }

    /// Nullifies when `v` is all zero bytes (or empty), stores it otherwise.
    ///
    /// Metashrew decoded `v` as a `usize` (4 bytes in wasm, 8 natively) and panicked on any other
    /// length; this gives the same bytes wherever that did not panic, on every platform.
    fn set_or_nullify(&mut self, v: Arc<Vec<u8>>) {
        if v.iter().all(|b| *b == 0) {
            self.nullify();
        } else {
            self.set(v);
        }
    }

    /// Grows the list by one and returns a pointer at the new element.
    fn extend(&mut self) -> Self
    where
        Self: Sized,
    {
        let mut length_key = self.length_key();
        let length = length_key.get_value::<u32>();
        length_key.set_value::<u32>(length + 1);
        self.select_index(length)
    }

    fn append(&mut self, v: Arc<Vec<u8>>)
    where
        Self: Sized,
    {
        self.extend().set(v);
    }

    fn append_value<T: ByteView>(&mut self, v: T)
    where
        Self: Sized,
    {
        self.extend().set_value(v);
    }

    /// Shrinks the list by one and returns the former last element (which stays stored); empty
    /// when the list is empty.
    fn pop(&mut self) -> Arc<Vec<u8>>
    where
        Self: Sized,
    {
        let mut length_key = self.length_key();
        let length = length_key.get_value::<u32>();
        if length == 0 {
            return Arc::new(Vec::new());
        }
        length_key.set_value::<u32>(length - 1);
        self.select_index(length - 1).get()
    }

    /// [`KeyValuePointer::pop`] decoded as `T`; zero when the list is empty (Metashrew panicked).
    fn pop_value<T: ByteView>(&mut self) -> T
    where
        Self: Sized,
    {
        let value = self.pop();
        if value.is_empty() {
            T::zero()
        } else {
            T::from_bytes((*value).clone())
        }
    }

    /// [`KeyValuePointer::extend`], also linking the previous last element to the new one.
    fn extend_ll(&mut self) -> Self
    where
        Self: Sized,
    {
        let length = self.length();
        let element = self.extend();
        if length > 0 {
            self.set_next_for(length - 1, length);
        }
        element
    }

    fn append_ll(&mut self, v: Arc<Vec<u8>>)
    where
        Self: Sized,
    {
        self.extend_ll().set(v);
    }

    fn set_next_for(&mut self, i: u32, v: u32)
    where
        Self: Sized,
    {
        self.next_key(i).set_value::<u32>(v);
    }

    /// Unlinks element `i` from the linked list and nullifies it. Unlike Metashrew (which assumed
    /// that `i - 1` is the predecessor), this finds the real predecessor by walking the list.
    fn delete_value(&mut self, i: u32)
    where
        Self: Sized,
    {
        let head = self.head_key().get_value::<u32>();
        let next = self.next_key(i).get_value::<u32>();
        if i == head {
            self.head_key().set_value::<u32>(next);
        } else {
            let length = self.length();
            let mut current = head;
            let mut steps = 0;
            while current < length && steps <= length {
                let after = self.next_key(current).get_value::<u32>();
                if after == i {
                    self.set_next_for(current, next);
                    break;
                }
                if after == 0 {
                    break;
                }
                current = after;
                steps += 1;
            }
        }
        self.drop_index(i);
    }

    /// Calls `f` on each element of the linked list, from the head, following `next` links until
    /// one is unset (0) or leaves the list.
    fn map_ll<T>(&mut self, mut f: impl FnMut(&mut Self, u32) -> T) -> Vec<T>
    where
        Self: Sized,
    {
        let length = self.length();
        let mut out = Vec::new();
        let mut i = self.head_key().get_value::<u32>();
        let mut steps = 0;
        while i < length && steps <= length {
            let mut item = self.select_index(i);
            out.push(f(&mut item, i));
            let next = self.next_key(i).get_value::<u32>();
            if next == 0 {
                break;
            }
            i = next;
            steps += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    type Store = Rc<RefCell<BTreeMap<Vec<u8>, Vec<u8>>>>;

    /// A pointer over an in-memory map, to check key bytes.
    #[derive(Clone, Default)]
    struct MapPointer {
        key: Arc<Vec<u8>>,
        store: Store,
    }

    impl KeyValuePointer for MapPointer {
        fn wrap(word: &Vec<u8>) -> Self {
            Self {
                key: Arc::new(word.clone()),
                store: Store::default(),
            }
        }
        fn unwrap(&self) -> Arc<Vec<u8>> {
            self.key.clone()
        }
        fn set(&mut self, v: Arc<Vec<u8>>) {
            self.store
                .borrow_mut()
                .insert((*self.key).clone(), (*v).clone());
        }
        fn get(&self) -> Arc<Vec<u8>> {
            Arc::new(
                self.store
                    .borrow()
                    .get(&*self.key)
                    .cloned()
                    .unwrap_or_default(),
            )
        }
        fn inherits(&mut self, from: &Self) {
            self.store = from.store.clone();
        }
    }

    fn dump(p: &MapPointer) -> Vec<(Vec<u8>, Vec<u8>)> {
        p.store
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn derived_keys_are_byte_exact() {
        let p = MapPointer::from_keyword("/storage");
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
        assert_eq!(*p.select(&vec![0xff]).unwrap(), b"/storage\xff".to_vec());
    }

    #[test]
    fn append_writes_length_as_u32_le_and_decimal_elements() {
        let mut p = MapPointer::from_keyword("/storage");
        for i in 0..12u8 {
            p.append(Arc::new(vec![i]));
        }
        let stored = dump(&p);
        assert!(stored.contains(&(b"/storage/length".to_vec(), vec![12, 0, 0, 0])));
        assert!(stored.contains(&(b"/storage/11".to_vec(), vec![11])));
        assert!(stored.contains(&(b"/storage/0".to_vec(), vec![0])));
        assert_eq!(p.length(), 12);
        assert_eq!(p.get_list().len(), 12);
    }

    #[test]
    fn nullify_stores_a_zero_byte() {
        let mut p = MapPointer::from_keyword("/k");
        p.set_value::<u64>(5);
        p.nullify();
        assert_eq!(*p.get(), vec![0]);
        p.set_or_nullify(Arc::new(vec![0, 0, 0, 0]));
        assert_eq!(*p.get(), vec![0]);
        p.set_or_nullify(Arc::new(vec![1, 0, 0, 0]));
        assert_eq!(*p.get(), vec![1, 0, 0, 0]);
        let list = MapPointer::from_keyword("/l");
        list.drop_index(3);
        assert_eq!(*list.select_index(3).get(), vec![0]);
    }

    #[test]
    fn get_value_of_absent_key_is_zero() {
        let p = MapPointer::from_keyword("/absent");
        assert_eq!(p.get_value::<u64>(), 0);
    }

    #[test]
    fn pop_and_pop_value() {
        let mut p = MapPointer::from_keyword("/s");
        assert_eq!(p.pop_value::<u32>(), 0, "empty list pops zero, not a panic");
        assert!(p.pop().is_empty());
        p.append_value::<u32>(7);
        p.append_value::<u32>(9);
        assert_eq!(p.pop_value::<u32>(), 9);
        assert_eq!(p.length(), 1);
        assert_eq!(p.pop_value::<u32>(), 7);
        assert_eq!(p.length(), 0);
    }

    #[test]
    fn linked_list_delete_tracks_the_real_predecessor() {
        let mut p = MapPointer::from_keyword("/ll");
        for i in 0..4u8 {
            p.append_ll(Arc::new(vec![10 + i]));
        }
        assert_eq!(*p.next_key(0).get(), vec![1, 0, 0, 0]);
        let walk = |p: &mut MapPointer| p.map_ll(|item, _| item.get()[0]);
        assert_eq!(walk(&mut p), vec![10, 11, 12, 13]);
        p.delete_value(1);
        assert_eq!(walk(&mut p), vec![10, 12, 13]);
        // Metashrew would link 1 -> 3 here (assuming 1 precedes 2); the real predecessor is 0.
        p.delete_value(2);
        assert_eq!(walk(&mut p), vec![10, 13]);
        p.delete_value(0);
        assert_eq!(walk(&mut p), vec![13]);
    }
}

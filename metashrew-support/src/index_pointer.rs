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

    /// A pointer whose key is the bytes of `word`.
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

    /// Stores `v` as its [`ByteView::to_bytes`].
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

    /// `P ++ "/length"`.
    fn length_key(&self) -> Self
    where
        Self: Sized,
    {
        self.keyword("/length")
    }

    /// `P ++ "/head"`.
    fn head_key(&self) -> Self
    where
        Self: Sized,
    {
        self.keyword("/head")
    }

    /// `P ++ "/next" ++ le(i)`.
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

    /// Elements `0..length()`, each read as a `T`.
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

    /// Grows the list by one and returns a pointer at the new element. Writes `/length`.
    fn extend(&self) -> Self
    where
        Self: Sized,
    {
        let mut length_key = self.length_key();
        let length = length_key.get_value::<u32>();
        length_key.set_value::<u32>(length + 1);
        self.select_index(length)
    }

    /// Writes `/length`, then the new element.
    fn append(&self, v: Arc<Vec<u8>>)
    where
        Self: Sized,
    {
        self.extend().set(v);
    }

    /// Writes `/length`, then the new element.
    fn append_value<T: ByteView>(&self, v: T)
    where
        Self: Sized,
    {
        self.extend().set_value(v);
    }

    /// Shrinks the list by one and returns the former last element (which stays stored). On an
    /// empty list: empty bytes, and nothing is written.
    fn pop(&self) -> Arc<Vec<u8>>
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

    /// [`KeyValuePointer::pop`] decoded as `T`. On an empty list it returns zero and writes
    /// nothing (Metashrew panicked there, failing the block, so no working indexer relies on it).
    fn pop_value<T: ByteView>(&self) -> T
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

    /// [`KeyValuePointer::extend`] for a linked list: when the list is not empty, first links
    /// the last element to the new one (`/next ++ u32le(length - 1) = length`), then writes
    /// `/length`.
    fn extend_ll(&self) -> Self
    where
        Self: Sized,
    {
        let mut length_key = self.length_key();
        let length = length_key.get_value::<u32>();
        if length > 0 {
            self.set_next_for(length - 1, length);
        }
        length_key.set_value::<u32>(length + 1);
        self.select_index(length)
    }

    /// [`KeyValuePointer::extend_ll`], then the new element.
    fn append_ll(&self, v: Arc<Vec<u8>>)
    where
        Self: Sized,
    {
        self.extend_ll().set(v);
    }

    /// Writes `/next ++ u32le(i) = u32le(v)`.
    fn set_next_for(&self, i: u32, v: u32)
    where
        Self: Sized,
    {
        self.next_key(i).set_value::<u32>(v);
    }

    /// Metashrew's linked-list delete, byte for byte: when `i` is the value at `/head`, `/head`
    /// becomes `next(i)`; otherwise `next(i - 1)` (the *index* `i - 1`, wrapping to `u32::MAX`
    /// for 0, whatever the real predecessor is) is overwritten with `next(i)`. Then element `i`
    /// is nullified.
    ///
    /// This corrupts the list when `i - 1` was deleted earlier; it is the default because it is
    /// what Metashrew persists, and every node of a protocol must write the same bytes. New
    /// indexers should use [`KeyValuePointer::delete_value_linked`].
    fn delete_value(&self, i: u32)
    where
        Self: Sized,
    {
        let mut head_key = self.head_key();
        let next = self.next_key(i).get_value::<u32>();
        if i == head_key.get_value::<u32>() {
            head_key.set_value::<u32>(next);
        } else {
            self.set_next_for(i.wrapping_sub(1), next);
        }
        self.drop_index(i);
    }

    /// A linked-list delete that finds the real predecessor of `i` by walking the list from
    /// `/head` and links it to `next(i)` (no link is written when `i` is not in the list); then
    /// element `i` is nullified. Not in Metashrew: its [`KeyValuePointer::delete_value`] assumes
    /// that `i - 1` precedes `i`.
    fn delete_value_linked(&self, i: u32)
    where
        Self: Sized,
    {
        let mut head_key = self.head_key();
        let head = head_key.get_value::<u32>();
        let next = self.next_key(i).get_value::<u32>();
        if i == head {
            head_key.set_value::<u32>(next);
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
    /// one is unset (0) or leaves the list. Unlike Metashrew, a cycle ends the walk after
    /// `length` steps instead of looping forever.
    fn map_ll<T>(&self, mut f: impl FnMut(&mut Self, u32) -> T) -> Vec<T>
    where
        Self: Sized + Clone,
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
mod tests;

//! An in-process host for native builds (and wasm32 builds with the `test-utils` feature), so
//! guest logic can be unit-tested with `cargo test` or `wasm-bindgen-test`.
//!
//! Each thread has its own mock host: an input, a key/value state, the flushes received and the
//! log text. `flush()` applies its pairs to the state, so a test can run many blocks in a row:
//! reads during a block see the state after the previous flush, as on a real host.

use std::cell::RefCell;
use std::collections::BTreeMap;

use metashrew_support::proto::decode_flush;

/// Answers reads of keys the mock state does not hold (see [`set_backing`]).
pub type Backing = Box<dyn Fn(&[u8]) -> Vec<u8>>;

#[derive(Default)]
struct MockHost {
    input: Vec<u8>,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    backing: Option<Backing>,
    flushes: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
    log: String,
}

impl MockHost {
    fn value(&self, key: &[u8]) -> Option<Vec<u8>> {
        match (self.state.get(key), &self.backing) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(backing)) => Some(backing(key)),
            (None, None) => None,
        }
    }
}

thread_local! {
    static HOST: RefCell<MockHost> = RefCell::new(MockHost::default());
}

fn with_host<R>(f: impl FnOnce(&mut MockHost) -> R) -> R {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

/// Sets the input of the next `input()` call to `u32le(height) ++ payload`.
pub fn set_input(height: u32, payload: &[u8]) {
    let mut input = height.to_le_bytes().to_vec();
    input.extend_from_slice(payload);
    set_raw_input(input);
}

/// Sets the whole input (`u32 LE height ++ payload`), as Metashrew's `__set_input` does.
pub fn set_raw_input(input: Vec<u8>) {
    with_host(|h| h.input = input);
}

/// Stores a value in the mock state (as if an earlier block had written it).
pub fn set_state(key: &[u8], value: &[u8]) {
    with_host(|h| h.state.insert(key.to_vec(), value.to_vec()));
    crate::forget_cached_reads();
}

/// The value of `key` in the mock state (empty when absent).
pub fn get_state(key: &[u8]) -> Vec<u8> {
    with_host(|h| h.value(key).unwrap_or_default())
}

/// Makes reads of keys absent from the mock state ask `backing` (a real store, say), so native
/// guest logic can run against the same data as the wasm build. [`reset`] removes it.
pub fn set_backing(backing: Backing) {
    with_host(|h| h.backing = Some(backing));
    crate::forget_cached_reads();
}

/// Empties the mock state (keeping the backing reader), as when the writes so far have been
/// committed to the backing store.
pub fn clear_state() {
    with_host(|h| h.state.clear());
    crate::forget_cached_reads();
}

/// A copy of the whole mock state.
pub fn state() -> BTreeMap<Vec<u8>, Vec<u8>> {
    with_host(|h| h.state.clone())
}

/// The flushes received so far, each as its pairs in order; clears them.
pub fn take_flushes() -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    with_host(|h| std::mem::take(&mut h.flushes))
}

/// The text logged so far through `__log`.
pub fn log_text() -> String {
    with_host(|h| h.log.clone())
}

/// Forgets everything: input, state, flushes, log, the guest's block state and its cache.
pub fn reset() {
    with_host(|h| *h = MockHost::default());
    crate::forget_cached_reads();
}

fn data(buffer: &[u8]) -> &[u8] {
    buffer.get(4..).unwrap_or_default()
}

/// The mock host's `__host_len`: the input's length.
pub fn host_input_len() -> usize {
    with_host(|h| h.input.len())
}

/// The mock host's `__load_input`: fills `buffer` (ArrayBuffer layout) with the input.
pub fn host_load_input(buffer: &mut [u8]) {
    with_host(|h| {
        let n = h.input.len().min(buffer.len().saturating_sub(4));
        buffer[4..4 + n].copy_from_slice(&h.input[..n]);
    });
}

/// The mock host's `__get_len`: the length of the value of the key in `key` (ArrayBuffer layout).
pub fn host_get_len(key: &mut [u8]) -> usize {
    with_host(|h| h.value(data(key)).map_or(0, |v| v.len()))
}

/// The mock host's `__get`: fills `value` (ArrayBuffer layout) with the key's value.
pub fn host_get(key: &mut [u8], value: &mut [u8]) {
    with_host(|h| {
        if let Some(v) = h.value(data(key)) {
            let n = v.len().min(value.len().saturating_sub(4));
            value[4..4 + n].copy_from_slice(&v[..n]);
        }
    });
}

/// The mock host's `__flush`: applies the `KeyValueFlush` in `buffer` to the state.
///
/// # Panics
/// If `buffer` is not a valid `KeyValueFlush` (the real host fails the block).
pub fn host_flush(buffer: &mut [u8]) {
    let pairs = match decode_flush(data(buffer)) {
        Ok(pairs) => pairs,
        Err(err) => panic!("mock host: invalid flush: {err}"),
    };
    with_host(|h| {
        for (k, v) in &pairs {
            h.state.insert(k.clone(), v.clone());
        }
        h.flushes.push(pairs);
    });
}

/// The mock host's `__log`: appends the text in `buffer` to the log.
pub fn host_log(buffer: &mut [u8]) {
    let text = String::from_utf8_lossy(data(buffer)).into_owned();
    with_host(|h| h.log.push_str(&text));
}

//! The boundary to the host: the `env` imports in a wasm32 guest, the in-process mock natively
//! and with the `test-utils` feature.
//!
//! Every function here takes and fills buffers in the ArrayBuffer layout
//! (`[u32 LE length][bytes]`) and hands the host the data pointer (base + 4).

#[cfg(all(target_arch = "wasm32", not(feature = "test-utils")))]
pub use wasm::*;

#[cfg(any(not(target_arch = "wasm32"), feature = "test-utils"))]
pub use crate::mock::{
    host_flush, host_get, host_get_len, host_input_len, host_load_input, host_log,
};

#[cfg(all(target_arch = "wasm32", not(feature = "test-utils")))]
mod wasm {
    use crate::imports;
    use metashrew_support::compat::to_passback_ptr;

    /// Turns a length reported by the host into a usize, or traps with a clear message for the
    /// error sentinels (negative, `i32::MAX`) that Metashrew guests used to feed to the allocator.
    fn checked_len(len: i32, what: &str) -> usize {
        if len < 0 || len == i32::MAX {
            panic!("host returned an invalid {what} length ({len})");
        }
        len as usize
    }

    pub fn host_input_len() -> usize {
        // SAFETY: a plain host call without pointers.
        checked_len(unsafe { imports::__host_len() }, "input")
    }

    pub fn host_load_input(buffer: &mut Vec<u8>) {
        // SAFETY: `buffer` holds 4 + host_len bytes; the host writes exactly host_len of them.
        unsafe { imports::__load_input(to_passback_ptr(buffer)) }
    }

    pub fn host_get_len(key: &mut Vec<u8>) -> usize {
        // SAFETY: `key` is a live ArrayBuffer-layout buffer.
        checked_len(unsafe { imports::__get_len(to_passback_ptr(key)) }, "value")
    }

    pub fn host_get(key: &mut Vec<u8>, value: &mut Vec<u8>) {
        // SAFETY: both are live ArrayBuffer-layout buffers; `value` has room for the length the
        // host reported for `key`.
        unsafe { imports::__get(to_passback_ptr(key), to_passback_ptr(value)) }
    }

    pub fn host_flush(buffer: &mut Vec<u8>) {
        // SAFETY: `buffer` is a live ArrayBuffer-layout buffer.
        unsafe { imports::__flush(to_passback_ptr(buffer)) }
    }

    pub fn host_log(buffer: &mut Vec<u8>) {
        // SAFETY: `buffer` is a live ArrayBuffer-layout buffer.
        unsafe { imports::__log(to_passback_ptr(buffer)) }
    }
}

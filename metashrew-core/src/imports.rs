//! The host functions a guest imports from module `env` (Metashrew's ABI). All pointers are data
//! pointers of ArrayBuffer-layout buffers.
//!
//! In a wasm32 guest built without the `test-utils` feature these are the real imports. On a
//! native target, or with `test-utils` (Metashrew's feature for native and wasm-bindgen tests),
//! they are stand-ins with the same names and signatures backed by [`crate::mock`]'s in-memory
//! host, plus [`__set_input`] and [`__now`]; nothing is imported from `env` then.

#[cfg(all(target_arch = "wasm32", not(feature = "test-utils")))]
#[link(wasm_import_module = "env")]
unsafe extern "C" {
    /// Length of the input (`u32 LE height ++ payload`), i.e. payload length + 4.
    pub fn __host_len() -> i32;
    /// Writes the input at the pointer.
    pub fn __load_input(ptr: i32);
    /// Writes UTF-8 text to the host's log.
    pub fn __log(ptr: i32);
    /// Writes the value of the key at `key` into the buffer at `value`.
    pub fn __get(key: i32, value: i32);
    /// Length of the value of the key at `key` (0 when absent).
    pub fn __get_len(key: i32) -> i32;
    /// Hands the host a `KeyValueFlush` protobuf; marks the block complete.
    pub fn __flush(ptr: i32);
}

#[cfg(any(not(target_arch = "wasm32"), feature = "test-utils"))]
pub use stand_ins::*;

#[cfg(any(not(target_arch = "wasm32"), feature = "test-utils"))]
mod stand_ins {
    //! Pointer-taking stand-ins read and write the caller's memory, so (as in Metashrew) they
    //! only work where an `i32` is an address: in a wasm32 test. Natively, the SDK's own calls
    //! go to [`crate::mock`] directly and never through these.

    use crate::mock;
    use metashrew_support::utils::ptr_to_vec;

    /// Sets the input that `__host_len`/`__load_input` (and so `input()`) return: the whole
    /// input, `u32 LE height ++ payload`.
    pub fn __set_input(v: Vec<u8>) {
        mock::set_raw_input(v);
    }

    /// Milliseconds since the Unix epoch (the wall clock: for tests only, never for state).
    pub fn __now() -> u64 {
        #[cfg(all(target_arch = "wasm32", feature = "test-utils"))]
        {
            js::now() as u64
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        }
    }

    /// Native stand-in: the mock host's input length.
    pub fn __host_len() -> i32 {
        mock::host_input_len() as i32
    }

    /// Copies data bytes at `ptr` into a buffer in the ArrayBuffer layout, calls `f` on it, and
    /// copies the data back.
    fn with_buffer_at(ptr: i32, len: usize, f: impl FnOnce(&mut [u8])) {
        let mut buffer = vec![0u8; len + 4];
        buffer[..4].copy_from_slice(&(len as u32).to_le_bytes());
        f(&mut buffer);
        let data = ptr as u32 as usize as *mut u8;
        // SAFETY: the caller hands a data pointer with room for `len` bytes (the ABI's
        // contract, as in Metashrew's stand-ins).
        unsafe { std::ptr::copy_nonoverlapping(buffer[4..].as_ptr(), data, len) };
    }

    /// A copy of the caller's ArrayBuffer at `ptr`, in the layout the mock host takes.
    fn copy_of_buffer(ptr: i32) -> Vec<u8> {
        metashrew_support::compat::to_arraybuffer_layout(ptr_to_vec(ptr))
    }

    /// Native stand-in: copies the mock host's input to `ptr`.
    pub fn __load_input(ptr: i32) {
        with_buffer_at(ptr, mock::host_input_len(), mock::host_load_input);
    }

    /// Native stand-in: length of the mock host's value for the key at `ptr`.
    pub fn __get_len(ptr: i32) -> i32 {
        let mut key = copy_of_buffer(ptr);
        mock::host_get_len(&mut key) as i32
    }

    /// Native stand-in: copies the mock host's value for the key at `ptr` to `result`.
    pub fn __get(ptr: i32, result: i32) {
        let mut key = copy_of_buffer(ptr);
        let len = mock::host_get_len(&mut key);
        with_buffer_at(result, len, |value| mock::host_get(&mut key, value));
    }

    /// Native stand-in: applies the flush buffer at `ptr` to the mock host.
    pub fn __flush(ptr: i32) {
        let mut buffer = copy_of_buffer(ptr);
        mock::host_flush(&mut buffer);
    }

    /// Native stand-in: appends the text at `ptr` to the mock host's log.
    pub fn __log(ptr: i32) {
        let mut buffer = copy_of_buffer(ptr);
        #[cfg(all(target_arch = "wasm32", feature = "test-utils"))]
        js::write(&String::from_utf8_lossy(&buffer[4..]));
        mock::host_log(&mut buffer);
    }

    #[cfg(all(target_arch = "wasm32", feature = "test-utils"))]
    mod js {
        use wasm_bindgen::prelude::*;

        #[wasm_bindgen(js_namespace = Date)]
        extern "C" {
            pub fn now() -> f64;
        }

        #[wasm_bindgen(js_namespace = ["process", "stdout"])]
        extern "C" {
            pub fn write(s: &str);
        }
    }
}

//! The host functions a guest imports from module `env` (Metashrew's ABI). All pointers are data
//! pointers of ArrayBuffer-layout buffers.

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

//! Panic reporting and Metashrew's core-level `export_bytes`.

/// Logs the panic message through `__log` (the trap that follows carries no text).
pub fn panic_hook(info: &std::panic::PanicHookInfo<'_>) {
    crate::stdio::log_str(&format!("panic: {info}\n"));
}

/// Returns bytes from a view: a leaked ArrayBuffer, pointer at the data. (Metashrew's core version
/// pointed at the length prefix of a freed buffer.)
pub fn export_bytes(bytes: Vec<u8>) -> i32 {
    metashrew_support::compat::export_bytes(bytes)
}

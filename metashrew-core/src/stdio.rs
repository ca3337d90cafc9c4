//! Logging through the host's `__log` (std's `println!` goes nowhere in a wasm32 guest).

use std::sync::Arc;

use metashrew_support::compat::to_arraybuffer_layout;

/// Sends `text` to the host log as one `__log` call.
pub fn log_str(text: &str) {
    let mut buffer = to_arraybuffer_layout(text.as_bytes());
    crate::host::host_log(&mut buffer);
}

/// Sends raw bytes (expected UTF-8) to the host log.
pub fn log(v: Arc<Vec<u8>>) {
    let mut buffer = to_arraybuffer_layout(&*v);
    crate::host::host_log(&mut buffer);
}

/// A `std::fmt::Write` sink over `__log` (Metashrew's `stdout()`).
pub struct Stdout(());

impl std::fmt::Write for Stdout {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        log_str(s);
        Ok(())
    }
}

pub fn stdout() -> Stdout {
    Stdout(())
}

/// Like std's `println!`, through `__log`: one host call per line.
#[macro_export]
macro_rules! println {
    () => { $crate::stdio::log_str("\n") };
    ($($arg:tt)*) => {{
        let mut line = ::std::format!($($arg)*);
        line.push('\n');
        $crate::stdio::log_str(&line);
    }};
}

/// Like std's `print!`, through `__log`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::stdio::log_str(&::std::format!($($arg)*)) };
}

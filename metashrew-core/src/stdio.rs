//! Logging through the host's `__log` (std's `println!` goes nowhere in a wasm32 guest).

use std::sync::Arc;

/// Metashrew's re-exports: `writeln!(stdout(), ..)` needs `Write` in scope.
pub use std::fmt::{Error, Write};

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

impl Write for Stdout {
    fn write_str(&mut self, s: &str) -> Result<(), Error> {
        log_str(s);
        Ok(())
    }
}

/// A writer to the host's log: `writeln!(stdout(), ...)`.
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

/// Like [`println!`], but only with the `debug-log` feature (otherwise the arguments are not
/// even evaluated): for diagnostics that production builds should not pay for.
#[cfg(feature = "debug-log")]
#[macro_export]
macro_rules! debug_log {
    ($($arg:tt)*) => { $crate::println!($($arg)*) };
}

/// Like [`println!`], but only with the `debug-log` feature (otherwise the arguments are not
/// even evaluated): for diagnostics that production builds should not pay for.
#[cfg(not(feature = "debug-log"))]
#[macro_export]
macro_rules! debug_log {
    ($($arg:tt)*) => {{}};
}

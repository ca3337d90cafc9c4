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

/// Like std's `println!`, through `__log` (one host call per line), with the `debug-log` feature.
///
/// Without it, as in the Metashrew release alkanes-rs pins, nothing is logged and nothing is
/// evaluated: the arguments are only type-checked (so variables used only here raise no
/// warnings). Indexers print per transaction, and a host call per line costs more than many
/// blocks' real work. Use [`stdout`] with `writeln!` for output that must always reach the log.
#[cfg(feature = "debug-log")]
#[macro_export]
macro_rules! println {
    () => { $crate::stdio::log_str("\n") };
    ($($arg:tt)*) => {{
        let mut line = ::std::format!($($arg)*);
        line.push('\n');
        $crate::stdio::log_str(&line);
    }};
}

/// Like std's `println!`, through `__log` (one host call per line), with the `debug-log` feature.
///
/// Without it, as in the Metashrew release alkanes-rs pins, nothing is logged and nothing is
/// evaluated: the arguments are only type-checked (so variables used only here raise no
/// warnings). Indexers print per transaction, and a host call per line costs more than many
/// blocks' real work. Use [`stdout`] with `writeln!` for output that must always reach the log.
#[cfg(not(feature = "debug-log"))]
#[macro_export]
macro_rules! println {
    () => {{}};
    ($($arg:tt)*) => {{
        if false {
            let _ = ::std::format_args!($($arg)*);
        }
    }};
}

/// Like std's `print!`, through `__log`, with the `debug-log` feature; see [`println!`].
#[cfg(feature = "debug-log")]
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::stdio::log_str(&::std::format!($($arg)*)) };
}

/// Like std's `print!`, through `__log`, with the `debug-log` feature; see [`println!`].
#[cfg(not(feature = "debug-log"))]
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        if false {
            let _ = ::std::format_args!($($arg)*);
        }
    }};
}

/// Our name for [`println!`]: logs only with the `debug-log` feature.
#[macro_export]
macro_rules! debug_log {
    ($($arg:tt)*) => { $crate::println!($($arg)*) };
}

//! `rockshrew`: the daemon and its tools (see the library, `rockshrew`, for what they do).

#![deny(unsafe_code)]

use clap::Parser;
use rockshrew::cli::Tool;

/// jemalloc's settings, read once at its start. jemalloc serves every allocation of the process
/// (the `rocksdb` crate's `jemalloc` feature links it unprefixed, so this is its `malloc_conf`).
/// A background thread hands pages freed for a second back to the kernel (jemalloc's default:
/// ten seconds, purged by whichever thread allocates next), so resident memory follows what
/// the caches hold rather than what was freed in the last seconds. `MALLOC_CONF` in the
/// environment still overrides it. Measured in docs/performance.md ("Speed as the database
/// grows").
#[allow(unsafe_code)]
#[unsafe(export_name = "malloc_conf")]
static MALLOC_CONF: &[u8; 43] = b"background_thread:true,dirty_decay_ms:1000\0";

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let args = rockshrew::cli::Args::parse();
    let outcome = match &args.command {
        Some(Tool::Verify(verify)) => return rockshrew::tools::verify_command(verify),
        Some(Tool::Snapshot(snapshot)) => rockshrew::tools::snapshot(snapshot),
        Some(Tool::Migrate(migrate)) => rockshrew::tools::migrate(migrate),
        Some(Tool::Rollback(rollback)) => rockshrew::tools::rollback(rollback),
        Some(Tool::Upgrade(upgrade)) => rockshrew::tools::upgrade(upgrade),
        Some(Tool::Inspect(inspect)) => rockshrew::inspect::run(inspect),
        None => rockshrew::daemon::run(args),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

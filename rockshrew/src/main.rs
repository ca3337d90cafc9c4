//! `rockshrew`: the daemon and its tools (see the library, `rockshrew`, for what they do).

#![forbid(unsafe_code)]

use clap::Parser;
use rockshrew::cli::Tool;

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let args = rockshrew::cli::Args::parse();
    let outcome = match &args.command {
        Some(Tool::Verify(verify)) => return rockshrew::tools::verify_command(verify),
        Some(Tool::Snapshot(snapshot)) => rockshrew::tools::snapshot(snapshot),
        Some(Tool::Migrate(migrate)) => rockshrew::tools::migrate(migrate),
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

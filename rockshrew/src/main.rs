use clap::Parser;

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let args = rockshrew::cli::Args::parse();
    match rockshrew::daemon::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            log::error!("{err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

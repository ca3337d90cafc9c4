//! Starts the daemon: claims its file handles, loads the module, and runs as an indexer
//! (`primary`) or a read replica (`replica`).

use anyhow::{Context, Result};

use crate::cli::Args;
use crate::setup::load_indexer;

/// Runs the daemon until `--exit-at`, a signal, or a fatal error: an indexer, or with
/// `--replica-of` a read replica.
pub fn run(args: Args) -> Result<()> {
    let db_path = args.db_path.clone().context("--db-path is required")?;
    let fds = crate::fd_budget::claim(u64::from(args.max_connections))?;
    let indexer = load_indexer(&args)?;
    match &args.replica_of {
        Some(primary) => crate::replica::run(&args, primary, &db_path, indexer, fds),
        None => crate::primary::run(&args, &db_path, indexer, fds),
    }
}

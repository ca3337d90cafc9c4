//! Starts the daemon: claims its file handles, loads the modules, and runs as an indexer
//! (`primary`, one or several indexers) or a read replica (`replica`, of one indexer).

use anyhow::{Context, Result};

use crate::cli::Args;
use crate::setup::load_indexers;

/// Runs the daemon until `--exit-at`, a signal, or a fatal error: an indexer, or with
/// `--replica-of` a read replica.
pub fn run(args: Args) -> Result<()> {
    let db_path = args.db_path.clone().context("--db-path is required")?;
    let fds = crate::fd_budget::claim(u64::from(args.max_connections))?;
    let mut indexers = load_indexers(&args)?;
    match &args.replica_of {
        Some(primary) => {
            let (Some(indexer), None) = (indexers.pop(), indexers.pop()) else {
                anyhow::bail!(
                    "a replica serves one indexer of its primary: give one --indexer (with its label)"
                );
            };
            crate::replica::run(&args, primary, &db_path, indexer, fds)
        }
        None => crate::primary::run(&args, &db_path, indexers, fds),
    }
}

//! The process's file descriptors, budgeted at start.
//!
//! The soft `RLIMIT_NOFILE` is raised to the hard limit, then split: `--max-connections` for
//! JSON-RPC clients, [`RESERVED_FDS`] for everything else the daemon opens (RocksDB's WAL,
//! MANIFEST and logs, block files, connections to the node, the admin socket, the runtime's
//! threads and stdio), and the rest for RocksDB's SST files ([`rockshrew_store::Tuning`]'s
//! `max_open_files`), of which at least [`MIN_ROCKSDB_FILES`]. RocksDB opens SST files beyond its
//! share when they are read and closes others, so a database of any size fits; a limit that
//! cannot give each part its share is refused at start, before anything is opened.

use anyhow::{Result, bail};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for what is neither a JSON-RPC connection nor an SST file.
pub const RESERVED_FDS: u64 = 128;

/// The fewest SST files RocksDB is given.
pub const MIN_ROCKSDB_FILES: u64 = 64;

/// The most SST files RocksDB is given, however high the limit: a 1 TB database of 256 MiB
/// files is about 4,000.
pub const MAX_ROCKSDB_FILES: u64 = 16_384;

/// How the descriptor limit was split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft limit after raising it.
    pub limit: u64,
    /// JSON-RPC connections.
    pub connections: u64,
    /// SST files RocksDB keeps open.
    pub rocksdb_files: u64,
}

/// Splits a soft limit of `limit` descriptors; an error says what is missing.
pub fn split(limit: u64, connections: u64) -> Result<FdBudget> {
    let needed = connections + RESERVED_FDS + MIN_ROCKSDB_FILES;
    if limit < needed {
        bail!(
            "the open-file limit is {limit}, and this daemon needs at least {needed}: \
             {connections} for --max-connections, {MIN_ROCKSDB_FILES} for RocksDB's files and \
             {RESERVED_FDS} for the rest. Raise the hard limit (`ulimit -Hn`, systemd's \
             LimitNOFILE=) or lower --max-connections"
        );
    }
    Ok(FdBudget {
        limit,
        connections,
        rocksdb_files: (limit - connections - RESERVED_FDS).min(MAX_ROCKSDB_FILES),
    })
}

/// Raises the soft descriptor limit to the hard one and splits it for `connections`.
pub fn claim(connections: u64) -> Result<FdBudget> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    // Unlimited hard limits are not allowed for descriptors on Linux; treat one as the
    // kernel's usual ceiling.
    let hard = maximum.unwrap_or(1 << 20);
    let mut soft = current.unwrap_or(hard);
    if soft < hard {
        let raised = Rlimit {
            current: Some(hard),
            maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                log::info!("open-file limit raised from {soft} to {hard}");
                soft = hard;
            }
            Err(err) => log::warn!("cannot raise the open-file limit from {soft} to {hard}: {err}"),
        }
    }
    let budget = split(soft, connections)?;
    log::info!(
        "file descriptors: {} in all, {} for JSON-RPC connections, {} for RocksDB's files, {RESERVED_FDS} for the rest",
        budget.limit,
        budget.connections,
        budget.rocksdb_files
    );
    Ok(budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_split_or_refused_with_what_is_missing() {
        let budget = split(1024 + 1024 + RESERVED_FDS, 1024).unwrap();
        assert_eq!(budget.rocksdb_files, 1024);
        assert_eq!(split(1 << 20, 64).unwrap().rocksdb_files, MAX_ROCKSDB_FILES);
        let needed = 64 + RESERVED_FDS + MIN_ROCKSDB_FILES;
        assert_eq!(split(needed, 64).unwrap().rocksdb_files, MIN_ROCKSDB_FILES);
        let refused = split(needed - 1, 64).unwrap_err().to_string();
        assert!(refused.contains(&format!("at least {needed}")), "{refused}");
        assert!(refused.contains("--max-connections"), "{refused}");
    }
}

//! Command-line options (Metashrew's `rockshrew-mono` flags, plus this daemon's own).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use rockshrew_store::verify::Expected;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
/// How blocks are run: an instance per block, or one kept.
pub enum Mode {
    /// A fresh wasm instance per block (default).
    Fresh,
    /// One instance kept across blocks (the guest's cache stays warm).
    Persistent,
}

/// Follows a Bitcoin Core node (or a block file), runs a Metashrew indexer over every block into
/// RocksDB, and serves its views over JSON-RPC; or, with `--replica-of`, serves the views of
/// another daemon's database.
#[derive(Debug, Parser)]
#[command(
    name = "rockshrew",
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// A tool instead of the daemon.
    #[command(subcommand)]
    pub command: Option<Tool>,
    /// The indexer: a wasm32 module exporting `_start` and its views. Repeatable as
    /// `LABEL=PATH` or `LABEL=PATH@HEIGHT` (its first height when its namespace is empty): one
    /// daemon then runs every indexer over the same blocks, each on its own thread, in its own
    /// namespace of the database, served at `POST /LABEL`.
    #[arg(
        long,
        value_name = "[LABEL=]PATH[@HEIGHT]",
        required_unless_present = "indexers"
    )]
    pub indexer: Vec<crate::indexers::IndexerSpec>,
    /// A TOML manifest of the indexers to run (label, path, optional sha256 pin, start height
    /// and memory ceiling each), instead of `--indexer`.
    #[arg(long, value_name = "FILE", conflicts_with = "indexer")]
    pub indexers: Option<PathBuf>,
    /// With several indexers: the one `POST /` answers for (without it, `POST /` is an error
    /// that lists the labels).
    #[arg(long, value_name = "LABEL")]
    pub default_indexer: Option<String>,
    /// With several indexers: blocks kept in memory for the indexers behind the first to need
    /// them, in MiB. An indexer further behind fetches its blocks from the source again.
    #[arg(long, default_value_t = 256)]
    pub shared_blocks_mib: u64,
    /// The RocksDB directory (created if missing). With `--replica-of`: the replica's own
    /// small directory (its logs), not a copy of the database.
    #[arg(long, required = true)]
    pub db_path: Option<PathBuf>,
    /// Serve as a read replica of the daemon whose `--db-path` is PRIMARY_DB_PATH (on this host,
    /// or a filesystem shared with it): no indexing and no node; views, previews, heights,
    /// hashes, roots and metrics of what the primary has committed, never written to.
    #[arg(long, value_name = "PRIMARY_DB_PATH")]
    pub replica_of: Option<PathBuf>,
    /// How often a replica catches up with its primary, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub replica_interval_ms: u64,
    /// Bitcoin Core's JSON-RPC URL. `host:port` (as Metashrew's images pass it) means
    /// `http://host:port`; a malformed URL is refused at start, not retried.
    #[arg(long, default_value = "http://127.0.0.1:8332")]
    pub daemon_rpc_url: String,
    /// `user:pass` for the node's RPC. Without it, the cookie file is used.
    #[arg(long)]
    pub auth: Option<String>,
    /// The node's cookie file (default: ~/.bitcoin/.cookie), re-read when the node restarts. One
    /// that cannot be read, or whose directory does not exist, is refused at start.
    #[arg(long)]
    pub cookie_file: Option<PathBuf>,
    /// Read blocks from files instead of a node: Bitcoin Core's `blocks` directory (`blk*.dat`,
    /// `xor.dat` applied when present, polled for new blocks), one `blk*.dat` file, or a hex file
    /// (one block per line). Heights come from the chain (genesis, else BIP34 heights).
    #[arg(long)]
    pub blocks_file: Option<PathBuf>,
    /// First height to index when the database is empty (later runs resume after the tip). With
    /// block files, also the height of a fragment's first block when it states none (pre-BIP34).
    #[arg(long, default_value_t = 0)]
    pub start_block: u32,
    /// Stop (and exit) once this height is committed.
    #[arg(long)]
    pub exit_at: Option<u32>,
    /// JSON-RPC bind address. Also read from `HOST` (unprefixed, as Metashrew reads it).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// JSON-RPC port. Also read from `PORT` (unprefixed, as Metashrew reads it).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Namespace of this index in the database (several indexers can share one database).
    #[arg(long)]
    pub label: Option<String>,
    /// Deepest chain reorganisation rolled back automatically.
    #[arg(long, default_value_t = 100)]
    pub max_reorg_depth: u32,
    /// CORS: `*` for any origin, or a comma-separated list of origins. Off by default.
    #[arg(long)]
    pub cors: Option<String>,
    /// Largest JSON-RPC request body, in bytes.
    #[arg(long, default_value_t = 32 << 20)]
    pub max_request_bytes: usize,
    /// Time a client has to send a request's headers, and an idle keep-alive connection to
    /// start its next request, in milliseconds; then the connection is closed.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's body, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_ms: u64,
    /// Open JSON-RPC connections at most. At the bound, a new connection closes the oldest one
    /// that has not sent a whole request yet; when every open one has, it waits for a slot.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_connections: u32,
    /// Time limit of one view, or of a whole preview (its block and its view share it), in
    /// milliseconds. A view past it stops within ~10 ms and fails.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub view_timeout_ms: u64,
    /// Most linear memory one view or preview may have, in MiB (at most the guest memory
    /// ceiling). Past it the call fails with JSON-RPC error -32002 and its memory is given
    /// back. Not part of the index's identity.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub view_memory_mib: u64,
    /// New views and previews are refused (JSON-RPC error -32001) while the host's available
    /// memory (`MemAvailable`) is below this many MiB. 0: never.
    #[arg(long, default_value_t = 0)]
    pub view_memory_floor_mib: u64,
    /// Scheduling class of the view threads. `idle` (Linux's SCHED_IDLE): views run only on CPU
    /// time that indexing, RocksDB and the server leave unused, and give way to them at once.
    /// `normal`: views run at `--view-nice`.
    #[arg(long, value_enum, default_value_t = crate::placement::Class::Idle)]
    pub view_class: crate::placement::Class,
    /// Nice value of the view threads (-20 first, 19 last) with `--view-class normal`. At 19,
    /// the 16 view threads together weigh about a quarter of the indexer's one thread.
    #[arg(long, default_value_t = 19, value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub view_nice: i32,
    /// CPUs the view threads may run on, as `0-3,6` (default: any).
    #[arg(long)]
    pub view_cores: Option<crate::placement::CpuList>,
    /// Nice value of the indexing thread and the threads it starts (block fetchers, instance
    /// teardown); a value below 0 needs CAP_SYS_NICE. Above 0, the server's threads (at the
    /// daemon's own priority) answer heights, hashes and roots ahead of indexing.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub indexer_nice: i32,
    /// CPUs the indexing thread and the threads it starts may run on, as `0-3,6` (default: any).
    #[arg(long)]
    pub indexer_cores: Option<crate::placement::CpuList>,
    /// Time slice of the JSON-RPC server's threads in microseconds (Linux 6.12 and later;
    /// earlier kernels ignore it). A short slice lets a request that arrives while indexing
    /// keeps every CPU busy be answered within a fraction of a millisecond, instead of waiting
    /// for the kernel's next tick. 0: the kernel's default slice.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub rpc_slice_us: u32,
    /// Run the JSON-RPC server's threads in the real-time class (Linux's SCHED_FIFO, lowest
    /// priority; needs CAP_SYS_NICE). A request is then answered the moment it arrives, ahead
    /// of indexing, even on a kernel that lets a woken normal thread wait for the next tick.
    /// The kernel's real-time throttling still leaves other threads 5% of each second. Without
    /// the privilege the daemon warns and keeps `--rpc-slice-us`.
    #[arg(long)]
    pub rpc_realtime: bool,
    /// Views and previews run at once; further requests wait their turn (each running view has
    /// a guest memory slot reserved at start).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_concurrent_views: u16,
    /// Most linear memory a guest may use, in MiB (at most 4096); a module that declares a
    /// smaller maximum (AssemblyScript guests: 2048) runs under its own. The effective value is
    /// part of the index's identity: every node of one index must use the same.
    #[arg(long, default_value_t = 4096)]
    pub max_guest_memory_mib: u64,
    /// Host read cache in front of RocksDB, in MiB (0: off). It only ever answers what the
    /// database would, so it never changes results.
    #[arg(long, default_value_t = 256)]
    pub host_cache_mib: u64,
    /// RocksDB's block cache (uncompressed blocks of every column family, and their index and
    /// filter partitions), in MiB, shared by every indexer of the daemon. Memory beyond it
    /// serves as the kernel's page cache of the database files. It never changes results.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(8..=1 << 20))]
    pub block_cache_mib: u64,
    /// Fsync the database's write-ahead log at every block's commit, so that no block the
    /// daemon has served is lost to a power cut, a kernel crash or a VM reset (a killed process
    /// loses none either way). Off: such a loss takes the index back to where RocksDB last
    /// synced (a memtable switch), and those blocks are indexed again.
    #[arg(long)]
    pub sync_every_block: bool,
    /// How blocks get their wasm instance.
    #[arg(long, value_enum, default_value_t = Mode::Fresh)]
    pub instance_mode: Mode,
    /// Continue a database written by a different indexer module or memory setting, recording
    /// the change in its module history. `rockshrew upgrade` does this at a chosen height.
    #[arg(long)]
    pub allow_indexer_change: bool,
    /// Blocks fetched from the node in parallel (1-64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub fetch_workers: u8,
    /// Wait between polls of the node when caught up, in milliseconds (at least 1: a caught-up
    /// daemon must not spin on the node).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_interval_ms: u64,
    /// From this many blocks behind the node, RocksDB is written with its bulk-sync settings
    /// (larger memtables, fewer and larger compactions), and with its tip settings again below
    /// half of it. Crash consistency is the same in both. 0: never.
    #[arg(long, default_value_t = 144)]
    pub bulk_sync_behind: u32,
    /// Read ahead while blocks wait for the disk (from one device read in 50 guest reads until
    /// below one in 200): while a block runs, run the next one (already fetched, at least 64
    /// KiB) speculatively, cut into parts of its transactions run side by side on this many
    /// threads, so that the reads it will make are read from the database this many at a time
    /// and the block finds them in memory. Each running part takes one of the view places.
    /// Results are the same either way. 0: off
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub read_ahead: u16,
    /// Read ahead for every block of at least 64 KiB, even when blocks do not wait for the disk
    /// (for measurements and tests: with the database in memory it only costs CPU time)
    #[arg(long)]
    pub read_ahead_always: bool,
    /// The network whose proof-of-work and difficulty rules every block is checked against
    /// (and whose genesis block 0 must be). Checked at start against the block files' record
    /// magic and the node's `getblockchaininfo` `chain` (a node that does not answer it is logged
    /// and not checked): a mismatch stops the daemon with the flag to pass.
    #[arg(long, value_enum, default_value_t = crate::pow::Chain::Main)]
    pub network: crate::pow::Chain,
    /// Index blocks without checking their proof of work, their difficulty or the network's
    /// genesis. Only for synthetic chains: relinked mainnet blocks, generated test chains.
    #[arg(long)]
    pub no_pow_check: bool,
    /// Timeout of one request to the node, in seconds.
    #[arg(long, default_value_t = 60)]
    pub rpc_timeout_secs: u64,
}

/// The tools `rockshrew` runs instead of the daemon.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Takes a consistent snapshot (a RocksDB checkpoint, at a whole block) of a database, live
    /// or not, into a new directory, with a manifest (`rockshrew-snapshot.json`). A copy of the
    /// directory is a database: `--db-path COPY` resumes from its tip.
    Snapshot(SnapshotArgs),
    /// Recomputes every state root of an index from its stored history and checks the chain of
    /// roots, the tip and the expected roots. Names the first height, key and value found wrong
    /// and exits 1; exits 2 when the database cannot be read.
    Verify(VerifyArgs),
    /// Converts a namespace written by an earlier rockshrew to this one's on-disk layout, in
    /// place (the daemon must be stopped): builds the latest-value column family from history.
    /// Safe to interrupt: the namespace stays refused until a run completes, and a new run
    /// starts over.
    Migrate(MigrateArgs),
    /// Takes an index back to a height exactly, as a reorganisation would: history, latest
    /// values, hashes and roots. Through a running daemon's admin socket, or directly on a
    /// stopped one. The daemon then indexes again from the next height.
    Rollback(RollbackArgs),
    /// Indexes with another module from a height on (a stopped daemon): rolls back to the
    /// height before it when needed, and records the module in the index's module history.
    /// Start the daemon with the new module afterwards.
    Upgrade(UpgradeArgs),
    /// Prints what an index holds, read-only (a running daemon's database too): a key's value
    /// at a height, its history, the keys under a prefix, a block's writes, the module history.
    Inspect(InspectArgs),
}

/// `rockshrew rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The database (a running daemon's `--db-path` is asked through its admin socket).
    #[arg(long)]
    pub db_path: PathBuf,
    /// The index namespace.
    #[arg(long)]
    pub label: Option<String>,
    /// The height the index is to end at.
    #[arg(long)]
    pub height: u32,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

/// `rockshrew upgrade`.
#[derive(Debug, clap::Args)]
pub struct UpgradeArgs {
    /// The database (no daemon may hold it).
    #[arg(long)]
    pub db_path: PathBuf,
    /// The index namespace.
    #[arg(long)]
    pub label: Option<String>,
    /// The new module.
    #[arg(long)]
    pub indexer: PathBuf,
    /// The first height the new module indexes.
    #[arg(long)]
    pub height: u32,
    /// The daemon's `--max-guest-memory-mib`, part of the index's identity.
    #[arg(long, default_value_t = 4096)]
    pub max_guest_memory_mib: u64,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

/// `rockshrew inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The database.
    #[arg(long)]
    pub db_path: PathBuf,
    /// The index namespace.
    #[arg(long)]
    pub label: Option<String>,
    /// Print JSON (one document) instead of text.
    #[arg(long)]
    pub json: bool,
    /// What to print.
    #[command(subcommand)]
    pub what: Inspect,
}

/// What `rockshrew inspect` prints. Keys are hex (`0x..`, or bare hex digits) or, with a
/// leading `=`, text: `=/balances/` is the bytes of `/balances/`.
#[derive(Debug, Subcommand)]
pub enum Inspect {
    /// The value of a key at a height (default: the tip), and the height that wrote it.
    Get {
        /// The key.
        key: crate::inspect::KeyArg,
        /// The height (default: the tip).
        #[arg(long)]
        height: Option<u32>,
    },
    /// The versions of a key, newest first.
    History {
        /// The key.
        key: crate::inspect::KeyArg,
        /// Only versions at or below this height (default: the tip).
        #[arg(long)]
        height: Option<u32>,
        /// At most this many versions.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// The keys under a prefix at the tip, with their values, shortest first then in byte
    /// order.
    Keys {
        /// The prefix (empty: every key).
        #[arg(default_value = "0x")]
        prefix: crate::inspect::KeyArg,
        /// Start after this key (the last one of the previous page).
        #[arg(long)]
        after: Option<crate::inspect::KeyArg>,
        /// At most this many keys.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// What the block at a height wrote.
    Block {
        /// The height.
        height: u32,
        /// At most this many writes.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// The tip, the first height, and which module indexed which heights.
    Status,
}

/// `rockshrew migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The database.
    #[arg(long)]
    pub db_path: PathBuf,
    /// The index namespace.
    #[arg(long)]
    pub label: Option<String>,
}

/// `rockshrew snapshot`.
#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    /// The database (a running daemon's `--db-path` is asked through its admin socket).
    #[arg(long)]
    pub db_path: PathBuf,
    /// The snapshot directory (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// The index namespace the manifest describes.
    #[arg(long)]
    pub label: Option<String>,
}

/// `rockshrew verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The database (or a snapshot).
    #[arg(long)]
    pub db_path: PathBuf,
    /// The index namespace.
    #[arg(long)]
    pub label: Option<String>,
    /// A root the index must have at a height, from a node you trust: `HEIGHT:ROOT` (hex).
    /// Repeatable.
    #[arg(long = "expect-root", value_name = "HEIGHT:ROOT")]
    pub expect_root: Vec<Expected>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Args;

    /// The options table of `docs/operations.md`, as `rockshrew --help` states each option.
    fn options_table() -> String {
        let mut out = String::from("| option | default | meaning |\n| --- | --- | --- |\n");
        for arg in Args::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = match defaults.join(", ") {
                d if d.is_empty() => String::new(),
                d => format!("`{d}`"),
            };
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .replace('|', "\\|");
            out.push_str(&format!("| `--{long}` | {default} | {help} |\n"));
        }
        out
    }

    #[test]
    fn the_operations_guide_lists_every_option_as_help_states_it() {
        let guide = include_str!("../../docs/operations.md");
        let table = options_table();
        let begin = "<!-- options:begin -->\n";
        let inside = guide
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once("<!-- options:end -->"))
            .map(|(table, _)| table);
        assert_eq!(
            inside,
            Some(table.as_str()),
            "docs/operations.md's options table is not `rockshrew --help`'s; between the markers it should read:\n\n{table}"
        );
    }
}

//! [`EngineStats`]: RocksDB's own figures for a namespace (sizes, write amplification, stalls),
//! what an operator watches as the database grows.
//!
//! Why the flush and compaction bytes come from the `rocksdb.cfstats` text rather than from
//! RocksDB's tickers: tickers count for the whole database, and several indexers' namespaces
//! share one database (`RocksStore::open_namespaces`), so only the per-column-family statistics
//! can say what one namespace wrote. RocksDB's C API has no map form of those statistics, and
//! they carry no integer property; the text gives gigabytes with two decimals (10 MB). The
//! database-wide figures (ingest, WAL, stalls) come from the `rocksdb.dbstats` text too: tickers
//! would need statistics collected on every read and write for three figures the text gives.

use crate::{Family, RocksStore};

/// RocksDB's figures, from its properties (byte counts RocksDB reports in GB with two
/// decimals are accurate to 10 MB).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineStats {
    /// Size of the live SST files.
    pub live_sst_bytes: u64,
    /// RocksDB's estimate of the bytes compaction still has to rewrite (compaction debt).
    pub pending_compaction_bytes: u64,
    /// Bytes in the memtables.
    pub memtable_bytes: u64,
    /// Since the database was opened: bytes written by the indexer (keys and values), to the
    /// WAL, by flushes, and by compactions.
    pub ingest_bytes: u64,
    /// Bytes written to the write-ahead log.
    pub wal_bytes: u64,
    /// Bytes written by memtable flushes.
    pub flush_bytes: u64,
    /// Bytes written by compactions.
    pub compaction_write_bytes: u64,
    /// Since the database was opened: time writes were stalled or slowed by RocksDB.
    pub stall_seconds: f64,
}

impl EngineStats {
    /// Bytes written to disk (WAL, flushes, compactions) per byte ingested.
    pub fn write_amplification(&self) -> f64 {
        let written = self.wal_bytes + self.flush_bytes + self.compaction_write_bytes;
        written as f64 / self.ingest_bytes.max(1) as f64
    }
}

/// The first "<number> GB" after `label` in a RocksDB statistics text, in bytes.
fn gigabytes_after(text: &str, label: &str) -> u64 {
    let Some(rest) = text.find(label).map(|i| &text[i + label.len()..]) else {
        return 0;
    };
    let line = rest.lines().next().unwrap_or_default();
    let Some(gb) = line.find(" GB") else { return 0 };
    let number = line[..gb].rsplit([' ', ':']).next().unwrap_or_default();
    number
        .parse::<f64>()
        .map_or(0, |g| (g * 1024.0 * 1024.0 * 1024.0) as u64)
}

/// "Cumulative stall: HH:MM:SS.mmm H:M:S" of RocksDB's database statistics, in seconds.
fn stall_seconds(text: &str) -> f64 {
    let label = "Cumulative stall: ";
    let Some(rest) = text.find(label).map(|i| &text[i + label.len()..]) else {
        return 0.0;
    };
    let clock = rest.split_whitespace().next().unwrap_or_default();
    clock
        .split(':')
        .map(|part| part.trim_end_matches(',').parse::<f64>().unwrap_or(0.0))
        .fold(0.0, |acc, v| acc * 60.0 + v)
}

impl RocksStore {
    /// RocksDB's own figures for this namespace (summed over its column families) and for the
    /// database: what an operator watches as the database grows.
    pub fn engine_stats(&self) -> EngineStats {
        let mut stats = EngineStats::default();
        for family in Family::ALL {
            let Ok(cf) = self.cf(family) else { continue };
            let int = |property: &str| {
                self.db
                    .property_int_value_cf(cf, property)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            };
            stats.live_sst_bytes += int("rocksdb.live-sst-files-size");
            stats.pending_compaction_bytes += int("rocksdb.estimate-pending-compaction-bytes");
            stats.memtable_bytes += int("rocksdb.cur-size-all-mem-tables");
            if let Ok(Some(text)) = self.db.property_value_cf(cf, "rocksdb.cfstats") {
                stats.flush_bytes += gigabytes_after(&text, "Flush(GB): cumulative ");
                stats.compaction_write_bytes += gigabytes_after(&text, "Cumulative compaction: ");
            }
        }
        if let Ok(Some(text)) = self.db.property_value("rocksdb.dbstats") {
            stats.ingest_bytes = gigabytes_after(&text, "Cumulative writes:");
            stats.wal_bytes = gigabytes_after(&text, "Cumulative WAL:");
            stats.stall_seconds = stall_seconds(&text);
        }
        stats
    }
}

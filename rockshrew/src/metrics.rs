//! Prometheus metrics, served at `/metrics`: one set per indexer, labelled `label="LABEL"`
//! when a daemon runs several.

use std::collections::HashMap;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    /// The highest indexed block.
    pub indexed_height: IntGauge,
    /// The source's best height, as last seen.
    pub node_tip: IntGauge,
    /// 1 while the store is written in bulk mode (far behind the node), else 0.
    pub bulk_ingest: IntGauge,
    /// Blocks per second over the last progress interval, times 1000 (a gauge of integers).
    pub blocks_per_second_milli: IntGauge,
    /// Blocks indexed by this process.
    pub blocks_indexed: IntCounter,
    /// Seconds per block, split by phase: `fetch`, `guest` (wasm execution), `host_calls` (the
    /// part of `guest` spent in host functions, reads mostly), `commit`.
    pub block_phase_seconds: HistogramVec,
    /// Reads of the store the guest made while indexing blocks (a block's `__get_len` and its
    /// `__get` count once).
    pub block_reads: IntCounter,
    /// Data blocks RocksDB read from its files (not found in its block cache) while the
    /// indexing thread ran blocks: the reads that waited for the page cache or the disk.
    pub block_file_reads: IntCounter,
    /// Reads the indexing thread made the kernel fetch from the storage device (page-cache
    /// hits excluded) while it ran blocks: the reads that waited for the disk (Linux only).
    pub block_device_reads: IntCounter,
    /// Reorganisations rolled back.
    pub reorgs: IntCounter,
    /// Blocks refused by the proof-of-work checks.
    pub pow_refused: IntCounter,
    /// Blocks rolled back per reorganisation.
    pub reorg_depth: Histogram,
    /// Time of view calls.
    pub view_seconds: Histogram,
    /// JSON-RPC requests by method.
    pub rpc_requests: IntCounterVec,
    /// 1 once the indexer stopped on a block it fails on (the others of a daemon go on).
    pub stopped: IntGauge,
    /// Replicas: seconds from the primary committing a block to this replica serving it
    /// (observed for the newest block of each refresh that brings new blocks).
    pub replica_lag_seconds: Histogram,
    /// Replicas: seconds since the last successful refresh.
    pub replica_refresh_age_seconds: Gauge,
    /// Replicas: fresh instances opened after the primary flushed.
    pub replica_reopens: IntCounter,
    /// Replicas: refreshes that failed (the primary's files unreadable, say).
    pub replica_refresh_failures: IntCounter,
}

/// Creates metrics, each registered in its registry in the same call, with the registry's
/// constant labels (an indexer's `label`, when a daemon runs several).
struct Factory<'a> {
    registry: &'a Registry,
    labels: HashMap<String, String>,
}

impl Factory<'_> {
    fn register<M: prometheus::core::Collector + Clone + 'static>(
        &self,
        metric: M,
    ) -> Result<M, prometheus::Error> {
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn opts(&self, name: &str, help: &str) -> Opts {
        Opts::new(name, help).const_labels(self.labels.clone())
    }

    fn histogram_opts(&self, name: &str, help: &str, buckets: Vec<f64>) -> HistogramOpts {
        HistogramOpts::new(name, help)
            .const_labels(self.labels.clone())
            .buckets(buckets)
    }

    fn int_gauge(&self, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
        self.register(IntGauge::with_opts(self.opts(name, help))?)
    }

    fn gauge(&self, name: &str, help: &str) -> Result<Gauge, prometheus::Error> {
        self.register(Gauge::with_opts(self.opts(name, help))?)
    }

    fn counter(&self, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
        self.register(IntCounter::with_opts(self.opts(name, help))?)
    }

    fn counter_vec(
        &self,
        name: &str,
        help: &str,
        by: &[&str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        self.register(IntCounterVec::new(self.opts(name, help), by)?)
    }

    fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: Vec<f64>,
    ) -> Result<Histogram, prometheus::Error> {
        self.register(Histogram::with_opts(
            self.histogram_opts(name, help, buckets),
        )?)
    }

    fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        by: &[&str],
    ) -> Result<HistogramVec, prometheus::Error> {
        self.register(HistogramVec::new(
            self.histogram_opts(name, help, buckets()),
            by,
        )?)
    }
}

fn buckets() -> Vec<f64> {
    vec![
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

/// The registry every metric of a daemon is registered in (names prefixed `rockshrew_`).
pub fn registry() -> Result<Registry, prometheus::Error> {
    Registry::new_custom(Some("rockshrew".into()), None)
}

impl Metrics {
    /// Registers every metric in a registry of its own.
    pub fn new() -> Result<Self, prometheus::Error> {
        Self::in_registry(registry()?, None)
    }

    /// Registers every metric in `registry`, with the constant label `label="LABEL"` when
    /// `label` is given: the metrics of one indexer among several, which share the registry
    /// and so one `/metrics` page.
    pub fn in_registry(registry: Registry, label: Option<&str>) -> Result<Self, prometheus::Error> {
        let f = Factory {
            registry: &registry,
            labels: label
                .map(|l| HashMap::from([("label".to_string(), l.to_string())]))
                .unwrap_or_default(),
        };
        Ok(Self {
            indexed_height: f.int_gauge("indexed_height", "Highest committed block height")?,
            node_tip: f.int_gauge("node_tip", "Best block height of the block source")?,
            bulk_ingest: f.int_gauge(
                "bulk_ingest",
                "1 while the store uses its bulk-sync settings (far behind the node), else 0",
            )?,
            blocks_per_second_milli: f.int_gauge(
                "blocks_per_second_milli",
                "Indexing speed over the last progress interval, in milli-blocks per second",
            )?,
            blocks_indexed: f.counter("blocks_indexed_total", "Blocks committed")?,
            block_reads: f.counter(
                "block_reads_total",
                "Reads of the store the guest made while indexing blocks",
            )?,
            block_file_reads: f.counter(
                "block_file_reads_total",
                "Data blocks RocksDB read from its files (block cache misses) while running blocks",
            )?,
            block_device_reads: f.counter(
                "block_device_reads_total",
                "Reads of 4 KiB the indexing thread made from the storage device (not the page cache) while running blocks",
            )?,
            block_phase_seconds: f.histogram_vec(
                "block_phase_seconds",
                "Time per block by phase",
                &["phase"],
            )?,
            reorgs: f.counter("reorgs_total", "Chain reorganisations rolled back")?,
            pow_refused: f.counter(
                "pow_refused_total",
                "Blocks refused by the proof-of-work checks",
            )?,
            reorg_depth: f.histogram(
                "reorg_depth_blocks",
                "Blocks rolled back per reorg",
                vec![1.0, 2.0, 3.0, 6.0, 10.0, 20.0, 50.0, 100.0],
            )?,
            view_seconds: f.histogram(
                "view_seconds",
                "Latency of view and preview calls",
                buckets(),
            )?,
            rpc_requests: f.counter_vec(
                "rpc_requests_total",
                "JSON-RPC requests by method",
                &["method"],
            )?,
            stopped: f.int_gauge(
                "indexer_stopped",
                "1 once the indexer has stopped on a block it fails on, else 0",
            )?,
            replica_lag_seconds: f.histogram(
                "replica_lag_seconds",
                "Replica: time from the primary's commit of a block to this replica serving it",
                buckets(),
            )?,
            replica_refresh_age_seconds: f.gauge(
                "replica_refresh_age_seconds",
                "Replica: seconds since the last successful refresh",
            )?,
            replica_reopens: f.counter(
                "replica_reopens_total",
                "Replica: fresh instances opened after the primary flushed",
            )?,
            replica_refresh_failures: f.counter(
                "replica_refresh_failures_total",
                "Replica: refreshes that failed",
            )?,
            registry,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

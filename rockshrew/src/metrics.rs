//! Prometheus metrics, served at `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
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
    /// Seconds per block, split by phase: `fetch`, `guest` (wasm execution), `commit`.
    pub block_phase_seconds: HistogramVec,
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
    /// Replicas: seconds from the primary committing a block to this replica serving it
    /// (observed for the newest block of each refresh that brings new blocks).
    pub replica_lag_seconds: Histogram,
    /// Replicas: seconds since the last successful refresh.
    pub replica_refresh_age_seconds: prometheus::Gauge,
    /// Replicas: fresh instances opened after the primary flushed.
    pub replica_reopens: IntCounter,
    /// Replicas: refreshes that failed (the primary's files unreadable, say).
    pub replica_refresh_failures: IntCounter,
}

fn buckets() -> Vec<f64> {
    vec![
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

impl Metrics {
    /// Registers every metric in a registry of its own.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("rockshrew".into()), None)?;
        let m = Self {
            indexed_height: IntGauge::new("indexed_height", "Highest committed block height")?,
            node_tip: IntGauge::new("node_tip", "Best block height of the block source")?,
            bulk_ingest: IntGauge::new(
                "bulk_ingest",
                "1 while the store uses its bulk-sync settings (far behind the node), else 0",
            )?,
            blocks_per_second_milli: IntGauge::new(
                "blocks_per_second_milli",
                "Indexing speed over the last progress interval, in milli-blocks per second",
            )?,
            blocks_indexed: IntCounter::new("blocks_indexed_total", "Blocks committed")?,
            block_phase_seconds: HistogramVec::new(
                HistogramOpts::new("block_phase_seconds", "Time per block by phase")
                    .buckets(buckets()),
                &["phase"],
            )?,
            reorgs: IntCounter::new("reorgs_total", "Chain reorganisations rolled back")?,
            pow_refused: IntCounter::new(
                "pow_refused_total",
                "Blocks refused by the proof-of-work checks",
            )?,
            reorg_depth: Histogram::with_opts(
                HistogramOpts::new("reorg_depth_blocks", "Blocks rolled back per reorg")
                    .buckets(vec![1.0, 2.0, 3.0, 6.0, 10.0, 20.0, 50.0, 100.0]),
            )?,
            view_seconds: Histogram::with_opts(
                HistogramOpts::new("view_seconds", "Latency of view and preview calls")
                    .buckets(buckets()),
            )?,
            rpc_requests: IntCounterVec::new(
                Opts::new("rpc_requests_total", "JSON-RPC requests by method"),
                &["method"],
            )?,
            replica_lag_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "replica_lag_seconds",
                    "Replica: time from the primary's commit of a block to this replica serving it",
                )
                .buckets(buckets()),
            )?,
            replica_refresh_age_seconds: prometheus::Gauge::new(
                "replica_refresh_age_seconds",
                "Replica: seconds since the last successful refresh",
            )?,
            replica_reopens: IntCounter::new(
                "replica_reopens_total",
                "Replica: fresh instances opened after the primary flushed",
            )?,
            replica_refresh_failures: IntCounter::new(
                "replica_refresh_failures_total",
                "Replica: refreshes that failed",
            )?,
            registry,
        };
        m.registry.register(Box::new(m.indexed_height.clone()))?;
        m.registry.register(Box::new(m.node_tip.clone()))?;
        m.registry.register(Box::new(m.bulk_ingest.clone()))?;
        m.registry
            .register(Box::new(m.blocks_per_second_milli.clone()))?;
        m.registry.register(Box::new(m.blocks_indexed.clone()))?;
        m.registry
            .register(Box::new(m.block_phase_seconds.clone()))?;
        m.registry.register(Box::new(m.reorgs.clone()))?;
        m.registry.register(Box::new(m.pow_refused.clone()))?;
        m.registry.register(Box::new(m.reorg_depth.clone()))?;
        m.registry.register(Box::new(m.view_seconds.clone()))?;
        m.registry.register(Box::new(m.rpc_requests.clone()))?;
        m.registry
            .register(Box::new(m.replica_lag_seconds.clone()))?;
        m.registry
            .register(Box::new(m.replica_refresh_age_seconds.clone()))?;
        m.registry.register(Box::new(m.replica_reopens.clone()))?;
        m.registry
            .register(Box::new(m.replica_refresh_failures.clone()))?;
        Ok(m)
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

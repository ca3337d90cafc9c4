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

/// `metric`, registered in `registry`: each metric is created and registered in one place.
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
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
        Ok(Self {
            indexed_height: registered(&registry, IntGauge::new("indexed_height", "Highest committed block height")?)?,
            node_tip: registered(&registry, IntGauge::new("node_tip", "Best block height of the block source")?)?,
            bulk_ingest: registered(&registry, IntGauge::new(
                "bulk_ingest",
                "1 while the store uses its bulk-sync settings (far behind the node), else 0",
            )?)?,
            blocks_per_second_milli: registered(&registry, IntGauge::new(
                "blocks_per_second_milli",
                "Indexing speed over the last progress interval, in milli-blocks per second",
            )?)?,
            blocks_indexed: registered(&registry, IntCounter::new("blocks_indexed_total", "Blocks committed")?)?,
            block_phase_seconds: registered(&registry, HistogramVec::new(
                HistogramOpts::new("block_phase_seconds", "Time per block by phase")
                    .buckets(buckets()),
                &["phase"],
            )?)?,
            reorgs: registered(&registry, IntCounter::new("reorgs_total", "Chain reorganisations rolled back")?)?,
            pow_refused: registered(&registry, IntCounter::new(
                "pow_refused_total",
                "Blocks refused by the proof-of-work checks",
            )?)?,
            reorg_depth: registered(&registry, Histogram::with_opts(
                HistogramOpts::new("reorg_depth_blocks", "Blocks rolled back per reorg")
                    .buckets(vec![1.0, 2.0, 3.0, 6.0, 10.0, 20.0, 50.0, 100.0]),
            )?)?,
            view_seconds: registered(&registry, Histogram::with_opts(
                HistogramOpts::new("view_seconds", "Latency of view and preview calls")
                    .buckets(buckets()),
            )?)?,
            rpc_requests: registered(&registry, IntCounterVec::new(
                Opts::new("rpc_requests_total", "JSON-RPC requests by method"),
                &["method"],
            )?)?,
            replica_lag_seconds: registered(&registry, Histogram::with_opts(
                HistogramOpts::new(
                    "replica_lag_seconds",
                    "Replica: time from the primary's commit of a block to this replica serving it",
                )
                .buckets(buckets()),
            )?)?,
            replica_refresh_age_seconds: registered(&registry, prometheus::Gauge::new(
                "replica_refresh_age_seconds",
                "Replica: seconds since the last successful refresh",
            )?)?,
            replica_reopens: registered(&registry, IntCounter::new(
                "replica_reopens_total",
                "Replica: fresh instances opened after the primary flushed",
            )?)?,
            replica_refresh_failures: registered(&registry, IntCounter::new(
                "replica_refresh_failures_total",
                "Replica: refreshes that failed",
            )?)?,
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

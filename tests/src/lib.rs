//! Shared helpers of the workspace's integration tests: the bundled block fixtures and the paths
//! of the example guests built to wasm32 (by `build.rs`).

/// Paths of the example guests, built by `build.rs`.
pub mod guests {
    pub const MINIMAL: &str = env!("MINIMAL_WASM");
    pub const SPENDABLES: &str = env!("SPENDABLES_WASM");
    pub const PROBE: &str = env!("PROBE_WASM");
    /// `compat`: written against Metashrew's public API only.
    pub const COMPAT: &str = env!("COMPAT_WASM");
    /// `spendables` built with `METASHREW_REGION_SIZE=0`: no guest cache.
    pub const SPENDABLES_NOCACHE: &str = env!("SPENDABLES_NOCACHE_WASM");
    /// `spendables` built with a 64 KiB region: a cache that evicts on every block.
    pub const SPENDABLES_TINYCACHE: &str = env!("SPENDABLES_TINYCACHE_WASM");
}

/// Real mainnet blocks shipped with the tests.
pub mod fixtures {
    /// Mainnet blocks 0..=255, hex, one per line (line i = height i).
    const MAINNET_0_255: &str = include_str!("../fixtures/blocks-000000-000255.hex");

    /// Mainnet block 840,243 (4,851 transactions, 1.42 MB): a realistic heavy block.
    const MAINNET_840243: &str = include_str!("../fixtures/block-840243.hex");

    /// The height of [`heavy_block`].
    pub const HEAVY_HEIGHT: u32 = 840_243;

    /// Mainnet block 840,243, raw consensus bytes.
    pub fn heavy_block() -> Vec<u8> {
        hex::decode(MAINNET_840243.trim()).unwrap_or_else(|e| panic!("bad fixture hex: {e}"))
    }

    /// The output script of block 9's coinbase: 50 BTC unspent until block 170 spends 10 of it.
    pub fn coinbase9_script() -> Vec<u8> {
        let block9: bitcoin::Block = bitcoin::consensus::deserialize(&mainnet_blocks()[9])
            .unwrap_or_else(|e| panic!("block 9: {e}"));
        block9.txdata[0].output[0].script_pubkey.as_bytes().to_vec()
    }

    /// Mainnet blocks 0..=255, raw consensus bytes, indexed by height.
    pub fn mainnet_blocks() -> Vec<Vec<u8>> {
        MAINNET_0_255
            .lines()
            .map(|line| hex::decode(line.trim()).unwrap_or_else(|e| panic!("bad fixture hex: {e}")))
            .collect()
    }
}

/// Runtimes over an in-memory store, as most tests use them.
pub mod runtimes {
    use std::sync::Arc;

    use metashrew_runtime::{InstanceMode, MemStore, MetashrewRuntime, RuntimeConfig};

    /// The guest at `wasm` over a fresh [`MemStore`], in `mode`, otherwise the defaults.
    pub fn on_memory(wasm: &str, mode: InstanceMode) -> MetashrewRuntime<MemStore> {
        let config = RuntimeConfig {
            instance_mode: mode,
            ..RuntimeConfig::default()
        };
        MetashrewRuntime::load(wasm, Arc::new(MemStore::new()), config)
            .unwrap_or_else(|e| panic!("{wasm} loads: {e}"))
    }

    /// The state roots at `heights`.
    pub fn roots<S: metashrew_runtime::Storage>(
        rt: &MetashrewRuntime<S>,
        heights: impl IntoIterator<Item = u32>,
    ) -> Vec<[u8; 32]> {
        heights
            .into_iter()
            .map(|h| {
                rt.state_root(h)
                    .unwrap_or_else(|e| panic!("root at {h}: {e}"))
                    .unwrap_or_else(|| panic!("no root stored at {h}"))
            })
            .collect()
    }
}

/// A small deterministic generator (xorshift64*), so that every random case of the fuzz and
/// crash tests can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough below `n` (> 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The `env` imports of Metashrew's ABI, for guests written in WAT.
pub const ABI_IMPORTS: &str = r#"
  (import "env" "__host_len" (func $host_len (result i32)))
  (import "env" "__load_input" (func $load_input (param i32)))
  (import "env" "__get_len" (func $get_len (param i32) (result i32)))
  (import "env" "__get" (func $get (param i32 i32)))
  (import "env" "__flush" (func $flush (param i32)))
  (import "env" "__log" (func $log (param i32)))
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
"#;

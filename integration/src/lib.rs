//! Shared helpers of the workspace's integration tests: the bundled block fixtures and the paths
//! of the example guests built to wasm32 (by `build.rs`).

#![deny(missing_docs)]

/// Paths of the example guests, built by `build.rs`.
pub mod guests {
    /// Path of `minimal.wasm`.
    pub const MINIMAL: &str = env!("MINIMAL_WASM");
    /// Path of `spendables.wasm`.
    pub const SPENDABLES: &str = env!("SPENDABLES_WASM");
    /// Path of `probe.wasm`.
    pub const PROBE: &str = env!("PROBE_WASM");
    /// `compat`: written against Metashrew's public API only.
    pub const COMPAT: &str = env!("COMPAT_WASM");
    /// `contracts`: alkanes-shaped, a contract run in wasmi for every transaction.
    pub const CONTRACTS: &str = env!("CONTRACTS_WASM");
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

    /// Regtest blocks 0..=206 (a real regtest chain from its genesis), hex, one per line.
    pub const REGTEST_0_206_PATH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/regtest-blocks-000000-000206.hex"
    );

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

    use metashrew_runtime::{InstanceMode, MetashrewRuntime, RuntimeConfig};
    use metashrew_storage::MemStore;

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
    pub fn roots<S: metashrew_storage::Storage>(
        rt: &MetashrewRuntime<S>,
        heights: impl IntoIterator<Item = u32>,
    ) -> Vec<metashrew_storage::StateRoot> {
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

/// The small deterministic generator (xorshift64*) of `chaingen`, so that every random case
/// of the fuzz and crash tests can be replayed from its seed.
pub use chaingen::Rng;

/// A store with faults injected, for tests.
pub mod hooked {
    use metashrew_storage::{BlockCommit, Storage, StorageError};

    /// Called before each read; an error fails the read.
    pub type ReadHook = Box<dyn Fn() -> Result<(), StorageError> + Send + Sync>;
    /// Commits a block to the inner store, in its own way.
    pub type CommitHook<S> =
        Box<dyn Fn(&S, &BlockCommit) -> Result<(), StorageError> + Send + Sync>;

    /// Passes every call to `inner`, except that reads go through `read` first and commits go
    /// through `commit`.
    pub struct Hooked<S> {
        /// The store that does the work.
        pub inner: S,
        /// Called on every read, before `inner`.
        pub read: ReadHook,
        /// Called on every commit instead of `inner.commit_block`.
        pub commit: CommitHook<S>,
    }

    impl<S: Storage> Hooked<S> {
        /// No hooks yet: reads and commits as `inner`'s.
        pub fn new(inner: S) -> Self {
            Self {
                inner,
                read: Box::new(|| Ok(())),
                commit: Box::new(|store, commit| store.commit_block(commit)),
            }
        }
    }

    impl<S: Storage> Storage for Hooked<S> {
        fn get_at(&self, key: &[u8], height: u32) -> Result<Option<Vec<u8>>, StorageError> {
            (self.read)()?;
            self.inner.get_at(key, height)
        }
        fn commit_block(&self, commit: &BlockCommit) -> Result<(), StorageError> {
            (self.commit)(&self.inner, commit)
        }
        metashrew_storage::forward_block_metadata!(self => self.inner);
        fn rollback_to(&self, height: u32) -> Result<(), StorageError> {
            self.inner.rollback_to(height)
        }
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

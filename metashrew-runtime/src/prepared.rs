//! A module read and checked once, with what an index's identity is made of: its SHA-256 and
//! the configuration it really runs under.

use crate::{RuntimeConfig, RuntimeError};

/// A wasm module with its SHA-256 and its effective [`RuntimeConfig`]: the memory ceiling
/// lowered to the module's declared maximum ([`crate::memory_ceiling`]), and the view memory
/// bound checked against the memory the module starts with. A host computes an index's
/// identity from it, and loads the runtime from it with
/// [`crate::MetashrewRuntime::from_prepared`], so that neither is computed twice.
///
/// ```
/// use metashrew_runtime::{PreparedModule, RuntimeConfig};
///
/// let wasm = wat::parse_str(r#"(module (memory (export "memory") 1 16))"#)?;
/// let module = PreparedModule::new(wasm, RuntimeConfig::default())?;
/// assert_eq!(module.config().max_memory_bytes, 16 * 65_536);
/// assert_eq!(module.hash(), metashrew_storage::hashes::sha256(module.wasm()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PreparedModule {
    wasm: Vec<u8>,
    hash: [u8; 32],
    config: RuntimeConfig,
}

impl PreparedModule {
    /// Checks `wasm` against `config` and computes its hash and effective configuration.
    pub fn new(wasm: Vec<u8>, config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let ceiling = crate::memory_ceiling(&wasm, config.max_memory_bytes)?;
        if ceiling < config.max_memory_bytes {
            log::info!(
                "guest memory ceiling: {} MiB, the module's declared maximum (configured: {} MiB)",
                ceiling >> 20,
                config.max_memory_bytes >> 20
            );
        }
        let config = RuntimeConfig {
            max_memory_bytes: ceiling,
            ..config
        };
        crate::compile::check_view_memory(&wasm, &config)?;
        let hash = metashrew_storage::hashes::sha256(&wasm);
        Ok(Self { wasm, hash, config })
    }

    /// The module's bytes.
    pub fn wasm(&self) -> &[u8] {
        &self.wasm
    }

    /// The SHA-256 of the module's bytes.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The configuration it runs under, its memory ceiling applied.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }
}

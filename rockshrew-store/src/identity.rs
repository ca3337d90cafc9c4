//! [`IndexIdentity`]: what an index is, recorded in its namespace and checked at every open.

/// What an index is: the module and the settings that change its results. Two runs with
/// different identities must not share a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexIdentity {
    /// SHA-256 of the module's bytes.
    pub module_hash: [u8; 32],
    /// The guest's effective memory ceiling, in bytes.
    pub max_memory_bytes: u64,
    /// The guest's wasm stack limit, in bytes.
    pub max_wasm_stack_bytes: u64,
}

const IDENTITY_TAG: &[u8] = b"metashrew-index-v1";

impl IndexIdentity {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = IDENTITY_TAG.to_vec();
        out.extend_from_slice(&self.module_hash);
        out.extend_from_slice(&self.max_memory_bytes.to_be_bytes());
        out.extend_from_slice(&self.max_wasm_stack_bytes.to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(IDENTITY_TAG)?;
        if rest.len() != 48 {
            return None;
        }
        Some(Self {
            module_hash: rest[..32].try_into().ok()?,
            max_memory_bytes: u64::from_be_bytes(rest[32..40].try_into().ok()?),
            max_wasm_stack_bytes: u64::from_be_bytes(rest[40..48].try_into().ok()?),
        })
    }

    /// The identity as an operator reads it (in error messages and manifests).
    pub fn describe(&self) -> String {
        format!(
            "module sha256 {}, max memory {} bytes, max stack {} bytes",
            hex::encode(self.module_hash),
            self.max_memory_bytes,
            self.max_wasm_stack_bytes
        )
    }
}

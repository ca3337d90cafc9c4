//! Where blocks come from: Bitcoin Core's JSON-RPC ([`rpc::RpcSource`]) or a file of blocks
//! ([`files::FileSource`]). Hashes are 32 bytes in internal byte order (as `sha256d(header)`).

pub mod files;
pub mod rpc;

/// Why a block source could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Worth retrying later: the node is down, slow, warming up, or overloaded.
    #[error("node unavailable: {0}")]
    Unavailable(String),
    /// The node answered, but not usefully (an RPC error, bad auth, malformed data).
    #[error("node error: {0}")]
    Node(String),
    /// The height is not (yet) known to the source.
    #[error("no block at height {0}")]
    NoBlock(u32),
    /// Stopping was requested while waiting for the node.
    #[error("interrupted by shutdown")]
    Interrupted,
}

/// A chain of blocks to index.
pub trait BlockSource: Send + Sync {
    /// The height of the source's best block.
    fn tip_height(&self) -> Result<u32, SourceError>;
    /// The hash of the block at `height` on the source's best chain.
    fn block_hash(&self, height: u32) -> Result<[u8; 32], SourceError>;
    /// The consensus-serialised block with hash `hash`.
    fn block(&self, hash: &[u8; 32]) -> Result<Vec<u8>, SourceError>;
}

/// Display (RPC) hex of an internal-order hash.
pub fn display_hex(hash: &[u8; 32]) -> String {
    let mut reversed = *hash;
    reversed.reverse();
    hex::encode(reversed)
}

/// Internal-order hash from display (RPC) hex.
pub fn parse_display_hex(text: &str) -> Option<[u8; 32]> {
    let mut bytes: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
    bytes.reverse();
    Some(bytes)
}

/// A Bitcoin varint at the start of `bytes`: (value, bytes used).
pub fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    bitcoin::consensus::deserialize_partial::<bitcoin::VarInt>(bytes)
        .ok()
        .map(|(n, used)| (n.0, used))
}

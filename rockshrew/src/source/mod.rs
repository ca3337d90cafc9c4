//! Where blocks come from: Bitcoin Core's JSON-RPC ([`rpc::RpcSource`]) or a file of blocks
//! ([`files::FileSource`]).

use std::sync::Arc;

use metashrew_storage::BlockHash;

pub mod files;
pub mod rpc;
pub(crate) mod shared;

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

/// A consensus-serialised block, shared without copying (several indexers may index one).
pub type Block = Arc<Vec<u8>>;

/// A chain of blocks to index.
pub trait BlockSource: Send + Sync {
    /// The height of the source's best block.
    fn tip_height(&self) -> Result<u32, SourceError>;
    /// The hash of the block at `height` on the source's best chain.
    fn block_hash(&self, height: u32) -> Result<BlockHash, SourceError>;
    /// The consensus-serialised block with hash `hash`.
    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError>;
}

/// A Bitcoin varint at the start of `bytes`: (value, bytes used).
pub fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    bitcoin::consensus::deserialize_partial::<bitcoin::VarInt>(bytes)
        .ok()
        .map(|(n, used)| (n.0, used))
}

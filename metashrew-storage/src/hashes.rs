//! The hashes the host computes or reads: SHA-256 (module hashes, value checks), a block's hash
//! and its parent's.

use sha2::{Digest, Sha256};

use crate::BlockHash;

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `sha256d` of the block's 80-byte header, or `None` if the block is shorter than a header.
pub fn block_hash(block: &[u8]) -> Option<BlockHash> {
    let header = block.get(..80)?;
    Some(Sha256::digest(Sha256::digest(header)).into())
}

/// The hash of the block's parent, as its header names it (bytes 4..36), or `None` if the block
/// is shorter than a header.
pub fn parent_hash(block: &[u8]) -> Option<BlockHash> {
    block.get(..80)?.get(4..36)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_block_hash() {
        let genesis = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
        let bytes: Vec<u8> = (0..genesis.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&genesis[i..i + 2], 16).unwrap())
            .collect();
        let mut hash = block_hash(&bytes).unwrap();
        hash.reverse();
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
        assert_eq!(block_hash(&bytes[..79]), None);
        assert_eq!(parent_hash(&bytes), Some([0; 32]), "genesis has no parent");
        let mut child = bytes.clone();
        child[4..36].copy_from_slice(&block_hash(&bytes).unwrap());
        assert_eq!(parent_hash(&child), block_hash(&bytes));
        assert_eq!(parent_hash(&bytes[..79]), None);
    }
}

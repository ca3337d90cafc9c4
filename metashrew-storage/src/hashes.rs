//! The hashes the host computes or reads: the two 32-byte identifiers the host passes around
//! ([`BlockHash`], [`StateRoot`]), distinct types so that one cannot be passed for the other,
//! and SHA-256 (module hashes, value checks), a block's hash and its parent's.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Text that is not a 32-byte hash: 64 hex digits, optionally after `0x`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a 32-byte hash (64 hex digits, optionally after 0x)")]
pub struct ParseHashError {
    /// The text given (at most its first 80 characters).
    pub text: String,
}

/// The 32 bytes that `0x`-prefixed or bare hex `text` spells, in the order written.
fn parse_hex32(text: &str) -> Result<[u8; 32], ParseHashError> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    let mut bytes = [0u8; 32];
    match hex::decode_to_slice(digits, &mut bytes) {
        Ok(()) => Ok(bytes),
        Err(_) => Err(ParseHashError {
            text: text.chars().take(80).collect(),
        }),
    }
}

/// Defines a 32-byte identifier type; `$reversed` says whether its text form is the bytes in
/// reverse (Bitcoin's display order for hashes of block headers).
macro_rules! hash_type {
    ($(#[$doc:meta])* $name:ident, reversed: $reversed:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The all-zero value (the parent named by a genesis block).
            pub const ZERO: Self = Self([0; 32]);

            /// The value of these bytes, in internal order (as stored and hashed).
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The bytes, in internal order (as stored and hashed).
            pub const fn to_bytes(self) -> [u8; 32] {
                self.0
            }

            /// The bytes, in internal order (as stored and hashed).
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The value of 32 stored bytes, or `None` if `bytes` is not 32 bytes long.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map(Self)
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            /// 64 lower-case hex digits, without `0x`.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut text = [0u8; 64];
                let mut bytes = self.0;
                if $reversed {
                    bytes.reverse();
                }
                // 32 bytes always fit 64 digits, and hex digits are ASCII.
                hex::encode_to_slice(bytes, &mut text).map_err(|_| fmt::Error)?;
                f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = ParseHashError;

            /// The text [`Display`](fmt::Display) gives, with or without `0x`.
            fn from_str(text: &str) -> Result<Self, ParseHashError> {
                let mut bytes = parse_hex32(text)?;
                if $reversed {
                    bytes.reverse();
                }
                Ok(Self(bytes))
            }
        }
    };
}

hash_type!(
    /// A block's hash: `sha256d` of its 80-byte header, kept in internal byte order. Its text
    /// form is display order (the bytes reversed), as Bitcoin Core and block explorers print it.
    ///
    /// ```
    /// use metashrew_storage::BlockHash;
    /// let genesis: BlockHash =
    ///     "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f".parse().unwrap();
    /// assert_eq!(genesis.as_bytes()[0], 0x6f, "stored in internal order");
    /// assert_eq!(genesis.to_string().len(), 64);
    /// ```
    BlockHash,
    reversed: true
);

hash_type!(
    /// A state root ([`crate::state_root`]): the chained commitment to everything written up to
    /// a height. Its text form is its bytes in order, as `metashrew_stateroot` answers it (after
    /// `0x`).
    StateRoot,
    reversed: false
);

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `sha256d` of the block's 80-byte header, or `None` if the block is shorter than a header.
pub fn block_hash(block: &[u8]) -> Option<BlockHash> {
    let header = block.get(..80)?;
    Some(BlockHash(Sha256::digest(Sha256::digest(header)).into()))
}

/// The hash of the block's parent, as its header names it (bytes 4..36), or `None` if the block
/// is shorter than a header.
pub fn parent_hash(block: &[u8]) -> Option<BlockHash> {
    BlockHash::from_slice(block.get(..80)?.get(4..36)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
    const GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";

    #[test]
    fn genesis_block_hash() {
        let bytes = hex::decode(GENESIS).unwrap();
        let hash = block_hash(&bytes).unwrap();
        assert_eq!(hash.to_string(), GENESIS_HASH);
        assert_eq!(block_hash(&bytes[..79]), None);
        assert_eq!(
            parent_hash(&bytes),
            Some(BlockHash::ZERO),
            "genesis has no parent"
        );
        let mut child = bytes.clone();
        child[4..36].copy_from_slice(hash.as_bytes());
        assert_eq!(parent_hash(&child), Some(hash));
        assert_eq!(parent_hash(&bytes[..79]), None);
    }

    #[test]
    fn text_forms_round_trip_in_their_own_order() {
        let hash: BlockHash = GENESIS_HASH.parse().unwrap();
        assert_eq!(hash.as_bytes()[31], 0, "display order is reversed");
        assert_eq!(format!("0x{GENESIS_HASH}").parse::<BlockHash>(), Ok(hash));
        assert_eq!(format!("{hash:?}"), format!("BlockHash({GENESIS_HASH})"));
        let root: StateRoot = GENESIS_HASH.parse().unwrap();
        assert_eq!(
            root.as_bytes()[0],
            0,
            "a state root is written in byte order"
        );
        assert_eq!(root.to_string(), GENESIS_HASH);
        let mut reversed = hash.to_bytes();
        reversed.reverse();
        assert_eq!(root.to_bytes(), reversed);
        for bad in [
            "",
            "0x",
            "zz",
            &GENESIS_HASH[1..],
            &format!("{GENESIS_HASH}00"),
            &format!(" {GENESIS_HASH}"),
        ] {
            assert!(bad.parse::<BlockHash>().is_err(), "{bad:?}");
            assert!(bad.parse::<StateRoot>().is_err(), "{bad:?}");
        }
    }
}

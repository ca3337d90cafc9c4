//! Blocks of merged-mined chains (AuxPoW: Namecoin, Dogecoin, Crown, ...), whose header may be
//! followed by a proof that a parent chain's block committed to it.
//!
//! Wire format after the 80-byte header, when the version has [`VERSION_AUXPOW`] set: the
//! parent's coinbase transaction, the parent block hash, the coinbase's merkle branch, the
//! chain merkle branch (each: CompactSize count, 32-byte hashes, u32 LE side mask), then the
//! parent's 80-byte header. Then, as in Bitcoin, the transactions.

use std::io::Cursor;

use anyhow::Result;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::pow::CompactTarget;
use bitcoin::{Block, BlockHash, Transaction, TxMerkleNode};

use crate::utils::{consensus_decode, consume_exact, consume_sized_int, consume_varint};

/// Version bit of a block that carries an AuxPoW.
pub const VERSION_AUXPOW: u32 = 0x100;
/// Version bit of a proof-of-stake block (chains that have them).
pub const VERSION_POS_START: u32 = 0x200;
/// The chain id sits in the version above this multiplier.
pub const VERSION_CHAIN_START: u32 = 0x10000;
/// Crown's chain id.
pub const VERSION_CHAIN_ID: u32 = 20;

/// A merged-mined block's version: base version, flags and chain id in one `u32`.
#[derive(Default, Clone, Debug)]
pub struct AuxpowVersion(u32);

impl AuxpowVersion {
    /// Wraps a raw version.
    pub fn new(v: u32) -> Self {
        Self(v)
    }

    /// The raw version.
    pub fn unwrap(&self) -> u32 {
        self.0
    }

    /// The version without flags and chain id.
    pub fn base_version(&self) -> u32 {
        self.0 % VERSION_AUXPOW
    }

    /// The merged-mining chain id (the bits above [`VERSION_CHAIN_START`]).
    pub fn chain_id(&self) -> u32 {
        self.0 / VERSION_CHAIN_START
    }

    /// Whether the header is followed by an AuxPoW ([`VERSION_AUXPOW`] set).
    pub fn is_auxpow(&self) -> bool {
        self.0 & VERSION_AUXPOW != 0
    }

    /// Whether the proof-of-stake flag ([`VERSION_POS_START`]) is set.
    pub fn is_proof_of_stake(&self) -> bool {
        self.0 & VERSION_POS_START != 0
    }

    /// A version from before merged mining (below [`VERSION_AUXPOW`]).
    pub fn is_legacy(&self) -> bool {
        self.0 < VERSION_AUXPOW
    }
}

impl From<AuxpowVersion> for Version {
    fn from(v: AuxpowVersion) -> Version {
        Version::from_consensus(v.0 as i32)
    }
}

/// A merkle branch of an AuxPoW.
#[derive(Clone, Debug)]
pub struct AuxpowMerkleBranch {
    /// The number of hashes in the branch.
    pub branch_length: u64,
    /// The sibling hashes, leaf to root.
    pub branch_hash: Vec<BlockHash>,
    /// Bit `i` set: the branch's node at level `i` is the right-hand side.
    pub branch_side_mask: i32,
}

fn hash32(cursor: &mut Cursor<Vec<u8>>) -> Result<BlockHash> {
    let bytes: [u8; 32] = consume_exact(cursor, 32)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("a hash is 32 bytes"))?;
    Ok(BlockHash::from_byte_array(bytes))
}

impl AuxpowMerkleBranch {
    /// Reads a branch (count, hashes, side mask) at the cursor.
    pub fn parse(cursor: &mut Cursor<Vec<u8>>) -> Result<AuxpowMerkleBranch> {
        let branch_length = consume_varint(cursor)?;
        let available = crate::utils::remaining_slice(cursor).len() as u64;
        anyhow::ensure!(
            branch_length.saturating_mul(32) <= available,
            "merkle branch of {branch_length} hashes is longer than the {available} bytes left"
        );
        let branch_hash = (0..branch_length)
            .map(|_| hash32(cursor))
            .collect::<Result<Vec<_>>>()?;
        let branch_side_mask = consume_sized_int::<u32>(cursor)? as i32;
        Ok(AuxpowMerkleBranch {
            branch_length,
            branch_hash,
            branch_side_mask,
        })
    }
}

/// The proof that a parent chain's block committed to this block.
#[derive(Clone, Debug)]
pub struct Auxpow {
    /// The parent block's coinbase, whose script holds the commitment.
    pub coinbase_txn: Transaction,
    /// The parent block's hash.
    pub block_hash: BlockHash,
    /// Links the coinbase to the parent's merkle root.
    pub coinbase_branch: AuxpowMerkleBranch,
    /// Links this chain's block to the root committed in the coinbase.
    pub blockchain_branch: AuxpowMerkleBranch,
    /// The parent block's header.
    pub parent_block: AuxpowHeader,
}

impl Auxpow {
    /// Reads an AuxPoW (coinbase, parent hash, both branches, parent header) at the cursor.
    pub fn parse(cursor: &mut Cursor<Vec<u8>>) -> Result<Auxpow> {
        Ok(Auxpow {
            coinbase_txn: consensus_decode::<Transaction>(cursor)?,
            block_hash: hash32(cursor)?,
            coinbase_branch: AuxpowMerkleBranch::parse(cursor)?,
            blockchain_branch: AuxpowMerkleBranch::parse(cursor)?,
            parent_block: AuxpowHeader::parse_without_auxpow(cursor)?,
        })
    }
}

/// A block header with its AuxPoW, when the version says there is one.
#[derive(Clone, Debug)]
pub struct AuxpowHeader {
    /// Version, with the merged-mining flags and chain id.
    pub version: AuxpowVersion,
    /// Hash of the previous block.
    pub prev_blockhash: BlockHash,
    /// Merkle root of the block's transactions.
    pub merkle_root: TxMerkleNode,
    /// Block time (Unix seconds).
    pub time: u32,
    /// Compact target.
    pub bits: CompactTarget,
    /// Nonce.
    pub nonce: u32,
    /// The proof of work done on the parent chain, when [`AuxpowVersion::is_auxpow`].
    pub auxpow: Option<Box<Auxpow>>,
}

impl From<AuxpowHeader> for Header {
    fn from(h: AuxpowHeader) -> Header {
        Header {
            version: h.version.into(),
            prev_blockhash: h.prev_blockhash,
            merkle_root: h.merkle_root,
            time: h.time,
            bits: h.bits,
            nonce: h.nonce,
        }
    }
}

impl AuxpowHeader {
    /// The 80-byte header alone.
    pub fn parse_without_auxpow(cursor: &mut Cursor<Vec<u8>>) -> Result<AuxpowHeader> {
        Ok(AuxpowHeader {
            version: AuxpowVersion(consume_sized_int::<u32>(cursor)?),
            prev_blockhash: hash32(cursor)?,
            merkle_root: consensus_decode::<TxMerkleNode>(cursor)?,
            time: consume_sized_int::<u32>(cursor)?,
            bits: CompactTarget::from_consensus(consume_sized_int::<u32>(cursor)?),
            nonce: consume_sized_int::<u32>(cursor)?,
            auxpow: None,
        })
    }

    /// The header, then its AuxPoW when the version has [`VERSION_AUXPOW`].
    pub fn parse(cursor: &mut Cursor<Vec<u8>>) -> Result<AuxpowHeader> {
        let mut header = Self::parse_without_auxpow(cursor)?;
        if header.version.is_auxpow() {
            header.auxpow = Some(Box::new(Auxpow::parse(cursor)?));
        }
        Ok(header)
    }
}

/// A block of a merged-mined chain.
#[derive(Clone, Debug)]
pub struct AuxpowBlock {
    /// Header, with the AuxPoW when there is one.
    pub header: AuxpowHeader,
    /// The block's transactions.
    pub txdata: Vec<Transaction>,
}

impl AuxpowBlock {
    /// The block as `bitcoin` sees it: the 80-byte header (which is what the block hash covers)
    /// and the transactions; the AuxPoW is dropped.
    pub fn to_consensus(&self) -> Block {
        Block {
            header: self.header.clone().into(),
            txdata: self.txdata.clone(),
        }
    }

    /// Reads a whole block (header, AuxPoW when flagged, transactions) at the cursor.
    pub fn parse(cursor: &mut Cursor<Vec<u8>>) -> Result<AuxpowBlock> {
        let header = AuxpowHeader::parse(cursor)?;
        let count = consume_varint(cursor)?;
        // Each transaction takes at least 10 bytes; a count beyond that is a lie, not an
        // allocation to make.
        let left = crate::utils::remaining_slice(cursor).len() as u64;
        anyhow::ensure!(
            count <= left / 10,
            "{count} transactions cannot fit in the {left} bytes left"
        );
        let txdata = (0..count)
            .map(|_| consensus_decode::<Transaction>(cursor))
            .collect::<Result<Vec<_>>>()?;
        Ok(AuxpowBlock { header, txdata })
    }
}

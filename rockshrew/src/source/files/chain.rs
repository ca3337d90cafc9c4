//! Which of the blocks found in the files form the chain, and at which heights.
//!
//! Heights come from the chain, never from file order. A block whose parent is not in the
//! files is a *root*: the genesis block (previous hash zero) is at height 0; any other root is
//! at the height its coinbase states (BIP34, blocks of version 2 and later), or at
//! `--start-block` when it states none (blocks older than BIP34). The chain grows from one
//! *base* root: the genesis block when the files hold it, else the highest root at or below
//! `--start-block` (a fragment whose lower part is missing), else the lowest root. Among the
//! base's descendants, the tip with the most cumulative work (from `nBits`) wins, the first
//! found on a tie; other branches are stale and ignored. Another root above the base (or one
//! whose height is not stated) is a gap in the chain: an error when the files are first read,
//! and a block waiting for its parent while a node is still writing them.

use std::collections::HashMap;

use bitcoin::pow::{CompactTarget, Target, Work};
use metashrew_storage::BlockHash;
use metashrew_storage::hashes::parent_hash;

use super::FilesError;
use crate::source::varint;

/// Where a block's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// In a `blk*.dat` file: the file's number in the source's list, the block's offset and
    /// length.
    File {
        /// Index of the file in the source's list.
        file: u32,
        /// The block's offset in that file.
        offset: u64,
        /// The block's length in bytes.
        len: u32,
    },
    /// In memory (blocks read from a hex file), by position.
    Memory(u32),
}

struct Node {
    hash: BlockHash,
    prev: BlockHash,
    bits: u32,
    /// The height its coinbase states (BIP34), read when the block was found.
    stated: Option<u32>,
    location: Location,
}

/// Every block found, by hash: a small entry each (never the block's bytes).
#[derive(Default)]
pub struct Index {
    nodes: Vec<Node>,
    by_hash: HashMap<BlockHash, u32>,
}

/// The chain chosen from an [`Index`].
#[derive(Debug, Default, Clone)]
pub struct Chain {
    /// Height of the first block.
    pub base_height: u32,
    /// The blocks from `base_height` to the tip.
    pub hashes: Vec<BlockHash>,
    /// Roots above the base not (yet) connected to it: (hash, height if stated, missing
    /// parent).
    pub waiting: Vec<(BlockHash, Option<u32>, BlockHash)>,
}

impl Chain {
    /// The height of the best tip, if any block is known.
    pub fn tip_height(&self) -> Option<u32> {
        let len = u32::try_from(self.hashes.len()).ok()?;
        (len > 0).then(|| self.base_height + len - 1)
    }

    /// The hash at `height` on the best chain.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        let i = height.checked_sub(self.base_height)?;
        self.hashes.get(i as usize).copied()
    }
}

/// `nBits`' work, capped so that no sum of a chain's worth can overflow.
fn block_work(bits: u32) -> Work {
    let work = Target::from_compact(CompactTarget::from_consensus(bits)).to_work();
    let mut max = [0u8; 32];
    max[16..].fill(0xff);
    let cap = Work::from_be_bytes(max);
    if work > cap { cap } else { work }
}

impl Index {
    /// Adds a block by its 80-byte header and the height its coinbase states
    /// ([`coinbase_height`]); false if it is known already (a duplicate record).
    pub fn add(
        &mut self,
        hash: BlockHash,
        header: &[u8; 80],
        stated: Option<u32>,
        location: Location,
    ) -> bool {
        if self.by_hash.contains_key(&hash) {
            return false;
        }
        // An 80-byte header always names one.
        let prev = parent_hash(header).unwrap_or_default();
        let bits = u32::from_le_bytes([header[72], header[73], header[74], header[75]]);
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            hash,
            prev,
            bits,
            stated,
            location,
        });
        self.by_hash.insert(hash, id);
        true
    }

    /// Blocks found.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no block is known.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Where block `hash` is stored.
    pub fn location(&self, hash: &BlockHash) -> Option<Location> {
        self.by_hash
            .get(hash)
            .map(|&id| self.nodes[id as usize].location)
    }

    /// Chooses the chain (see the module documentation) from what the index holds: no file is
    /// read, so a pruned file cannot stop it. `strict`: a root above the base is an error
    /// instead of a block waiting for its parent.
    pub fn chain(&self, start_block: u32, strict: bool) -> Result<Chain, FilesError> {
        const UNSET: u32 = u32::MAX;
        let n = self.nodes.len();
        let parent: Vec<u32> = self
            .nodes
            .iter()
            .map(|node| self.by_hash.get(&node.prev).copied().unwrap_or(UNSET))
            .collect();
        let mut height = vec![UNSET; n];
        let mut root = vec![UNSET; n];
        let mut work = vec![Work::from_be_bytes([0; 32]); n];
        let mut roots = Vec::new();
        let mut path = Vec::new();
        for i in 0..n {
            // Climb to a resolved ancestor or a root, then resolve back down.
            let mut j = i as u32;
            while j != UNSET && height[j as usize] == UNSET {
                path.push(j);
                j = parent[j as usize];
            }
            let (mut h, mut w, r) = if j != UNSET {
                let j = j as usize;
                (height[j], work[j], root[j])
            } else {
                let Some(&top) = path.last() else { continue };
                let node = &self.nodes[top as usize];
                let stated = if node.prev == BlockHash::ZERO {
                    Some(0)
                } else {
                    node.stated
                };
                let h = stated.unwrap_or(start_block);
                roots.push((top, stated.is_some()));
                path.pop();
                height[top as usize] = h;
                work[top as usize] = block_work(node.bits);
                root[top as usize] = top;
                (h, work[top as usize], top)
            };
            while let Some(k) = path.pop() {
                let k = k as usize;
                h = h.saturating_add(1);
                w = w + block_work(self.nodes[k].bits);
                height[k] = h;
                work[k] = w;
                root[k] = r;
            }
        }
        let root_ids: Vec<u32> = roots.iter().map(|&(r, _)| r).collect();
        let Some(base) = self.base_root(&root_ids, &height, start_block) else {
            return Ok(Chain::default());
        };
        let mut best = base;
        for i in 0..n as u32 {
            if root[i as usize] == base && work[i as usize] > work[best as usize] {
                best = i;
            }
        }
        let mut waiting = Vec::new();
        for &(r, stated) in &roots {
            // Below the base: what is left of pruned files under where indexing begins.
            if r == base || (stated && height[r as usize] <= height[base as usize]) {
                continue;
            }
            let node = &self.nodes[r as usize];
            let at = stated.then_some(height[r as usize]);
            if strict {
                return Err(FilesError::MissingParent {
                    hash: node.hash,
                    height: at,
                    parent: node.prev,
                });
            }
            waiting.push((node.hash, at, node.prev));
        }
        let mut hashes = Vec::with_capacity(height[best as usize] as usize + 1);
        let mut at = best;
        loop {
            hashes.push(self.nodes[at as usize].hash);
            if at == base {
                break;
            }
            at = parent[at as usize];
        }
        hashes.reverse();
        Ok(Chain {
            base_height: height[base as usize],
            hashes,
            waiting,
        })
    }

    fn base_root(&self, roots: &[u32], height: &[u32], start_block: u32) -> Option<u32> {
        if let Some(&genesis) = roots
            .iter()
            .find(|&&r| self.nodes[r as usize].prev == BlockHash::ZERO)
        {
            return Some(genesis);
        }
        let at_or_below = roots
            .iter()
            .filter(|&&r| height[r as usize] <= start_block)
            .max_by_key(|&&r| height[r as usize]);
        at_or_below
            .or_else(|| roots.iter().min_by_key(|&&r| height[r as usize]))
            .copied()
    }
}

/// Bytes from a block's start that always hold what [`coinbase_height`] reads: the header,
/// the transaction count, the coinbase's version, segwit marker, input count, prevout and
/// script length, and the script's first 5 bytes (a push of at most 4).
pub const COINBASE_HEIGHT_BYTES: usize = 80 + 9 + 4 + 2 + 9 + 36 + 9 + 5;

/// The height a block's coinbase states (BIP34): `None` for blocks of version 1, or whose
/// coinbase does not start with a height. `block` may be cut after its first
/// [`COINBASE_HEIGHT_BYTES`] bytes.
pub fn coinbase_height(block: &[u8]) -> Option<u32> {
    let version = i32::from_le_bytes(block.get(..4)?.try_into().ok()?);
    if version < 2 {
        return None;
    }
    let mut at = 80;
    let (_, len) = varint(block.get(at..)?)?;
    at += len;
    at += 4; // transaction version
    if block.get(at..at + 2)? == [0x00, 0x01] {
        at += 2; // segwit marker and flag
    }
    let (inputs, len) = varint(block.get(at..)?)?;
    if inputs == 0 {
        return None;
    }
    at += len;
    let prevout = block.get(at..at + 36)?;
    if prevout[..32] != [0; 32] || prevout[32..] != [0xff; 4] {
        return None;
    }
    at += 36;
    let (script_len, len) = varint(block.get(at..)?)?;
    at += len;
    // Only the push at its start is read: the rest may be cut off.
    let script = block.get(at..at + (script_len as usize).min(5))?;
    match *script.first()? {
        0x00 => Some(0),
        op @ 0x51..=0x60 => Some(u32::from(op - 0x50)),
        n @ 0x01..=0x04 => {
            let bytes = script.get(1..1 + n as usize)?;
            if bytes.last()? & 0x80 != 0 {
                return None;
            }
            Some(
                bytes
                    .iter()
                    .rev()
                    .fold(0u32, |acc, &b| (acc << 8) | u32::from(b)),
            )
        }
        _ => None,
    }
}

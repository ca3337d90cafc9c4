//! Blocks from files, with no node: a hex-per-line file (line i = height `start + i`, the format
//! of this repository's fixtures) or Bitcoin Core's `blk*.dat` files (blocks in any order,
//! chained by their previous-block hashes from the lowest height given).

use std::collections::HashMap;
use std::path::Path;

use metashrew_runtime::state_root::block_hash;

use super::{BlockSource, SourceError};

/// Mainnet, testnet, signet and regtest magic bytes of `blk*.dat` records.
const MAGICS: [[u8; 4]; 4] = [
    [0xf9, 0xbe, 0xb4, 0xd9],
    [0x0b, 0x11, 0x09, 0x07],
    [0x0a, 0x03, 0xcf, 0x40],
    [0xfa, 0xbf, 0xb5, 0xda],
];

/// A fixed chain held in memory.
pub struct FileSource {
    start: u32,
    hashes: Vec<[u8; 32]>,
    blocks: HashMap<[u8; 32], Vec<u8>>,
}

impl FileSource {
    /// Reads `path`: a directory of `blk*.dat` files, a single `blk*.dat` file, or a hex file.
    /// The first block is at height `start`.
    pub fn open(path: &Path, start: u32) -> anyhow::Result<Self> {
        use anyhow::Context;
        let raw = if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .with_context(|| format!("listing {}", path.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("blk") && n.ends_with(".dat"))
                })
                .collect();
            files.sort();
            let mut blocks = Vec::new();
            for file in files {
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                blocks.extend(parse_blk(&bytes).with_context(|| file.display().to_string())?);
            }
            blocks
        } else {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            if bytes.len() >= 4 && MAGICS.iter().any(|m| bytes.starts_with(m)) {
                parse_blk(&bytes).with_context(|| path.display().to_string())?
            } else {
                parse_hex_lines(&bytes).with_context(|| path.display().to_string())?
            }
        };
        Self::from_blocks(raw, start)
    }

    /// Orders `blocks` into a chain: the first block given starts it, each next block is the
    /// one whose previous-block hash is the current tip.
    pub fn from_blocks(blocks: Vec<Vec<u8>>, start: u32) -> anyhow::Result<Self> {
        let mut by_prev: HashMap<[u8; 32], [u8; 32]> = HashMap::new();
        let mut store = HashMap::new();
        let mut first = None;
        for block in blocks {
            let hash = block_hash(&block)
                .ok_or_else(|| anyhow::anyhow!("a block of {} bytes has no header", block.len()))?;
            let prev: [u8; 32] = block[4..36].try_into()?;
            first.get_or_insert(hash);
            by_prev.insert(prev, hash);
            store.insert(hash, block);
        }
        let mut hashes = Vec::new();
        let mut next = first;
        while let Some(hash) = next {
            hashes.push(hash);
            next = by_prev.get(&hash).copied();
        }
        Ok(Self {
            start,
            hashes,
            blocks: store,
        })
    }

    /// Heights covered: `start ..= start + len - 1`.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

fn parse_hex_lines(bytes: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let text = std::str::from_utf8(bytes)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            hex::decode(l.trim()).map_err(|e| anyhow::anyhow!("line {}: invalid hex: {e}", i + 1))
        })
        .collect()
}

/// Splits a `blk*.dat` file into blocks: `magic ++ u32 LE size ++ block` records; zero padding
/// at the end (preallocated files) is skipped.
fn parse_blk(mut bytes: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut blocks = Vec::new();
    while bytes.len() >= 8 {
        if bytes[..4] == [0, 0, 0, 0] {
            break;
        }
        if !MAGICS.iter().any(|m| bytes.starts_with(m)) {
            anyhow::bail!("unknown record magic {}", hex::encode(&bytes[..4]));
        }
        let size = u32::from_le_bytes(bytes[4..8].try_into()?) as usize;
        let block = bytes
            .get(8..8 + size)
            .ok_or_else(|| anyhow::anyhow!("truncated block record of {size} bytes"))?;
        blocks.push(block.to_vec());
        bytes = &bytes[8 + size..];
    }
    Ok(blocks)
}

impl BlockSource for FileSource {
    fn tip_height(&self) -> Result<u32, SourceError> {
        match self.hashes.len() {
            0 => Err(SourceError::Node("the block file holds no blocks".into())),
            n => Ok(self.start + n as u32 - 1),
        }
    }

    fn block_hash(&self, height: u32) -> Result<[u8; 32], SourceError> {
        height
            .checked_sub(self.start)
            .and_then(|i| self.hashes.get(i as usize))
            .copied()
            .ok_or(SourceError::NoBlock(height))
    }

    fn block(&self, hash: &[u8; 32]) -> Result<Vec<u8>, SourceError> {
        self.blocks
            .get(hash)
            .cloned()
            .ok_or_else(|| SourceError::Node(format!("unknown block {}", super::display_hex(hash))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blk_records_are_split_and_padding_ignored() {
        let mut file = Vec::new();
        for block in [vec![1u8; 90], vec![2u8; 100]] {
            file.extend_from_slice(&MAGICS[0]);
            file.extend_from_slice(&(block.len() as u32).to_le_bytes());
            file.extend_from_slice(&block);
        }
        file.extend_from_slice(&[0u8; 64]);
        let blocks = parse_blk(&file).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1], vec![2u8; 100]);
        assert!(parse_blk(&file[..50]).is_err(), "truncated record");
    }
}

//! Blocks from files, with no node: a directory of Bitcoin Core's `blk*.dat` files (as Core
//! writes them: any order, stale branches, obfuscated with `xor.dat` since Core 28, the last
//! file possibly mid-write), a single `blk*.dat` file, or a hex file (one block per line, the
//! format of this repository's fixtures).
//!
//! The files are scanned, not loaded: the source keeps a small entry per block (its hash, its
//! parent's, its `nBits` and where it is) and reads a block's bytes when asked for it. Heights
//! and the chain come from the blocks themselves ([`chain`]). A directory or block file is
//! polled for blocks a running node appends (and for reorganisations): at most once per poll
//! interval, when the sync loop asks for the tip.

pub mod chain;
pub mod records;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use metashrew_storage::BlockHash;
use metashrew_storage::hashes::block_hash;

use self::chain::{Chain, Index, Location};
use self::records::{MAGICS, XorKey};

use super::{Block, BlockSource, SourceError};

/// Why block files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{path}: {source}")]
    /// A file could not be read.
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    #[error("{path} at offset {offset}: {reason}")]
    /// A file is not in Core's format.
    Format {
        /// The file.
        path: String,
        /// Where in it.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    #[error(
        "block {} {} has no parent in the files (missing block {}{}); if a node is still downloading blocks into them, wait until it has the chain",
        .hash,
        .height.map_or("(height not stated: older than BIP34)".to_string(), |h| format!("at height {h}")),
        .parent,
        .height.map_or(String::new(), |h| format!(" at height {}", h.saturating_sub(1)))
    )]
    /// A block whose parent is not in the files.
    MissingParent {
        /// The block's hash.
        hash: BlockHash,
        /// Its height, when known.
        height: Option<u32>,
        /// The parent it names.
        parent: BlockHash,
    },
    #[error(
        "the files begin at height {first} (block {}); --start-block {start} is below it",
        .hash
    )]
    /// `--start-block` is below the first block the files hold.
    StartBelowFiles {
        /// The start asked for.
        start: u32,
        /// The first height the files hold.
        first: u32,
        /// That block's hash.
        hash: BlockHash,
    },
    #[error("{0}")]
    /// A block or header does not decode.
    Malformed(String),
}

/// Where the blocks are.
enum Origin {
    /// `blk*.dat` files: a directory (new files are picked up) or one file.
    Blk { dir: Option<PathBuf>, key: XorKey },
    /// Blocks read from a hex file, by position.
    Memory(Vec<Vec<u8>>),
}

/// One scanned `blk*.dat` file.
struct Scanned {
    path: PathBuf,
    resume_at: u64,
}

struct State {
    files: Vec<Scanned>,
    magic: Option<[u8; 4]>,
    index: Index,
    chain: Chain,
    last_poll: Instant,
    /// The gap last reported, so that it is logged once.
    reported_gap: Option<BlockHash>,
    /// Blocks were found that no chain was chosen from yet.
    unchosen: bool,
}

/// A [`BlockSource`] over block files: Core's `blk*.dat` directory (followed as it grows), one
/// `blk*.dat` file, or a hex file; heights come from the chain the blocks form.
pub struct FileSource {
    origin: Origin,
    start_block: u32,
    poll_interval: Duration,
    state: Mutex<State>,
}

fn list_blk_files(dir: &Path) -> Result<Vec<PathBuf>, FilesError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FilesError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("blk") && n.ends_with(".dat"))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn parse_hex_lines(path: &Path, bytes: &[u8]) -> Result<Vec<Vec<u8>>, FilesError> {
    let malformed = |reason: String| FilesError::Malformed(format!("{}: {reason}", path.display()));
    let text = std::str::from_utf8(bytes).map_err(|e| malformed(e.to_string()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            hex::decode(l.trim())
                .map_err(|e| malformed(format!("line {}: invalid hex: {e}", i + 1)))
        })
        .collect()
}

impl FileSource {
    /// Reads `path` (a directory of `blk*.dat` files, one such file, or a hex file) and
    /// chooses the chain; `start_block` is where indexing begins (and the height of a
    /// fragment's first block when it states none). Fails on unreadable or malformed files, a
    /// gap in the chain, or a `start_block` below the files' first block.
    pub fn open(
        path: &Path,
        start_block: u32,
        poll_interval: Duration,
    ) -> Result<Self, FilesError> {
        let io = |source| FilesError::Io {
            path: path.display().to_string(),
            source,
        };
        let (origin, files) = if path.is_dir() {
            let key = XorKey::of_dir(path)?;
            let files = list_blk_files(path)?;
            let origin = Origin::Blk {
                dir: Some(path.to_path_buf()),
                key,
            };
            (origin, files)
        } else {
            let key = path
                .parent()
                .map_or(Ok(XorKey::default()), XorKey::of_dir)?;
            let mut head = [0u8; 4];
            let read = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
                .map_err(io)?;
            key.apply(&mut head, 0);
            if read == 4 && MAGICS.contains(&head) {
                (Origin::Blk { dir: None, key }, vec![path.to_path_buf()])
            } else {
                let bytes = std::fs::read(path).map_err(io)?;
                (Origin::Memory(parse_hex_lines(path, &bytes)?), Vec::new())
            }
        };
        let source = Self {
            origin,
            start_block,
            poll_interval,
            state: Mutex::new(State {
                files: files
                    .into_iter()
                    .map(|path| Scanned { path, resume_at: 0 })
                    .collect(),
                magic: None,
                index: Index::default(),
                chain: Chain::default(),
                last_poll: Instant::now(),
                reported_gap: None,
                unchosen: false,
            }),
        };
        {
            let mut state = source.lock();
            if let Origin::Memory(blocks) = &source.origin {
                for (i, block) in blocks.iter().enumerate() {
                    let (Some(hash), Some(header)) = (block_hash(block), block.get(..80)) else {
                        return Err(FilesError::Malformed(format!(
                            "{}: block {} has {} bytes, less than a header",
                            path.display(),
                            i + 1,
                            block.len()
                        )));
                    };
                    let header: &[u8; 80] = header
                        .try_into()
                        .map_err(|_| FilesError::Malformed("a header is not 80 bytes".into()))?;
                    let stated = chain::coinbase_height(block);
                    state
                        .index
                        .add(hash, header, stated, Location::Memory(i as u32));
                }
            }
            source.scan_files(&mut state)?;
            state.chain = source.choose(&state, true)?;
            state.unchosen = false;
            if let Some(first) = state.chain.hashes.first()
                && start_block < state.chain.base_height
            {
                return Err(FilesError::StartBelowFiles {
                    start: start_block,
                    first: state.chain.base_height,
                    hash: *first,
                });
            }
        }
        Ok(source)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Scans what was appended to the files (and new files in the directory); new blocks mark
    /// the chain `unchosen`, even when a later file then fails.
    fn scan_files(&self, state: &mut State) -> Result<(), FilesError> {
        let Origin::Blk { dir, key } = &self.origin else {
            return Ok(());
        };
        let known = state.files.len();
        if let Some(dir) = dir {
            // New files by name, not by position: a pruning node deletes its oldest files.
            let seen: std::collections::HashSet<PathBuf> =
                state.files.iter().map(|f| f.path.clone()).collect();
            for path in list_blk_files(dir)? {
                if !seen.contains(&path) {
                    state.files.push(Scanned { path, resume_at: 0 });
                }
            }
        }
        let before = state.index.len();
        // Core appends to its newest file only: the files known before this poll are re-read
        // from the two newest on (to be safe), and every new file whole.
        let from = if before == 0 {
            0
        } else {
            known.saturating_sub(2)
        };
        for file in from..state.files.len() {
            let scanned = &state.files[file];
            let grown = std::fs::metadata(&scanned.path)
                .map(|m| m.len() > scanned.resume_at)
                .unwrap_or(false);
            if !grown {
                continue;
            }
            let scan = records::scan(&scanned.path, scanned.resume_at, *key, state.magic)?;
            state.magic = state.magic.or(scan.magic);
            state.files[file].resume_at = scan.resume_at;
            for record in scan.records {
                let hash = block_hash(&record.header).unwrap_or_default();
                let location = Location::File {
                    file: file as u32,
                    offset: record.offset,
                    len: record.len,
                };
                state.unchosen |=
                    state
                        .index
                        .add(hash, &record.header, record.stated_height, location);
            }
        }
        Ok(())
    }

    fn choose(&self, state: &State, strict: bool) -> Result<Chain, FilesError> {
        state.index.chain(self.start_block, strict)
    }

    fn read(&self, state: &State, location: Location) -> Result<Vec<u8>, FilesError> {
        match (&self.origin, location) {
            (Origin::Memory(blocks), Location::Memory(i)) => blocks
                .get(i as usize)
                .cloned()
                .ok_or_else(|| FilesError::Malformed(format!("no block {i} in memory"))),
            (Origin::Blk { key, .. }, Location::File { file, offset, len }) => {
                let path = &state
                    .files
                    .get(file as usize)
                    .ok_or_else(|| FilesError::Malformed(format!("no block file {file}")))?
                    .path;
                records::read_block(path, offset, len, *key)
            }
            _ => Err(FilesError::Malformed(
                "a block location of another kind".into(),
            )),
        }
    }

    /// Picks up blocks appended since the last poll, at most once per poll interval.
    fn poll(&self, state: &mut State) -> Result<(), FilesError> {
        if state.last_poll.elapsed() < self.poll_interval {
            return Ok(());
        }
        state.last_poll = Instant::now();
        self.scan_files(state)?;
        if !state.unchosen {
            return Ok(());
        }
        let chain = self.choose(state, false)?;
        state.unchosen = false;
        if let Some(&(hash, height, parent)) = chain.waiting.first()
            && state.reported_gap != Some(hash)
        {
            log::warn!(
                "block {} (height {}) waits for its parent {} (not in the files yet)",
                hash,
                height.map_or("not stated".to_string(), |h| h.to_string()),
                parent
            );
            state.reported_gap = Some(hash);
        }
        state.chain = chain;
        Ok(())
    }

    /// Blocks on the chosen chain.
    pub fn len(&self) -> usize {
        self.lock().chain.hashes.len()
    }

    /// Whether no block was found.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Height of the chain's first block in the files.
    pub fn first_height(&self) -> u32 {
        self.lock().chain.base_height
    }

    /// The magic of the records of `blk*.dat` files: their network (`None` for a hex file, or
    /// files that hold no block yet).
    pub fn magic(&self) -> Option<[u8; 4]> {
        self.lock().magic
    }
}

impl BlockSource for FileSource {
    fn tip_height(&self) -> Result<u32, SourceError> {
        let mut state = self.lock();
        if let Err(err) = self.poll(&mut state) {
            log::warn!("re-reading the block files: {err}");
        }
        state
            .chain
            .tip_height()
            .ok_or_else(|| SourceError::Node("the block files hold no blocks".into()))
    }

    fn block_hash(&self, height: u32) -> Result<BlockHash, SourceError> {
        self.lock()
            .chain
            .hash_at(height)
            .ok_or(SourceError::NoBlock(height))
    }

    fn block(&self, hash: &BlockHash) -> Result<Block, SourceError> {
        let state = self.lock();
        let location = state
            .index
            .location(hash)
            .ok_or_else(|| SourceError::Node(format!("unknown block {hash}")))?;
        // Files are read with the lock held only long enough to find the path.
        let (path, key) = match (&self.origin, location) {
            (Origin::Blk { key, .. }, Location::File { file, .. }) => {
                (state.files.get(file as usize).map(|f| f.path.clone()), *key)
            }
            _ => (None, XorKey::default()),
        };
        let read = match (path, location) {
            (Some(path), Location::File { offset, len, .. }) => {
                drop(state);
                records::read_block(&path, offset, len, key)
            }
            _ => self.read(&state, location),
        };
        read.map(Block::new)
            .map_err(|e| SourceError::Node(e.to_string()))
    }
}

#[cfg(test)]
mod tests;

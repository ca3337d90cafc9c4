//! The records of Bitcoin Core's `blk*.dat` files: `magic ++ u32 LE size ++ block`, the whole
//! file XORed with the 8-byte key of `xor.dat` (Core 28 and later; byte at offset `p` with
//! `key[p % 8]`). Scanning reads only each record's 8-byte prefix, its 80-byte header and the
//! start of its coinbase (where BIP34 states the height), and seeks over the rest, so indexing a
//! file costs memory for its headers, never for its blocks.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::FilesError;
use super::chain::{COINBASE_HEIGHT_BYTES, coinbase_height};

/// Record magics: mainnet, testnet3, testnet4, signet, regtest.
pub const MAGICS: [[u8; 4]; 5] = [
    [0xf9, 0xbe, 0xb4, 0xd9],
    [0x0b, 0x11, 0x09, 0x07],
    [0x1c, 0x16, 0x3f, 0x28],
    [0x0a, 0x03, 0xcf, 0x40],
    [0xfa, 0xbf, 0xb5, 0xda],
];

/// The obfuscation key of a block directory (all zero: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XorKey(pub [u8; 8]);

impl XorKey {
    /// Reads `dir/xor.dat` if present (no file: no obfuscation).
    pub fn of_dir(dir: &Path) -> Result<Self, FilesError> {
        let path = dir.join("xor.dat");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key =
                    <[u8; 8]>::try_from(bytes.as_slice()).map_err(|_| FilesError::Format {
                        path: path.display().to_string(),
                        offset: 0,
                        reason: format!("xor.dat holds {} bytes, not 8", bytes.len()),
                    })?;
                Ok(Self(key))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(FilesError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Undoes (or applies) the obfuscation of `bytes` read at file offset `offset`.
    pub fn apply(&self, bytes: &mut [u8], offset: u64) {
        if self.0 == [0; 8] {
            return;
        }
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte ^= self.0[((offset + i as u64) % 8) as usize];
        }
    }
}

/// One complete block record found by [`scan`].
#[derive(Debug, Clone)]
pub struct Record {
    /// Offset of the block's first byte (after the 8-byte prefix).
    pub offset: u64,
    /// The block's length in bytes.
    pub len: u32,
    /// The block's 80-byte header.
    pub header: [u8; 80],
    /// The height its coinbase states (BIP34), read once here: the file may be gone (pruned)
    /// by the time the chain is chosen again.
    pub stated_height: Option<u32>,
}

/// What [`scan`] found from its starting offset.
pub struct Scan {
    /// The records found, in file order.
    pub records: Vec<Record>,
    /// Where the next scan of this file starts: after the last complete record (a partial
    /// record, or zero padding Core preallocated, is read again once the file grows).
    pub resume_at: u64,
    /// The magic of the records (None when there were none).
    pub magic: Option<[u8; 4]>,
}

fn io_error(path: &Path, source: std::io::Error) -> FilesError {
    FilesError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Scans `path` from `from` (a record boundary). Every record must carry `magic` (the first
/// record found sets it when `None`).
pub fn scan(
    path: &Path,
    from: u64,
    key: XorKey,
    mut magic: Option<[u8; 4]>,
) -> Result<Scan, FilesError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut reader = BufReader::with_capacity(256 << 10, file);
    reader
        .seek(std::io::SeekFrom::Start(from))
        .map_err(|e| io_error(path, e))?;
    let mut at = from;
    let mut records = Vec::new();
    let format = |offset: u64, reason: String| FilesError::Format {
        path: path.display().to_string(),
        offset,
        reason,
    };
    loop {
        if len.saturating_sub(at) < 8 + 80 {
            break;
        }
        let mut prefix = [0u8; 8];
        reader
            .read_exact(&mut prefix)
            .map_err(|e| io_error(path, e))?;
        key.apply(&mut prefix, at);
        let this: [u8; 4] = [prefix[0], prefix[1], prefix[2], prefix[3]];
        if this == [0; 4] {
            // Preallocated space Core has not written yet.
            break;
        }
        if !MAGICS.contains(&this) {
            return Err(format(
                at,
                format!(
                    "unknown record magic {}{}",
                    hex::encode(this),
                    if key.0 == [0; 8] {
                        " (an obfuscated directory without its xor.dat?)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        match magic {
            Some(m) if m != this => {
                return Err(format(
                    at,
                    format!(
                        "record magic {} of another network than the first record's {}",
                        hex::encode(this),
                        hex::encode(m)
                    ),
                ));
            }
            _ => magic = Some(this),
        }
        let size = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
        if size < 80 {
            return Err(format(at, format!("a block record of {size} bytes")));
        }
        if at + 8 + u64::from(size) > len {
            // Core is still writing it.
            break;
        }
        let mut head = [0u8; COINBASE_HEIGHT_BYTES];
        let head = &mut head[..COINBASE_HEIGHT_BYTES.min(size as usize)];
        reader.read_exact(head).map_err(|e| io_error(path, e))?;
        key.apply(head, at + 8);
        reader
            .seek_relative(i64::from(size) - head.len() as i64)
            .map_err(|e| io_error(path, e))?;
        let mut header = [0u8; 80];
        header.copy_from_slice(&head[..80]);
        records.push(Record {
            offset: at + 8,
            len: size,
            header,
            stated_height: coinbase_height(head),
        });
        at += 8 + u64::from(size);
    }
    Ok(Scan {
        records,
        resume_at: at,
        magic,
    })
}

/// Reads the block of `len` bytes at `offset` of `path`.
pub fn read_block(path: &Path, offset: u64, len: u32, key: XorKey) -> Result<Vec<u8>, FilesError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut block = vec![0u8; len as usize];
    file.read_exact_at(&mut block, offset)
        .map_err(|e| io_error(path, e))?;
    key.apply(&mut block, offset);
    Ok(block)
}

//! Writes blocks as Bitcoin Core stores them: `blkNNNNN.dat` files of `magic ++ u32 LE size ++
//! block` records, a new file once one reaches its size limit, and (Core 28 and later) every
//! byte at file offset `p` XORed with `key[p % 8]`, the key stored in `xor.dat`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Record magic of mainnet.
pub const MAINNET_MAGIC: [u8; 4] = [0xf9, 0xbe, 0xb4, 0xd9];
/// Record magic of testnet3.
pub const TESTNET_MAGIC: [u8; 4] = [0x0b, 0x11, 0x09, 0x07];
/// Record magic of testnet4.
pub const TESTNET4_MAGIC: [u8; 4] = [0x1c, 0x16, 0x3f, 0x28];
/// Record magic of the default signet.
pub const SIGNET_MAGIC: [u8; 4] = [0x0a, 0x03, 0xcf, 0x40];
/// Record magic of regtest.
pub const REGTEST_MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

/// Core's largest block file.
pub const MAX_FILE_BYTES: u64 = 128 << 20;

/// Writes blocks into `blkNNNNN.dat` files as Core does (optionally XORed with `xor.dat`'s key).
pub struct BlkWriter {
    dir: PathBuf,
    magic: [u8; 4],
    key: [u8; 8],
    max_file_bytes: u64,
    index: u32,
    file: BufWriter<File>,
    written: u64,
}

fn blk_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("blk{index:05}.dat"))
}

impl BlkWriter {
    /// Starts `dir/blk00000.dat`. With a `key`, writes `dir/xor.dat` and obfuscates every file.
    pub fn create(
        dir: &Path,
        magic: [u8; 4],
        key: Option<[u8; 8]>,
        max_file_bytes: u64,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        if let Some(key) = key {
            std::fs::write(dir.join("xor.dat"), key)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            magic,
            key: key.unwrap_or_default(),
            max_file_bytes,
            index: 0,
            file: BufWriter::new(File::create(blk_path(dir, 0))?),
            written: 0,
        })
    }

    /// Appends one record, starting a new file first if this one is full.
    pub fn write(&mut self, block: &[u8]) -> std::io::Result<()> {
        let record = 8 + block.len() as u64;
        if self.written > 0 && self.written + record > self.max_file_bytes {
            self.file.flush()?;
            self.index += 1;
            self.file = BufWriter::new(File::create(blk_path(&self.dir, self.index))?);
            self.written = 0;
        }
        let len =
            u32::try_from(block.len()).map_err(|_| std::io::Error::other("a block above 4 GiB"))?;
        let mut bytes = Vec::with_capacity(record as usize);
        bytes.extend_from_slice(&self.magic);
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(block);
        obfuscate(&mut bytes, self.written, &self.key);
        self.file.write_all(&bytes)?;
        self.written += record;
        Ok(())
    }

    /// Appends raw bytes (for tests: padding, a partial record), obfuscated like records.
    pub fn write_raw(&mut self, raw: &[u8]) -> std::io::Result<()> {
        let mut bytes = raw.to_vec();
        obfuscate(&mut bytes, self.written, &self.key);
        self.file.write_all(&bytes)?;
        self.written += raw.len() as u64;
        Ok(())
    }

    /// Flushes the current file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// XORs `bytes`, which sit at `offset` in their file, with `key` (a no-op for a zero key).
pub fn obfuscate(bytes: &mut [u8], offset: u64, key: &[u8; 8]) {
    if key == &[0; 8] {
        return;
    }
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= key[((offset + i as u64) % 8) as usize];
    }
}

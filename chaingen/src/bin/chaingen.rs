//! `chaingen --blocks N --out DIR`: writes a deterministic mainnet-shaped chain (see the
//! `chaingen` crate) as Bitcoin Core `blk*.dat` files.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use chaingen::blk::{BlkWriter, MAINNET_MAGIC, MAX_FILE_BYTES};
use chaingen::{Generator, Settings};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Writes a deterministic mainnet-shaped Bitcoin chain as blk*.dat files")]
struct Args {
    /// Blocks to write, from genesis.
    #[arg(long)]
    blocks: u32,
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fewest transactions per block.
    #[arg(long, default_value_t = 2_000)]
    min_txs: u32,
    /// Most transactions per block.
    #[arg(long, default_value_t = 4_000)]
    max_txs: u32,
    /// `mainnet`: each block gets the transaction count mainnet had at its height
    /// (`chaingen::MAINNET_ERAS`), instead of --min-txs..--max-txs.
    #[arg(long, value_enum, default_value_t = ProfileArg::Flat)]
    profile: ProfileArg,
    /// Height of the first block (its BIP34 height).
    #[arg(long, default_value_t = 0)]
    first_height: u32,
    /// Obfuscate the files with this 8-byte key (16 hex digits), as Core 28+ does.
    #[arg(long)]
    xor: Option<String>,
}

/// `--profile`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ProfileArg {
    Flat,
    Mainnet,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let key = match &args.xor {
        Some(text) => Some(
            <[u8; 8]>::try_from(hex::decode(text).context("--xor is not hex")?)
                .map_err(|_| anyhow::anyhow!("--xor needs 8 bytes (16 hex digits)"))?,
        ),
        None => None,
    };
    let mut generator = Generator::new(Settings {
        seed: args.seed,
        min_txs: args.min_txs,
        max_txs: args.max_txs.max(args.min_txs),
        first_height: args.first_height,
        profile: match args.profile {
            ProfileArg::Flat => chaingen::Profile::Flat,
            ProfileArg::Mainnet => chaingen::Profile::Mainnet,
        },
        ..Settings::default()
    });
    let mut out = BlkWriter::create(&args.out, MAINNET_MAGIC, key, MAX_FILE_BYTES)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let started = Instant::now();
    let mut bytes = 0u64;
    for height in 0..args.blocks {
        let block = generator.next_block();
        bytes += block.len() as u64;
        out.write(&block).context("writing a block")?;
        if height % 100 == 99 {
            eprintln!(
                "{} blocks, {:.1} MB, {:.1} s",
                height + 1,
                bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
        }
    }
    out.flush()?;
    eprintln!(
        "wrote {} blocks ({:.1} MB) to {} in {:.1} s",
        args.blocks,
        bytes as f64 / 1e6,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

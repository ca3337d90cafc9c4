//! Runs the example guests, built to wasm32, over the bundled mainnet blocks 0..=255 and prints
//! real answers from their views. (Until `rockshrew` exists this is the project's main job.)

use anyhow::{Context, Result};
use bitcoin::Block;
use metashrew_tests::fixtures::mainnet_blocks;
use metashrew_tests::guests;
use metashrew_tests::harness::GuestHost;

fn main() -> Result<()> {
    let blocks = mainnet_blocks();
    let block9: Block = bitcoin::consensus::deserialize(&blocks[9]).context("decoding block 9")?;
    let script = block9.txdata[0].output[0].script_pubkey.as_bytes().to_vec();

    let mut minimal = GuestHost::load(guests::MINIMAL)?;
    let mut spendables = GuestHost::load(guests::SPENDABLES)?;
    let started = std::time::Instant::now();
    for (height, block) in blocks.iter().enumerate() {
        let height = height as u32;
        minimal.run_block(height, block, false)?;
        spendables.run_block(height, block, false)?;
        if height == 169 || height == 170 {
            let balance = spendables.view("balance", height, &script)?;
            let sats = u64::from_le_bytes(balance.as_slice().try_into().context("balance")?);
            println!(
                "height {height}: block 9 coinbase script holds {} BTC",
                sats as f64 / 1e8
            );
        }
    }
    let elapsed = started.elapsed();
    println!(
        "indexed {} mainnet blocks with minimal + spendables in {:.2?} (fresh instance per block)",
        blocks.len(),
        elapsed
    );
    let hash = &minimal.state()[b"/block-hashes/255".as_slice()];
    let mut display = hash.clone();
    display.reverse();
    println!("block 255 hash (from minimal): {}", hex::encode(display));
    let tracker = minimal.view("blocktracker", 255, b"")?;
    println!(
        "blocktracker: {} bytes, starts {}",
        tracker.len(),
        hex::encode(tracker.iter().take(8).copied().collect::<Vec<u8>>())
    );
    Ok(())
}

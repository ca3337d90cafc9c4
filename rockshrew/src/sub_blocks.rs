//! A block cut into smaller blocks of its own transactions, for read-ahead to run side by side.
//!
//! Each part is a consensus-serialised block: the block's header, its coinbase, then a run of
//! its other transactions in their order. A guest given a part does what it does for those
//! transactions on the state before the block, so it reads (nearly) the keys the whole block
//! reads for them; what it misses are keys that depend on an earlier part's writes (an output
//! spent in the block that created it), which the block itself will have written anyway.
//! The parts' bytes are the block's own, copied: no transaction is decoded into a structure.

use bitcoin::consensus::Decodable;
use bitcoin::consensus::encode::{VarInt, serialize};
use bitcoin::io::Cursor;

/// Bytes of a block header.
const HEADER: usize = 80;

/// The byte range of each transaction of `block`, in order; `None` if it does not parse as a
/// block.
fn transaction_spans(block: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let mut cursor = Cursor::new(block.get(HEADER..)?);
    let count = VarInt::consensus_decode(&mut cursor).ok()?.0;
    let mut spans = Vec::with_capacity(usize::try_from(count).ok()?.min(block.len() / 60));
    for _ in 0..count {
        let start = HEADER + cursor.position() as usize;
        bitcoin::Transaction::consensus_decode(&mut cursor).ok()?;
        spans.push(start..HEADER + cursor.position() as usize);
    }
    (HEADER + cursor.position() as usize == block.len()).then_some(spans)
}

/// `block` cut into at most `parts` blocks of about as many transactions each, each starting
/// with the block's coinbase, in the block's order. `None` if it does not parse as a block or
/// has fewer than two transactions (nothing to cut).
pub fn split(block: &[u8], parts: usize) -> Option<Vec<Vec<u8>>> {
    let spans = transaction_spans(block)?;
    let (coinbase, rest) = spans.split_first()?;
    if rest.is_empty() {
        return None;
    }
    let per_part = rest.len().div_ceil(parts.max(1));
    let header = block.get(..HEADER)?;
    let coinbase = block.get(coinbase.clone())?;
    rest.chunks(per_part)
        .map(|run| {
            let first = run.first()?.start;
            let last = run.last()?.end;
            let count = serialize(&VarInt(run.len() as u64 + 1));
            let mut part =
                Vec::with_capacity(HEADER + count.len() + coinbase.len() + (last - first));
            part.extend_from_slice(header);
            part.extend_from_slice(&count);
            part.extend_from_slice(coinbase);
            part.extend_from_slice(block.get(first..last)?);
            Some(part)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bitcoin::Block;
    use bitcoin::consensus::deserialize;

    use super::*;

    /// Every part is a block with the original header and coinbase, and the parts' other
    /// transactions are the block's, each once, in order.
    #[test]
    fn parts_hold_the_blocks_transactions_once_in_order() {
        // Mainnet 840,243: 4,851 transactions, segwit and legacy.
        let block = metashrew_tests::fixtures::heavy_block();
        let whole: Block = deserialize(&block).expect("a block");
        assert_eq!(whole.txdata.len(), 4_851);
        for parts in [1, 2, 7, 64, 100_000] {
            let cut = split(&block, parts).expect("splits");
            assert!(cut.len() <= parts, "{} parts for {parts}", cut.len());
            let mut seen = Vec::new();
            for part in &cut {
                let part: Block = deserialize(part).expect("each part is a block");
                assert_eq!(part.header, whole.header);
                assert_eq!(part.txdata[0], whole.txdata[0]);
                assert!(part.txdata.len() >= 2);
                seen.extend(part.txdata.into_iter().skip(1));
            }
            assert_eq!(seen, whole.txdata[1..], "{parts} parts");
        }
    }

    #[test]
    fn what_cannot_be_cut_is_refused() {
        let blocks = metashrew_tests::fixtures::mainnet_blocks();
        // The genesis block holds only its coinbase.
        assert_eq!(split(&blocks[0], 4), None);
        let big = metashrew_tests::fixtures::heavy_block();
        assert_eq!(split(&big[..big.len() - 1], 4), None, "truncated");
        let mut longer = big.clone();
        longer.push(0);
        assert_eq!(split(&longer, 4), None, "trailing bytes");
        assert_eq!(split(&big[..50], 4), None, "shorter than a header");
    }
}

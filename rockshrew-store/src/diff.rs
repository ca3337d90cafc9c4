//! Finds where two databases of the same indexer diverge: the first height whose state roots
//! differ, and the first key (in byte order) whose value differs at that height.

use metashrew_storage::Storage;
use metashrew_storage::StorageError;

use metashrew_storage::BlockHash;

/// A key whose value differs, with both values (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDiff {
    /// The key.
    pub key: Vec<u8>,
    /// Its value in database A as of the height (`None`: absent).
    pub a: Option<Vec<u8>>,
    /// Its value in database B.
    pub b: Option<Vec<u8>>,
}

/// Where two stores first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Divergence {
    /// Same roots at every common height, and the same tip.
    Identical {
        /// The common tip (`None`: both empty).
        tip: Option<u32>,
    },
    /// Same roots at every common height, but one store is ahead.
    TipsDiffer {
        /// A's tip.
        a: Option<u32>,
        /// B's tip.
        b: Option<u32>,
    },
    /// Indexing started at different heights.
    FirstHeightsDiffer {
        /// A's first indexed height.
        a: Option<u32>,
        /// B's first indexed height.
        b: Option<u32>,
    },
    /// The roots first differ at `height`.
    Roots {
        /// The first height whose roots differ.
        height: u32,
        /// A's block hash there.
        block_hash_a: Option<BlockHash>,
        /// B's block hash there.
        block_hash_b: Option<BlockHash>,
        /// The first key whose value at `height` differs.
        key: Option<KeyDiff>,
    },
}

impl Divergence {
    /// Whether the databases differ at all.
    pub fn differs(&self) -> bool {
        !matches!(self, Divergence::Identical { .. })
    }

    /// A report for people.
    pub fn describe(&self) -> String {
        let show = |v: &Option<Vec<u8>>| {
            v.as_ref()
                .map_or("(absent)".into(), |v| format!("0x{}", hex::encode(v)))
        };
        match self {
            Divergence::Identical { tip } => format!("identical (tip {tip:?})"),
            Divergence::TipsDiffer { a, b } => {
                format!("identical up to the lower tip, but the tips differ: {a:?} vs {b:?}")
            }
            Divergence::FirstHeightsDiffer { a, b } => {
                format!("indexing started at different heights: {a:?} vs {b:?}")
            }
            Divergence::Roots {
                height,
                block_hash_a,
                block_hash_b,
                key,
            } => {
                let mut out = format!("state roots first differ at height {height}");
                if block_hash_a != block_hash_b {
                    out.push_str(&format!(
                        "; the blocks differ: {} vs {}",
                        block_hash_a.map_or("?".into(), |h| h.to_string()),
                        block_hash_b.map_or("?".into(), |h| h.to_string())
                    ));
                }
                match key {
                    Some(KeyDiff { key: k, a, b }) => out.push_str(&format!(
                        "\nfirst differing key: 0x{} ({})\n  a: {}\n  b: {}",
                        hex::encode(k),
                        String::from_utf8_lossy(k),
                        show(a),
                        show(b)
                    )),
                    None => out.push_str(
                        "\nno key differs at that height (same writes, different blocks)",
                    ),
                }
                out
            }
        }
    }
}

/// Compares `a` and `b` (see the module documentation). Roots are chained (each commits to the
/// one before), so once they differ they differ at every later height: the first differing
/// height is found by bisection, with ~log2(common heights) root reads, then the touched keys
/// of that height are compared.
pub fn diff(a: &impl Storage, b: &impl Storage) -> Result<Divergence, StorageError> {
    let (first_a, first_b) = (a.first_height()?, b.first_height()?);
    let (tip_a, tip_b) = (a.tip()?, b.tip()?);
    if first_a != first_b {
        return Ok(Divergence::FirstHeightsDiffer {
            a: first_a,
            b: first_b,
        });
    }
    let (Some(first), Some(common)) = (first_a, tip_a.min(tip_b)) else {
        return Ok(if tip_a == tip_b {
            Divergence::Identical { tip: tip_a }
        } else {
            Divergence::TipsDiffer { a: tip_a, b: tip_b }
        });
    };
    let same_at =
        |h: u32| -> Result<bool, StorageError> { Ok(a.state_root(h)? == b.state_root(h)?) };
    if let Some(height) = first_difference(first, common, same_at)? {
        let mut keys = a.touched_keys(height)?;
        keys.extend(b.touched_keys(height)?);
        keys.sort();
        keys.dedup();
        let mut key = None;
        for k in keys {
            let (va, vb) = (a.get_at(&k, height)?, b.get_at(&k, height)?);
            if va != vb {
                key = Some(KeyDiff {
                    key: k,
                    a: va,
                    b: vb,
                });
                break;
            }
        }
        return Ok(Divergence::Roots {
            height,
            block_hash_a: a.block_hash(height)?,
            block_hash_b: b.block_hash(height)?,
            key,
        });
    }
    Ok(if tip_a == tip_b {
        Divergence::Identical { tip: tip_a }
    } else {
        Divergence::TipsDiffer { a: tip_a, b: tip_b }
    })
}

/// The lowest height in `first..=last` where `same` is false, given that once false it stays
/// false (chained roots); `None` when it holds at `last`.
fn first_difference(
    first: u32,
    last: u32,
    same: impl Fn(u32) -> Result<bool, StorageError>,
) -> Result<Option<u32>, StorageError> {
    if same(last)? {
        return Ok(None);
    }
    // Invariant: the first difference is in lo..=hi, and `same(hi)` is false.
    let (mut lo, mut hi) = (first, last);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if same(mid)? {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(Some(lo))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn bisection_finds_the_first_differing_height_in_few_reads() {
        for (first, last) in [(0u32, 0u32), (0, 1), (5, 5), (3, 1_000), (0, 70_000)] {
            let mut cases: Vec<Option<u32>> = vec![None, Some(first), Some(last)];
            cases.push(Some(first + (last - first) / 3));
            for expected in cases {
                let reads = Cell::new(0u32);
                let same = |h: u32| {
                    reads.set(reads.get() + 1);
                    Ok(expected.is_none_or(|d| h < d))
                };
                assert_eq!(first_difference(first, last, same).unwrap(), expected);
                let bound = 2 + (u32::BITS - (last - first).leading_zeros());
                assert!(
                    reads.get() <= bound,
                    "{} reads for {first}..={last}",
                    reads.get()
                );
            }
        }
    }
}

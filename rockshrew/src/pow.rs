//! Proof of work: every block from the source is checked before it is indexed.
//!
//! * Its header hashes at or under the target of its `nBits`, and that target is within the
//!   network's proof-of-work limit.
//! * Its `nBits` is what the network's difficulty rules give at its height: the previous
//!   block's between retargets; at every 2,016th block, the previous target scaled by the
//!   period's timespan, clamped to 4x either way (Bitcoin Core's `GetNextWorkRequired`);
//!   testnet's 20-minute minimum-difficulty rule; testnet4's retarget from the period's first
//!   block (BIP94); regtest's fixed target.
//! * At height 0 it is the network's genesis block.
//!
//! The difficulty rule needs earlier headers: the previous one, the first of the period at a
//! retarget, and on testnets the last block not mined at minimum difficulty. They are kept in
//! the database ([`HeaderStore`]). When indexing starts above 0 (`--start-block`), the headers
//! before the start are not known: until the database has them, the rule is not checked where it
//! would need them (the first block, the first retarget), and the check says so
//! ([`Checked::Partial`]); the hash-under-target and limit checks always run.
//!
//! Not checked: signet's block signature, testnet4's timewarp rule, the median-time-past and
//! future-time rules, and whether a competing branch has more work than ours (a reorganisation
//! is followed when the node prefers it and its blocks pass these checks).

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoin::params::Params;
use bitcoin::{BlockHash, CompactTarget, Network, Target};
use metashrew_storage::StorageError;

/// Blocks per difficulty period.
const PERIOD: u32 = 2016;

/// The network whose rules blocks are checked against (`--network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Chain {
    /// Bitcoin's mainnet (the default).
    Main,
    /// Testnet3.
    Test,
    /// Testnet4 (BIP94).
    Testnet4,
    /// Signet (the default signet's genesis; block signatures are not checked).
    Signet,
    /// Regtest.
    Regtest,
}

impl Chain {
    /// Every network, in the order `--network` lists them.
    pub const ALL: [Chain; 5] = [
        Chain::Main,
        Chain::Test,
        Chain::Testnet4,
        Chain::Signet,
        Chain::Regtest,
    ];

    fn network(self) -> Network {
        match self {
            Chain::Main => Network::Bitcoin,
            Chain::Test => Network::Testnet,
            Chain::Testnet4 => Network::Testnet4,
            Chain::Signet => Network::Signet,
            Chain::Regtest => Network::Regtest,
        }
    }

    /// Its name: the value of `--network`, and what Bitcoin Core's `getblockchaininfo` calls it
    /// (`chain`).
    pub fn name(self) -> &'static str {
        match self {
            Chain::Main => "main",
            Chain::Test => "test",
            Chain::Testnet4 => "testnet4",
            Chain::Signet => "signet",
            Chain::Regtest => "regtest",
        }
    }

    /// The network Bitcoin Core names `name` (`getblockchaininfo`'s `chain`).
    pub fn of_name(name: &str) -> Option<Chain> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The network whose `blk*.dat` records begin with `magic`.
    pub fn of_magic(magic: [u8; 4]) -> Option<Chain> {
        Self::ALL
            .into_iter()
            .find(|c| c.network().magic().to_bytes() == magic)
    }

    /// The network whose genesis block hashes to `hash`.
    fn of_genesis(hash: BlockHash) -> Option<Chain> {
        Self::ALL
            .into_iter()
            .find(|c| bitcoin::constants::genesis_block(c.network()).block_hash() == hash)
    }

    /// The networks whose proof-of-work limit admits `bits`.
    fn admitting(bits: u32) -> Vec<Chain> {
        let target = Target::from_compact(CompactTarget::from_consensus(bits));
        Self::ALL
            .into_iter()
            .filter(|c| target <= Params::new(c.network()).max_attainable_target)
            .collect()
    }
}

/// Why blocks are not of the network `--network` names: what was found, and the flag to pass.
pub fn mismatch(flag: Chain, found: &str, should_be: &[Chain]) -> String {
    let pass = match should_be {
        [] => "check --network".to_string(),
        [one] => format!("pass --network {}", one.name()),
        many => format!(
            "pass --network with one of {}",
            many.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
        ),
    };
    format!(
        "{found}, not of {} (--network {}): {pass}",
        flag.name(),
        flag.name()
    )
}

/// A rule a block broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// The block is not 80 bytes of header at least.
    #[error("its header cannot be read")]
    Unreadable,
    /// Its `nBits` gives a target easier than the network allows.
    #[error("its nBits {bits:#010x} is above the network's proof-of-work limit")]
    AboveLimit {
        /// The block's `nBits`.
        bits: u32,
    },
    /// Its hash is above its own target: no work was done for it.
    #[error("its hash is above the target of its nBits {bits:#010x} (no proof of work)")]
    NoWork {
        /// The block's `nBits`.
        bits: u32,
    },
    /// Its `nBits` is not what the difficulty rules give.
    #[error("its nBits {found:#010x} is not the {expected:#010x} the difficulty rules give")]
    WrongBits {
        /// What the block says.
        found: u32,
        /// What the rules give.
        expected: u32,
    },
    /// Block 0 is not the network's genesis.
    #[error("it is not the genesis block of {network} ({expected})")]
    NotGenesis {
        /// The network.
        network: Network,
        /// Its genesis hash.
        expected: String,
    },
}

/// A block refused, with its height, hash and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {height} ({hash}) is refused: {broken}")]
pub struct Refused {
    /// The block's height.
    pub height: u32,
    /// The block's hash (display order).
    pub hash: String,
    /// The rule it broke.
    pub broken: Broken,
}

impl Refused {
    /// When the refusal says the blocks are of another network than `flag` (no other block
    /// from the source can cure it): why, and the flag to pass.
    pub fn of_another_network(&self, flag: Chain) -> Option<String> {
        match &self.broken {
            Broken::AboveLimit { bits } => {
                let admitting = Chain::admitting(*bits);
                let found = format!(
                    "block {} has nBits {bits:#010x}: it is of {}",
                    self.height,
                    admitting
                        .iter()
                        .map(|c| c.name())
                        .collect::<Vec<_>>()
                        .join(" or ")
                );
                Some(mismatch(flag, &found, &admitting))
            }
            Broken::NotGenesis { .. } => {
                let hash: BlockHash = self.hash.parse().ok()?;
                let of = Chain::of_genesis(hash)?;
                let found = format!("block 0 is the genesis block of {}", of.name());
                Some(mismatch(flag, &found, &[of]))
            }
            _ => None,
        }
    }
}

/// How much of the rules a block that passed was checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Every rule.
    Full,
    /// Its work and limit, but not its `nBits`: the earlier headers it needs are not known.
    Partial,
}

/// Where earlier headers come from: the database's kept headers, or a branch being checked.
pub trait HeaderStore {
    /// The header of the block at `height` on the chain being checked, if known.
    fn header(&self, height: u32) -> Result<Option<Header>, StorageError>;
}

/// The 80-byte header at the start of `block`.
pub fn header_of(block: &[u8]) -> Option<Header> {
    deserialize(block.get(..80)?).ok()
}

/// The rules of one network.
pub struct Rules {
    chain: Chain,
    params: Params,
    genesis: BlockHash,
    /// The `nBits` of the proof-of-work limit (testnets' minimum difficulty).
    limit_bits: CompactTarget,
}

impl Rules {
    /// The rules of `chain`.
    pub fn new(chain: Chain) -> Self {
        let network = chain.network();
        let params = Params::new(network);
        Self {
            chain,
            genesis: bitcoin::constants::genesis_block(&params).block_hash(),
            limit_bits: params.max_attainable_target.to_compact_lossy(),
            params,
        }
    }

    /// The network whose rules these are.
    pub fn chain(&self) -> Chain {
        self.chain
    }

    /// Checks `block` as the block at `height`, after the headers `earlier` knows.
    pub fn check(
        &self,
        height: u32,
        block: &[u8],
        earlier: &dyn HeaderStore,
    ) -> Result<Checked, CheckError> {
        let refuse = |hash: String, broken| {
            CheckError::Refused(Refused {
                height,
                hash,
                broken,
            })
        };
        let Some(header) = header_of(block) else {
            return Err(refuse(String::new(), Broken::Unreadable));
        };
        let hash = header.block_hash();
        let shown = hash.to_string();
        let bits = header.bits.to_consensus();
        let target = Target::from_compact(header.bits);
        if target > self.params.max_attainable_target {
            return Err(refuse(shown, Broken::AboveLimit { bits }));
        }
        if !target.is_met_by(hash) {
            return Err(refuse(shown, Broken::NoWork { bits }));
        }
        if height == 0 {
            if hash != self.genesis {
                return Err(refuse(
                    shown,
                    Broken::NotGenesis {
                        network: self.params.network,
                        expected: self.genesis.to_string(),
                    },
                ));
            }
            return Ok(Checked::Full);
        }
        match self.expected_bits(height, &header, earlier)? {
            None => Ok(Checked::Partial),
            Some(expected) if expected == header.bits => Ok(Checked::Full),
            Some(expected) => Err(refuse(
                shown,
                Broken::WrongBits {
                    found: bits,
                    expected: expected.to_consensus(),
                },
            )),
        }
    }

    /// The `nBits` the rules give the block `header` at `height`; `None` when a header they
    /// need is not known.
    fn expected_bits(
        &self,
        height: u32,
        header: &Header,
        earlier: &dyn HeaderStore,
    ) -> Result<Option<CompactTarget>, StorageError> {
        let Some(previous) = earlier.header(height - 1)? else {
            return Ok(None);
        };
        if !height.is_multiple_of(PERIOD) {
            if !self.params.allow_min_difficulty_blocks {
                return Ok(Some(previous.bits));
            }
            // Testnets: a block more than twice the spacing after its parent may be mined at
            // minimum difficulty; otherwise it has the last difficulty not set by that rule.
            let spacing = self.params.pow_target_spacing * 2;
            if u64::from(header.time) > u64::from(previous.time) + spacing {
                return Ok(Some(self.limit_bits));
            }
            let (mut at, mut last) = (height - 1, previous);
            while !at.is_multiple_of(PERIOD) && last.bits == self.limit_bits {
                at -= 1;
                match earlier.header(at)? {
                    Some(h) => last = h,
                    None => return Ok(None),
                }
            }
            return Ok(Some(last.bits));
        }
        if self.params.no_pow_retargeting {
            return Ok(Some(previous.bits));
        }
        let Some(first) = earlier.header(height - PERIOD)? else {
            return Ok(None);
        };
        let timespan = u64::from(previous.time.saturating_sub(first.time));
        // BIP94: testnet4 retargets from the period's first block, so that a run of
        // minimum-difficulty blocks at its end cannot reset the difficulty.
        let base = if self.params.network == Network::Testnet4 {
            first.bits
        } else {
            previous.bits
        };
        Ok(Some(CompactTarget::from_next_work_required(
            base,
            timespan,
            &self.params,
        )))
    }
}

/// Why a block could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// It broke a rule.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The kept headers could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The headers kept in the database, each trusted only when its hash is the stored block hash
/// of its height (see [`crate::store::RocksStore::put_header`]).
pub struct KeptHeaders<'a> {
    /// The database.
    pub store: &'a crate::store::RocksStore,
    /// The stored block hash of a height (the runtime's, which sees blocks still being
    /// written).
    pub hash_at: &'a dyn Fn(u32) -> Result<Option<metashrew_storage::BlockHash>, StorageError>,
}

impl HeaderStore for KeptHeaders<'_> {
    fn header(&self, height: u32) -> Result<Option<Header>, StorageError> {
        let (Some(bytes), Some(hash)) = (self.store.header(height)?, (self.hash_at)(height)?)
        else {
            return Ok(None);
        };
        let header = header_of(&bytes);
        Ok(header.filter(|h| {
            use bitcoin::hashes::Hash;
            h.block_hash().to_byte_array() == hash.to_bytes()
        }))
    }
}

/// A branch of headers above `fork` over the headers known at and below it: what a
/// reorganisation's blocks are checked against before anything is rolled back.
pub struct Branch<'a> {
    /// The height of the last block both chains share.
    pub fork: u32,
    /// The branch's headers, from `fork + 1` on.
    pub headers: Vec<Header>,
    /// The headers at and below `fork`.
    pub below: &'a dyn HeaderStore,
}

impl HeaderStore for Branch<'_> {
    fn header(&self, height: u32) -> Result<Option<Header>, StorageError> {
        if height <= self.fork {
            return self.below.header(height);
        }
        Ok(self.headers.get((height - self.fork - 1) as usize).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Known(HashMap<u32, Header>);

    impl HeaderStore for Known {
        fn header(&self, height: u32) -> Result<Option<Header>, StorageError> {
            Ok(self.0.get(&height).copied())
        }
    }

    fn mainnet() -> Vec<Vec<u8>> {
        let text = include_str!("../../integration/fixtures/blocks-000000-000255.hex");
        text.lines()
            .map(|l| hex::decode(l.trim()).unwrap())
            .collect()
    }

    fn header_bytes(header: &Header) -> Vec<u8> {
        bitcoin::consensus::serialize(header)
    }

    #[test]
    fn real_mainnet_blocks_pass_and_forged_ones_are_refused() {
        let rules = Rules::new(Chain::Main);
        let blocks = mainnet();
        let mut known = Known(HashMap::new());
        for (h, block) in blocks.iter().enumerate() {
            let h = h as u32;
            assert_eq!(rules.check(h, block, &known).unwrap(), Checked::Full, "{h}");
            known.0.insert(h, header_of(block).unwrap());
        }
        // Without the previous header the difficulty cannot be checked.
        assert_eq!(
            rules
                .check(100, &blocks[100], &Known(HashMap::new()))
                .unwrap(),
            Checked::Partial
        );
        // Another nonce: the hash is no longer under the target.
        let mut forged = header_of(&blocks[200]).unwrap();
        forged.nonce ^= 1;
        match rules.check(200, &header_bytes(&forged), &known) {
            Err(CheckError::Refused(Refused {
                height: 200,
                broken: Broken::NoWork { bits: 0x1d00ffff },
                hash,
            })) => assert_eq!(hash, forged.block_hash().to_string()),
            other => panic!("{other:?}"),
        }
        // Regtest's genesis is not mainnet's.
        let regtest = bitcoin::constants::genesis_block(Network::Regtest);
        assert!(matches!(
            rules.check(0, &header_bytes(&regtest.header), &known),
            Err(CheckError::Refused(Refused {
                broken: Broken::AboveLimit { .. },
                ..
            }))
        ));
        let regtest_rules = Rules::new(Chain::Regtest);
        assert!(matches!(
            regtest_rules.check(0, &blocks[0], &known),
            Err(CheckError::Refused(Refused {
                broken: Broken::NotGenesis { .. },
                ..
            }))
        ));
    }

    /// Mines `header` (regtest difficulty or an easy mainnet-like target) by trying nonces.
    fn mine(mut header: Header) -> Header {
        while !Target::from_compact(header.bits).is_met_by(header.block_hash()) {
            header.nonce = header.nonce.wrapping_add(1);
        }
        header
    }

    #[test]
    fn wrong_difficulty_is_refused_even_with_its_work_done() {
        let rules = Rules::new(Chain::Regtest);
        let genesis = bitcoin::constants::genesis_block(Network::Regtest).header;
        let known = Known(HashMap::from([(0, genesis)]));
        let next = |bits: u32| Header {
            prev_blockhash: genesis.block_hash(),
            bits: CompactTarget::from_consensus(bits),
            time: genesis.time + 600,
            ..genesis
        };
        let good = mine(next(0x207fffff));
        assert_eq!(
            rules.check(1, &header_bytes(&good), &known).unwrap(),
            Checked::Full
        );
        // A harder target than the rules give, mined: still the wrong nBits.
        let harder = mine(next(0x2000ffff));
        match rules.check(1, &header_bytes(&harder), &known) {
            Err(CheckError::Refused(Refused {
                broken:
                    Broken::WrongBits {
                        found: 0x2000ffff,
                        expected: 0x207fffff,
                    },
                ..
            })) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_mainnet_retarget_follows_the_periods_timespan() {
        let rules = Rules::new(Chain::Main);
        // A retarget at 2016 after a period (blocks 0 to 2015) mined twice as fast as planned.
        let start = header_of(&mainnet()[0]).unwrap();
        let mut known = Known(HashMap::new());
        known.0.insert(0, start);
        let last = Header {
            time: start.time + 7 * 24 * 3600,
            ..start
        };
        known.0.insert(2015, last);
        let bits = |known: &Known| {
            rules
                .expected_bits(2016, &start, known)
                .unwrap()
                .unwrap()
                .to_consensus()
        };
        // Half the timespan: the target halves (0x1d00ffff -> 0x1c7fff80).
        assert_eq!(bits(&known), 0x1c7fff80);
        // Taking 16x as long is clamped to 4x, and then to the limit.
        known.0.insert(
            2015,
            Header {
                time: start.time + 16 * 14 * 24 * 3600,
                ..start
            },
        );
        assert_eq!(bits(&known), 0x1d00ffff);
    }

    #[test]
    fn testnet_minimum_difficulty_blocks_follow_the_twenty_minute_rule() {
        let rules = Rules::new(Chain::Test);
        let base = Header {
            bits: CompactTarget::from_consensus(0x1c0ffff0),
            ..header_of(&mainnet()[1]).unwrap()
        };
        let easy = Header {
            bits: rules.limit_bits,
            time: base.time + 1300,
            ..base
        };
        let known = Known(HashMap::from([(4040, base), (4041, easy)]));
        // Late enough: minimum difficulty is allowed.
        let late = Header {
            time: easy.time + 1201,
            ..easy
        };
        assert_eq!(
            rules.expected_bits(4042, &late, &known).unwrap(),
            Some(rules.limit_bits)
        );
        // On time: the last difficulty not set by the rule, found behind the easy block.
        let prompt = Header {
            time: easy.time + 600,
            ..easy
        };
        assert_eq!(
            rules.expected_bits(4042, &prompt, &known).unwrap(),
            Some(base.bits)
        );
    }
}

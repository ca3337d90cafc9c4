//! Deterministic, mainnet-shaped Bitcoin chains for tests and benchmarks.
//!
//! [`Generator`] builds a chain block by block from a seed: every block is linked to its
//! parent, carries a BIP34 height and a witness commitment in its coinbase, has a correct merkle
//! root, and is mined to its `nBits` (regtest difficulty by default, so mining is instant). Its
//! transactions look like mainnet's: a few thousand per block, a mix of output scripts (P2WPKH,
//! P2TR, P2PKH, P2SH, P2WSH, OP_RETURN, bare multisig) with addresses reused from a hot set,
//! and inputs that spend earlier outputs at a realistic age spread (many from the last few
//! blocks, a long tail from anywhere in the chain). So the key space and the UTXO set of an
//! indexer grow as they do on mainnet. The same seed and settings give the same bytes.
//!
//! [`blk`] writes blocks as Bitcoin Core does (`blk*.dat` records, optionally XOR-obfuscated).

#![deny(missing_docs)]

pub mod blk;
mod rng;
mod scripts;

use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::pow::CompactTarget;
use bitcoin::transaction::Version as TxVersion;
use bitcoin::{
    Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode,
    TxOut, Txid, Witness,
};

pub use rng::Rng;
use scripts::Kind;

/// Blocks at the start of a chain whose coinbase funds the payments of the blocks after them.
pub const FUNDING_BLOCKS: u32 = 10;

/// Regtest's `nBits`: any hash is below the target with probability 1/2.
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The seed: the same seed and settings give the same chain.
    pub seed: u64,
    /// Transactions per block (the coinbase included), drawn uniformly from this range.
    pub min_txs: u32,
    /// See [`Settings::min_txs`].
    pub max_txs: u32,
    /// `nBits` of every block.
    pub bits: u32,
    /// Outputs older than this many blocks are kept spendable only up to
    /// [`Settings::old_outputs_per_block`] per block (the rest stay unspent for ever, as lost
    /// coins do); this bounds the generator's memory on long chains.
    pub recent_blocks: u32,
    /// See [`Settings::recent_blocks`].
    pub old_outputs_per_block: usize,
    /// Height of the first block (its BIP34 height; its previous hash is zero). Default 0.
    pub first_height: u32,
    /// How many transactions a block has. Default [`Profile::Flat`].
    pub profile: Profile,
}

/// How many transactions each block has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Uniformly from [`Settings::min_txs`] to [`Settings::max_txs`], at every height.
    #[default]
    Flat,
    /// As mainnet had at the block's height: from [`MAINNET_ERAS`].
    Mainnet,
}

/// Mainnet's transactions per block by era: `(first height, fewest, most)`, each era running
/// to the next one's first height. Approximate yearly averages from public block statistics
/// (blockchain.com's and mempool.space's charts of transactions per block and block size):
/// one transaction a block through 2010, a few hundred by 2013, ~1 MB blocks of ~1,800 by 2016,
/// 2,000-2,500 after SegWit, and 3,000-4,000 (~1.6-1.9 MB) since inscriptions and runes
/// (2023 on).
pub const MAINNET_ERAS: [(u32, u32, u32); 17] = [
    (0, 1, 1),
    (32_000, 1, 4),
    (100_000, 5, 60),
    (160_000, 60, 300),
    (214_000, 250, 450),
    (278_000, 350, 650),
    (336_000, 600, 1_100),
    (391_000, 1_300, 2_000),
    (446_000, 1_800, 2_400),
    (501_000, 1_200, 2_200),
    (556_000, 1_900, 2_600),
    (610_000, 1_900, 2_600),
    (663_000, 1_600, 2_300),
    (716_000, 1_700, 2_300),
    (769_000, 2_500, 3_800),
    (824_000, 3_000, 4_200),
    (877_000, 3_000, 4_000),
];

/// The `(fewest, most)` transactions of a mainnet block at `height` ([`MAINNET_ERAS`]).
pub fn mainnet_txs(height: u32) -> (u32, u32) {
    let (_, min, max) = MAINNET_ERAS
        .iter()
        .rev()
        .find(|(from, _, _)| *from <= height)
        .copied()
        .unwrap_or(MAINNET_ERAS[0]);
    (min, max)
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            seed: 1,
            min_txs: 2_000,
            max_txs: 4_000,
            bits: REGTEST_BITS,
            recent_blocks: 1_000,
            old_outputs_per_block: 400,
            first_height: 0,
            profile: Profile::Flat,
        }
    }
}

/// An unspent output the generator may spend later.
#[derive(Clone, Copy)]
struct Coin {
    txid: [u8; 32],
    vout: u32,
    kind: Kind,
}

/// See the crate documentation.
pub struct Generator {
    settings: Settings,
    rng: Rng,
    /// Height of the next block.
    height: u32,
    prev: BlockHash,
    /// Spendable outputs by the height that created them (index = height).
    coins: Vec<Vec<Coin>>,
    /// Scripts paid before, for address reuse (most-used first, roughly).
    reused: scripts::Pool,
}

impl Generator {
    /// A generator whose first block is the genesis block (height 0, previous hash zero).
    pub fn new(settings: Settings) -> Self {
        let rng = Rng::new(settings.seed);
        Self {
            rng,
            height: settings.first_height,
            settings,
            prev: BlockHash::all_zeros(),
            coins: Vec::new(),
            reused: scripts::Pool::default(),
        }
    }

    /// Height of the block [`Generator::next_block`] builds next.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The next block of the chain, consensus-serialised.
    pub fn next_block(&mut self) -> Vec<u8> {
        let height = self.height;
        let (min, max) = match self.settings.profile {
            Profile::Flat => (self.settings.min_txs, self.settings.max_txs),
            Profile::Mainnet => mainnet_txs(height),
        };
        let txs = self.rng.range(u64::from(min), u64::from(max));
        self.coins.push(Vec::new());
        // The first blocks have little to spend: their coinbases fund the chain (with a mainnet
        // profile, with as many outputs as the era's blocks have transactions).
        let funding = match self.settings.profile {
            _ if height - self.settings.first_height >= FUNDING_BLOCKS => 1,
            Profile::Flat => 2_000,
            Profile::Mainnet => max as usize,
        };
        let mut transactions = vec![self.coinbase(height, funding)];
        for _ in 1..txs {
            let tx = self.payment();
            transactions.push(tx);
        }
        let block = finish_block(self.prev, height, self.settings.bits, transactions, 600);
        self.prev = block.block_hash();
        self.height += 1;
        self.thin_old_coins();
        serialize(&block)
    }

    fn coinbase(&mut self, height: u32, outputs: usize) -> Transaction {
        let outputs = (0..outputs)
            .map(|_| {
                let kind = scripts::Kind::draw(&mut self.rng);
                TxOut {
                    value: Amount::from_sat(self.rng.range(100_000, 312_500_000)),
                    script_pubkey: kind.script(&mut self.rng),
                }
            })
            .collect();
        let tx = coinbase_tx(height, outputs);
        self.remember_outputs(&tx);
        tx
    }

    /// A payment spending 1-8 earlier outputs into 1-20 new ones.
    fn payment(&mut self) -> Transaction {
        let inputs = match self.rng.below(100) {
            0..60 => 1,
            60..85 => 2,
            _ => self.rng.range(3, 8),
        };
        let outputs = match self.rng.below(100) {
            0..20 => 1,
            20..80 => 2,
            _ => self.rng.range(3, 20),
        };
        let mut input = Vec::with_capacity(inputs as usize);
        for _ in 0..inputs {
            match self.take_coin() {
                Some(coin) => input.push(spend(coin, &mut self.rng)),
                None => break,
            }
        }
        if input.is_empty() {
            // Nothing to spend yet: an output the chain does not know (as when an index
            // starts above genesis).
            let coin = Coin {
                txid: self.rng.bytes32(),
                vout: 0,
                kind: Kind::P2wpkh,
            };
            input.push(spend(coin, &mut self.rng));
        }
        let output = (0..outputs).map(|_| self.output()).collect::<Vec<TxOut>>();
        let tx = Transaction {
            version: TxVersion::TWO,
            lock_time: LockTime::ZERO,
            input,
            output,
        };
        self.remember_outputs(&tx);
        tx
    }

    fn output(&mut self) -> TxOut {
        let kind = Kind::draw(&mut self.rng);
        if kind == Kind::OpReturn {
            return TxOut {
                value: Amount::ZERO,
                script_pubkey: kind.script(&mut self.rng),
            };
        }
        // A third of payments go to a script seen before, mostly to the hot ones.
        let script = match self.rng.below(3) {
            0 => self.reused.pick(&mut self.rng),
            _ => None,
        }
        .unwrap_or_else(|| {
            let script = kind.script(&mut self.rng);
            self.reused.offer(&script, &mut self.rng);
            script
        });
        // Log-uniform values from 546 sat to ~10 BTC.
        let exponent = self.rng.range(0, 60) as f64 / 10.0;
        let value = (546.0 * 10f64.powf(exponent)) as u64;
        TxOut {
            value: Amount::from_sat(value),
            script_pubkey: script,
        }
    }

    fn remember_outputs(&mut self, tx: &Transaction) {
        let txid = tx.compute_txid().to_byte_array();
        let created = self.coins.last_mut();
        let Some(created) = created else { return };
        for (vout, out) in tx.output.iter().enumerate() {
            let kind = Kind::of(&out.script_pubkey);
            if kind != Kind::OpReturn {
                created.push(Coin {
                    txid,
                    vout: vout as u32,
                    kind,
                });
            }
        }
    }

    /// An unspent output at a realistic age: 45% from the last few blocks (the same block
    /// included), 35% from the last day, 20% from anywhere.
    fn take_coin(&mut self) -> Option<Coin> {
        let tip = self.coins.len().checked_sub(1)?;
        let age = match self.rng.below(100) {
            0..45 => (self.rng.next_u64().trailing_zeros() as usize).min(tip),
            45..80 => self.rng.below(144.min(tip as u64 + 1)) as usize,
            _ => self.rng.below(tip as u64 + 1) as usize,
        };
        // Walk to older blocks (then wrap to the newest) until one has a coin left.
        for step in 0..=tip {
            let at =
                (tip + self.coins.len() - ((age + step) % self.coins.len())) % self.coins.len();
            let coins = &mut self.coins[at];
            if !coins.is_empty() {
                let i = self.rng.below(coins.len() as u64) as usize;
                return Some(coins.swap_remove(i));
            }
            if step > 64 {
                break;
            }
        }
        None
    }

    /// Keeps at most `old_outputs_per_block` spendable outputs of the block that just became
    /// old.
    fn thin_old_coins(&mut self) {
        let recent = self.settings.recent_blocks as usize;
        if let Some(old) = self.coins.len().checked_sub(recent + 1) {
            let keep = self.settings.old_outputs_per_block;
            let coins = &mut self.coins[old];
            while coins.len() > keep {
                let i = self.rng.below(coins.len() as u64) as usize;
                coins.swap_remove(i);
            }
            coins.shrink_to_fit();
        }
    }
}

fn spend(coin: Coin, rng: &mut Rng) -> TxIn {
    let (script_sig, witness) = coin.kind.unlocking(rng);
    TxIn {
        previous_output: OutPoint {
            txid: Txid::from_byte_array(coin.txid),
            vout: coin.vout,
        },
        script_sig,
        sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
        witness,
    }
}

/// A coinbase at `height` (BIP34 height push, segwit reserved value) paying `outputs`.
fn coinbase_tx(height: u32, output: Vec<TxOut>) -> Transaction {
    let script_sig = bitcoin::script::Builder::new()
        .push_int(i64::from(height))
        .push_slice(b"chaingen")
        .into_script();
    let mut witness = Witness::new();
    witness.push([0u8; 32]);
    Transaction {
        version: TxVersion::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::MAX,
            witness,
        }],
        output,
    }
}

/// Assembles, commits (witness commitment, merkle root) and mines a block.
fn finish_block(
    prev: BlockHash,
    height: u32,
    bits: u32,
    mut txdata: Vec<Transaction>,
    spacing: u32,
) -> Block {
    let mut block = Block {
        header: Header {
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1_600_000_000 + height.wrapping_mul(spacing),
            bits: CompactTarget::from_consensus(bits),
            nonce: 0,
        },
        txdata: Vec::new(),
    };
    let has_witness = txdata
        .iter()
        .skip(1)
        .any(|tx| tx.input.iter().any(|input| !input.witness.is_empty()));
    if has_witness {
        let probe = Block {
            header: block.header,
            txdata: txdata.clone(),
        };
        if let Some(root) = probe.witness_root() {
            let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
            let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
            script.extend_from_slice(commitment.as_byte_array());
            txdata[0].output.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: ScriptBuf::from_bytes(script),
            });
        }
    }
    block.txdata = txdata;
    if let Some(root) = block.compute_merkle_root() {
        block.header.merkle_root = root;
    }
    mine(&mut block.header);
    block
}

/// Finds a nonce whose header hash meets the header's own target.
fn mine(header: &mut Header) {
    let target = header.target();
    while !target.is_met_by(header.block_hash()) {
        header.nonce = header.nonce.wrapping_add(1);
        if header.nonce == 0 {
            header.time = header.time.wrapping_add(1);
        }
    }
}

/// A small block (coinbase only) at `height` on top of `prev`, for building forks: `tag`
/// makes blocks of the same parent and height differ.
pub fn small_block(prev: [u8; 32], height: u32, bits: u32, tag: u32) -> Vec<u8> {
    let mut script = vec![0x00, 0x14];
    script.extend_from_slice(&[tag as u8; 20]);
    let out = TxOut {
        value: Amount::from_sat(5_000_000_000),
        script_pubkey: ScriptBuf::from_bytes(script),
    };
    let mut coinbase = coinbase_tx(height, vec![out]);
    coinbase.lock_time = LockTime::from_consensus(tag);
    let block = finish_block(
        BlockHash::from_byte_array(prev),
        height,
        bits,
        vec![coinbase],
        600,
    );
    serialize(&block)
}

/// `sha256d` of the block's header (internal byte order), or zeros for a block too short to
/// have one.
pub fn hash_of(block: &[u8]) -> [u8; 32] {
    use bitcoin::hashes::sha256d;
    block.get(..80).map_or([0; 32], |header| {
        sha256d::Hash::hash(header).to_byte_array()
    })
}

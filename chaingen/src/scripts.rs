//! Output scripts in mainnet's proportions, the inputs that spend them, and reused addresses.

use bitcoin::{ScriptBuf, Witness};

use crate::Rng;

/// The kinds of output script the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    P2wpkh,
    P2tr,
    P2pkh,
    P2sh,
    P2wsh,
    OpReturn,
    BareMultisig,
}

impl Kind {
    /// Roughly the mix of outputs on mainnet in 2024.
    pub(crate) fn draw(rng: &mut Rng) -> Self {
        match rng.below(100) {
            0..45 => Kind::P2wpkh,
            45..65 => Kind::P2tr,
            65..80 => Kind::P2pkh,
            80..90 => Kind::P2sh,
            90..95 => Kind::P2wsh,
            95..98 => Kind::OpReturn,
            _ => Kind::BareMultisig,
        }
    }

    /// A fresh script of this kind.
    pub(crate) fn script(self, rng: &mut Rng) -> ScriptBuf {
        let mut bytes = Vec::with_capacity(72);
        let mut push_random = |bytes: &mut Vec<u8>, n: usize| {
            let start = bytes.len();
            bytes.resize(start + n, 0);
            rng.fill(&mut bytes[start..]);
        };
        match self {
            Kind::P2wpkh => {
                bytes.extend_from_slice(&[0x00, 0x14]);
                push_random(&mut bytes, 20);
            }
            Kind::P2tr => {
                bytes.extend_from_slice(&[0x51, 0x20]);
                push_random(&mut bytes, 32);
            }
            Kind::P2pkh => {
                bytes.extend_from_slice(&[0x76, 0xa9, 0x14]);
                push_random(&mut bytes, 20);
                bytes.extend_from_slice(&[0x88, 0xac]);
            }
            Kind::P2sh => {
                bytes.extend_from_slice(&[0xa9, 0x14]);
                push_random(&mut bytes, 20);
                bytes.push(0x87);
            }
            Kind::P2wsh => {
                bytes.extend_from_slice(&[0x00, 0x20]);
                push_random(&mut bytes, 32);
            }
            Kind::OpReturn => {
                // A runestone-like push: OP_RETURN OP_13 <data>.
                bytes.extend_from_slice(&[0x6a, 0x5d, 0x10]);
                push_random(&mut bytes, 16);
            }
            Kind::BareMultisig => {
                bytes.extend_from_slice(&[0x51, 0x21, 0x02]);
                push_random(&mut bytes, 32);
                bytes.extend_from_slice(&[0x21, 0x03]);
                push_random(&mut bytes, 32);
                bytes.extend_from_slice(&[0x52, 0xae]);
            }
        }
        ScriptBuf::from_bytes(bytes)
    }

    /// The kind of `script` (by its template; anything else counts as bare multisig).
    pub(crate) fn of(script: &ScriptBuf) -> Self {
        match script.as_bytes() {
            [0x00, 0x14, ..] => Kind::P2wpkh,
            [0x00, 0x20, ..] => Kind::P2wsh,
            [0x51, 0x20, ..] if script.len() == 34 => Kind::P2tr,
            [0x76, 0xa9, ..] => Kind::P2pkh,
            [0xa9, 0x14, ..] => Kind::P2sh,
            [0x6a, ..] => Kind::OpReturn,
            _ => Kind::BareMultisig,
        }
    }

    /// A scriptSig and witness of realistic sizes for spending an output of this kind.
    pub(crate) fn unlocking(self, rng: &mut Rng) -> (ScriptBuf, Witness) {
        let random = |rng: &mut Rng, n: usize| {
            let mut bytes = vec![0u8; n];
            rng.fill(&mut bytes);
            bytes
        };
        let mut witness = Witness::new();
        let script_sig = match self {
            Kind::P2wpkh => {
                witness.push(random(rng, 72));
                witness.push(random(rng, 33));
                ScriptBuf::new()
            }
            Kind::P2tr => {
                witness.push(random(rng, 64));
                ScriptBuf::new()
            }
            Kind::P2wsh => {
                witness.push(Vec::new());
                witness.push(random(rng, 72));
                witness.push(random(rng, 72));
                witness.push(random(rng, 71));
                ScriptBuf::new()
            }
            Kind::P2sh => {
                // P2SH-wrapped P2WPKH.
                witness.push(random(rng, 72));
                witness.push(random(rng, 33));
                let mut sig = vec![0x16, 0x00, 0x14];
                sig.extend(random(rng, 20));
                ScriptBuf::from_bytes(sig)
            }
            Kind::P2pkh | Kind::BareMultisig | Kind::OpReturn => {
                let mut sig = vec![0x48];
                sig.extend(random(rng, 72));
                sig.push(0x21);
                sig.extend(random(rng, 33));
                ScriptBuf::from_bytes(sig)
            }
        };
        (script_sig, witness)
    }
}

/// Most scripts this remembers for reuse.
const POOL_CAPACITY: usize = 200_000;

/// Scripts paid before. Picks favour the front (a few hot addresses, such as exchanges', get
/// most of the reuse), and new scripts replace random old ones once it is full.
#[derive(Default)]
pub(crate) struct Pool {
    scripts: Vec<ScriptBuf>,
}

impl Pool {
    pub(crate) fn pick(&self, rng: &mut Rng) -> Option<ScriptBuf> {
        if self.scripts.is_empty() {
            return None;
        }
        let u = rng.fraction();
        let i = ((u * u * u) * self.scripts.len() as f64) as usize;
        self.scripts.get(i.min(self.scripts.len() - 1)).cloned()
    }

    pub(crate) fn offer(&mut self, script: &ScriptBuf, rng: &mut Rng) {
        if self.scripts.len() < POOL_CAPACITY {
            self.scripts.push(script.clone());
        } else if rng.below(8) == 0 {
            // Never the first hundred: the hot set stays.
            let i = 100 + rng.below((POOL_CAPACITY - 100) as u64) as usize;
            self.scripts[i] = script.clone();
        }
    }
}

//! Addresses from output scripts, for any Bitcoin-like chain: [`Payload`] (what a script pays
//! to) and [`AddressEncoding`] (its text under a chain's prefixes and human-readable part).
//!
//! Indexers build persisted keys from these strings, so the text is exact: Base58Check for
//! P2PKH and P2SH, bech32 (BIP 173) for witness version 0 and bech32m (BIP 350) for versions
//! 1 to 16, lowercase (uppercase with the `{:#}` flag).

use std::fmt;
use std::str::FromStr;

use anyhow::{Error, Result, anyhow};
use bech32::Hrp;
use bitcoin::blockdata::constants::MAX_SCRIPT_ELEMENT_SIZE;
use bitcoin::hashes::Hash;
use bitcoin::key::{TapTweak, TweakedPublicKey, UntweakedPublicKey};
use bitcoin::script::{self, Script, ScriptBuf};
use bitcoin::secp256k1::{Secp256k1, Verification};
use bitcoin::taproot::TapNodeHash;
use bitcoin::{PubkeyHash, PublicKey, ScriptHash, WitnessProgram, WitnessVersion};

/// The standard kinds of address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AddressType {
    /// Pay to public-key hash (Base58Check, version byte `p2pkh_prefix`).
    P2pkh,
    /// Pay to script hash (Base58Check, version byte `p2sh_prefix`).
    P2sh,
    /// Segwit v0 key hash (bech32).
    P2wpkh,
    /// Segwit v0 script hash (bech32).
    P2wsh,
    /// Segwit v1 taproot output key (bech32m).
    P2tr,
}

impl AddressType {
    const NAMES: [(AddressType, &'static str); 5] = [
        (AddressType::P2pkh, "p2pkh"),
        (AddressType::P2sh, "p2sh"),
        (AddressType::P2wpkh, "p2wpkh"),
        (AddressType::P2wsh, "p2wsh"),
        (AddressType::P2tr, "p2tr"),
    ];
}

impl fmt::Display for AddressType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let name = Self::NAMES
            .iter()
            .find(|(t, _)| t == self)
            .map_or("unknown", |(_, name)| name);
        f.write_str(name)
    }
}

impl FromStr for AddressType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::NAMES
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(t, _)| *t)
            .ok_or_else(|| anyhow!(s.to_owned()))
    }
}

/// What an output script pays to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Payload {
    /// P2PKH: the hash of a public key.
    PubkeyHash(PubkeyHash),
    /// P2SH: the hash of a redeem script.
    ScriptHash(ScriptHash),
    /// A segwit output of any version.
    WitnessProgram(WitnessProgram),
}

fn hash20(bytes: &[u8]) -> Result<[u8; 20]> {
    bytes
        .try_into()
        .map_err(|_| anyhow!("expected 20 bytes, got {}", bytes.len()))
}

impl Payload {
    /// The payload of a P2PKH, P2SH or witness-program script; an error for anything else.
    pub fn from_script(script: &Script) -> Result<Payload> {
        let bytes = script.as_bytes();
        if script.is_p2pkh() {
            Ok(Payload::PubkeyHash(PubkeyHash::from_byte_array(hash20(
                &bytes[3..23],
            )?)))
        } else if script.is_p2sh() {
            Ok(Payload::ScriptHash(ScriptHash::from_byte_array(hash20(
                &bytes[2..22],
            )?)))
        } else if script.is_witness_program() {
            let opcode = script
                .first_opcode()
                .ok_or_else(|| anyhow!("empty witness program script"))?;
            let version = WitnessVersion::try_from(opcode)?;
            Ok(Payload::WitnessProgram(WitnessProgram::new(
                version,
                &bytes[2..],
            )?))
        } else {
            Err(anyhow!("unrecognized script"))
        }
    }

    /// The output script paying to this payload.
    pub fn script_pubkey(&self) -> ScriptBuf {
        match self {
            Payload::PubkeyHash(hash) => ScriptBuf::new_p2pkh(hash),
            Payload::ScriptHash(hash) => ScriptBuf::new_p2sh(hash),
            Payload::WitnessProgram(program) => ScriptBuf::new_witness_program(program),
        }
    }

    /// Whether `script` pays to this payload.
    pub fn matches_script_pubkey(&self, script: &Script) -> bool {
        let bytes = script.as_bytes();
        match self {
            Payload::PubkeyHash(hash) => {
                script.is_p2pkh() && bytes[3..23] == hash.to_byte_array()[..]
            }
            Payload::ScriptHash(hash) => {
                script.is_p2sh() && bytes[2..22] == hash.to_byte_array()[..]
            }
            Payload::WitnessProgram(program) => {
                script.is_witness_program() && bytes[2..] == *program.program().as_bytes()
            }
        }
    }

    /// P2PKH of `pk`.
    pub fn p2pkh(pk: &PublicKey) -> Payload {
        Payload::PubkeyHash(pk.pubkey_hash())
    }

    /// P2SH of `script`; an error when the script is too long to be pushed (520 bytes).
    pub fn p2sh(script: &Script) -> Result<Payload> {
        if script.len() > MAX_SCRIPT_ELEMENT_SIZE {
            return Err(anyhow!("excessive script size"));
        }
        Ok(Payload::ScriptHash(script.script_hash()))
    }

    /// P2WPKH of `pk`; an error for an uncompressed key.
    pub fn p2wpkh(pk: &PublicKey) -> Result<Payload> {
        let hash = pk
            .wpubkey_hash()
            .map_err(|_| anyhow!("uncompressed public key"))?;
        Ok(Payload::WitnessProgram(WitnessProgram::new(
            WitnessVersion::V0,
            hash.as_ref(),
        )?))
    }

    /// P2SH-wrapped P2WPKH of `pk`; an error for an uncompressed key.
    pub fn p2shwpkh(pk: &PublicKey) -> Result<Payload> {
        let hash = pk
            .wpubkey_hash()
            .map_err(|_| anyhow!("uncompressed public key"))?;
        let redeem = script::Builder::new()
            .push_int(0)
            .push_slice(hash)
            .into_script();
        Ok(Payload::ScriptHash(redeem.script_hash()))
    }

    /// P2WSH of `script`.
    pub fn p2wsh(script: &Script) -> Payload {
        Payload::WitnessProgram(WitnessProgram::p2wsh(script))
    }

    /// P2SH-wrapped P2WSH of `script`.
    pub fn p2shwsh(script: &Script) -> Payload {
        let redeem = script::Builder::new()
            .push_int(0)
            .push_slice(script.wscript_hash())
            .into_script();
        Payload::ScriptHash(redeem.script_hash())
    }

    /// P2TR of `internal_key` tweaked with `merkle_root` (BIP 341).
    pub fn p2tr<C: Verification>(
        secp: &Secp256k1<C>,
        internal_key: UntweakedPublicKey,
        merkle_root: Option<TapNodeHash>,
    ) -> Payload {
        let (output_key, _parity) = internal_key.tap_tweak(secp, merkle_root);
        Self::p2tr_tweaked(output_key)
    }

    /// P2TR of an already tweaked output key.
    pub fn p2tr_tweaked(output_key: TweakedPublicKey) -> Payload {
        Payload::WitnessProgram(WitnessProgram::p2tr_tweaked(output_key))
    }
}

/// A payload's address text under one chain's parameters: `p2pkh_prefix` and `p2sh_prefix` are
/// the Base58Check version bytes (Bitcoin mainnet: 0 and 5), `hrp` the segwit human-readable
/// part (`bc`).
#[derive(Debug)]
pub struct AddressEncoding<'a> {
    /// The payload to print.
    pub payload: &'a Payload,
    /// Base58Check version byte of P2PKH addresses.
    pub p2pkh_prefix: u8,
    /// Base58Check version byte of P2SH addresses.
    pub p2sh_prefix: u8,
    /// Human-readable part of segwit addresses.
    pub hrp: Hrp,
}

impl fmt::Display for AddressEncoding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let base58 = |prefix: u8, hash: &[u8]| {
            let mut data = Vec::with_capacity(21);
            data.push(prefix);
            data.extend_from_slice(hash);
            bitcoin::base58::encode_check(&data)
        };
        match self.payload {
            Payload::PubkeyHash(hash) => {
                f.write_str(&base58(self.p2pkh_prefix, hash.as_byte_array()))
            }
            Payload::ScriptHash(hash) => {
                f.write_str(&base58(self.p2sh_prefix, hash.as_byte_array()))
            }
            Payload::WitnessProgram(program) => {
                let version = program.version().to_fe();
                let data = program.program().as_bytes();
                let hrp = self.hrp;
                if f.alternate() {
                    bech32::segwit::encode_upper_to_fmt_unchecked(f, hrp, version, data)
                } else {
                    bech32::segwit::encode_lower_to_fmt_unchecked(f, hrp, version, data)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

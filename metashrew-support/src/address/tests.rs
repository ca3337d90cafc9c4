//! Address text against BIP 173 / BIP 350 vectors, known mainnet addresses, and the `bitcoin`
//! crate's own encoder over every output of a real block.

use super::*;
use bitcoin::Network;
use bitcoin::secp256k1::XOnlyPublicKey;

fn encode(payload: &Payload, p2pkh_prefix: u8, p2sh_prefix: u8, hrp: &str) -> String {
    AddressEncoding {
        payload,
        p2pkh_prefix,
        p2sh_prefix,
        hrp: Hrp::parse(hrp).unwrap(),
    }
    .to_string()
}

fn mainnet(payload: &Payload) -> String {
    encode(payload, 0x00, 0x05, "bc")
}

fn testnet(payload: &Payload) -> String {
    encode(payload, 0x6f, 0xc4, "tb")
}

fn script(hex_script: &str) -> ScriptBuf {
    ScriptBuf::from_bytes(hex::decode(hex_script).unwrap())
}

/// Valid segwit addresses of BIP 173 (version 0) and BIP 350 (versions 1..16), with their
/// scriptPubKeys.
const SEGWIT_VECTORS: [(&str, &str); 7] = [
    (
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "0014751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    ("bc1sw50qgdz25j", "6002751e"),
    (
        "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs",
        "5210751e76e8199196d454941c45d1b3a323",
    ),
    (
        "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ),
];

#[test]
fn bip173_and_bip350_vectors() {
    for (address, spk) in SEGWIT_VECTORS {
        let payload = Payload::from_script(&script(spk)).unwrap();
        let text = if address.starts_with("tb") {
            testnet(&payload)
        } else {
            mainnet(&payload)
        };
        assert_eq!(text, address, "script {spk}");
        assert_eq!(payload.script_pubkey(), script(spk));
        assert!(payload.matches_script_pubkey(&script(spk)));
    }
    let payload = Payload::from_script(&script(SEGWIT_VECTORS[0].1)).unwrap();
    let upper = format!(
        "{:#}",
        AddressEncoding {
            payload: &payload,
            p2pkh_prefix: 0,
            p2sh_prefix: 5,
            hrp: Hrp::parse("bc").unwrap(),
        }
    );
    assert_eq!(upper, "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4");
}

#[test]
fn known_mainnet_base58_addresses() {
    // The genesis block's payee, as a P2PKH address.
    let genesis_payee = script("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac");
    let payload = Payload::from_script(&genesis_payee).unwrap();
    assert_eq!(mainnet(&payload), "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa");
    assert_eq!(testnet(&payload), "mpXwg4jMtRhuSpVq4xS3HFHmCmWp9NyGKt");
    // P2SH: the all-zero script hash, and a real one.
    let zero = script("a914000000000000000000000000000000000000000087");
    assert_eq!(
        mainnet(&Payload::from_script(&zero).unwrap()),
        "31h1vYVSYuKP6AhS86fbRdMw9XHieotbST"
    );
    let p2sh = script("a914e9c3dd0c07aac76179ebc76a6c78d4d67c6c160a87");
    assert_eq!(
        mainnet(&Payload::from_script(&p2sh).unwrap()),
        "3P14159f73E4gFr7JterCCQh9QjiTjiZrG"
    );
}

#[test]
fn constructors_give_the_standard_scripts() {
    let secp = Secp256k1::verification_only();
    let pk: PublicKey = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
        .parse()
        .unwrap();
    let p2pkh = Payload::p2pkh(&pk);
    assert_eq!(mainnet(&p2pkh), "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH");
    let p2wpkh = Payload::p2wpkh(&pk).unwrap();
    assert_eq!(
        mainnet(&p2wpkh),
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    );
    let p2shwpkh = Payload::p2shwpkh(&pk).unwrap();
    let redeem = script("0014751e76e8199196d454941c45d1b3a323f1433bd6");
    assert_eq!(p2shwpkh, Payload::p2sh(&redeem).unwrap());
    let witness_script = script("51");
    let p2wsh = Payload::p2wsh(&witness_script);
    assert!(p2wsh.script_pubkey().is_p2wsh());
    let p2shwsh = Payload::p2shwsh(&witness_script);
    assert_eq!(p2shwsh, Payload::p2sh(&p2wsh.script_pubkey()).unwrap());
    assert!(Payload::p2sh(&ScriptBuf::from_bytes(vec![0x51; 521])).is_err());
    let uncompressed: PublicKey = "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8".parse().unwrap();
    assert!(Payload::p2wpkh(&uncompressed).is_err());
    // BIP 86's first test vector: the key-path-only output of this internal key.
    let internal = XOnlyPublicKey::from_str(
        "cc8a4bc64d897bddc5fbc2f670f7a8ba0b386779106cf1223c6fc5d7cd6fc115",
    )
    .unwrap();
    let p2tr = Payload::p2tr(&secp, internal, None);
    assert_eq!(
        mainnet(&p2tr),
        "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr"
    );
    assert!(
        Payload::from_script(&script("6a0100")).is_err(),
        "OP_RETURN"
    );
}

#[test]
fn address_types_round_trip_as_text() {
    for t in ["p2pkh", "p2sh", "p2wpkh", "p2wsh", "p2tr"] {
        assert_eq!(AddressType::from_str(t).unwrap().to_string(), t);
    }
    assert!(AddressType::from_str("p2pk").is_err());
}

#[test]
fn every_output_of_a_real_block_matches_the_bitcoin_crate() {
    let hex_block = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../integration/fixtures/block-840243.hex"
    ))
    .unwrap();
    let block: bitcoin::Block =
        bitcoin::consensus::deserialize(&hex::decode(hex_block.trim()).unwrap()).unwrap();
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for output in block.txdata.iter().flat_map(|tx| &tx.output) {
        let spk = &output.script_pubkey;
        match (
            Payload::from_script(spk),
            bitcoin::Address::from_script(spk, Network::Bitcoin),
        ) {
            (Ok(payload), Ok(address)) => {
                assert_eq!(mainnet(&payload), address.to_string());
                assert!(payload.matches_script_pubkey(spk));
                assert_eq!(&payload.script_pubkey(), spk);
                let kind = address
                    .address_type()
                    .map_or("other".into(), |t| t.to_string());
                *checked.entry(kind).or_default() += 1;
            }
            (Err(_), Err(_)) => {}
            (ours, theirs) => panic!("{spk:?}: {ours:?} vs {theirs:?}"),
        }
    }
    for kind in ["p2pkh", "p2sh", "p2wpkh", "p2wsh", "p2tr"] {
        assert!(
            checked.get(kind).copied().unwrap_or(0) > 0,
            "{kind} in {checked:?}"
        );
    }
}

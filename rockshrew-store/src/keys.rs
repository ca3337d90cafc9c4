//! Key encodings of the RocksDB store.
//!
//! History keys are `u32 BE len(key) ++ key ++ u32 BE height`: the length prefix keeps a key
//! that is a prefix of another apart from it, and big-endian heights sort each key's history by
//! height, so the value of `key` at `H` is found by one reverse seek to `(key, H)`.

/// `u32 BE len(key) ++ key`: every history entry of `key` starts with it.
pub fn history_prefix(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 8);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The history entry of `key` at `height`.
pub fn history_key(key: &[u8], height: u32) -> Vec<u8> {
    let mut out = history_prefix(key);
    out.extend_from_slice(&height.to_be_bytes());
    out
}

/// Splits a history entry key into (key, height).
pub fn split_history_key(entry: &[u8]) -> Option<(&[u8], u32)> {
    let len = u32::from_be_bytes(entry.get(..4)?.try_into().ok()?) as usize;
    let key = entry.get(4..4 + len)?;
    let height = u32::from_be_bytes(entry.get(4 + len..)?.try_into().ok()?);
    Some((key, height))
}

/// The key of a height in the `blocks` and `touched` families: `u32` big-endian, so they sort by height.
pub fn height_key(height: u32) -> [u8; 4] {
    height.to_be_bytes()
}

/// A block's touched-key list: `u32 BE len ++ key` per key.
pub fn encode_touched<'a>(keys: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for key in keys {
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
    }
    out
}

/// The keys of a `touched` value ([`encode_touched`]); `None` if malformed.
pub fn decode_touched(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    while !bytes.is_empty() {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        keys.push(bytes.get(4..4 + len)?.to_vec());
        bytes = &bytes[4 + len..];
    }
    Some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_keys_never_share_history_prefixes() {
        let a = history_key(b"ab", 7);
        assert!(!a.starts_with(&history_prefix(b"a")));
        assert!(a.starts_with(&history_prefix(b"ab")));
        assert_eq!(split_history_key(&a), Some((&b"ab"[..], 7)));
    }

    #[test]
    fn heights_sort_within_a_key() {
        assert!(history_key(b"k", 255) < history_key(b"k", 256));
        assert!(history_key(b"k", 0) < history_key(b"k", u32::MAX));
    }

    #[test]
    fn touched_lists_round_trip() {
        let keys = vec![b"a".to_vec(), vec![], b"long key".to_vec()];
        let encoded = encode_touched(keys.iter().map(Vec::as_slice));
        assert_eq!(decode_touched(&encoded), Some(keys));
        assert_eq!(decode_touched(&[0, 0, 0, 5, 1]), None);
    }
}

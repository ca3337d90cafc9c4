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

/// A latest-value entry's value: `u32 BE height ++ value`, the newest history entry of its key.
pub fn latest_value(height: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + value.len());
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Splits a latest-value entry's value into (height, value).
pub fn split_latest_value(entry: &[u8]) -> Option<(u32, &[u8])> {
    let height = u32::from_be_bytes(entry.get(..4)?.try_into().ok()?);
    Some((height, &entry[4..]))
}

/// The key of a height in the `blocks` and `touched` families: `u32` big-endian, so they sort by height.
pub fn height_key(height: u32) -> [u8; 4] {
    height.to_be_bytes()
}

/// First byte of a touched list that carries value checks. A list without it (written before
/// they existed) is `u32 BE len ++ key` per key, whose first byte is never 0xff (no key is
/// 4 GiB long).
const CHECKED: u8 = 0xff;

/// Length of a value check.
pub const CHECK_LEN: usize = 8;

/// A value's check: the first 8 bytes of its SHA-256. It lets `verify` name the one value of a
/// block that no longer matches what was committed (the state root only says that one does).
pub fn value_check(value: &[u8]) -> [u8; CHECK_LEN] {
    let digest = metashrew_storage::hashes::sha256(value);
    let mut check = [0u8; CHECK_LEN];
    check.copy_from_slice(&digest[..CHECK_LEN]);
    check
}

/// A block's touched-key list: `0xff`, then `u32 BE len ++ key ++ value_check(value)` per
/// write.
pub fn encode_touched<'a>(writes: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let mut out = vec![CHECKED];
    for (key, value) in writes {
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&value_check(value));
    }
    out
}

/// The keys of a `touched` value ([`encode_touched`]); `None` if malformed.
pub fn decode_touched(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    Some(
        decode_touched_checked(bytes)?
            .into_iter()
            .map(|(key, _)| key)
            .collect(),
    )
}

/// The keys of a `touched` value with their value checks (`None` in lists written before
/// checks existed); `None` if malformed.
#[allow(clippy::type_complexity)]
pub fn decode_touched_checked(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Option<[u8; CHECK_LEN]>)>> {
    let (mut bytes, check_len) = match bytes.split_first() {
        Some((&CHECKED, rest)) => (rest, CHECK_LEN),
        _ => (bytes, 0),
    };
    let mut keys = Vec::new();
    while !bytes.is_empty() {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let key = bytes.get(4..4 + len)?.to_vec();
        let check = bytes.get(4 + len..4 + len + check_len)?;
        keys.push((key, check.try_into().ok()));
        bytes = &bytes[4 + len + check_len..];
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
    fn latest_values_round_trip() {
        let entry = latest_value(0x0102_0304, b"value");
        assert_eq!(&entry[..4], &[1, 2, 3, 4]);
        assert_eq!(
            split_latest_value(&entry),
            Some((0x0102_0304, &b"value"[..]))
        );
        assert_eq!(
            split_latest_value(&latest_value(7, b"")),
            Some((7, &b""[..]))
        );
        assert_eq!(split_latest_value(&[1, 2, 3]), None);
    }

    #[test]
    fn touched_lists_round_trip() {
        let keys = vec![b"a".to_vec(), vec![], b"long key".to_vec()];
        let values = [b"1".to_vec(), b"".to_vec(), vec![0xff; 300]];
        let encoded = encode_touched(keys.iter().zip(&values).map(|(k, v)| (&k[..], &v[..])));
        assert_eq!(decode_touched(&encoded), Some(keys.clone()));
        let checked = decode_touched_checked(&encoded).unwrap();
        for ((key, check), (k, v)) in checked.iter().zip(keys.iter().zip(&values)) {
            assert_eq!((key, *check), (k, Some(value_check(v))));
        }
        assert_eq!(decode_touched(&encoded[..encoded.len() - 1]), None);
        assert_eq!(decode_touched(&[0, 0, 0, 5, 1]), None);
    }

    #[test]
    fn lists_written_before_checks_still_decode() {
        let old = [&[0, 0, 0, 1][..], b"a", &[0, 0, 0, 0], &[0, 0, 0, 2], b"bc"].concat();
        assert_eq!(
            decode_touched_checked(&old),
            Some(vec![
                (b"a".to_vec(), None),
                (vec![], None),
                (b"bc".to_vec(), None)
            ])
        );
    }
}

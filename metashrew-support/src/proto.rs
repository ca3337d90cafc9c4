//! Protobuf messages of the Metashrew ABI (package `metashrew`), via `prost`.

/// Mirrors Metashrew's generated module path `proto::metashrew`.
pub mod metashrew {
    /// `message KeyValueFlush { repeated bytes list = 1; }`: alternating keys and values, as
    /// handed to `__flush`.
    #[derive(Clone, PartialEq, Eq, prost::Message)]
    pub struct KeyValueFlush {
        #[prost(bytes = "vec", repeated, tag = "1")]
        /// Keys and values, alternating.
        pub list: Vec<Vec<u8>>,
    }

    /// `message ViewFunction`.
    #[derive(Clone, PartialEq, Eq, prost::Message)]
    pub struct ViewFunction {
        #[prost(string, tag = "1")]
        /// The view function's export name.
        pub name: String,
        #[prost(string, tag = "2")]
        /// The protobuf type of its input.
        pub input_type: String,
        #[prost(string, tag = "3")]
        /// The protobuf type of its output.
        pub output_type: String,
    }

    /// `message IndexerMetadata`.
    #[derive(Clone, PartialEq, Eq, prost::Message)]
    pub struct IndexerMetadata {
        #[prost(string, tag = "1")]
        /// Version of the compiler that built the indexer.
        pub compiler_version: String,
        #[prost(string, tag = "2")]
        /// Version of rustc that built the indexer.
        pub rustc_version: String,
        #[prost(message, repeated, tag = "3")]
        /// The views the indexer exports.
        pub view_functions: Vec<ViewFunction>,
    }
}

pub use metashrew::KeyValueFlush;

/// Why a flush buffer could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum FlushDecodeError {
    #[error("malformed KeyValueFlush protobuf: {0}")]
    /// The bytes are not a protobuf `KeyValueFlush`.
    Protobuf(#[from] prost::DecodeError),
    #[error("KeyValueFlush holds an odd number of items ({0}): the last key has no value")]
    /// A key without a value.
    OddItemCount(usize),
}

/// Encodes key/value pairs as the `KeyValueFlush` bytes passed to `__flush`, in one exactly
/// sized buffer (no copy of the pairs is made first).
pub fn encode_flush<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    encode_flush_items(pairs.iter().flat_map(|(k, v)| [k.as_ref(), v.as_ref()]))
}

/// Encodes already alternating items (key, value, key, value, ...) as `KeyValueFlush` bytes.
pub fn encode_flush_items<'a, I>(items: I) -> Vec<u8>
where
    I: Iterator<Item = &'a [u8]> + Clone,
{
    encode_items_after(Vec::new(), items)
}

/// [`encode_flush_items`] in the ArrayBuffer layout `__flush` takes (u32 LE length first), built
/// in place: a block's flush can be megabytes, and this saves copying it.
pub fn encode_flush_arraybuffer<'a, I>(items: I) -> Vec<u8>
where
    I: Iterator<Item = &'a [u8]> + Clone,
{
    let mut out = encode_items_after(vec![0; 4], items);
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// Appends the encoded items to `head`, in one exactly sized allocation.
fn encode_items_after<'a, I>(mut head: Vec<u8>, items: I) -> Vec<u8>
where
    I: Iterator<Item = &'a [u8]> + Clone,
{
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
    let size: usize = items
        .clone()
        .map(|item| key_len(1) + encoded_len_varint(item.len() as u64) + item.len())
        .sum();
    head.reserve_exact(size);
    for item in items {
        encode_key(1, WireType::LengthDelimited, &mut head);
        encode_varint(item.len() as u64, &mut head);
        head.extend_from_slice(item);
    }
    head
}

/// Key/value pairs in flush order.
pub type FlushPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Decodes `KeyValueFlush` bytes into pairs, in order (a key may repeat: the last pair wins when
/// applied in order). An odd item count is an error, not a silently dropped key.
pub fn decode_flush(bytes: &[u8]) -> Result<FlushPairs, FlushDecodeError> {
    use prost::Message;
    let message = KeyValueFlush::decode(bytes)?;
    if message.list.len() % 2 != 0 {
        return Err(FlushDecodeError::OddItemCount(message.list.len()));
    }
    let mut items = message.list.into_iter();
    let mut pairs = Vec::with_capacity(items.len() / 2);
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        pairs.push((k, v));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_match_metashrew() {
        // ("k1" -> "v") is `0A 02 6B 31 0A 01 76` in Metashrew's notes.
        assert_eq!(
            encode_flush(&[(b"k1", b"v")]),
            vec![0x0A, 0x02, 0x6B, 0x31, 0x0A, 0x01, 0x76]
        );
    }

    #[test]
    fn direct_encoding_equals_prost_message_encoding() {
        use prost::Message;
        let pairs = vec![(vec![1u8; 200], vec![2u8; 70_000]), (b"k".to_vec(), vec![])];
        let message = KeyValueFlush {
            list: pairs
                .iter()
                .flat_map(|(k, v)| [k.clone(), v.clone()])
                .collect(),
        };
        assert_eq!(encode_flush(&pairs), message.encode_to_vec());
    }

    #[test]
    fn empty_value_and_empty_flush() {
        assert_eq!(
            encode_flush(&[(b"k", b"")]),
            vec![0x0A, 0x01, b'k', 0x0A, 0x00]
        );
        let none: [(&[u8], &[u8]); 0] = [];
        assert!(encode_flush(&none).is_empty());
        assert_eq!(decode_flush(&[]).unwrap(), vec![]);
        assert_eq!(
            decode_flush(&[0x0A, 0x01, b'k', 0x0A, 0x00]).unwrap(),
            vec![(b"k".to_vec(), vec![])]
        );
    }

    #[test]
    fn repeated_keys_round_trip_in_order() {
        let pairs = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
            (b"a".to_vec(), b"3".to_vec()),
        ];
        assert_eq!(decode_flush(&encode_flush(&pairs)).unwrap(), pairs);
    }

    #[test]
    fn odd_item_count_and_garbage_are_errors() {
        assert!(matches!(
            decode_flush(&[0x0A, 0x01, b'k']),
            Err(FlushDecodeError::OddItemCount(1))
        ));
        assert!(matches!(
            decode_flush(&[0x0A, 0x05, b'k']),
            Err(FlushDecodeError::Protobuf(_))
        ));
    }
}

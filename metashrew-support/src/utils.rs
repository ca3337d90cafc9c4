//! Cursor-based decoding helpers, as guests use them to parse their input.

use std::io::{Cursor, Read};

use bitcoin::consensus::{Decodable, Encodable};

use crate::byte_view::ByteView;

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unexpected end of input: needed {needed} bytes, {available} left")]
    UnexpectedEnd { needed: usize, available: usize },
    #[error("consensus decoding failed: {0}")]
    Consensus(#[from] bitcoin::consensus::encode::Error),
    #[error("i/o error while encoding: {0}")]
    Io(#[from] bitcoin::io::Error),
}

/// Bitcoin consensus encoding of `v`.
pub fn consensus_encode<T: Encodable>(v: &T) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    v.consensus_encode(&mut out)?;
    Ok(out)
}

/// Decodes a `T` from the cursor's remaining bytes and advances the cursor past it; trailing
/// data is left for the next read.
pub fn consensus_decode<T: Decodable>(cursor: &mut Cursor<Vec<u8>>) -> Result<T, DecodeError> {
    let (value, consumed) = bitcoin::consensus::deserialize_partial::<T>(remaining_slice(cursor))?;
    cursor.set_position(cursor.position() + consumed as u64);
    Ok(value)
}

/// Reads a little-endian fixed-width integer.
pub fn consume_sized_int<T: ByteView>(cursor: &mut Cursor<Vec<u8>>) -> Result<T, DecodeError> {
    let bytes = consume_exact(cursor, std::mem::size_of::<T>())?;
    Ok(T::from_bytes(bytes))
}

/// Reads a little-endian `u128`.
pub fn consume_u128(cursor: &mut Cursor<Vec<u8>>) -> Result<u128, DecodeError> {
    consume_sized_int::<u128>(cursor)
}

/// Reads exactly `n` bytes.
pub fn consume_exact(cursor: &mut Cursor<Vec<u8>>, n: usize) -> Result<Vec<u8>, DecodeError> {
    let available = remaining_slice(cursor).len();
    if available < n {
        return Err(DecodeError::UnexpectedEnd {
            needed: n,
            available,
        });
    }
    let mut buffer = vec![0u8; n];
    cursor
        .read_exact(&mut buffer)
        .map_err(|_| DecodeError::UnexpectedEnd {
            needed: n,
            available,
        })?;
    Ok(buffer)
}

/// Reads everything left (possibly nothing).
pub fn consume_to_end(cursor: &mut Cursor<Vec<u8>>) -> Result<Vec<u8>, DecodeError> {
    let rest = remaining_slice(cursor).to_vec();
    cursor.set_position(cursor.get_ref().len() as u64);
    Ok(rest)
}

/// Reads a Bitcoin CompactSize integer (`<0xfd` itself; `0xfd` u16, `0xfe` u32, `0xff` u64).
pub fn consume_varint(cursor: &mut Cursor<Vec<u8>>) -> Result<u64, DecodeError> {
    let tag = consume_sized_int::<u8>(cursor)?;
    Ok(match tag {
        0xff => consume_sized_int::<u64>(cursor)?,
        0xfe => u64::from(consume_sized_int::<u32>(cursor)?),
        0xfd => u64::from(consume_sized_int::<u16>(cursor)?),
        n => u64::from(n),
    })
}

/// Whether the cursor has nothing left.
pub fn is_empty(cursor: &mut Cursor<Vec<u8>>) -> bool {
    cursor.position() as usize >= cursor.get_ref().len()
}

/// The bytes not yet read.
pub fn remaining_slice(cursor: &Cursor<Vec<u8>>) -> &[u8] {
    let start = (cursor.position() as usize).min(cursor.get_ref().len());
    &cursor.get_ref()[start..]
}

/// A readable form of a key for logs: `/`-separated segments, ASCII shown as text, other
/// segments as hex.
pub fn format_key(v: &[u8]) -> String {
    v.split(|b| *b == b'/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            if segment.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
                format!("/{}", String::from_utf8_lossy(segment))
            } else {
                format!("/{}", hex::encode(segment))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_ints_and_rest() {
        let mut c = Cursor::new(vec![0x40, 0xD1, 0x0C, 0x00, 0xAA, 0xBB]);
        assert_eq!(consume_sized_int::<u32>(&mut c).unwrap(), 840_000);
        assert_eq!(consume_to_end(&mut c).unwrap(), vec![0xAA, 0xBB]);
        assert!(is_empty(&mut c));
        assert!(consume_to_end(&mut c).unwrap().is_empty());
        assert!(matches!(
            consume_sized_int::<u64>(&mut c),
            Err(DecodeError::UnexpectedEnd {
                needed: 8,
                available: 0
            })
        ));
    }

    #[test]
    fn compact_size() {
        let mut c = Cursor::new(vec![
            0x05, 0xfd, 0x00, 0x01, 0xfe, 1, 0, 0, 0, 0xff, 2, 0, 0, 0, 0, 0, 0, 0,
        ]);
        assert_eq!(consume_varint(&mut c).unwrap(), 5);
        assert_eq!(consume_varint(&mut c).unwrap(), 256);
        assert_eq!(consume_varint(&mut c).unwrap(), 1);
        assert_eq!(consume_varint(&mut c).unwrap(), 2);
    }

    #[test]
    fn consensus_decode_advances_past_the_value() {
        let header = bitcoin::constants::genesis_block(bitcoin::Network::Bitcoin).header;
        let mut bytes = consensus_encode(&header).unwrap();
        bytes.push(0x99);
        let mut c = Cursor::new(bytes);
        let decoded: bitcoin::block::Header = consensus_decode(&mut c).unwrap();
        assert_eq!(decoded, header);
        assert_eq!(c.position(), 80);
        assert_eq!(remaining_slice(&c), &[0x99]);
    }

    #[test]
    fn format_key_shows_text_and_hex() {
        assert_eq!(format_key(b"/blocks/12"), "/blocks/12");
        assert_eq!(format_key(b"/x/\x01\x02"), "/x/0102");
    }
}

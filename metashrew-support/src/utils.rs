//! Cursor-based decoding helpers, as guests use them to parse their input.
//!
//! Signatures are Metashrew's: every fallible helper returns [`anyhow::Result`], so indexers
//! return them straight from their own `anyhow::Result` functions with `?`.

use std::io::{Cursor, Read};

use anyhow::{Result, anyhow};
use bitcoin::consensus::{Decodable, Encodable};

use crate::byte_view::ByteView;

/// Bitcoin consensus encoding of `v`.
pub fn consensus_encode<T: Encodable>(v: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    v.consensus_encode(&mut out)?;
    Ok(out)
}

/// Decodes a `T` from the cursor's remaining bytes and advances the cursor past it; trailing
/// data is left for the next read.
pub fn consensus_decode<T: Decodable>(cursor: &mut Cursor<Vec<u8>>) -> Result<T> {
    let (value, consumed) = bitcoin::consensus::deserialize_partial::<T>(remaining_slice(cursor))?;
    cursor.set_position(cursor.position() + consumed as u64);
    Ok(value)
}

/// Reads a little-endian fixed-width integer of `size_of::<T>()` bytes.
pub fn consume_sized_int<T: ByteView>(cursor: &mut Cursor<Vec<u8>>) -> Result<T> {
    let bytes = consume_exact(cursor, std::mem::size_of::<T>())?;
    Ok(T::from_bytes(bytes))
}

/// Reads a little-endian `u128`.
pub fn consume_u128(cursor: &mut Cursor<Vec<u8>>) -> Result<u128> {
    consume_sized_int::<u128>(cursor)
}

/// Reads exactly `n` bytes; fails (consuming nothing) when fewer are left.
pub fn consume_exact(cursor: &mut Cursor<Vec<u8>>, n: usize) -> Result<Vec<u8>> {
    let available = remaining_slice(cursor).len();
    if available < n {
        return Err(anyhow!(
            "unexpected end of input: needed {n} bytes, {available} left"
        ));
    }
    let mut buffer = vec![0u8; n];
    cursor.read_exact(&mut buffer)?;
    Ok(buffer)
}

/// Reads everything left (possibly nothing).
pub fn consume_to_end(cursor: &mut Cursor<Vec<u8>>) -> Result<Vec<u8>> {
    let rest = remaining_slice(cursor).to_vec();
    cursor.set_position(cursor.get_ref().len() as u64);
    Ok(rest)
}

/// Reads a Bitcoin CompactSize integer (`<0xfd` itself; `0xfd` u16, `0xfe` u32, `0xff` u64).
pub fn consume_varint(cursor: &mut Cursor<Vec<u8>>) -> Result<u64> {
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
    cursor.position() >= cursor.get_ref().len() as u64
}

/// The bytes not yet read.
pub fn remaining_slice(cursor: &mut Cursor<Vec<u8>>) -> &[u8] {
    let start = usize::try_from(cursor.position())
        .unwrap_or(usize::MAX)
        .min(cursor.get_ref().len());
    &cursor.get_ref()[start..]
}

/// Copies out the ArrayBuffer-layout buffer whose data starts at `ptr` (its u32 LE length sits
/// at `ptr - 4`): how a guest reads a buffer the host or another export handed it.
///
/// Only meaningful in a wasm32 guest, where an `i32` is an address of the guest's own memory;
/// `ptr` must point at a live buffer in that layout. Metashrew read the length as a `usize` and
/// aliased the memory as a `Vec` it then leaked; this copies, and frees nothing it does not own.
/// On other targets there are no 32-bit addresses to read, and it panics.
pub fn ptr_to_vec(ptr: i32) -> Vec<u8> {
    #[cfg(target_arch = "wasm32")]
    {
        let data = ptr as u32 as usize as *const u8;
        // SAFETY: the caller hands a data pointer of a live ArrayBuffer-layout buffer (the
        // function's contract, as in Metashrew): 4 length bytes before it, `len` bytes after.
        unsafe {
            let mut header = [0u8; 4];
            std::ptr::copy_nonoverlapping(data.sub(4), header.as_mut_ptr(), 4);
            let len = u32::from_le_bytes(header) as usize;
            std::slice::from_raw_parts(data, len).to_vec()
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        panic!("ptr_to_vec({ptr:#x}): 32-bit guest pointers exist only in a wasm32 guest")
    }
}

/// A readable form of a key for logs, as Metashrew prints it: each `/`-separated segment as
/// `/text` when it is ASCII, `/hex` otherwise; empty segments vanish.
// `&Vec<u8>` is Metashrew's signature, kept so that ported indexers compile.
#[allow(clippy::ptr_arg)]
pub fn format_key(v: &Vec<u8>) -> String {
    v.split(|b| *b == b'/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            if segment.is_ascii() {
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

    fn with_question_mark(c: &mut Cursor<Vec<u8>>) -> anyhow::Result<(u32, Vec<u8>)> {
        // As indexers write it: helpers straight into an anyhow::Result function.
        Ok((consume_sized_int::<u32>(c)?, consume_to_end(c)?))
    }

    #[test]
    fn sized_ints_and_rest() {
        let mut c = Cursor::new(vec![0x40, 0xD1, 0x0C, 0x00, 0xAA, 0xBB]);
        let (height, rest) = with_question_mark(&mut c).unwrap();
        assert_eq!(height, 840_000);
        assert_eq!(rest, vec![0xAA, 0xBB]);
        assert!(is_empty(&mut c));
        assert!(consume_to_end(&mut c).unwrap().is_empty());
        let err = consume_sized_int::<u64>(&mut c).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected end of input: needed 8 bytes, 0 left"
        );
        assert_eq!(consume_u128(&mut Cursor::new(vec![7; 16])).unwrap(), {
            u128::from_le_bytes([7; 16])
        });
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
        assert!(consume_varint(&mut Cursor::new(vec![0xfe, 1])).is_err());
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
        assert_eq!(remaining_slice(&mut c), &[0x99]);
        assert!(consensus_decode::<bitcoin::block::Header>(&mut c).is_err());
    }

    #[test]
    fn format_key_shows_ascii_and_hex() {
        assert_eq!(format_key(&b"/blocks/12".to_vec()), "/blocks/12");
        assert_eq!(format_key(&b"/x/\x01\x02".to_vec()), "/x/\x01\x02");
        assert_eq!(format_key(&b"/x/\xff\x02".to_vec()), "/x/ff02");
    }

    #[test]
    #[should_panic(expected = "only in a wasm32 guest")]
    fn ptr_to_vec_is_wasm_only() {
        ptr_to_vec(1024);
    }
}

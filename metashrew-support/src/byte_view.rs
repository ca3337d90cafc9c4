//! Fixed-width little-endian encodings of unsigned integers, as Metashrew persists them.
//!
//! `usize` is 4 bytes in a wasm32 guest and 8 natively: never persist it.

/// A value with a fixed-width little-endian byte form.
pub trait ByteView: Sized {
    /// Decodes from exactly `size_of::<Self>()` little-endian bytes.
    ///
    /// # Panics
    /// If `v` has another length (Metashrew's behaviour; use [`ByteView::try_from_bytes`] to
    /// check first).
    fn from_bytes(v: Vec<u8>) -> Self;
    /// Decodes, or `None` when `v` has the wrong length.
    fn try_from_bytes(v: &[u8]) -> Option<Self>;
    fn to_bytes(&self) -> Vec<u8>;
    fn maximum() -> Self;
    fn zero() -> Self;
}

macro_rules! impl_byte_view {
    ($($t:ty),*) => {$(
        impl ByteView for $t {
            fn from_bytes(v: Vec<u8>) -> Self {
                match Self::try_from_bytes(&v) {
                    Some(x) => x,
                    None => panic!(
                        "incorrect length: {} bytes for a {}-byte {}",
                        v.len(),
                        std::mem::size_of::<$t>(),
                        stringify!($t)
                    ),
                }
            }
            fn try_from_bytes(v: &[u8]) -> Option<Self> {
                v.try_into().ok().map(<$t>::from_le_bytes)
            }
            fn to_bytes(&self) -> Vec<u8> {
                self.to_le_bytes().to_vec()
            }
            fn maximum() -> Self {
                <$t>::MAX
            }
            fn zero() -> Self {
                0
            }
        }
    )*};
}

impl_byte_view!(u8, u16, u32, u64, u128, usize);

/// Drops the first `v` bytes of `b` (empty if `b` is shorter).
pub fn shrink_back(b: Vec<u8>, v: usize) -> Vec<u8> {
    if b.len() < v {
        Vec::new()
    } else {
        b[v..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_round_trip() {
        assert_eq!(0x0102_0304u32.to_bytes(), vec![4, 3, 2, 1]);
        assert_eq!(u32::from_bytes(vec![4, 3, 2, 1]), 0x0102_0304);
        assert_eq!(u64::from_bytes(u64::MAX.to_bytes()), u64::MAX);
        assert_eq!(u128::zero(), 0);
        assert_eq!(u16::maximum(), u16::MAX);
        assert_eq!(u32::try_from_bytes(&[1, 2]), None);
    }

    #[test]
    #[should_panic(expected = "incorrect length")]
    fn wrong_length_panics_like_metashrew() {
        u64::from_bytes(vec![1, 2, 3]);
    }

    #[test]
    fn shrink_back_drops_a_prefix() {
        assert_eq!(shrink_back(vec![1, 2, 3], 1), vec![2, 3]);
        assert_eq!(shrink_back(vec![1], 2), Vec::<u8>::new());
    }
}

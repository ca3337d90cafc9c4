//! Fixed-width little-endian encodings of unsigned integers, as Metashrew persists them.
//!
//! `usize` is 4 bytes in a wasm32 guest and 8 natively: never persist it.

/// A value with a fixed-width byte form (Metashrew's trait: third parties implement it with its
/// four required methods, `from_bytes`, `to_bytes`, `maximum` and `zero`).
pub trait ByteView {
    /// Decodes from exactly the bytes `to_bytes` gives (for the integers: `size_of::<Self>()`
    /// little-endian bytes).
    ///
    /// # Panics
    /// If `v` has another length (Metashrew's behaviour; use [`ByteView::try_from_bytes`] to
    /// check first).
    fn from_bytes(v: Vec<u8>) -> Self;
    /// Little-endian bytes (Metashrew's encoding of stored numbers).
    fn to_bytes(&self) -> Vec<u8>;
    /// The type's largest value.
    fn maximum() -> Self;
    /// The type's zero.
    fn zero() -> Self;

    /// Decodes, or `None` when `v` does not have the length of this type's encoding (taken from
    /// `zero().to_bytes()`, so it holds for any fixed-width implementation).
    fn try_from_bytes(v: &[u8]) -> Option<Self>
    where
        Self: Sized,
    {
        (v.len() == Self::zero().to_bytes().len()).then(|| Self::from_bytes(v.to_vec()))
    }
}

macro_rules! impl_byte_view {
    ($($t:ty),*) => {$(
        impl ByteView for $t {
            fn from_bytes(v: Vec<u8>) -> Self {
                match <[u8; std::mem::size_of::<$t>()]>::try_from(v.as_slice()) {
                    Ok(bytes) => <$t>::from_le_bytes(bytes),
                    Err(_) => panic!(
                        "incorrect length: {} bytes for a {}-byte {}",
                        v.len(),
                        std::mem::size_of::<$t>(),
                        stringify!($t)
                    ),
                }
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

    /// A third-party type implementing only Metashrew's four required methods.
    #[derive(Debug, PartialEq)]
    struct Pair(u16, u16);

    impl ByteView for Pair {
        fn from_bytes(v: Vec<u8>) -> Self {
            Pair(
                u16::from_le_bytes([v[0], v[1]]),
                u16::from_le_bytes([v[2], v[3]]),
            )
        }
        fn to_bytes(&self) -> Vec<u8> {
            [self.0.to_le_bytes(), self.1.to_le_bytes()].concat()
        }
        fn maximum() -> Self {
            Pair(u16::MAX, u16::MAX)
        }
        fn zero() -> Self {
            Pair(0, 0)
        }
    }

    #[test]
    fn third_party_implementations_need_four_methods() {
        assert_eq!(Pair::try_from_bytes(&[1, 0, 2, 0]), Some(Pair(1, 2)));
        assert_eq!(Pair::try_from_bytes(&[1, 0, 2]), None);
        assert_eq!(
            Pair::from_bytes(Pair::maximum().to_bytes()),
            Pair::maximum()
        );
    }

    #[test]
    fn shrink_back_drops_a_prefix() {
        assert_eq!(shrink_back(vec![1, 2, 3], 1), vec![2, 3]);
        assert_eq!(shrink_back(vec![1], 2), Vec::<u8>::new());
    }
}

//! The ArrayBuffer layout and pointer helpers of the Metashrew ABI.
//!
//! Every byte string that crosses the guest/host boundary is laid out as
//! `[u32 little-endian length][bytes]`, and the pointer handed over is the address of the first
//! data byte (allocation base + 4).

/// `u32le(len) ++ v`.
pub fn to_arraybuffer_layout<T: AsRef<[u8]>>(v: T) -> Vec<u8> {
    let v = v.as_ref();
    let mut buffer = Vec::with_capacity(v.len() + 4);
    buffer.extend_from_slice(&(v.len() as u32).to_le_bytes());
    buffer.extend_from_slice(v);
    buffer
}

/// The address of `v`'s first byte as an i32 (addresses at or above 2 GiB become negative: the
/// host must read pointers as u32).
pub fn to_ptr(v: &mut Vec<u8>) -> i32 {
    v.as_mut_ptr() as usize as i32
}

/// [`to_ptr`] + 4: the data pointer of an ArrayBuffer-layout buffer.
pub fn to_passback_ptr(v: &mut Vec<u8>) -> i32 {
    to_ptr(v).wrapping_add(4)
}

/// Lays `bytes` out as an ArrayBuffer, leaks it (it must outlive the call that returns it) and
/// returns its data pointer: the return value of a view function.
pub fn export_bytes(bytes: Vec<u8>) -> i32 {
    let leaked: &'static mut Vec<u8> = Box::leak(Box::new(to_arraybuffer_layout(bytes)));
    to_passback_ptr(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arraybuffer_layout_prefixes_the_length() {
        assert_eq!(
            to_arraybuffer_layout(b"abc"),
            vec![3, 0, 0, 0, b'a', b'b', b'c']
        );
        assert_eq!(to_arraybuffer_layout([]), vec![0, 0, 0, 0]);
    }

    #[test]
    fn passback_pointer_is_four_past_the_base() {
        let mut v = to_arraybuffer_layout(b"x");
        assert_eq!(to_passback_ptr(&mut v), to_ptr(&mut v).wrapping_add(4));
    }
}

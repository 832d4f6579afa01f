//! Zig-zag LEB128 varints, as in Kafka's record format.
//!
//! Signed values are zig-zag mapped (0, -1, 1, -2, ... → 0, 1, 2, 3, ...) so small magnitudes
//! of either sign take one byte. A 32-bit varint takes at most 5 bytes, a 64-bit one at most
//! 10; longer encodings are rejected rather than silently wrapped.

/// Largest encoding of a 64-bit varint.
pub(crate) const MAX_VARLONG_LEN: usize = 10;
/// Largest encoding of a 32-bit varint.
pub(crate) const MAX_VARINT_LEN: usize = 5;

#[inline]
pub(crate) fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The value of a one- or two-byte varint of either width, from its 14 payload bits `z`.
#[allow(clippy::inline_always)] // a shift and a xor, on the decoder's hot path
#[inline(always)]
pub(crate) fn unzigzag_short(z: u16) -> i32 {
    let z = i32::from(z);
    (z >> 1) ^ -(z & 1)
}

/// Bytes needed to encode `v` as a varlong: branches for the common short ones (record
/// lengths, deltas), which are cheaper than the general count of significant bits.
#[inline]
pub(crate) fn len_i64(v: i64) -> usize {
    let z = zigzag64(v);
    if z < 1 << 7 {
        1
    } else if z < 1 << 14 {
        2
    } else {
        let bits = 64 - (z | 1).leading_zeros() as usize;
        bits.div_ceil(7)
    }
}

/// Bytes needed to encode `v` as a varint.
#[inline]
pub(crate) fn len_i32(v: i32) -> usize {
    len_i64(i64::from(v))
}

/// Append `v` as a varlong (tests; the encoder writes varints in place, see
/// `batch::Writer`).
#[cfg(test)]
pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    let mut z = zigzag64(v);
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Append `v` as a varint (tests).
#[cfg(test)]
pub(crate) fn put_i32(out: &mut Vec<u8>, v: i32) {
    put_i64(out, i64::from(v));
}

/// Decode a varlong from the front of `buf`: `(value, bytes used)`, or `None` when `buf` ends
/// first or the encoding is longer than 10 bytes.
#[inline]
pub(crate) fn get_i64(buf: &[u8]) -> Option<(i64, usize)> {
    get_unsigned(buf, MAX_VARLONG_LEN).map(|(z, n)| (unzigzag64(z), n))
}

/// Decode a varint from the front of `buf`: `(value, bytes used)`, or `None` when `buf` ends
/// first, the encoding is longer than 5 bytes or the value does not fit in an `i32`.
#[inline]
pub(crate) fn get_i32(buf: &[u8]) -> Option<(i32, usize)> {
    let (z, n) = get_unsigned(buf, MAX_VARINT_LEN)?;
    let v = unzigzag64(z);
    i32::try_from(v).ok().map(|v| (v, n))
}

/// One byte is the common case (small deltas, short lengths, the attributes' neighbours):
/// it returns without a loop; longer encodings take [`get_unsigned_long`].
#[inline]
fn get_unsigned(buf: &[u8], max_len: usize) -> Option<(u64, usize)> {
    match buf.first() {
        Some(&b) if b < 0x80 => Some((u64::from(b), 1)),
        Some(_) => get_unsigned_long(buf, max_len),
        None => None,
    }
}

/// A varint of two or more bytes, at most `max_len`: a plain indexed loop, no adaptors.
#[inline]
fn get_unsigned_long(buf: &[u8], max_len: usize) -> Option<(u64, usize)> {
    let n = buf.len().min(max_len);
    let mut value: u64 = 0;
    let mut i = 0;
    while i < n {
        let b = buf[i];
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((value, i + 1));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip64(v: i64) {
        let mut out = Vec::new();
        put_i64(&mut out, v);
        assert_eq!(out.len(), len_i64(v), "length of {v}");
        assert_eq!(get_i64(&out), Some((v, out.len())));
    }

    #[test]
    fn zigzag_maps_small_magnitudes_to_one_byte() {
        for v in [-64i64, -1, 0, 1, 63] {
            assert_eq!(len_i64(v), 1, "{v}");
        }
        assert_eq!(len_i64(64), 2);
        assert_eq!(len_i64(-65), 2);
    }

    #[test]
    fn known_kafka_encodings() {
        // Kafka's ByteUtils.writeVarint: 0 → 00, -1 → 01, 1 → 02, 300 → d8 04.
        let mut out = Vec::new();
        put_i32(&mut out, 300);
        assert_eq!(out, [0xd8, 0x04]);
        out.clear();
        put_i32(&mut out, -1);
        assert_eq!(out, [0x01]);
    }

    #[test]
    fn roundtrips_extremes() {
        for v in [
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            1,
            i64::MAX,
            i64::from(i32::MAX),
            1 << 35,
        ] {
            roundtrip64(v);
        }
        assert_eq!(len_i64(i64::MIN), MAX_VARLONG_LEN);
        assert_eq!(len_i32(i32::MIN), MAX_VARINT_LEN);
    }

    /// The decoder as it was (iterator adaptors): the tight one must agree on every input.
    fn reference(buf: &[u8], max_len: usize) -> Option<(u64, usize)> {
        let mut value: u64 = 0;
        for (i, &b) in buf.iter().take(max_len).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some((value, i + 1));
            }
        }
        None
    }

    #[test]
    fn tight_decoder_agrees_with_the_reference_on_every_short_input() {
        let bytes = [0x00, 0x01, 0x7f, 0x80, 0x81, 0xfe, 0xff];
        let mut buf = Vec::new();
        for len in 0..=6usize {
            let combos = bytes.len().pow(u32::try_from(len).unwrap());
            for mut k in 0..combos {
                buf.clear();
                for _ in 0..len {
                    buf.push(bytes[k % bytes.len()]);
                    k /= bytes.len();
                }
                for max in [MAX_VARINT_LEN, MAX_VARLONG_LEN] {
                    assert_eq!(get_unsigned(&buf, max), reference(&buf, max), "{buf:02x?}");
                }
            }
        }
        let long = [0xffu8; 12];
        for len in 0..=12 {
            assert_eq!(get_unsigned(&long[..len], 10), reference(&long[..len], 10));
        }
    }

    #[test]
    fn short_values_match_the_general_decoder() {
        for z in 0u16..(1 << 14) {
            let mut out = Vec::new();
            put_i64(&mut out, unzigzag64(u64::from(z)));
            assert!(out.len() <= 2);
            let v = i64::from(unzigzag_short(z));
            assert_eq!(get_i64(&out), Some((v, out.len())), "{z}");
        }
    }

    #[test]
    fn rejects_truncated_and_overlong() {
        assert_eq!(get_i64(&[]), None);
        assert_eq!(get_i64(&[0x80]), None);
        assert_eq!(get_i64(&[0xff; 11]), None);
        // Six bytes is too long for a 32-bit varint.
        assert_eq!(get_i32(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), None);
        // Fits in five bytes but not in an i32.
        let mut out = Vec::new();
        put_i64(&mut out, i64::from(i32::MAX) + 1);
        assert_eq!(get_i32(&out), None);
    }
}

//! Little-endian machine words from byte slices shorter than a word, for the code that works a
//! word at a time (JSON string scanning and writing, SHA-256 block assembly).

/// The bytes of `b` (fewer than eight) as the low bytes of a little-endian word, the rest zero.
/// Two overlapping fixed-size loads (of 4 or 2 bytes) instead of a byte loop or a `memcpy`
/// call; where they overlap they hold the same bytes, so OR-ing them is exact.
#[inline]
pub(crate) fn short_le_word(b: &[u8]) -> u64 {
    let n = b.len();
    debug_assert!(n < 8);
    match (b.first_chunk::<4>(), b.last_chunk::<4>()) {
        (Some(lo), Some(hi)) => {
            u64::from(u32::from_le_bytes(*lo)) | u64::from(u32::from_le_bytes(*hi)) << ((n - 4) * 8)
        }
        _ => match (b.first_chunk::<2>(), b.last_chunk::<2>()) {
            (Some(lo), Some(hi)) => {
                u64::from(u16::from_le_bytes(*lo))
                    | u64::from(u16::from_le_bytes(*hi)) << ((n - 2) * 8)
            }
            _ => b.first().map_or(0, |&b| u64::from(b)),
        },
    }
}

/// The first sixteen bytes of `b` (all of it, zero-padded, when shorter) as a little-endian
/// double word.
#[inline]
pub(crate) fn le_double_word(b: &[u8]) -> u128 {
    if let Some(w) = b.first_chunk::<16>() {
        return u128::from_le_bytes(*w);
    }
    match (b.first_chunk::<8>(), b.last_chunk::<8>()) {
        // As in `short_le_word`: the last eight bytes overlap the first eight exactly.
        (Some(lo), Some(hi)) => {
            u128::from(u64::from_le_bytes(*lo))
                | u128::from(u64::from_le_bytes(*hi)) << ((b.len() - 8) * 8)
        }
        _ => u128::from(short_le_word(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_hold_exactly_the_bytes_given() {
        let bytes: Vec<u8> = (1..=40).collect();
        for start in 0..bytes.len() {
            for n in 0..=(bytes.len() - start).min(16) {
                let b = &bytes[start..start + n];
                let mut padded = [0u8; 16];
                padded[..n].copy_from_slice(b);
                let expected = u128::from_le_bytes(padded);
                assert_eq!(le_double_word(b), expected, "{n} bytes at {start}");
                if n < 8 {
                    assert_eq!(
                        u128::from(short_le_word(b)),
                        expected,
                        "{n} bytes at {start}"
                    );
                }
            }
        }
    }
}

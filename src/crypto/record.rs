//! Layout of a sealed batch body.
//!
//! The plaintext is cut into records of [`RECORD_LEN`] bytes (the last may be
//! shorter; an empty body is one empty record). Sealed, the body is all the
//! ciphertext (as long as the plaintext) followed by one [`TAG_LEN`]-byte tag
//! per record, in record order. Record `i` of the batch with counter `c` uses
//! the nonce `i` (u32 LE) ‖ `c` (u64 LE).

use core::ops::Range;

use super::cipher::{NONCE_LEN, TAG_LEN};

/// Plaintext bytes per record (all but the last record are this long).
pub const RECORD_LEN: usize = 65536;

/// Sealed bytes of one full record.
const FULL_RECORD: usize = RECORD_LEN + TAG_LEN;

/// Most records a body may have: the record index is 32 bits of the nonce.
const MAX_RECORDS: u64 = 1 << 32;

/// Records in a body of `plain_len` bytes (at least one).
pub(crate) fn record_count(plain_len: usize) -> usize {
    plain_len.div_ceil(RECORD_LEN).max(1)
}

/// Whether a body of `plain_len` bytes fits the 32-bit record index.
pub(crate) fn fits_nonce(plain_len: usize) -> bool {
    record_count(plain_len) as u64 <= MAX_RECORDS
}

/// Sealed length of a body of `plain_len` plaintext bytes (saturating at
/// `usize::MAX` for absurd lengths no buffer can have).
pub fn sealed_len(plain_len: usize) -> usize {
    plain_len.saturating_add(record_count(plain_len).saturating_mul(TAG_LEN))
}

/// Plaintext length of a sealed body of `sealed_len` bytes, or `None` if no
/// plaintext length seals to exactly that many bytes.
pub fn plain_len(sealed_len: usize) -> Option<usize> {
    let full = sealed_len / FULL_RECORD;
    let rest = sealed_len % FULL_RECORD;
    let plain = if full == 0 && rest == TAG_LEN {
        0
    } else if full > 0 && rest == 0 {
        full * RECORD_LEN
    } else if rest > TAG_LEN {
        full * RECORD_LEN + rest - TAG_LEN
    } else {
        return None;
    };
    fits_nonce(plain).then_some(plain)
}

/// Byte range of record `record` within a plaintext of `plain_len` bytes.
/// `record` is below [`record_count`]`(plain_len)`.
pub(crate) fn record_range(record: u32, plain_len: usize) -> Range<usize> {
    let start = (record as usize).saturating_mul(RECORD_LEN).min(plain_len);
    start..start.saturating_add(RECORD_LEN).min(plain_len)
}

/// The AEAD nonce of record `record` of the batch with counter `counter`.
pub(crate) fn nonce(record: u32, counter: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..4].copy_from_slice(&record.to_le_bytes());
    nonce[4..].copy_from_slice(&counter.to_le_bytes());
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_lengths_table() {
        let cases = [
            (0, 16),
            (1, 17),
            (65535, 65551),
            (65536, 65552),
            (65537, 65569),
            (3 * 65536 + 5, 3 * 65536 + 5 + 4 * 16),
        ];
        for (plain, sealed) in cases {
            assert_eq!(sealed_len(plain), sealed, "sealed_len({plain})");
            assert_eq!(plain_len(sealed), Some(plain), "plain_len({sealed})");
        }
    }

    #[test]
    fn plain_len_inverts_sealed_len_exactly() {
        let limit = 3 * FULL_RECORD + 40;
        let mut preimage = vec![None; limit];
        for plain in 0..limit {
            if let Some(slot) = preimage.get_mut(sealed_len(plain)) {
                *slot = Some(plain);
            }
        }
        for (sealed, expected) in preimage.into_iter().enumerate() {
            assert_eq!(plain_len(sealed), expected, "{sealed}");
        }
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn lengths_beyond_the_record_index_are_invalid() {
        assert_eq!(plain_len(usize::MAX), None);
        assert_eq!(sealed_len(usize::MAX), usize::MAX);
        assert!(!fits_nonce(usize::MAX));
    }

    #[test]
    fn invalid_sealed_lengths() {
        for sealed in [
            0,
            1,
            15,
            FULL_RECORD + 1,
            FULL_RECORD + 16,
            2 * FULL_RECORD + 16,
        ] {
            assert_eq!(plain_len(sealed), None, "{sealed}");
        }
    }

    #[test]
    fn records_cover_the_body_in_order() {
        assert_eq!(record_range(0, 0), 0..0);
        assert_eq!(record_range(0, 5), 0..5);
        assert_eq!(record_range(0, 65537), 0..65536);
        assert_eq!(record_range(1, 65537), 65536..65537);
        assert_eq!(record_count(0), 1);
        assert_eq!(record_count(65536), 1);
        assert_eq!(record_count(65537), 2);
    }

    #[test]
    fn nonce_is_record_then_counter_little_endian() {
        assert_eq!(
            nonce(0x0102_0304, 0x1112_1314_1516_1718),
            [4, 3, 2, 1, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]
        );
    }
}

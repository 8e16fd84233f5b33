//! Bounds-checked big-endian field access for untrusted buffers.
//!
//! Every reader returns `None` when the field does not lie wholly inside the buffer, so callers can
//! never index out of bounds.

/// The `N` bytes starting at `offset`, if the buffer holds all of them.
pub(crate) fn array_at<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    bytes.get(offset..)?.first_chunk::<N>().copied()
}

/// The byte at `offset`, if present.
pub(crate) fn u8_at(bytes: &[u8], offset: usize) -> Option<u8> {
    bytes.get(offset).copied()
}

/// The big-endian `u16` at `offset`, if present.
pub(crate) fn be16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    array_at(bytes, offset).map(u16::from_be_bytes)
}

/// The big-endian `u32` at `offset`, if present.
pub(crate) fn be32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    array_at(bytes, offset).map(u32::from_be_bytes)
}

/// The big-endian `u64` at `offset`, if present.
pub(crate) fn be64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    array_at(bytes, offset).map(u64::from_be_bytes)
}

/// `bytes` cut to at most `limit` bytes (SCSI allocation-length truncation).
pub(crate) fn truncated(mut bytes: Vec<u8>, limit: usize) -> Vec<u8> {
    bytes.truncate(limit);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_inside_the_buffer() {
        let b = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09];
        assert_eq!(u8_at(&b, 8), Some(0x09));
        assert_eq!(be16_at(&b, 7), Some(0x0809));
        assert_eq!(be32_at(&b, 1), Some(0x0203_0405));
        assert_eq!(be64_at(&b, 1), Some(0x0203_0405_0607_0809));
    }

    #[test]
    fn refuses_fields_past_the_end() {
        let b = [0u8; 4];
        assert_eq!(u8_at(&b, 4), None);
        assert_eq!(be16_at(&b, 3), None);
        assert_eq!(be32_at(&b, 1), None);
        assert_eq!(be64_at(&b, 0), None);
        assert_eq!(be16_at(&b, usize::MAX), None);
        assert_eq!(be64_at(&[], 0), None);
    }

    #[test]
    fn truncates_to_the_limit() {
        assert_eq!(truncated(vec![1, 2, 3], 2), vec![1, 2]);
        assert_eq!(truncated(vec![1, 2, 3], 9), vec![1, 2, 3]);
    }
}

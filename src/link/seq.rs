//! Frame sequence numbers: 64-bit inside the link, 32-bit on the wire.
//!
//! A sender never has more than [`crate::link::config::WINDOW_FRAMES`] frames between its oldest
//! unacknowledged frame and its newest, far less than 2^31, so the receiver recovers the full
//! number as the 64-bit value nearest to one it expects (the method of RFC 9000 appendix A.3).

/// Sequence numbers at or above this are never sent and never accepted: a handshake's
/// `send_base`, a frame, an ACK or a SKIP that reaches it is refused, so that no arithmetic on
/// a peer's sequence values (plus the window) can overflow. At a billion packets a second a
/// sender needs 146 years to get there.
pub const MAX_SEQ: u64 = 1 << 62;

/// The low 32 bits of `seq`, as sent.
pub fn truncate(seq: u64) -> u32 {
    seq as u32
}

/// The 64-bit sequence number whose low 32 bits are `wire` and which lies nearest to
/// `reference` (ties resolve upwards). Never overflows or underflows.
pub fn expand(wire: u32, reference: u64) -> u64 {
    const SPAN: i128 = 1 << 32;
    let r = i128::from(reference);
    let candidate = (r & !(SPAN - 1)) | i128::from(wire);
    let nearest = if candidate + SPAN / 2 <= r {
        candidate + SPAN
    } else if candidate > r + SPAN / 2 {
        candidate - SPAN
    } else {
        candidate
    };
    if (0..=i128::from(u64::MAX)).contains(&nearest) {
        nearest as u64
    } else {
        candidate as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_near_the_reference() {
        let cases: &[(u32, u64, u64)] = &[
            (5, 0, 5),
            (0, 0, 0),
            (0xffff_fffe, 0xffff_fff0, 0xffff_fffe),
            // Across the 32-bit wrap, both directions.
            (3, 0xffff_fffe, 0x1_0000_0003),
            (0xffff_fffe, 0x1_0000_0003, 0xffff_fffe),
            (0, 0x1_0000_0000, 0x1_0000_0000),
            (0x7fff_ffff, 0x1_0000_0000, 0x1_7fff_ffff),
            (0x8000_0001, 0x1_0000_0000, 0x8000_0001),
            // Near the bottom there is nothing below zero to wrap to.
            (0xffff_ffff, 5, 0xffff_ffff),
            // Near the top there is nothing above u64::MAX.
            (1, u64::MAX, 0xffff_ffff_0000_0001),
        ];
        for &(wire, reference, want) in cases {
            assert_eq!(
                expand(wire, reference),
                want,
                "wire {wire:#x} ref {reference:#x}"
            );
        }
    }

    #[test]
    fn truncate_then_expand_is_identity_within_half_the_space() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let seq = x >> 2;
            let offset = (x as i64 % (1 << 30)) as i128;
            let reference = (seq as i128 + offset).clamp(0, u64::MAX as i128) as u64;
            assert_eq!(expand(truncate(seq), reference), seq);
        }
    }
}

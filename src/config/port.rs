//! Fibre Channel port names (WWPNs) in the two spellings people paste: `naa.5001405fc0000001`
//! (LIO, targetcli) and `50:01:40:5f:c0:00:00:01` (sysfs `port_name`, switch zoning).

use crate::crypto::PublicKey;

/// Parses a port name written as `naa.` and 16 hex digits, or as 8 colon-separated pairs of hex
/// digits. Both the `naa.` prefix and the digits are case-insensitive; nothing else (no `0x`,
/// no signs, no whitespace) is accepted.
///
/// ```
/// use fcvpn::config::parse_port_name;
/// assert_eq!(parse_port_name("naa.5001405FC0000001"), Some(0x5001_405f_c000_0001));
/// assert_eq!(parse_port_name("50:01:40:5f:c0:00:00:01"), Some(0x5001_405f_c000_0001));
/// assert_eq!(parse_port_name("5001405fc0000001"), None);
/// ```
pub fn parse_port_name(s: &str) -> Option<u64> {
    if let Some(prefix) = s.get(..4)
        && prefix.eq_ignore_ascii_case("naa.")
    {
        let digits = &s[4..];
        return (digits.len() == 16 && is_hex(digits))
            .then(|| u64::from_str_radix(digits, 16).ok())
            .flatten();
    }
    let mut value = 0u64;
    let mut pairs = 0;
    for pair in s.split(':') {
        if pair.len() != 2 || !is_hex(pair) {
            return None;
        }
        value = (value << 8) | u64::from(u8::from_str_radix(pair, 16).ok()?);
        pairs += 1;
    }
    (pairs == 8).then_some(value)
}

/// Only ASCII hex digits: `from_str_radix` alone would also take a leading `+`.
fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `naa.` and 16 lowercase hex digits, as LIO names FC ports: `naa.5001405fc0000001`.
pub fn format_port_naa(port: u64) -> String {
    format!("naa.{port:016x}")
}

/// 8 colon-separated lowercase hex pairs, as sysfs and zoning tools show FC port names:
/// `50:01:40:5f:c0:00:00:01`.
pub fn format_port_colon(port: u64) -> String {
    let bytes = port.to_be_bytes();
    let mut s = String::with_capacity(23);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// What is hashed before the public key for [`default_port_name`].
pub const DEFAULT_PORT_DOMAIN: &[u8] = b"fcvpn default WWPN v1";

/// The port name used when `fc.port` is not set: the first 8 bytes, big-endian, of
/// BLAKE2s-256(`DEFAULT_PORT_DOMAIN` ‖ this end's public key), with the top nibble replaced by
/// 5 (NAA type 5, "IEEE Registered", the format of real HBA WWPNs). Deterministic, so a
/// restart keeps the name; distinct for distinct keys with overwhelming probability. Hashed,
/// not copied from the key: a WWPN is seen by the whole fabric, and 60 bits of the raw key
/// would let anyone holding candidate keys tell which one this host uses without the
/// handshake (a hash still allows that test for a key one knows, but gives nothing towards
/// an unknown key).
pub fn default_port_name(public: &PublicKey) -> u64 {
    use blake2::{Blake2s256, Digest};
    let digest = Blake2s256::new()
        .chain_update(DEFAULT_PORT_DOMAIN)
        .chain_update(public.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) & 0x0fff_ffff_ffff_ffff) | 0x5000_0000_0000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: u64 = 0x5001_405f_c000_0001;
    /// Default port names of two fixed keys (computed independently with Python's hashlib).
    const DEFAULT_PORT_KEYED: u64 = 0x5d1b_5807_8e30_e957;
    const DEFAULT_PORT_ZERO: u64 = 0x573b_1c44_bc90_77bf;

    #[test]
    fn parses_both_spellings_in_any_case() {
        for s in [
            "naa.5001405fc0000001",
            "NAA.5001405FC0000001",
            "Naa.5001405fC0000001",
            "50:01:40:5f:c0:00:00:01",
            "50:01:40:5F:C0:00:00:01",
        ] {
            assert_eq!(parse_port_name(s), Some(PORT), "{s}");
        }
        assert_eq!(parse_port_name("naa.ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_port_name("00:00:00:00:00:00:00:00"), Some(0));
    }

    #[test]
    fn refuses_everything_else() {
        for s in [
            "",
            "naa.",
            "naa.5001405fc000001",
            "naa.5001405fc00000011",
            "naa.+001405fc0000001",
            "naa.5001405fc000000g",
            "naa 5001405fc0000001",
            "5001405fc0000001",
            "0x5001405fc0000001",
            "50:01:40:5f:c0:00:00",
            "50:01:40:5f:c0:00:00:01:02",
            "50:01:40:5f:c0:00:00:1",
            "50:01:40:5f:c0:00:00:+1",
            "50:01:40:5f:c0:00:00:01:",
            ":50:01:40:5f:c0:00:00:01",
            "50-01-40-5f-c0-00-00-01",
            " naa.5001405fc0000001",
            "naa.5001405fc0000001 ",
            "näa.5001405fc0000001",
        ] {
            assert_eq!(parse_port_name(s), None, "{s:?}");
        }
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format_port_naa(PORT), "naa.5001405fc0000001");
        assert_eq!(format_port_colon(PORT), "50:01:40:5f:c0:00:00:01");
        assert_eq!(format_port_naa(1), "naa.0000000000000001");
        assert_eq!(format_port_colon(1), "00:00:00:00:00:00:00:01");
        for port in [0, 1, PORT, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(parse_port_name(&format_port_naa(port)), Some(port));
            assert_eq!(parse_port_name(&format_port_colon(port)), Some(port));
        }
    }

    #[test]
    fn default_port_is_naa5_from_a_hash_of_the_key() {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&[0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89]);
        let key = PublicKey::from_bytes(bytes);
        let zero = PublicKey::from_bytes([0; 32]);
        // Pinned values (proto/SPEC.md §11.1): the key's own bytes do not show through.
        assert_eq!(default_port_name(&key), DEFAULT_PORT_KEYED);
        assert_eq!(default_port_name(&zero), DEFAULT_PORT_ZERO);
        for port in [DEFAULT_PORT_KEYED, DEFAULT_PORT_ZERO] {
            assert_eq!(port >> 60, 5, "{port:016x}");
        }
        assert_ne!(
            DEFAULT_PORT_KEYED & 0x0fff_ffff_0000_0000,
            0x0bcd_ef01_0000_0000
        );
    }
}

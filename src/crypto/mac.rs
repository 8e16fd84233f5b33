//! mac1: the cheap filter in front of every handshake message (as WireGuard).
//!
//! mac1 = keyed BLAKE2s with a 16-byte output, keyed by
//! BLAKE2s-256(`"mac1----"` ‖ the receiver's static public key), over the
//! batch header ‖ the message body up to mac1. Only someone who knows the
//! receiver's public key can make one, and checking it costs one hash, so a
//! receiver verifies it before any Diffie-Hellman.

use blake2::Blake2sMac;
use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};

use super::kdf::{HASH_LEN, hash};
use super::keys::PublicKey;

/// Length of mac1 in bytes.
pub(crate) const MAC1_LEN: usize = 16;

/// Domain-separation label for the mac1 key.
const LABEL_MAC1: &[u8] = b"mac1----";

/// Keyed BLAKE2s with a 16-byte output (the output size is part of the
/// BLAKE2 parameter block, so this is not a truncated 32-byte MAC).
type Blake2sMac128 = Blake2sMac<U16>;

/// The mac1 key for messages sent to one receiver. Derived from a public
/// key, so it is not secret.
#[derive(Clone, Debug)]
pub(crate) struct Mac1Key([u8; HASH_LEN]);

impl Mac1Key {
    /// The key for messages whose receiver has static key `receiver`.
    pub(crate) fn for_receiver(receiver: &PublicKey) -> Self {
        Self(hash(&[LABEL_MAC1, receiver.as_bytes()]))
    }

    fn mac(&self, header: &[u8], body: &[u8]) -> Blake2sMac128 {
        let mut mac = <Blake2sMac128 as KeyInit>::new((&self.0).into());
        Mac::update(&mut mac, header);
        Mac::update(&mut mac, body);
        mac
    }

    /// mac1 over `header` ‖ `body` (`body` excludes the mac1 field itself).
    pub(crate) fn compute(&self, header: &[u8], body: &[u8]) -> [u8; MAC1_LEN] {
        self.mac(header, body).finalize().into_bytes().into()
    }

    /// Whether `mac1` is right for `header` ‖ `body`, compared in constant time.
    pub(crate) fn verify(&self, header: &[u8], body: &[u8], mac1: &[u8]) -> bool {
        self.mac(header, body).verify_slice(mac1).is_ok()
    }
}

/// Keyed BLAKE2s with a 16-byte output over the concatenation of `parts`, for a key of 1 to
/// 32 bytes (mac2 and cookies).
///
/// # Panics
/// If `key` is empty or longer than 32 bytes; every caller passes a 16- or 32-byte key.
pub(crate) fn mac16(key: &[u8], parts: &[&[u8]]) -> [u8; MAC1_LEN] {
    let mut mac = <Blake2sMac128 as KeyInit>::new_from_slice(key)
        .expect("BLAKE2s takes keys of 1 to 32 bytes");
    for part in parts {
        Mac::update(&mut mac, part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Mac1Key {
        Mac1Key::for_receiver(&PublicKey::from_bytes([byte; 32]))
    }

    #[test]
    fn key_is_hash_of_label_and_receiver() {
        let mut input = b"mac1----".to_vec();
        input.extend_from_slice(&[7; 32]);
        assert_eq!(key(7).0, hash(&[&input]));
    }

    #[test]
    fn verify_accepts_own_mac_and_rejects_changes() {
        let k = key(1);
        let mac1 = k.compute(b"header", b"body");
        assert!(k.verify(b"header", b"body", &mac1));
        assert!(!key(2).verify(b"header", b"body", &mac1));
        assert!(!k.verify(b"headeR", b"body", &mac1));
        assert!(!k.verify(b"header", b"bodY", &mac1));
        assert!(!k.verify(b"header", b"body", &mac1[..15]));
        let mut flipped = mac1;
        flipped[3] ^= 4;
        assert!(!k.verify(b"header", b"body", &flipped));
    }

    #[test]
    fn output_size_is_in_the_parameter_block() {
        // A 16-byte BLAKE2s is not the first half of the 32-byte one.
        let k = key(1);
        let mut long = <Blake2sMac<blake2::digest::consts::U32> as KeyInit>::new((&k.0).into());
        Mac::update(&mut long, b"hb");
        let long: [u8; 32] = long.finalize().into_bytes().into();
        assert_ne!(k.compute(b"h", b"b")[..], long[..16]);
    }
}

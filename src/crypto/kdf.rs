//! BLAKE2s-256 hashing, HMAC-BLAKE2s and the Noise HKDF (Noise spec rev 34, §4.3).
//!
//! HMAC is written here, not taken from the `hmac` crate, so that its padded
//! key blocks live in wiping buffers (the crate keeps its outer pad unwiped).

use blake2::{Blake2s256, Digest};
use zeroize::Zeroizing;

use super::keys::Key;

/// BLAKE2s-256 output length (Noise `HASHLEN`).
pub(crate) const HASH_LEN: usize = 32;

/// BLAKE2s block length (Noise `BLOCKLEN`), the HMAC pad length.
const BLOCK_LEN: usize = 64;

/// BLAKE2s-256 of the concatenation of `parts`.
pub(crate) fn hash(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut hasher = Blake2s256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// HMAC-BLAKE2s (RFC 2104) with a 32-byte key over the concatenation of `parts`.
pub(crate) fn hmac(key: &[u8; HASH_LEN], parts: &[&[u8]]) -> Zeroizing<[u8; HASH_LEN]> {
    let mut pad = Zeroizing::new([0x36u8; BLOCK_LEN]);
    for (p, k) in pad.iter_mut().zip(key) {
        *p ^= k;
    }
    let mut inner = Blake2s256::new();
    inner.update(&pad[..]);
    for part in parts {
        inner.update(part);
    }
    let inner_hash = Zeroizing::new(<[u8; HASH_LEN]>::from(inner.finalize()));
    // Turn the inner pad (key ^ 0x36) into the outer pad (key ^ 0x5c).
    for p in pad.iter_mut() {
        *p ^= 0x36 ^ 0x5c;
    }
    let mut outer = Blake2s256::new();
    outer.update(&pad[..]);
    outer.update(&inner_hash[..]);
    Zeroizing::new(outer.finalize().into())
}

/// Noise `HKDF(chaining_key, input_key_material, 2)`: returns the new
/// chaining key and the second output (a cipher key or a transport key).
pub(crate) fn hkdf2(chaining_key: &Key, ikm: &[u8]) -> (Key, Key) {
    let temp = hmac(chaining_key.as_bytes(), &[ikm]);
    let out1 = hmac(&temp, &[&[0x01]]);
    let out2 = hmac(&temp, &[&out1[..], &[0x02]]);
    (Key::from_bytes(*out1), Key::from_bytes(*out2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{KeyInit, Mac, SimpleHmac};

    fn reference_hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut mac = <SimpleHmac<Blake2s256> as KeyInit>::new_from_slice(key).expect("any length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn blake2s_matches_rfc7693_abc_vector() {
        let expected = "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982";
        assert_eq!(hex::encode(hash(&[b"abc"])), expected);
        assert_eq!(hash(&[b"a", b"", b"bc"]), hash(&[b"abc"]));
    }

    #[test]
    fn hmac_matches_the_hmac_crate() {
        let key = [0x0b; 32];
        for len in [0usize, 1, 63, 64, 65, 200] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert_eq!(
                *hmac(&key, &[&data]),
                reference_hmac(&key, &data),
                "len {len}"
            );
        }
        assert_eq!(*hmac(&key, &[b"ab", b"c"]), reference_hmac(&key, b"abc"));
    }

    #[test]
    fn hkdf2_follows_the_noise_definition() {
        let ck = Key::from_bytes([5; 32]);
        let (out1, out2) = hkdf2(&ck, b"input");
        let temp = reference_hmac(&[5; 32], b"input");
        let expected1 = reference_hmac(&temp, &[1]);
        let mut second_input = expected1.to_vec();
        second_input.push(2);
        assert_eq!(out1.as_bytes(), &expected1);
        assert_eq!(out2.as_bytes(), &reference_hmac(&temp, &second_input));
    }
}

//! Key material: X25519 static keys, public keys and 32-byte symmetric keys.
//!
//! Secrets ([`PrivateKey`], [`Key`]) are wiped when dropped and print as
//! `<redacted>`; only [`PrivateKey::to_base64`] reveals one, for `fcvpn genkey`.
//! Text form is standard base64 with padding, as `wg genkey` and `wg pubkey` use.

use core::fmt;
use core::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use blake2::{Blake2s256, Digest};
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length in bytes of every key in this module.
pub const KEY_LEN: usize = 32;

/// Why a key could not be parsed from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not valid standard (padded) base64.
    #[error("key is not valid base64")]
    BadBase64,
    /// The text is base64 but does not decode to exactly 32 bytes.
    #[error("key does not decode to {KEY_LEN} bytes")]
    WrongLength,
}

/// Decodes `s` (surrounding whitespace ignored) into exactly 32 bytes.
fn decode_key(s: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    // Room for one byte too many, so an over-long key is a length error.
    let mut buf = Zeroizing::new([0u8; KEY_LEN + 16]);
    let len = STANDARD
        .decode_slice(s.trim(), &mut buf[..])
        .map_err(|e| match e {
            base64::DecodeSliceError::OutputSliceTooSmall => KeyError::WrongLength,
            base64::DecodeSliceError::DecodeError(_) => KeyError::BadBase64,
        })?;
    if len != KEY_LEN {
        return Err(KeyError::WrongLength);
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&buf[..KEY_LEN]);
    Ok(key)
}

/// Encodes 32 bytes as padded standard base64 into a wiping string.
fn encode_key(bytes: &[u8; KEY_LEN]) -> Zeroizing<String> {
    // Exact capacity: the string never reallocates, so no stale copy is left.
    let mut s = Zeroizing::new(String::with_capacity(44));
    STANDARD.encode_string(bytes, &mut s);
    s
}

/// An X25519 static private key, stored clamped (RFC 7748 §5).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey([u8; KEY_LEN]);

impl PrivateKey {
    /// Takes 32 random (or stored) bytes and clamps them, so that keys made
    /// here are byte-identical to `wg genkey` output for the same bytes.
    pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> Self {
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        let key = Self(bytes);
        bytes.zeroize();
        key
    }

    /// Parses a base64 private key (whitespace around it is ignored).
    pub fn from_base64(s: &str) -> Result<Self, KeyError> {
        decode_key(s).map(|bytes| Self::from_bytes(*bytes))
    }

    /// The key as base64, for `fcvpn genkey` only: the string wipes itself on drop.
    pub fn to_base64(&self) -> Zeroizing<String> {
        encode_key(&self.0)
    }

    /// The matching X25519 public key.
    pub fn public_key(&self) -> PublicKey {
        let secret = StaticSecret::from(self.0);
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    /// X25519 with `peer`. The result may be all zeros if `peer` is a
    /// low-order point; callers must reject that (the handshake does).
    pub(crate) fn diffie_hellman(&self, peer: &PublicKey) -> Zeroizing<[u8; KEY_LEN]> {
        let secret = StaticSecret::from(self.0);
        let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        Zeroizing::new(shared.to_bytes())
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// An X25519 public key: not secret, printed as base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// Wraps 32 bytes as a public key (no validation: every 32-byte string is
    /// a u-coordinate; low-order points are caught where DH results are used).
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses a base64 public key (whitespace around it is ignored).
    pub fn from_base64(s: &str) -> Result<Self, KeyError> {
        decode_key(s).map(|bytes| Self(*bytes))
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as padded standard base64 (44 characters).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::from_base64(s)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

/// BLAKE2s-256(`label` ‖ `public`): a stable identifier derived from a public
/// key, with `label` separating its uses (device identifiers and the like).
pub fn fingerprint(public: &PublicKey, label: &[u8]) -> [u8; 32] {
    let mut hasher = Blake2s256::new();
    hasher.update(label);
    hasher.update(public.as_bytes());
    hasher.finalize().into()
}

/// A 32-byte symmetric key (ChaCha20-Poly1305, Noise chaining key): wiped on
/// drop, redacted in Debug, never printable.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// Wraps 32 secret bytes (the caller wipes its own copy if it keeps one).
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The secret bytes, for the cipher and the key schedule only.
    pub(crate) const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7748 §6.1 Alice and Bob.
    const ALICE_PRIV: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const ALICE_PUB: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    const BOB_PRIV: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
    const BOB_PUB: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
    const SHARED: &str = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

    fn bytes(hex_str: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_str, &mut out).expect("test hex");
        out
    }

    #[test]
    fn rfc7748_public_keys_and_shared_secret() {
        let alice = PrivateKey::from_bytes(bytes(ALICE_PRIV));
        let bob = PrivateKey::from_bytes(bytes(BOB_PRIV));
        assert_eq!(alice.public_key().as_bytes(), &bytes(ALICE_PUB));
        assert_eq!(bob.public_key().as_bytes(), &bytes(BOB_PUB));
        assert_eq!(*alice.diffie_hellman(&bob.public_key()), bytes(SHARED));
        assert_eq!(*bob.diffie_hellman(&alice.public_key()), bytes(SHARED));
    }

    #[test]
    fn from_bytes_clamps_like_wg_genkey() {
        let key = PrivateKey::from_bytes([0xff; 32]);
        let mut expected = [0xff; 32];
        expected[0] = 0xf8;
        expected[31] = 0x7f;
        assert_eq!(key.0, expected);
        let key = PrivateKey::from_bytes([0; 32]);
        let mut expected = [0; 32];
        expected[31] = 0x40;
        assert_eq!(key.0, expected);
    }

    #[test]
    fn private_key_base64_round_trip_and_whitespace() {
        let key = PrivateKey::from_bytes([7; 32]);
        let text = key.to_base64();
        assert_eq!(text.len(), 44);
        let back = PrivateKey::from_base64(&format!("  {}\n", text.as_str())).expect("parses");
        assert_eq!(back.0, key.0);
    }

    #[test]
    fn public_key_base64_round_trip_display_and_from_str() {
        let public = PrivateKey::from_bytes([9; 32]).public_key();
        let text = public.to_string();
        assert_eq!(text, public.to_base64());
        assert_eq!(PublicKey::from_base64(&text), Ok(public));
        assert_eq!(text.parse::<PublicKey>(), Ok(public));
        assert_eq!(format!("{public:?}"), format!("PublicKey({text})"));
    }

    #[test]
    fn malformed_text_is_rejected() {
        let cases: &[(&str, KeyError)] = &[
            ("", KeyError::WrongLength),
            ("AAAA", KeyError::WrongLength),
            // 31 bytes.
            (
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
                KeyError::WrongLength,
            ),
            // 33 bytes.
            (
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                KeyError::WrongLength,
            ),
            // 96 bytes.
            (&"A".repeat(128), KeyError::WrongLength),
            ("not base64 at all!!", KeyError::BadBase64),
            // Missing padding.
            (
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                KeyError::BadBase64,
            ),
        ];
        for (text, err) in cases {
            assert_eq!(PublicKey::from_base64(text), Err(*err), "{text:?}");
            assert_eq!(PrivateKey::from_base64(text).err(), Some(*err), "{text:?}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let key = PrivateKey::from_bytes([0x41; 32]);
        assert_eq!(format!("{key:?}"), "PrivateKey(<redacted>)");
        assert_eq!(
            format!("{:?}", Key::from_bytes([0x41; 32])),
            "Key(<redacted>)"
        );
    }

    #[test]
    fn fingerprint_is_blake2s_of_label_then_key() {
        let public = PublicKey::from_bytes([3; 32]);
        let mut joined = b"fcvpn device".to_vec();
        joined.extend_from_slice(&[3; 32]);
        let expected: [u8; 32] = Blake2s256::digest(&joined).into();
        assert_eq!(fingerprint(&public, b"fcvpn device"), expected);
        assert_ne!(fingerprint(&public, b"other"), expected);
    }
}

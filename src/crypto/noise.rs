//! Noise protocol state objects for `Noise_IK_25519_ChaChaPoly_BLAKE2s`
//! (Noise spec rev 34, §5.1 and §5.2).
//!
//! The spec's SymmetricState starts without a cipher key and gains one at the
//! first `MixKey`. That is two types here: `HashChain` (no key yet: only
//! `MixHash` is possible) becomes a `SymmetricState` at its first
//! `HashChain::mix_key`. IK performs a DH before its first encryption, so
//! the spec's "encrypt without a key" case never arises and has no code.

use super::cipher::{Aead, NONCE_LEN, TAG_LEN};
use super::kdf::{HASH_LEN, hash, hkdf2};
use super::keys::Key;

/// Prologue mixed into every fcvpn handshake, after the protocol name.
pub const PROLOGUE: &[u8] = b"fcvpn v2";

/// The full Noise protocol name. It is 33 bytes, longer than `HASHLEN`, so
/// the initial `h` is its hash.
pub(crate) const PROTOCOL_NAME: &[u8] = b"Noise_IK_25519_ChaChaPoly_BLAKE2s";

/// A handshake ciphertext failed authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoiseError {
    /// The AEAD tag did not verify: wrong key, transcript or bytes.
    #[error("handshake ciphertext failed authentication")]
    Decrypt,
}

/// Noise CipherState: a key and a 64-bit message counter `n`; the nonce is
/// 4 zero bytes ‖ little-endian `n`.
#[derive(Clone)]
pub(crate) struct CipherState {
    aead: Aead,
    n: u64,
}

impl CipherState {
    /// `InitializeKey(key)`: the counter starts at 0.
    pub(crate) fn new(key: &Key) -> Self {
        Self {
            aead: Aead::new(key),
            n: 0,
        }
    }

    fn nonce(&self) -> [u8; NONCE_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[4..].copy_from_slice(&self.n.to_le_bytes());
        nonce
    }

    /// `EncryptWithAd`: encrypts `buf` in place, returns the tag, and counts
    /// the message. In fcvpn a handshake key protects one message, so `n`
    /// never approaches the spec's reserved 2^64-1.
    pub(crate) fn encrypt_with_ad(&mut self, ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self.aead.seal(&self.nonce(), ad, buf);
        self.n = self.n.saturating_add(1);
        tag
    }

    /// `DecryptWithAd`: on success decrypts `buf` in place and counts the
    /// message; on failure changes neither `buf` nor the counter.
    pub(crate) fn decrypt_with_ad(
        &mut self,
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), NoiseError> {
        self.aead
            .open(&self.nonce(), ad, buf, tag)
            .map_err(|_| NoiseError::Decrypt)?;
        self.n = self.n.saturating_add(1);
        Ok(())
    }
}

/// The transcript before the first key: chaining key `ck` and hash `h`.
#[derive(Clone)]
pub(crate) struct HashChain {
    ck: Key,
    h: [u8; HASH_LEN],
}

impl HashChain {
    /// `InitializeSymmetric(protocol_name)` followed by `MixHash(prologue)`.
    /// fcvpn passes [`PROLOGUE`]; test vectors pass their own.
    pub(crate) fn new(prologue: &[u8]) -> Self {
        let h = hash(&[PROTOCOL_NAME]);
        let mut chain = Self {
            ck: Key::from_bytes(h),
            h,
        };
        chain.mix_hash(prologue);
        chain
    }

    /// `MixHash(data)`: `h = HASH(h ‖ data)`.
    pub(crate) fn mix_hash(&mut self, data: &[u8]) {
        self.h = hash(&[&self.h, data]);
    }

    /// The first `MixKey(ikm)`: derives the first cipher key.
    pub(crate) fn mix_key(self, ikm: &[u8]) -> SymmetricState {
        let (ck, k) = hkdf2(&self.ck, ikm);
        SymmetricState {
            chain: Self { ck, h: self.h },
            cipher: CipherState::new(&k),
        }
    }
}

/// Noise SymmetricState once it holds a cipher key.
#[derive(Clone)]
pub(crate) struct SymmetricState {
    chain: HashChain,
    cipher: CipherState,
}

impl SymmetricState {
    /// `MixHash(data)`.
    pub(crate) fn mix_hash(&mut self, data: &[u8]) {
        self.chain.mix_hash(data);
    }

    /// `MixKey(ikm)`: new chaining key and a fresh cipher key (counter 0).
    pub(crate) fn mix_key(&mut self, ikm: &[u8]) {
        let (ck, k) = hkdf2(&self.chain.ck, ikm);
        self.chain.ck = ck;
        self.cipher = CipherState::new(&k);
    }

    /// `EncryptAndHash`: encrypts `buf` in place with `h` as associated data,
    /// returns the tag, and mixes ciphertext ‖ tag into `h`.
    pub(crate) fn encrypt_and_hash(&mut self, buf: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self.cipher.encrypt_with_ad(&self.chain.h, buf);
        self.chain.h = hash(&[&self.chain.h, buf, &tag]);
        tag
    }

    /// `DecryptAndHash`: `buf` ‖ `tag` is the ciphertext. On success `buf`
    /// holds the plaintext and `h` has absorbed the ciphertext; on failure
    /// nothing changes.
    pub(crate) fn decrypt_and_hash(
        &mut self,
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), NoiseError> {
        let next_h = hash(&[&self.chain.h, buf, tag]);
        self.cipher.decrypt_with_ad(&self.chain.h, buf, tag)?;
        self.chain.h = next_h;
        Ok(())
    }

    /// `Split()`: the initiator-to-responder key, then the
    /// responder-to-initiator key.
    pub(crate) fn split(self) -> (Key, Key) {
        hkdf2(&self.chain.ck, &[])
    }

    /// The handshake hash `h` (channel binding; used by the test vectors).
    #[cfg(test)]
    pub(crate) fn handshake_hash(&self) -> [u8; HASH_LEN] {
        self.chain.h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_hash_is_hash_of_the_33_byte_name() {
        assert_eq!(PROTOCOL_NAME.len(), 33);
        let chain = HashChain::new(b"");
        assert_eq!(chain.ck.as_bytes(), &hash(&[PROTOCOL_NAME]));
        assert_eq!(chain.h, hash(&[&hash(&[PROTOCOL_NAME]), b""]));
    }

    #[test]
    fn prologue_changes_the_transcript() {
        assert_ne!(HashChain::new(PROLOGUE).h, HashChain::new(b"other").h);
    }

    #[test]
    fn encrypt_then_decrypt_keeps_both_transcripts_equal() {
        let mut a = HashChain::new(PROLOGUE).mix_key(b"dh");
        let mut b = a.clone();
        let mut buf = *b"secret payload";
        let tag = a.encrypt_and_hash(&mut buf);
        assert_ne!(&buf, b"secret payload");
        b.decrypt_and_hash(&mut buf, &tag).expect("genuine");
        assert_eq!(&buf, b"secret payload");
        assert_eq!(a.handshake_hash(), b.handshake_hash());
        let (a1, a2) = a.split();
        let (b1, b2) = b.split();
        assert_eq!(a1.as_bytes(), b1.as_bytes());
        assert_eq!(a2.as_bytes(), b2.as_bytes());
        assert_ne!(a1.as_bytes(), a2.as_bytes());
    }

    #[test]
    fn failed_decrypt_changes_nothing() {
        let mut a = HashChain::new(PROLOGUE).mix_key(b"dh");
        let mut b = a.clone();
        let mut buf = [9u8; 32];
        let mut tag = a.encrypt_and_hash(&mut buf);
        let sealed = buf;
        tag[15] ^= 0x80;
        let before = b.handshake_hash();
        assert_eq!(b.decrypt_and_hash(&mut buf, &tag), Err(NoiseError::Decrypt));
        assert_eq!(buf, sealed);
        assert_eq!(b.handshake_hash(), before);
        // The counter did not move either: the genuine tag still opens.
        tag[15] ^= 0x80;
        b.decrypt_and_hash(&mut buf, &tag).expect("genuine");
    }

    #[test]
    fn cipher_state_nonce_is_zero_prefix_then_le_counter() {
        let mut cs = CipherState::new(&Key::from_bytes([4; 32]));
        cs.n = 0x0102_0304_0506_0708;
        assert_eq!(cs.nonce(), [0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
    }
}

//! ChaCha20-Poly1305 (RFC 8439) in place with a detached 16-byte tag: the one
//! AEAD call shared by the handshake and the batch sessions.

use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit};

use super::keys::Key;

/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;

/// ChaCha20-Poly1305 nonce length.
pub(crate) const NONCE_LEN: usize = 12;

/// A ChaCha20-Poly1305 instance for one key; its key copy is wiped on drop.
#[derive(Clone)]
pub(crate) struct Aead(ChaCha20Poly1305);

impl Aead {
    /// Prepares the cipher for `key`.
    pub(crate) fn new(key: &Key) -> Self {
        Self(ChaCha20Poly1305::new(key.as_bytes().into()))
    }

    /// Encrypts `buf` in place and returns its tag.
    ///
    /// # Panics
    /// If `buf` exceeds ChaCha20's limit of 2^32 64-byte blocks (256 GiB);
    /// every caller passes at most one 64 KiB record.
    pub(crate) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = self
            .0
            .encrypt_inout_detached(nonce.into(), aad, buf.into())
            .expect("ChaCha20-Poly1305 seals any buffer under 256 GiB");
        tag.into()
    }

    /// Checks `tag` and, only if it is genuine, decrypts `buf` in place.
    /// On `Err` `buf` is left as it was.
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), chacha20poly1305::Error> {
        self.0
            .decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 §2.8.2.
    #[test]
    fn rfc8439_aead_vector() {
        let mut key = [0u8; 32];
        hex::decode_to_slice(
            "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
            &mut key,
        )
        .expect("hex");
        let nonce: [u8; 12] = [7, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47];
        let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").expect("hex");
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let aead = Aead::new(&Key::from_bytes(key));
        let mut buf = plain.to_vec();
        let tag = aead.seal(&nonce, &aad, &mut buf);
        assert_eq!(hex::encode(tag), "1ae10b594f09e26a7e902ecbd0600691");
        assert_eq!(hex::encode(&buf[..16]), "d31a8d34648e60db7b86afbc53ef7ec2");
        aead.open(&nonce, &aad, &mut buf, &tag).expect("genuine");
        assert_eq!(&buf[..], &plain[..]);
    }

    #[test]
    fn forged_tag_leaves_buffer_untouched() {
        let aead = Aead::new(&Key::from_bytes([1; 32]));
        let nonce = [0; NONCE_LEN];
        let mut buf = *b"hello";
        let mut tag = aead.seal(&nonce, b"", &mut buf);
        let sealed = buf;
        tag[0] ^= 1;
        assert!(aead.open(&nonce, b"", &mut buf, &tag).is_err());
        assert_eq!(buf, sealed);
    }
}

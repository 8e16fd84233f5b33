//! The fabric key: the secret behind the command tokens of WRITE(16)/READ(16) (SPEC §11.2).
//!
//! `K_fab` = BLAKE2s-256(`"fcvpn fabric key v1"` ‖ DH(own static, peer static) ‖ target static
//! public ‖ initiator static public). Both ends of a pair can compute it before any session
//! exists; a stranger who knows both public keys but neither private key cannot. A command token
//! is the first 8 bytes, big-endian, of keyed BLAKE2s-256 under `K_fab` over `"cmd"` ‖ the
//! 64-bit command counter (little-endian).

use blake2::Blake2sMac256;
use blake2::digest::{KeyInit, Mac};
use zeroize::Zeroizing;

use super::kdf::{HASH_LEN, hash};
use super::keys::{PrivateKey, PublicKey};

/// Domain separator of the fabric key hash.
const FABRIC_KEY_DOMAIN: &[u8] = b"fcvpn fabric key v1";
/// Domain separator of a command token's MAC input.
const TOKEN_LABEL: &[u8] = b"cmd";

/// Which end of the SCSI nexus the local key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FabricRole {
    /// The SCSI target (the end serving the LUN).
    Target,
    /// The SCSI initiator.
    Initiator,
}

/// The peer's static key is a low-order point: the DH result is all zeros, known to anyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the peer's public key is a low-order point: no fabric key can be derived from it")]
pub struct LowOrderKey;

/// `K_fab` of one pair, ready to compute command tokens. Wiped on drop, redacted in Debug.
#[derive(Clone)]
pub struct FabricKey {
    /// The MAC keyed with `K_fab` before any input, cloned per token.
    keyed: Blake2sMac256,
}

impl FabricKey {
    /// `K_fab` of the pair (`local`, `peer`), where `local` is the `role` end.
    ///
    /// One X25519 operation: call once at start and keep the key.
    pub fn derive(
        local: &PrivateKey,
        peer: &PublicKey,
        role: FabricRole,
    ) -> Result<Self, LowOrderKey> {
        let dh = local.diffie_hellman(peer);
        if dh.iter().all(|&b| b == 0) {
            return Err(LowOrderKey);
        }
        let own = local.public_key();
        let (target, initiator) = match role {
            FabricRole::Target => (own, *peer),
            FabricRole::Initiator => (*peer, own),
        };
        let k = Zeroizing::new(hash(&[
            FABRIC_KEY_DOMAIN,
            &dh[..],
            target.as_bytes(),
            initiator.as_bytes(),
        ]));
        Ok(Self::from_key_bytes(&k))
    }

    fn from_key_bytes(k: &[u8; HASH_LEN]) -> Self {
        Self {
            keyed: <Blake2sMac256 as KeyInit>::new(k.into()),
        }
    }

    /// The command token of counter `c`: the first 8 bytes (big-endian) of
    /// keyed-BLAKE2s-256(`K_fab`, `"cmd"` ‖ `c` as u64 LE).
    pub fn token(&self, c: u64) -> u64 {
        let mut mac = self.keyed.clone();
        Mac::update(&mut mac, TOKEN_LABEL);
        Mac::update(&mut mac, &c.to_le_bytes());
        let out = Zeroizing::new(<[u8; HASH_LEN]>::from(mac.finalize().into_bytes()));
        let mut first = [0u8; 8];
        first.copy_from_slice(&out[..8]);
        u64::from_be_bytes(first)
    }
}

impl core::fmt::Debug for FabricKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FabricKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (PrivateKey, PrivateKey) {
        (
            PrivateKey::from_bytes([0x22; 32]),
            PrivateKey::from_bytes([0x11; 32]),
        )
    }

    #[test]
    fn both_ends_derive_the_same_key() {
        let (target, initiator) = pair();
        let t = FabricKey::derive(&target, &initiator.public_key(), FabricRole::Target).unwrap();
        let i = FabricKey::derive(&initiator, &target.public_key(), FabricRole::Initiator).unwrap();
        for c in [0, 1, 1 << 20, u64::MAX] {
            assert_eq!(t.token(c), i.token(c));
        }
        assert_ne!(t.token(1), t.token(2));
    }

    #[test]
    fn key_follows_the_definition() {
        let (target, initiator) = pair();
        let dh = target.diffie_hellman(&initiator.public_key());
        let k = hash(&[
            b"fcvpn fabric key v1",
            &dh[..],
            target.public_key().as_bytes(),
            initiator.public_key().as_bytes(),
        ]);
        let mut mac = <Blake2sMac256 as KeyInit>::new((&k).into());
        Mac::update(&mut mac, b"cmd\x07\0\0\0\0\0\0\0");
        let out: [u8; 32] = mac.finalize().into_bytes().into();
        let key = FabricKey::derive(&target, &initiator.public_key(), FabricRole::Target).unwrap();
        assert_eq!(key.token(7).to_be_bytes(), out[..8]);
    }

    #[test]
    fn roles_are_not_interchangeable() {
        let (target, initiator) = pair();
        let right = FabricKey::derive(&target, &initiator.public_key(), FabricRole::Target);
        let swapped = FabricKey::derive(&target, &initiator.public_key(), FabricRole::Initiator);
        assert_ne!(right.unwrap().token(1), swapped.unwrap().token(1));
    }

    #[test]
    fn low_order_peer_is_refused_and_key_is_redacted() {
        let (target, initiator) = pair();
        let zero = PublicKey::from_bytes([0; 32]);
        assert_eq!(
            FabricKey::derive(&target, &zero, FabricRole::Target).unwrap_err(),
            LowOrderKey
        );
        let key = FabricKey::derive(&target, &initiator.public_key(), FabricRole::Target).unwrap();
        assert_eq!(format!("{key:?}"), "FabricKey(<redacted>)");
    }
}

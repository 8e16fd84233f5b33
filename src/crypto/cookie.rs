//! Cookies for the UDP path under load (after WireGuard's cookie reply).
//!
//! A responder whose answer budget for a datagram path is spent stops doing Diffie-Hellman for
//! initiations that carry a valid mac1 but no valid mac2. It answers them with a COOKIE
//! message instead, which costs it one MAC and one XChaCha20-Poly1305 seal:
//!
//! ```text
//! cookie      = MAC16(secret, source address)          secret: 32 random bytes, renewed
//!                                                       every SECRET_LIFETIME
//! COOKIE body = nonce (24) ‖ XChaCha20-Poly1305(key, nonce, cookie, AD = the initiation's mac1)
//!               key = BLAKE2s-256("cookie--" ‖ responder static public key)
//! ```
//!
//! The initiator keeps the cookie for [`COOKIE_LIFETIME`] and puts
//! `mac2 = MAC16(cookie, header ‖ initiation up to mac2)` into its next initiations; the
//! responder answers those from a budget of their own. The secret and the nonce are random
//! bytes passed in by the caller and the clock is the caller's: nothing here reads either.

use core::fmt;
use core::time::Duration;

use chacha20poly1305::{AeadInOut, KeyInit, XChaCha20Poly1305};
use zeroize::Zeroizing;

use super::cipher::TAG_LEN;
use super::kdf::{HASH_LEN, hash};
use super::keys::PublicKey;
use super::mac::{MAC1_LEN, mac16};

/// Length of a cookie (and of mac2).
pub const COOKIE_LEN: usize = 16;

/// Length of the nonce that starts a COOKIE body.
pub const COOKIE_NONCE_LEN: usize = 24;

/// Length of a COOKIE body: nonce ‖ encrypted cookie ‖ tag.
pub const COOKIE_REPLY_LEN: usize = COOKIE_NONCE_LEN + COOKIE_LEN + TAG_LEN;

/// How long a responder's secret makes cookies; the one before is still accepted for as long
/// again, so a cookie is good for at least this long after it was made.
pub const SECRET_LIFETIME: Duration = Duration::from_secs(120);

/// How long an initiator uses a cookie it received (a little under [`SECRET_LIFETIME`], so it
/// never sends one its responder already forgot).
pub const COOKIE_LIFETIME: Duration = Duration::from_secs(110);

/// Domain-separation label of the key that seals cookies.
const LABEL_COOKIE: &[u8] = b"cookie--";

/// The key that seals cookies sent by the responder with static key `responder`. Derived from a
/// public key: it hides the cookie from bystanders who do not know that key, no more.
fn reply_key(responder: &PublicKey) -> [u8; HASH_LEN] {
    hash(&[LABEL_COOKIE, responder.as_bytes()])
}

/// The responder's half: the rotating secret, the cookies it makes and the mac2s it checks.
pub struct CookieMaker {
    secret: Zeroizing<[u8; 32]>,
    /// The secret before the last rotation (cookies made with it are still accepted).
    previous: Option<Zeroizing<[u8; 32]>>,
    rotated_at: Duration,
    reply_key: [u8; HASH_LEN],
}

impl fmt::Debug for CookieMaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieMaker")
            .field("rotated_at", &self.rotated_at)
            .finish_non_exhaustive()
    }
}

impl CookieMaker {
    /// A maker for the responder with static key `local`, with a first random `secret` at
    /// `now`.
    pub fn new(local: &PublicKey, secret: [u8; 32], now: Duration) -> Self {
        Self {
            secret: Zeroizing::new(secret),
            previous: None,
            rotated_at: now,
            reply_key: reply_key(local),
        }
    }

    /// Whether the secret is older than [`SECRET_LIFETIME`] at `now` and must be renewed.
    pub fn needs_rotation(&self, now: Duration) -> bool {
        now.saturating_sub(self.rotated_at) >= SECRET_LIFETIME
    }

    /// Renews the secret with fresh random bytes at `now`; the old one is kept one lifetime.
    pub fn rotate(&mut self, secret: [u8; 32], now: Duration) {
        let old = core::mem::replace(&mut self.secret, Zeroizing::new(secret));
        self.previous = Some(old);
        self.rotated_at = now;
    }

    /// The cookie of `source` (an opaque encoding of the sender's address).
    pub fn cookie(&self, source: &[u8]) -> [u8; COOKIE_LEN] {
        mac16(&self.secret[..], &[source])
    }

    /// Whether `mac2` over `covered` is right for a cookie of `source` under the current or
    /// the previous secret. Two MACs at most.
    pub fn mac2_valid(&self, source: &[u8], covered: &[&[u8]], mac2: &[u8]) -> bool {
        let secrets = core::iter::once(&self.secret).chain(self.previous.as_ref());
        let mut ok = false;
        for secret in secrets {
            let cookie = mac16(&secret[..], &[source]);
            ok |= ct_eq(&mac16(&cookie, covered), mac2);
        }
        ok
    }

    /// Writes the COOKIE body for `source`, bound to the initiation's `mac1`, with a random
    /// `nonce`.
    pub fn reply(
        &self,
        source: &[u8],
        mac1: &[u8; MAC1_LEN],
        nonce: [u8; COOKIE_NONCE_LEN],
        out: &mut [u8; COOKIE_REPLY_LEN],
    ) {
        let (n, rest) = out.split_at_mut(COOKIE_NONCE_LEN);
        let (sealed, tag) = rest.split_at_mut(COOKIE_LEN);
        n.copy_from_slice(&nonce);
        sealed.copy_from_slice(&self.cookie(source));
        let aead = XChaCha20Poly1305::new((&self.reply_key).into());
        let t = aead
            .encrypt_inout_detached((&nonce).into(), mac1, sealed.into())
            .expect("a 16-byte cookie is far below the cipher's limit");
        tag.copy_from_slice(&t);
    }
}

/// The initiator's half: opens a COOKIE body from the responder with static key `responder`,
/// sent in answer to our initiation whose mac1 is `mac1`. `None` if it is not that.
pub fn open_cookie_reply(
    responder: &PublicKey,
    mac1: &[u8; MAC1_LEN],
    body: &[u8],
) -> Option<[u8; COOKIE_LEN]> {
    if body.len() != COOKIE_REPLY_LEN {
        return None;
    }
    let (nonce, rest) = body.split_at(COOKIE_NONCE_LEN);
    let (sealed, tag) = rest.split_at(COOKIE_LEN);
    let mut cookie = [0u8; COOKIE_LEN];
    cookie.copy_from_slice(sealed);
    let nonce: [u8; COOKIE_NONCE_LEN] = nonce.try_into().ok()?;
    let tag: [u8; TAG_LEN] = tag.try_into().ok()?;
    let aead = XChaCha20Poly1305::new((&reply_key(responder)).into());
    aead.decrypt_inout_detached(
        (&nonce).into(),
        mac1,
        (&mut cookie[..]).into(),
        (&tag).into(),
    )
    .ok()?;
    Some(cookie)
}

/// Constant-time equality of two byte strings of public length.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &[u8] = b"\x0a\x00\x00\x01\x13\x88";
    const COVERED: &[u8] = b"header and initiation up to mac2";

    fn maker() -> (PublicKey, CookieMaker) {
        let public = PublicKey::from_bytes([5; 32]);
        (public, CookieMaker::new(&public, [7; 32], Duration::ZERO))
    }

    #[test]
    fn a_reply_opens_only_for_the_initiation_it_answers_and_its_mac2_is_accepted() {
        let (public, m) = maker();
        let mac1 = [3u8; MAC1_LEN];
        let mut out = [0u8; COOKIE_REPLY_LEN];
        m.reply(SRC, &mac1, [9; COOKIE_NONCE_LEN], &mut out);
        let cookie = open_cookie_reply(&public, &mac1, &out).expect("genuine");
        assert_eq!(cookie, m.cookie(SRC));
        assert!(open_cookie_reply(&public, &[4; MAC1_LEN], &out).is_none());
        assert!(open_cookie_reply(&PublicKey::from_bytes([6; 32]), &mac1, &out).is_none());
        for i in 0..COOKIE_REPLY_LEN {
            let mut bad = out;
            bad[i] ^= 1;
            assert!(
                open_cookie_reply(&public, &mac1, &bad).is_none(),
                "byte {i}"
            );
        }
        let mac2 = mac16(&cookie, &[COVERED]);
        assert!(m.mac2_valid(SRC, &[COVERED], &mac2));
        assert!(!m.mac2_valid(b"\x0a\x00\x00\x02\x13\x88", &[COVERED], &mac2));
        assert!(!m.mac2_valid(SRC, &[b"other bytes"], &mac2));
        assert!(!m.mac2_valid(SRC, &[COVERED], &[0; COOKIE_LEN]));
    }

    #[test]
    fn a_cookie_outlives_one_rotation_but_not_two() {
        let (_, mut m) = maker();
        let mac2 = mac16(&m.cookie(SRC), &[COVERED]);
        assert!(!m.needs_rotation(SECRET_LIFETIME - Duration::from_millis(1)));
        assert!(m.needs_rotation(SECRET_LIFETIME));
        m.rotate([8; 32], SECRET_LIFETIME);
        assert!(m.mac2_valid(SRC, &[COVERED], &mac2));
        assert_ne!(mac16(&m.cookie(SRC), &[COVERED]), mac2);
        m.rotate([9; 32], SECRET_LIFETIME * 2);
        assert!(!m.mac2_valid(SRC, &[COVERED], &mac2));
    }

    #[test]
    fn wrong_lengths_are_refused() {
        let (public, _) = maker();
        for len in [0, COOKIE_REPLY_LEN - 1, COOKIE_REPLY_LEN + 1] {
            assert!(open_cookie_reply(&public, &[0; MAC1_LEN], &vec![0; len]).is_none());
        }
    }
}

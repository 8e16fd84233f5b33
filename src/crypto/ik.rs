//! The Noise IK pattern's token processing, for any payload length:
//!
//! ```text
//! <- s
//! ...
//! -> e, es, s, ss     then the payload (EncryptAndHash)
//! <- e, ee, se        then the payload (EncryptAndHash)
//! ```
//!
//! Message bodies here are the pure Noise messages, without fcvpn's mac1;
//! [`super::handshake`] fixes the payload length and adds mac1. Keeping the
//! length open lets the published Noise test vectors check this file.

use zeroize::Zeroizing;

use super::cipher::TAG_LEN;
use super::handshake::{HandshakeError, LocalStatic};
use super::keys::{KEY_LEN, PrivateKey, PublicKey};
use super::noise::{HashChain, SymmetricState};

/// Offset of the payload ciphertext in an initiation body: e ‖ enc(s).
const INITIATION_PAYLOAD_AT: usize = KEY_LEN + KEY_LEN + TAG_LEN;

/// Offset of the payload ciphertext in a response body: e.
const RESPONSE_PAYLOAD_AT: usize = KEY_LEN;

/// Initiation body length for a payload of `payload_len` bytes.
pub(crate) const fn initiation_body_len(payload_len: usize) -> usize {
    INITIATION_PAYLOAD_AT + payload_len + TAG_LEN
}

/// Response body length for a payload of `payload_len` bytes.
pub(crate) const fn response_body_len(payload_len: usize) -> usize {
    RESPONSE_PAYLOAD_AT + payload_len + TAG_LEN
}

/// X25519, rejecting the all-zero result a low-order point gives.
///
/// With clamped scalars the result is zero exactly when the point has small
/// order, whatever the scalar: so once one DH with a given public key passed
/// this check, every other DH with that key is nonzero too.
fn dh(
    private: &PrivateKey,
    public: &PublicKey,
) -> Result<Zeroizing<[u8; KEY_LEN]>, HandshakeError> {
    let shared = private.diffie_hellman(public);
    // OR-fold, no early exit on secret bytes. Whether the result is zero
    // depends only on the peer's point, so the branch leaks nothing secret.
    if shared.iter().fold(0u8, |acc, b| acc | b) == 0 {
        return Err(HandshakeError::LowOrderPoint);
    }
    Ok(shared)
}

/// The static-static DH (`ss`) of a pair, computed once per pair rather than once per
/// handshake; `None` if `public` is a low-order point.
pub(crate) fn static_dh(
    private: &PrivateKey,
    public: &PublicKey,
) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    dh(private, public).ok()
}

fn read_key(bytes: &[u8]) -> PublicKey {
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(bytes);
    PublicKey::from_bytes(key)
}

fn read_tag(bytes: &[u8]) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(bytes);
    tag
}

/// Encrypts `plaintext` into `out` (ciphertext ‖ tag) with EncryptAndHash.
/// `out` is `plaintext.len() + TAG_LEN` bytes.
fn encrypt_into(state: &mut SymmetricState, plaintext: &[u8], out: &mut [u8]) {
    let (ciphertext, tag) = out.split_at_mut(plaintext.len());
    ciphertext.copy_from_slice(plaintext);
    tag.copy_from_slice(&state.encrypt_and_hash(ciphertext));
}

/// Decrypts `input` (ciphertext ‖ tag) into `out` with DecryptAndHash.
/// `input` is `out.len() + TAG_LEN` bytes.
fn decrypt_into(
    state: &mut SymmetricState,
    input: &[u8],
    out: &mut [u8],
) -> Result<(), HandshakeError> {
    let (ciphertext, tag) = input.split_at(out.len());
    out.copy_from_slice(ciphertext);
    Ok(state.decrypt_and_hash(out, &read_tag(tag))?)
}

/// Initiator: writes message 1 into `body`, which must be
/// [`initiation_body_len`]`(payload.len())` bytes.
///
/// `chain` is the fresh transcript (protocol name and prologue mixed in);
/// `ss` is [`static_dh`] of `local` and `remote`.
/// Fails with `LowOrderPoint` if `remote` has small order; `body` is then
/// only partly written and must not be sent.
pub(crate) fn write_initiation(
    mut chain: HashChain,
    local: &LocalStatic,
    remote: &PublicKey,
    ss: Option<&[u8; KEY_LEN]>,
    ephemeral: &PrivateKey,
    payload: &[u8],
    body: &mut [u8],
) -> Result<SymmetricState, HandshakeError> {
    chain.mix_hash(remote.as_bytes());
    let (e, rest) = body.split_at_mut(KEY_LEN);
    let (sealed_static, sealed_payload) = rest.split_at_mut(KEY_LEN + TAG_LEN);
    e.copy_from_slice(ephemeral.public_key().as_bytes());
    chain.mix_hash(e);
    let mut state = chain.mix_key(&dh(ephemeral, remote)?[..]);
    encrypt_into(&mut state, local.public.as_bytes(), sealed_static);
    state.mix_key(ss.ok_or(HandshakeError::LowOrderPoint)?);
    encrypt_into(&mut state, payload, sealed_payload);
    Ok(state)
}

/// What the responder learns from a genuine message 1.
pub(crate) struct Initiation {
    /// The transcript, ready for the response.
    pub(crate) state: SymmetricState,
    /// The initiator's ephemeral key.
    pub(crate) remote_ephemeral: PublicKey,
}

/// Responder: reads message 1 from `body`, decrypting its payload into
/// `payload` (whose length fixes the expected body length).
///
/// The initiator's static key must equal `pinned`, else `UnknownPeer`;
/// `ss` is [`static_dh`] of `local` and `pinned`, computed once for the pair.
pub(crate) fn read_initiation(
    mut chain: HashChain,
    local: &LocalStatic,
    pinned: &PublicKey,
    ss: Option<&[u8; KEY_LEN]>,
    body: &[u8],
    payload: &mut [u8],
) -> Result<Initiation, HandshakeError> {
    if body.len() != initiation_body_len(payload.len()) {
        return Err(HandshakeError::WrongLength);
    }
    chain.mix_hash(local.public.as_bytes());
    let (e, rest) = body.split_at(KEY_LEN);
    let (sealed_static, sealed_payload) = rest.split_at(KEY_LEN + TAG_LEN);
    let remote_ephemeral = read_key(e);
    chain.mix_hash(e);
    let mut state = chain.mix_key(&dh(&local.private, &remote_ephemeral)?[..]);
    let mut remote_static = [0u8; KEY_LEN];
    decrypt_into(&mut state, sealed_static, &mut remote_static)?;
    if PublicKey::from_bytes(remote_static) != *pinned {
        return Err(HandshakeError::UnknownPeer);
    }
    state.mix_key(ss.ok_or(HandshakeError::LowOrderPoint)?);
    decrypt_into(&mut state, sealed_payload, payload)?;
    Ok(Initiation {
        state,
        remote_ephemeral,
    })
}

/// Responder: writes message 2 into `body`, which must be
/// [`response_body_len`]`(payload.len())` bytes.
///
/// Infallible: [`read_initiation`] already checked both remote keys (the
/// ephemeral in `es`, the static in `ss`), so `ee` and `se` are nonzero.
pub(crate) fn write_response(
    mut state: SymmetricState,
    remote_ephemeral: &PublicKey,
    remote_static: &PublicKey,
    ephemeral: &PrivateKey,
    payload: &[u8],
    body: &mut [u8],
) -> SymmetricState {
    let (e, sealed_payload) = body.split_at_mut(RESPONSE_PAYLOAD_AT);
    e.copy_from_slice(ephemeral.public_key().as_bytes());
    state.mix_hash(e);
    state.mix_key(&ephemeral.diffie_hellman(remote_ephemeral)[..]);
    state.mix_key(&ephemeral.diffie_hellman(remote_static)[..]);
    encrypt_into(&mut state, payload, sealed_payload);
    state
}

/// Initiator: reads message 2 from `body` into `payload` (whose length fixes
/// the expected body length). `state` is the transcript after message 1.
pub(crate) fn read_response(
    mut state: SymmetricState,
    local: &PrivateKey,
    ephemeral: &PrivateKey,
    body: &[u8],
    payload: &mut [u8],
) -> Result<SymmetricState, HandshakeError> {
    if body.len() != response_body_len(payload.len()) {
        return Err(HandshakeError::WrongLength);
    }
    let (e, sealed_payload) = body.split_at(RESPONSE_PAYLOAD_AT);
    let remote_ephemeral = read_key(e);
    state.mix_hash(e);
    state.mix_key(&dh(ephemeral, &remote_ephemeral)?[..]);
    state.mix_key(&dh(local, &remote_ephemeral)?[..]);
    decrypt_into(&mut state, sealed_payload, payload)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    //! The `Noise_IK_25519_ChaChaPoly_BLAKE2s` vector from the cacophony
    //! suite (as shipped in mcginty/snow `tests/vectors/cacophony.txt`):
    //! an independent implementation's exact bytes.

    use super::*;
    use crate::crypto::noise::CipherState;

    const PROLOGUE: &str = "4a6f686e2047616c74";
    const INIT_STATIC: &str = "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1";
    const INIT_EPHEMERAL: &str = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a";
    const RESP_STATIC: &str = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893";
    const RESP_STATIC_PUB: &str =
        "31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62";
    const RESP_EPHEMERAL: &str = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b";
    const HANDSHAKE_HASH: &str = "48f3cb8bc9319da4ba1e9933991b1c4ed4034f1f126a76d3a1fbcfd7f94248d4";
    /// (payload, ciphertext) for messages 1 to 6.
    const MESSAGES: [(&str, &str); 6] = [
        (
            "4c756477696720766f6e204d69736573",
            "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79440b03ddc7aac5123d06a1b23b71670e32e76c28239a7ca4ac8f784de7e44c1adbfc6e83fef7352a58d9d56157400c0a737b1d171ce368229c7b752ac25b8faf4eca690f6d896f543be02c996ab2b86b76",
        ),
        (
            "4d757272617920526f746862617264",
            "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843d9b5a8927f0ac9655ef76833bc7e5561f42e691ac8404efd6fbd6308b6a27c",
        ),
        (
            "462e20412e20486179656b",
            "2c256ed08fcd08c2980f954ee4beaccb61c9581340f5dd2fd1cf3b",
        ),
        (
            "4361726c204d656e676572",
            "d6033f70eee20945c7c9dba304e397ee3b284ff5e00fd9efb095d3",
        ),
        (
            "4a65616e2d426170746973746520536179",
            "a9c068ca5d8babf72560652d8e851adbfac35c8a66e810d560863173e96adf4cfe",
        ),
        (
            "457567656e2042f6686d20766f6e2042617765726b",
            "2a09d8f459e5927e40fdd2eddc99bdafb04e13a26f145cb5cfe9e6ba34c94331ebc17d5156",
        ),
    ];

    fn key32(hex_str: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_str, &mut out).expect("test hex");
        out
    }

    fn unhex(hex_str: &str) -> Vec<u8> {
        hex::decode(hex_str).expect("test hex")
    }

    fn local(hex_str: &str) -> LocalStatic {
        let private = PrivateKey::from_bytes(key32(hex_str));
        LocalStatic {
            public: private.public_key(),
            private,
        }
    }

    fn chain() -> HashChain {
        HashChain::new(&unhex(PROLOGUE))
    }

    /// Seals a transport message and checks it against the vector.
    fn check_transport(sender: &mut CipherState, receiver: &mut CipherState, (p, c): (&str, &str)) {
        let mut buf = unhex(p);
        let tag = sender.encrypt_with_ad(&[], &mut buf);
        assert_eq!(hex::encode(&buf) + &hex::encode(tag), c);
        receiver
            .decrypt_with_ad(&[], &mut buf, &tag)
            .expect("genuine");
        assert_eq!(hex::encode(&buf), p);
    }

    #[test]
    fn cacophony_ik_vector() {
        let initiator = local(INIT_STATIC);
        let responder = local(RESP_STATIC);
        assert_eq!(responder.public.as_bytes(), &key32(RESP_STATIC_PUB));
        let init_e = PrivateKey::from_bytes(key32(INIT_EPHEMERAL));
        let resp_e = PrivateKey::from_bytes(key32(RESP_EPHEMERAL));

        let payload1 = unhex(MESSAGES[0].0);
        let mut msg1 = vec![0u8; initiation_body_len(payload1.len())];
        let ss = static_dh(&initiator.private, &responder.public);
        let init_state = write_initiation(
            chain(),
            &initiator,
            &responder.public,
            ss.as_deref(),
            &init_e,
            &payload1,
            &mut msg1,
        )
        .expect("contributory");
        assert_eq!(hex::encode(&msg1), MESSAGES[0].1);

        let mut got1 = vec![0u8; payload1.len()];
        let ss = static_dh(&responder.private, &initiator.public);
        let received = read_initiation(
            chain(),
            &responder,
            &initiator.public,
            ss.as_deref(),
            &msg1,
            &mut got1,
        )
        .expect("genuine");
        assert_eq!(got1, payload1);

        let payload2 = unhex(MESSAGES[1].0);
        let mut msg2 = vec![0u8; response_body_len(payload2.len())];
        let resp_state = write_response(
            received.state,
            &received.remote_ephemeral,
            &initiator.public,
            &resp_e,
            &payload2,
            &mut msg2,
        );
        assert_eq!(hex::encode(&msg2), MESSAGES[1].1);

        let mut got2 = vec![0u8; payload2.len()];
        let init_state = read_response(init_state, &initiator.private, &init_e, &msg2, &mut got2)
            .expect("genuine");
        assert_eq!(got2, payload2);
        assert_eq!(hex::encode(init_state.handshake_hash()), HANDSHAKE_HASH);
        assert_eq!(hex::encode(resp_state.handshake_hash()), HANDSHAKE_HASH);

        let (i1, i2) = init_state.split();
        let (r1, r2) = resp_state.split();
        let (mut i_send, mut i_recv) = (CipherState::new(&i1), CipherState::new(&i2));
        let (mut r_recv, mut r_send) = (CipherState::new(&r1), CipherState::new(&r2));
        for (n, message) in MESSAGES.iter().enumerate().skip(2) {
            if n % 2 == 0 {
                check_transport(&mut i_send, &mut r_recv, *message);
            } else {
                check_transport(&mut r_send, &mut i_recv, *message);
            }
        }
    }

    #[test]
    fn low_order_remote_static_is_refused_by_the_initiator() {
        let initiator = local(INIT_STATIC);
        let e = PrivateKey::from_bytes(key32(INIT_EPHEMERAL));
        let mut body = vec![0u8; initiation_body_len(0)];
        for point in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            let remote = PublicKey::from_bytes(point);
            let ss = static_dh(&initiator.private, &remote);
            assert!(ss.is_none());
            let result = write_initiation(
                chain(),
                &initiator,
                &remote,
                ss.as_deref(),
                &e,
                &[],
                &mut body,
            );
            assert!(matches!(result, Err(HandshakeError::LowOrderPoint)));
        }
    }

    #[test]
    fn wrong_body_length_is_refused_before_any_work() {
        let responder = local(RESP_STATIC);
        let pinned = local(INIT_STATIC).public;
        let mut payload = [0u8; 4];
        for len in [0, initiation_body_len(4) - 1, initiation_body_len(4) + 1] {
            let ss = static_dh(&responder.private, &pinned);
            let result = read_initiation(
                chain(),
                &responder,
                &pinned,
                ss.as_deref(),
                &vec![0; len],
                &mut payload,
            );
            assert!(matches!(result, Err(HandshakeError::WrongLength)));
        }
    }
}

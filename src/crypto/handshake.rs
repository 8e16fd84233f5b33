//! fcvpn's handshake: Noise IK with a fixed 32-byte payload, a mac1 and a
//! mac2.
//!
//! Message bodies (each preceded on the wire by the link's 24-byte batch
//! header, which is mixed into the Noise transcript and MACed, but not built
//! here):
//!
//! ```text
//! initiation (160) = e (32) ‖ enc(s) (32+16) ‖ enc(payload) (32+16) ‖ mac1 (16) ‖ mac2 (16)
//! response    (96) = e (32) ‖ enc(payload) (32+16) ‖ mac1 (16)
//! ```
//!
//! mac1 is keyed by whoever receives the message (see `mac.rs`) and is
//! checked before any Diffie-Hellman. mac2 is zero, or proves something
//! cheap to check before any DH: that the initiator holds the current session
//! ([`SessionKeys::proof_key`]) or a cookie of the responder (`cookie.rs`).
//! The header is `MixHash`ed before each message's tokens, so a header
//! rewritten in transit (path, receiver) fails decryption even with a
//! recomputed mac1. After the response the initiator sends with the first
//! key of `Split()` and the responder with the second. Ephemeral keys arrive
//! as random bytes from the caller: nothing here reads an entropy source or a
//! clock.

use core::fmt;

use zeroize::Zeroizing;

use super::ik;
use super::kdf::hash;
use super::keys::{KEY_LEN, Key, PrivateKey, PublicKey};
use super::mac::{MAC1_LEN, Mac1Key, mac16};
use super::noise::{HashChain, NoiseError, PROLOGUE, SymmetricState};

/// Length of the opaque payload each handshake message carries encrypted.
pub const PAYLOAD_LEN: usize = 32;

/// Length of an initiation body.
pub const INITIATION_LEN: usize = 160;

/// Length of an initiation's mac2 (its last bytes).
pub const MAC2_LEN: usize = 16;

/// Length of a response body.
pub const RESPONSE_LEN: usize = 96;

/// Initiation body without mac1 and mac2.
const INITIATION_NOISE_LEN: usize = INITIATION_LEN - MAC1_LEN - MAC2_LEN;

/// Initiation body up to mac2 (what mac2 covers after the header).
const INITIATION_MAC2_AT: usize = INITIATION_LEN - MAC2_LEN;

/// Domain-separation label of the session proof key.
const LABEL_PROOF: &[u8] = b"fcvpn v2 session proof";

/// Response body without mac1.
const RESPONSE_NOISE_LEN: usize = RESPONSE_LEN - MAC1_LEN;

const _: () = assert!(ik::initiation_body_len(PAYLOAD_LEN) == INITIATION_NOISE_LEN);
const _: () = assert!(ik::response_body_len(PAYLOAD_LEN) == RESPONSE_NOISE_LEN);

/// Why a handshake message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The message is not exactly [`INITIATION_LEN`] or [`RESPONSE_LEN`] bytes.
    #[error("handshake message has the wrong length")]
    WrongLength,
    /// mac1 does not match: not meant for us, or altered (header included).
    #[error("handshake mac1 does not match")]
    BadMac1,
    /// An encrypted field failed authentication: altered, or from someone
    /// without the right keys.
    #[error("handshake message failed authentication")]
    Decrypt,
    /// The initiator's static key is not the pinned peer key.
    #[error("handshake from a static key that is not the pinned peer")]
    UnknownPeer,
    /// A Diffie-Hellman result was all zeros: a low-order public key.
    #[error("handshake public key is a low-order point")]
    LowOrderPoint,
}

impl From<NoiseError> for HandshakeError {
    fn from(err: NoiseError) -> Self {
        match err {
            NoiseError::Decrypt => Self::Decrypt,
        }
    }
}

/// This side's static key pair. `public` must be `private.public_key()`.
#[derive(Clone, Debug)]
pub struct LocalStatic {
    /// The static private key (redacted in Debug).
    pub private: PrivateKey,
    /// Its public key.
    pub public: PublicKey,
}

impl LocalStatic {
    /// The pair for `private`, computing its public key.
    pub fn new(private: PrivateKey) -> Self {
        let public = private.public_key();
        Self { private, public }
    }
}

/// Transport keys from a completed handshake.
#[derive(Debug)]
pub struct SessionKeys {
    /// Key for the batches this side seals.
    pub send: Key,
    /// Key for the batches this side opens.
    pub recv: Key,
}

impl SessionKeys {
    /// The key of the mac2 that proves, in a later initiation, that its
    /// sender holds this session: `HASH(label ‖ initiator-to-responder key ‖
    /// responder-to-initiator key)`, the same on both sides. `initiator` is
    /// whether this side initiated the handshake that made these keys.
    pub fn proof_key(&self, initiator: bool) -> Zeroizing<[u8; KEY_LEN]> {
        let (i2r, r2i) = if initiator {
            (&self.send, &self.recv)
        } else {
            (&self.recv, &self.send)
        };
        Zeroizing::new(hash(&[LABEL_PROOF, i2r.as_bytes(), r2i.as_bytes()]))
    }
}

/// Writes `mac2 = MAC16(key, header ‖ initiation up to mac2)` into `msg`.
/// `key` is a session proof key (32 bytes) or a cookie (16 bytes).
pub fn set_initiation_mac2(key: &[u8], header: &[u8], msg: &mut [u8; INITIATION_LEN]) {
    let (covered, mac2) = msg.split_at_mut(INITIATION_MAC2_AT);
    mac2.copy_from_slice(&mac16(key, &[header, covered]));
}

/// What an initiation's mac2 covers: the header, then the body up to mac2.
/// `msg` must be [`INITIATION_LEN`] bytes.
pub fn initiation_mac2_covered<'a>(header: &'a [u8], msg: &'a [u8]) -> [&'a [u8]; 2] {
    [header, &msg[..INITIATION_MAC2_AT]]
}

/// The mac2 field of an initiation of [`INITIATION_LEN`] bytes.
pub fn initiation_mac2(msg: &[u8]) -> &[u8] {
    &msg[INITIATION_MAC2_AT..]
}

/// The mac1 field of an initiation of [`INITIATION_LEN`] bytes (what a
/// COOKIE answering it is bound to).
pub fn initiation_mac1(msg: &[u8]) -> [u8; MAC1_LEN] {
    let mut mac1 = [0u8; MAC1_LEN];
    mac1.copy_from_slice(&msg[INITIATION_NOISE_LEN..INITIATION_MAC2_AT]);
    mac1
}

/// Whether the initiation's mac2 is right for `key` (compared in constant
/// time). One MAC, no DH.
pub fn initiation_mac2_valid(key: &[u8], header: &[u8], msg: &[u8]) -> bool {
    if msg.len() != INITIATION_LEN {
        return false;
    }
    let want = mac16(key, &initiation_mac2_covered(header, msg));
    let got = initiation_mac2(msg);
    want.iter().zip(got).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The initiator's state between sending an initiation and receiving the
/// response.
pub struct InitiatorHandshake {
    /// `None` if the remote key is a low-order point: then no response can
    /// complete this handshake.
    state: Option<SymmetricState>,
    ephemeral: PrivateKey,
    local: PrivateKey,
    /// Responses are MACed to our own public key.
    response_mac1: Mac1Key,
}

impl fmt::Debug for InitiatorHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitiatorHandshake").finish_non_exhaustive()
    }
}

/// The responder's state after accepting an initiation, ready to respond.
pub struct ResponderHandshake {
    state: SymmetricState,
    remote_ephemeral: PublicKey,
    remote_static: PublicKey,
    payload: Zeroizing<[u8; PAYLOAD_LEN]>,
}

impl fmt::Debug for ResponderHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponderHandshake")
            .field("remote_static", &self.remote_static)
            .finish_non_exhaustive()
    }
}

/// One pinned pair's static keys and what follows from them alone, computed
/// once (when a link is made) instead of once per handshake: the
/// static-static DH `ss` and both mac1 keys. A flood of initiations then
/// costs the responder one DH each (`es`), not two.
#[derive(Clone)]
pub struct PeerStatics {
    local: LocalStatic,
    remote: PublicKey,
    /// `None` if `remote` is a low-order point (a broken configuration).
    ss: Option<Zeroizing<[u8; KEY_LEN]>>,
    /// Initiations we send are MACed to the remote's public key.
    mac1_to_remote: Mac1Key,
    /// Initiations we receive are MACed to our own.
    mac1_to_local: Mac1Key,
}

impl fmt::Debug for PeerStatics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerStatics")
            .field("local", &self.local.public)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl PeerStatics {
    /// Computes the pair's constants: one DH and two hashes.
    pub fn new(local: &LocalStatic, remote: &PublicKey) -> Self {
        Self {
            ss: ik::static_dh(&local.private, remote),
            local: local.clone(),
            remote: *remote,
            mac1_to_remote: Mac1Key::for_receiver(remote),
            mac1_to_local: Mac1Key::for_receiver(&local.public),
        }
    }

    /// Our static key pair.
    pub fn local(&self) -> &LocalStatic {
        &self.local
    }

    /// The pinned remote static key.
    pub fn remote(&self) -> &PublicKey {
        &self.remote
    }

    /// Writes an initiation to the remote into `out` and returns the state
    /// that awaits the response.
    ///
    /// `ephemeral` must be 32 fresh random bytes, never reused. `header` is
    /// the batch header that will precede the message; it is covered by
    /// mac1. If the remote key is a low-order point (a broken configuration)
    /// `out` is zeroed and the returned state refuses every response with
    /// `LowOrderPoint`.
    pub fn create_initiation(
        &self,
        ephemeral: [u8; 32],
        payload: &[u8; PAYLOAD_LEN],
        header: &[u8],
        out: &mut [u8; INITIATION_LEN],
    ) -> InitiatorHandshake {
        let ephemeral = PrivateKey::from_bytes(ephemeral);
        let (body, macs) = out.split_at_mut(INITIATION_NOISE_LEN);
        let (mac1, mac2) = macs.split_at_mut(MAC1_LEN);
        mac2.fill(0);
        let chain = transcript(header);
        let ss = self.ss.as_deref();
        let state = ik::write_initiation(
            chain,
            &self.local,
            &self.remote,
            ss,
            &ephemeral,
            payload,
            body,
        )
        .ok();
        if state.is_none() {
            body.fill(0);
        }
        mac1.copy_from_slice(&self.mac1_to_remote.compute(header, body));
        InitiatorHandshake {
            state,
            ephemeral,
            local: self.local.private.clone(),
            response_mac1: self.mac1_to_local.clone(),
        }
    }

    /// The cheap first check of an initiation sent to us: its length and
    /// its mac1 (over `header` ‖ body). One hash, no DH: a receiver runs it
    /// before it spends any handshake budget.
    pub fn check_initiation_mac1(&self, header: &[u8], msg: &[u8]) -> Result<(), HandshakeError> {
        if msg.len() != INITIATION_LEN {
            return Err(HandshakeError::WrongLength);
        }
        let (body, macs) = msg.split_at(INITIATION_NOISE_LEN);
        if !self.mac1_to_local.verify(header, body, &macs[..MAC1_LEN]) {
            return Err(HandshakeError::BadMac1);
        }
        Ok(())
    }

    /// Checks and decrypts an initiation sent to us.
    ///
    /// Order: length, then mac1, then the Noise message. The initiator's
    /// static key must be the pinned remote.
    pub fn consume_initiation(
        &self,
        header: &[u8],
        msg: &[u8],
    ) -> Result<ResponderHandshake, HandshakeError> {
        self.check_initiation_mac1(header, msg)?;
        let body = &msg[..INITIATION_NOISE_LEN];
        let mut payload = Zeroizing::new([0u8; PAYLOAD_LEN]);
        let chain = transcript(header);
        let ss = self.ss.as_deref();
        let initiation =
            ik::read_initiation(chain, &self.local, &self.remote, ss, body, &mut payload[..])?;
        Ok(ResponderHandshake {
            state: initiation.state,
            remote_ephemeral: initiation.remote_ephemeral,
            remote_static: self.remote,
            payload,
        })
    }
}

/// The transcript before an initiation's tokens: protocol name, prologue,
/// then the batch header that precedes the initiation.
fn transcript(header: &[u8]) -> HashChain {
    let mut chain = HashChain::new(PROLOGUE);
    chain.mix_hash(header);
    chain
}

/// [`PeerStatics::create_initiation`] for a pair used once.
pub fn create_initiation(
    local: &LocalStatic,
    remote: &PublicKey,
    ephemeral: [u8; 32],
    payload: &[u8; PAYLOAD_LEN],
    header: &[u8],
    out: &mut [u8; INITIATION_LEN],
) -> InitiatorHandshake {
    PeerStatics::new(local, remote).create_initiation(ephemeral, payload, header, out)
}

/// [`PeerStatics::check_initiation_mac1`] for a pair used once.
pub fn check_initiation_mac1(
    local: &LocalStatic,
    header: &[u8],
    msg: &[u8],
) -> Result<(), HandshakeError> {
    if msg.len() != INITIATION_LEN {
        return Err(HandshakeError::WrongLength);
    }
    let (body, macs) = msg.split_at(INITIATION_NOISE_LEN);
    if !Mac1Key::for_receiver(&local.public).verify(header, body, &macs[..MAC1_LEN]) {
        return Err(HandshakeError::BadMac1);
    }
    Ok(())
}

/// [`PeerStatics::consume_initiation`] for a pair used once; mac1 is checked
/// before the pair's DH is computed.
pub fn consume_initiation(
    local: &LocalStatic,
    pinned_remote: &PublicKey,
    header: &[u8],
    msg: &[u8],
) -> Result<ResponderHandshake, HandshakeError> {
    check_initiation_mac1(local, header, msg)?;
    PeerStatics::new(local, pinned_remote).consume_initiation(header, msg)
}

impl ResponderHandshake {
    /// The initiator's payload, authenticated and decrypted.
    pub fn payload(&self) -> &[u8; PAYLOAD_LEN] {
        &self.payload
    }

    /// Writes the response into `out` and returns the session keys.
    ///
    /// `ephemeral` must be 32 fresh random bytes; `header` precedes the
    /// response and is covered by mac1 (keyed by the initiator's public key).
    pub fn respond(
        self,
        ephemeral: [u8; 32],
        payload: &[u8; PAYLOAD_LEN],
        header: &[u8],
        out: &mut [u8; RESPONSE_LEN],
    ) -> SessionKeys {
        let ephemeral = PrivateKey::from_bytes(ephemeral);
        let (body, mac1) = out.split_at_mut(RESPONSE_NOISE_LEN);
        let mut state = self.state;
        state.mix_hash(header);
        let state = ik::write_response(
            state,
            &self.remote_ephemeral,
            &self.remote_static,
            &ephemeral,
            payload,
            body,
        );
        mac1.copy_from_slice(&Mac1Key::for_receiver(&self.remote_static).compute(header, body));
        let (initiator_to_responder, responder_to_initiator) = state.split();
        SessionKeys {
            send: responder_to_initiator,
            recv: initiator_to_responder,
        }
    }
}

impl InitiatorHandshake {
    /// Checks and decrypts the response; returns the session keys and the
    /// responder's payload.
    ///
    /// On error the unchanged state comes back, so a forged or corrupted
    /// response does not stop the genuine one from completing the handshake.
    #[allow(
        clippy::result_large_err,
        reason = "the state is handed back by value so the genuine response can still complete it"
    )]
    pub fn consume_response(
        self,
        header: &[u8],
        msg: &[u8],
    ) -> Result<(SessionKeys, [u8; PAYLOAD_LEN]), (Self, HandshakeError)> {
        match self.try_response(header, msg) {
            Ok(done) => Ok(done),
            Err(err) => Err((self, err)),
        }
    }

    fn try_response(
        &self,
        header: &[u8],
        msg: &[u8],
    ) -> Result<(SessionKeys, [u8; PAYLOAD_LEN]), HandshakeError> {
        let state = self.state.as_ref().ok_or(HandshakeError::LowOrderPoint)?;
        if msg.len() != RESPONSE_LEN {
            return Err(HandshakeError::WrongLength);
        }
        let (body, mac1) = msg.split_at(RESPONSE_NOISE_LEN);
        if !self.response_mac1.verify(header, body, mac1) {
            return Err(HandshakeError::BadMac1);
        }
        let mut payload = [0u8; PAYLOAD_LEN];
        let mut state = state.clone();
        state.mix_hash(header);
        let state = ik::read_response(state, &self.local, &self.ephemeral, body, &mut payload)?;
        let (send, recv) = state.split();
        Ok((SessionKeys { send, recv }, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::session::{Session, sealed_len};
    use core::time::Duration;

    const INIT_HEADER: &[u8] = b"initiation batch header.";
    const RESP_HEADER: &[u8] = b"response batch header...";

    fn party(byte: u8) -> LocalStatic {
        LocalStatic::new(PrivateKey::from_bytes([byte; 32]))
    }

    fn initiate(from: &LocalStatic, to: &PublicKey) -> (InitiatorHandshake, [u8; INITIATION_LEN]) {
        let mut msg = [0u8; INITIATION_LEN];
        let hs = create_initiation(
            from,
            to,
            [0xe1; 32],
            &[0xa1; PAYLOAD_LEN],
            INIT_HEADER,
            &mut msg,
        );
        (hs, msg)
    }

    fn respond(hs: ResponderHandshake) -> (SessionKeys, [u8; RESPONSE_LEN]) {
        let mut msg = [0u8; RESPONSE_LEN];
        let keys = hs.respond([0xe2; 32], &[0xb2; PAYLOAD_LEN], RESP_HEADER, &mut msg);
        (keys, msg)
    }

    /// Recomputes mac1 after an edit, as anyone knowing `receiver` can.
    fn remac(receiver: &PublicKey, header: &[u8], msg: &mut [u8]) {
        let noise_len = if msg.len() == INITIATION_LEN {
            INITIATION_NOISE_LEN
        } else {
            msg.len() - MAC1_LEN
        };
        let (body, rest) = msg.split_at_mut(noise_len);
        rest[..MAC1_LEN].copy_from_slice(&Mac1Key::for_receiver(receiver).compute(header, body));
    }

    /// Hands a response to the initiator, expecting a refusal; returns the
    /// state it gives back.
    fn refused(
        hs: InitiatorHandshake,
        header: &[u8],
        msg: &[u8],
    ) -> (InitiatorHandshake, HandshakeError) {
        match hs.consume_response(header, msg) {
            Ok(_) => panic!("forged response accepted"),
            Err(back) => back,
        }
    }

    #[test]
    fn full_handshake_yields_matching_keys_and_payloads() {
        let (alice, bob) = (party(1), party(2));
        let (hs, init) = initiate(&alice, &bob.public);
        let received =
            consume_initiation(&bob, &alice.public, INIT_HEADER, &init).expect("genuine");
        assert_eq!(received.payload(), &[0xa1; PAYLOAD_LEN]);
        let (bob_keys, resp) = respond(received);
        let (alice_keys, payload) = hs.consume_response(RESP_HEADER, &resp).expect("genuine");
        assert_eq!(payload, [0xb2; PAYLOAD_LEN]);
        assert_eq!(alice_keys.send.as_bytes(), bob_keys.recv.as_bytes());
        assert_eq!(alice_keys.recv.as_bytes(), bob_keys.send.as_bytes());
        assert_ne!(alice_keys.send.as_bytes(), alice_keys.recv.as_bytes());
    }

    #[test]
    fn sessions_from_the_handshake_talk_both_ways() {
        let (alice, bob) = (party(1), party(2));
        let (hs, init) = initiate(&alice, &bob.public);
        let (bob_keys, resp) =
            respond(consume_initiation(&bob, &alice.public, INIT_HEADER, &init).expect("genuine"));
        let (alice_keys, _) = hs.consume_response(RESP_HEADER, &resp).expect("genuine");
        let mut a = Session::new(alice_keys, 1, 2, Duration::ZERO, true);
        let mut b = Session::new(bob_keys, 2, 1, Duration::ZERO, false);
        ping(&mut a, &mut b);
        ping(&mut b, &mut a);
    }

    fn ping(from: &mut Session, to: &mut Session) {
        let counter = from.next_counter().expect("fresh");
        let mut buf = b"ping".to_vec();
        buf.resize(sealed_len(4), 0);
        from.seal(counter, b"hdr", &mut buf, 4);
        assert_eq!(to.open(counter, b"hdr", &mut buf), Ok(4));
        assert_eq!(&buf[..4], b"ping");
    }

    #[test]
    fn responder_pinned_to_another_key_refuses() {
        let (alice, bob, carol) = (party(1), party(2), party(3));
        let (_, init) = initiate(&alice, &bob.public);
        let err = consume_initiation(&bob, &carol.public, INIT_HEADER, &init).err();
        assert_eq!(err, Some(HandshakeError::UnknownPeer));
    }

    #[test]
    fn a_peer_that_is_not_the_pinned_one_cannot_complete() {
        let (alice, bob, mallory) = (party(1), party(2), party(9));
        // Mallory initiating to Bob, who pins Alice.
        let (_, init) = initiate(&mallory, &bob.public);
        let err = consume_initiation(&bob, &alice.public, INIT_HEADER, &init).err();
        assert_eq!(err, Some(HandshakeError::UnknownPeer));
        // Mallory receiving Alice's initiation to Bob.
        let (hs, init) = initiate(&alice, &bob.public);
        let err = consume_initiation(&mallory, &alice.public, INIT_HEADER, &init).err();
        assert_eq!(err, Some(HandshakeError::BadMac1));
        // Mallory answering it with a response from her own handshake with
        // Alice: mac1 is right (Alice's key is public), the keys are not.
        let (_, to_mallory) = initiate(&alice, &mallory.public);
        let (_, forged) = respond(
            consume_initiation(&mallory, &alice.public, INIT_HEADER, &to_mallory).expect("ok"),
        );
        let (hs, err) = refused(hs, RESP_HEADER, &forged);
        assert_eq!(err, HandshakeError::Decrypt);
        // Bob's genuine response still completes the handshake.
        let (_, resp) =
            respond(consume_initiation(&bob, &alice.public, INIT_HEADER, &init).expect("genuine"));
        assert!(hs.consume_response(RESP_HEADER, &resp).is_ok());
    }

    #[test]
    fn every_bit_flip_of_the_initiation_is_refused() {
        let (alice, bob) = (party(1), party(2));
        let (_, init) = initiate(&alice, &bob.public);
        for pos in 0..INITIATION_MAC2_AT {
            for bit in 0..8 {
                let mut msg = init;
                msg[pos] ^= 1 << bit;
                let err = consume_initiation(&bob, &alice.public, INIT_HEADER, &msg).err();
                assert_eq!(err, Some(HandshakeError::BadMac1), "byte {pos} bit {bit}");
                if pos < INITIATION_NOISE_LEN {
                    remac(&bob.public, INIT_HEADER, &mut msg);
                    let result = consume_initiation(&bob, &alice.public, INIT_HEADER, &msg);
                    assert!(
                        matches!(
                            result,
                            Err(HandshakeError::Decrypt | HandshakeError::LowOrderPoint)
                        ),
                        "remaced byte {pos} bit {bit}: {result:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn mac2_is_checked_apart_and_covers_everything_before_it() {
        let (alice, bob) = (party(1), party(2));
        let (_, mut init) = initiate(&alice, &bob.public);
        assert_eq!(initiation_mac2(&init), &[0; MAC2_LEN]);
        let key = [0x5a; 16];
        set_initiation_mac2(&key, INIT_HEADER, &mut init);
        assert!(initiation_mac2_valid(&key, INIT_HEADER, &init));
        assert!(!initiation_mac2_valid(&[0x5b; 16], INIT_HEADER, &init));
        assert!(!initiation_mac2_valid(&key, RESP_HEADER, &init));
        for pos in 0..INITIATION_LEN {
            let mut msg = init;
            msg[pos] ^= 0x10;
            assert!(
                !initiation_mac2_valid(&key, INIT_HEADER, &msg),
                "byte {pos}"
            );
        }
        // mac2 is outside mac1 and the transcript: the link decides what it proves.
        let received = consume_initiation(&bob, &alice.public, INIT_HEADER, &init);
        assert!(received.is_ok());
        assert_eq!(initiation_mac1(&init), init[128..144]);
    }

    #[test]
    fn a_rewritten_header_with_a_recomputed_mac1_fails_decryption() {
        let (alice, bob) = (party(1), party(2));
        let (hs, mut init) = initiate(&alice, &bob.public);
        let other = b"initiation batch headeR.";
        remac(&bob.public, other, &mut init);
        let err = consume_initiation(&bob, &alice.public, other, &init).err();
        assert_eq!(err, Some(HandshakeError::Decrypt));
        let (hs2, init) = initiate(&alice, &bob.public);
        let (_, mut resp) =
            respond(consume_initiation(&bob, &alice.public, INIT_HEADER, &init).expect("genuine"));
        remac(&alice.public, other, &mut resp);
        let (_, err) = refused(hs2, other, &resp);
        assert_eq!(err, HandshakeError::Decrypt);
        drop(hs);
    }

    #[test]
    fn both_sides_derive_the_same_session_proof_key() {
        let (alice, bob) = (party(1), party(2));
        let (hs, init) = initiate(&alice, &bob.public);
        let (bob_keys, resp) =
            respond(consume_initiation(&bob, &alice.public, INIT_HEADER, &init).expect("genuine"));
        let (alice_keys, _) = hs.consume_response(RESP_HEADER, &resp).expect("genuine");
        let a = alice_keys.proof_key(true);
        assert_eq!(*a, *bob_keys.proof_key(false));
        assert_ne!(*a, *alice_keys.proof_key(false));
        assert_ne!(&*a, alice_keys.send.as_bytes());
        assert_ne!(&*a, alice_keys.recv.as_bytes());
    }

    #[test]
    fn every_bit_flip_of_the_response_is_refused() {
        let (alice, bob) = (party(1), party(2));
        let (mut hs, init) = initiate(&alice, &bob.public);
        let (_, resp) =
            respond(consume_initiation(&bob, &alice.public, INIT_HEADER, &init).expect("genuine"));
        for pos in 0..RESPONSE_LEN {
            for bit in 0..8 {
                let mut msg = resp;
                msg[pos] ^= 1 << bit;
                let (back, err) = refused(hs, RESP_HEADER, &msg);
                assert_eq!(err, HandshakeError::BadMac1, "byte {pos} bit {bit}");
                hs = back;
                if pos < RESPONSE_NOISE_LEN {
                    remac(&alice.public, RESP_HEADER, &mut msg);
                    let (back, err) = refused(hs, RESP_HEADER, &msg);
                    assert!(
                        matches!(err, HandshakeError::Decrypt | HandshakeError::LowOrderPoint),
                        "remaced byte {pos} bit {bit}: {err:?}"
                    );
                    hs = back;
                }
            }
        }
        assert!(
            hs.consume_response(RESP_HEADER, &resp).is_ok(),
            "genuine after forgeries"
        );
    }

    #[test]
    fn the_header_is_covered_by_mac1() {
        let (alice, bob) = (party(1), party(2));
        let (hs, init) = initiate(&alice, &bob.public);
        let err = consume_initiation(&bob, &alice.public, b"other header", &init).err();
        assert_eq!(err, Some(HandshakeError::BadMac1));
        let (_, resp) =
            respond(consume_initiation(&bob, &alice.public, INIT_HEADER, &init).expect("genuine"));
        let (hs, err) = refused(hs, INIT_HEADER, &resp);
        assert_eq!(err, HandshakeError::BadMac1);
        assert!(hs.consume_response(RESP_HEADER, &resp).is_ok());
    }

    #[test]
    fn truncated_or_extended_messages_are_refused() {
        let (alice, bob) = (party(1), party(2));
        let (mut hs, init) = initiate(&alice, &bob.public);
        let (_, resp) =
            respond(consume_initiation(&bob, &alice.public, INIT_HEADER, &init).expect("genuine"));
        for len in 0..INITIATION_LEN {
            let err = consume_initiation(&bob, &alice.public, INIT_HEADER, &init[..len]).err();
            assert_eq!(err, Some(HandshakeError::WrongLength), "{len}");
        }
        let long = [&init[..], &[0]].concat();
        let err = consume_initiation(&bob, &alice.public, INIT_HEADER, &long).err();
        assert_eq!(err, Some(HandshakeError::WrongLength));
        for msg in (0..RESPONSE_LEN)
            .map(|len| resp[..len].to_vec())
            .chain([[&resp[..], &[0]].concat()])
        {
            let (back, err) = refused(hs, RESP_HEADER, &msg);
            assert_eq!(err, HandshakeError::WrongLength, "{}", msg.len());
            hs = back;
        }
        assert!(hs.consume_response(RESP_HEADER, &resp).is_ok());
    }

    #[test]
    fn low_order_keys_are_refused() {
        let (alice, bob) = (party(1), party(2));
        // Initiator configured with a low-order peer key.
        let mut msg = [0xffu8; INITIATION_LEN];
        let zero = PublicKey::from_bytes([0; 32]);
        let hs = create_initiation(
            &alice,
            &zero,
            [0xe1; 32],
            &[0; PAYLOAD_LEN],
            INIT_HEADER,
            &mut msg,
        );
        assert_eq!(msg[..INITIATION_NOISE_LEN], [0; INITIATION_NOISE_LEN]);
        let (_, err) = refused(hs, RESP_HEADER, &[0; RESPONSE_LEN]);
        assert_eq!(err, HandshakeError::LowOrderPoint);
        // An initiation whose ephemeral is a low-order point.
        let (_, mut init) = initiate(&alice, &bob.public);
        init[..32].fill(0);
        remac(&bob.public, INIT_HEADER, &mut init);
        let err = consume_initiation(&bob, &alice.public, INIT_HEADER, &init).err();
        assert_eq!(err, Some(HandshakeError::LowOrderPoint));
        // A response whose ephemeral is a low-order point.
        let (hs, init) = initiate(&alice, &bob.public);
        let (_, mut resp) =
            respond(consume_initiation(&bob, &alice.public, INIT_HEADER, &init).expect("genuine"));
        resp[..32].fill(0);
        remac(&alice.public, RESP_HEADER, &mut resp);
        let (_, err) = refused(hs, RESP_HEADER, &resp);
        assert_eq!(err, HandshakeError::LowOrderPoint);
    }

    #[test]
    fn fresh_ephemerals_give_fresh_messages_and_keys() {
        let (alice, bob) = (party(1), party(2));
        let mut first = [0u8; INITIATION_LEN];
        let mut second = [0u8; INITIATION_LEN];
        create_initiation(
            &alice,
            &bob.public,
            [1; 32],
            &[0; PAYLOAD_LEN],
            INIT_HEADER,
            &mut first,
        );
        create_initiation(
            &alice,
            &bob.public,
            [2; 32],
            &[0; PAYLOAD_LEN],
            INIT_HEADER,
            &mut second,
        );
        assert_ne!(first[..32], second[..32]);
        assert_ne!(first[32..], second[32..]);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let (alice, bob) = (party(1), party(2));
        let (hs, init) = initiate(&alice, &bob.public);
        let received =
            consume_initiation(&bob, &alice.public, INIT_HEADER, &init).expect("genuine");
        let shown = [
            format!("{alice:?}"),
            format!("{hs:?}"),
            format!("{received:?}"),
            format!("{:?}", respond(received).0),
        ];
        for text in &shown {
            assert!(!text.contains("[1, 1") && !text.contains("0x"), "{text}");
        }
        assert!(shown[0].contains("PrivateKey(<redacted>)"), "{}", shown[0]);
        assert_eq!(shown[1], "InitiatorHandshake { .. }");
        assert!(
            shown[3].contains("send: Key(<redacted>), recv: Key(<redacted>)"),
            "{}",
            shown[3]
        );
    }

    /// Fixed keys, ephemerals, payloads and headers give these exact bytes
    /// (a regression vector for `proto/vectors`; run with `--nocapture` to
    /// print them).
    #[test]
    fn deterministic_vector() {
        let (alice, bob) = (party(1), party(2));
        let (hs, init) = initiate(&alice, &bob.public);
        let (bob_keys, resp) =
            respond(consume_initiation(&bob, &alice.public, INIT_HEADER, &init).expect("genuine"));
        let (alice_keys, _) = hs.consume_response(RESP_HEADER, &resp).expect("genuine");
        let lines = [
            ("initiator_static_private", hex::encode([1u8; 32])),
            ("responder_static_private", hex::encode([2u8; 32])),
            ("initiator_ephemeral_random", hex::encode([0xe1u8; 32])),
            ("responder_ephemeral_random", hex::encode([0xe2u8; 32])),
            ("initiation_header", hex::encode(INIT_HEADER)),
            ("response_header", hex::encode(RESP_HEADER)),
            ("initiation", hex::encode(init)),
            ("response", hex::encode(resp)),
            (
                "initiator_send_key",
                hex::encode(alice_keys.send.as_bytes()),
            ),
            (
                "initiator_recv_key",
                hex::encode(alice_keys.recv.as_bytes()),
            ),
        ];
        for (name, value) in &lines {
            println!("{name} = {value}");
        }
        assert_eq!(bob_keys.recv.as_bytes(), alice_keys.send.as_bytes());
        assert_eq!(lines[6].1, VECTOR_INITIATION);
        assert_eq!(lines[7].1, VECTOR_RESPONSE);
        assert_eq!(lines[8].1, VECTOR_INITIATOR_SEND);
        assert_eq!(lines[9].1, VECTOR_INITIATOR_RECV);
    }

    const VECTOR_INITIATION: &str = "4c2817a9d668ed844d2f95b93b69ecb8485095783a015a424164b0d09702894f260000a48b0482250bf23a1956eb7bb7030dacda42d173b3b59b1f0da5a3a193cb930a8d5cb3832a4d2ef893a111374acff9b6d76d734f0630be00f47251e04ae407c28f59a0d6e806983faa3b0a02da18f692e8617091d1d38fe27ad9afb84b807a34ee6fc5f559ac0da2e239e5e5f600000000000000000000000000000000";
    const VECTOR_RESPONSE: &str = "19d80204bf85f3e1118e1b23410c88f0d0eeced5156f4c5bdf347b14ed7ec63f2648e8b512fc709678fdf96e5ca892d184a837445b601818880f4d1a004935458fc7e0df74c27e0675ea495997ae3c6647d7f78046bb91d3e2347fd80fec9a47";
    const VECTOR_INITIATOR_SEND: &str =
        "2b363976823f5a8510fa660c3ecec006e22aefe2353ab4111d9260411a807761";
    const VECTOR_INITIATOR_RECV: &str =
        "b3b7b80c597a22cff4f0964a4c55ccad5e3baffd0cd65dd83cea6b1a5880bdb9";
}

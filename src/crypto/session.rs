//! A keyed session: seals and opens batch bodies, hands out counters and
//! filters replays.
//!
//! Each batch has a fresh 64-bit counter, the AEAD nonce source; the batch
//! header the link puts in front of the body is the associated data of every
//! record. The body is cut into records of [`RECORD_LEN`] plaintext bytes
//! (the last may be shorter; an empty body is one empty record). Sealed, it
//! is all the ciphertext (as long as the plaintext) followed by one
//! [`TAG_LEN`]-byte tag per record, in record order. Record `i` of the batch
//! with counter `c` uses the nonce `i` (u32 LE) ‖ `c` (u64 LE).
//!
//! Records are authenticated one by one, so the body's length is authentic
//! only if the header (the AAD) states it: a body cut at a record boundary,
//! with the tags of the cut records removed, would otherwise open. The link's
//! batch header must therefore carry the body length (or record count).

use core::fmt;
use core::time::Duration;

use super::cipher::Aead;
use super::handshake::SessionKeys;
use super::keys::KEY_LEN;
use super::record::{fits_nonce, nonce, record_range};
use super::replay::ReplayWindow;
use zeroize::Zeroizing;

pub use super::cipher::TAG_LEN;
pub use super::record::{RECORD_LEN, plain_len, sealed_len};

/// Counters at or above this are never sent nor accepted (as WireGuard:
/// 2^64 - 2^13 - 1, the replay window's margin below `u64::MAX`).
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - 8192 - 1;

/// Replay windows per session: one per lane (the link's paths), so that batches of a fast
/// path cannot push those of a slow one out of a shared window.
pub const REPLAY_LANES: usize = 8;

/// After this many batches the sender should start a new handshake.
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;

/// Why a received batch body was refused. The session is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The counter was already accepted, is too old for the replay window,
    /// or is at or beyond [`REJECT_AFTER_MESSAGES`].
    #[error("batch counter replayed or outside the window")]
    Replayed,
    /// The body length is not the sealed length of any plaintext.
    #[error("sealed batch has an impossible length")]
    Malformed,
    /// A record's tag did not verify (body, tags, header or counter altered,
    /// or sealed under another key).
    #[error("batch failed authentication")]
    Forged,
}

/// Why this side cannot seal another batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// All counters below [`REJECT_AFTER_MESSAGES`] have been used: a new
    /// handshake is required.
    #[error("session counters exhausted; rekey required")]
    Exhausted,
}

/// The transport state of one handshake: both directions' keys, the send
/// counter and the receive replay window.
pub struct Session {
    send: Aead,
    recv: Aead,
    local_index: u32,
    remote_index: u32,
    created: Duration,
    initiator: bool,
    next_counter: u64,
    /// One window per lane; [`Session::open_lane`] says which.
    replay: [ReplayWindow; REPLAY_LANES],
    /// Keys the mac2 of a later initiation that proves its sender holds this session.
    proof: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("created", &self.created)
            .field("initiator", &self.initiator)
            .field("sent_batches", &self.next_counter)
            .finish_non_exhaustive()
    }
}

/// Copies a 16-byte tag out of `bytes` (exactly `TAG_LEN` long).
fn tag_array(bytes: &[u8]) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(bytes);
    tag
}

impl Session {
    /// A session from fresh handshake keys. `local_index` and `remote_index`
    /// are the link's session identifiers; `created` is the caller's clock at
    /// handshake completion; `initiator` is whether this side initiated.
    pub fn new(
        keys: SessionKeys,
        local_index: u32,
        remote_index: u32,
        created: Duration,
        initiator: bool,
    ) -> Self {
        Self {
            proof: keys.proof_key(initiator),
            send: Aead::new(&keys.send),
            recv: Aead::new(&keys.recv),
            local_index,
            remote_index,
            created,
            initiator,
            next_counter: 0,
            replay: [const { ReplayWindow::new() }; REPLAY_LANES],
        }
    }

    /// This side's session identifier.
    pub fn local_index(&self) -> u32 {
        self.local_index
    }

    /// The peer's session identifier.
    pub fn remote_index(&self) -> u32 {
        self.remote_index
    }

    /// When the handshake completed, on the caller's clock.
    pub fn created(&self) -> Duration {
        self.created
    }

    /// Whether this side initiated the handshake.
    pub fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// The session proof key (see [`SessionKeys::proof_key`]).
    pub fn proof_key(&self) -> &[u8; KEY_LEN] {
        &self.proof
    }

    /// The next send counter: 0, 1, 2, … Each must seal exactly one batch.
    pub fn next_counter(&mut self) -> Result<u64, SessionError> {
        if self.next_counter >= REJECT_AFTER_MESSAGES {
            return Err(SessionError::Exhausted);
        }
        let counter = self.next_counter;
        self.next_counter += 1;
        Ok(counter)
    }

    /// How many counters [`Session::next_counter`] has handed out.
    pub fn sent_batches(&self) -> u64 {
        self.next_counter
    }

    /// Seals a batch body in place and returns its sealed length.
    ///
    /// `buf[..plain_len]` holds the plaintext; on return
    /// `buf[..sealed_len(plain_len)]` holds ciphertext then tags. `counter`
    /// comes from [`Session::next_counter`] and is used once; `aad` is the
    /// batch header.
    ///
    /// # Panics
    /// If `buf.len() < sealed_len(plain_len)` (a caller bug, never input).
    pub fn seal(&self, counter: u64, aad: &[u8], buf: &mut [u8], plain_len: usize) -> usize {
        let sealed = sealed_len(plain_len);
        assert!(
            buf.len() >= sealed && fits_nonce(plain_len),
            "seal: buffer of {} bytes cannot hold {plain_len} sealed bytes",
            buf.len()
        );
        let (body, tags) = buf[..sealed].split_at_mut(plain_len);
        for (record, tag) in (0..=u32::MAX).zip(tags.chunks_exact_mut(TAG_LEN)) {
            let range = record_range(record, plain_len);
            tag.copy_from_slice(&self.seal_record(counter, record, aad, &mut body[range]));
        }
        sealed
    }

    /// Seals one record in place and returns its tag: the building block of
    /// [`Session::seal`], so a driver can seal the records of one batch on
    /// several cores. `chunk` is record `record` of the batch: bytes
    /// `record * RECORD_LEN ..` of the plaintext, at most [`RECORD_LEN`] long.
    pub fn seal_record(
        &self,
        counter: u64,
        record: u32,
        aad: &[u8],
        chunk: &mut [u8],
    ) -> [u8; TAG_LEN] {
        self.send.seal(&nonce(record, counter), aad, chunk)
    }

    /// Opens a sealed batch body in place and returns the plaintext length
    /// (the plaintext is `buf[..len]`).
    ///
    /// Checks the length, then the replay window (without changing it), then
    /// decrypts every record, and only then records the counter. On `Err`
    /// the session is unchanged and `buf` must be discarded (records before
    /// the forged one may already be decrypted).
    pub fn open(&mut self, counter: u64, aad: &[u8], buf: &mut [u8]) -> Result<usize, OpenError> {
        self.open_lane(0, counter, aad, buf)
    }

    /// [`Session::open`] against the replay window of `lane` (below [`REPLAY_LANES`]; any
    /// other lane is refused as [`OpenError::Replayed`]).
    ///
    /// The sender draws every counter of a session from one sequence, whatever the lane, so a
    /// counter is unique per session. Lanes are safe only if the lane is bound to the batch
    /// by its authenticated data: the link uses the path of the authenticated header (which
    /// must also be the path the batch arrived on), so a batch can only ever be checked
    /// against the one window that saw it first.
    pub fn open_lane(
        &mut self,
        lane: usize,
        counter: u64,
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, OpenError> {
        let plain = plain_len(buf.len()).ok_or(OpenError::Malformed)?;
        let window = self.replay.get(lane).ok_or(OpenError::Replayed)?;
        if counter >= REJECT_AFTER_MESSAGES || !window.check(counter) {
            return Err(OpenError::Replayed);
        }
        let (body, tags) = buf.split_at_mut(plain);
        for (record, tag) in (0..=u32::MAX).zip(tags.chunks_exact(TAG_LEN)) {
            let range = record_range(record, plain);
            self.recv
                .open(
                    &nonce(record, counter),
                    aad,
                    &mut body[range],
                    &tag_array(tag),
                )
                .map_err(|_| OpenError::Forged)?;
        }
        self.replay[lane].mark(counter);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::Key;

    const HEADER: &[u8] = b"24-byte batch header....";

    /// Two ends of one session: `(initiator, responder)`.
    fn pair() -> (Session, Session) {
        let keys = |send: u8, recv: u8| SessionKeys {
            send: Key::from_bytes([send; 32]),
            recv: Key::from_bytes([recv; 32]),
        };
        let a = Session::new(keys(1, 2), 10, 20, Duration::from_secs(5), true);
        let b = Session::new(keys(2, 1), 20, 10, Duration::from_secs(6), false);
        (a, b)
    }

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Seals `plain` under `counter`, returning the sealed body.
    fn sealed(session: &Session, counter: u64, plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        buf.resize(sealed_len(plain.len()), 0);
        assert_eq!(
            session.seal(counter, HEADER, &mut buf, plain.len()),
            buf.len()
        );
        buf
    }

    #[test]
    fn accessors_report_construction() {
        let (a, b) = pair();
        assert_eq!((a.local_index(), a.remote_index()), (10, 20));
        assert_eq!(a.created(), Duration::from_secs(5));
        assert!(a.is_initiator() && !b.is_initiator());
        let debug = format!("{a:?}");
        assert!(
            debug.contains("local_index: 10") && !debug.contains("send"),
            "{debug}"
        );
    }

    #[test]
    fn round_trip_across_record_boundaries() {
        let (a, mut b) = pair();
        for (counter, len) in [0, 1, 65535, 65536, 65537, 3 * 65536 + 5]
            .into_iter()
            .enumerate()
        {
            let plain = plaintext(len);
            let mut buf = sealed(&a, counter as u64, &plain);
            if len > 0 {
                assert_ne!(&buf[..len], &plain[..], "encrypted, len {len}");
            }
            assert_eq!(
                b.open(counter as u64, HEADER, &mut buf),
                Ok(len),
                "len {len}"
            );
            assert_eq!(&buf[..len], &plain[..], "len {len}");
        }
    }

    #[test]
    fn seal_leaves_bytes_past_the_sealed_length_alone() {
        let (a, _) = pair();
        let mut buf = vec![0xee; sealed_len(10) + 5];
        buf[..10].copy_from_slice(&plaintext(10));
        assert_eq!(a.seal(0, HEADER, &mut buf, 10), sealed_len(10));
        assert_eq!(&buf[sealed_len(10)..], &[0xee; 5]);
    }

    #[test]
    fn seal_equals_records_sealed_one_by_one() {
        let (a, _) = pair();
        let plain = plaintext(2 * RECORD_LEN + 9);
        let whole = sealed(&a, 7, &plain);
        let mut body = plain.clone();
        let mut tags = Vec::new();
        for (record, chunk) in (0..).zip(body.chunks_mut(RECORD_LEN)) {
            tags.extend_from_slice(&a.seal_record(7, record, HEADER, chunk));
        }
        body.extend_from_slice(&tags);
        assert_eq!(body, whole);
    }

    /// Flips each `(byte, bit)` of the sealed body, then every bit of the
    /// header, expecting `Forged`; then checks the genuine batch still opens
    /// under the same counter.
    fn assert_flips_rejected(len: usize, flips: impl Iterator<Item = (usize, u8)>) {
        let (a, mut b) = pair();
        let genuine = sealed(&a, 3, &plaintext(len));
        for (pos, bit) in flips {
            let mut buf = genuine.clone();
            buf[pos] ^= 1 << bit;
            assert_eq!(
                b.open(3, HEADER, &mut buf),
                Err(OpenError::Forged),
                "byte {pos} bit {bit}"
            );
        }
        for pos in 0..HEADER.len() {
            for bit in 0..8 {
                let mut header = HEADER.to_vec();
                header[pos] ^= 1 << bit;
                let mut buf = genuine.clone();
                assert_eq!(
                    b.open(3, &header, &mut buf),
                    Err(OpenError::Forged),
                    "aad {pos}.{bit}"
                );
            }
        }
        let mut buf = genuine.clone();
        assert_eq!(
            b.open(3, HEADER, &mut buf),
            Ok(len),
            "window unchanged by forgeries"
        );
    }

    #[test]
    fn every_bit_flip_of_a_small_batch_is_forged() {
        for len in [0, 1, 40] {
            let every_bit = (0..sealed_len(len)).flat_map(|pos| (0..8).map(move |bit| (pos, bit)));
            assert_flips_rejected(len, every_bit);
        }
    }

    #[test]
    fn bit_flips_across_a_multi_record_batch_are_forged() {
        // One bit per chosen byte (debug-build ChaCha is slow): record edges,
        // a stride through the ciphertext, and every tag byte.
        let len = 2 * RECORD_LEN + 100;
        let edges = [
            0,
            RECORD_LEN - 1,
            RECORD_LEN,
            2 * RECORD_LEN - 1,
            2 * RECORD_LEN,
            len - 1,
        ];
        let strided = (0..len).step_by(4099);
        let tags = len..sealed_len(len);
        let flips = edges
            .into_iter()
            .chain(strided)
            .chain(tags)
            .map(|pos| (pos, (pos % 8) as u8));
        assert_flips_rejected(len, flips);
    }

    #[test]
    fn replay_is_refused_and_forgery_leaves_the_window_alone() {
        let (a, mut b) = pair();
        let genuine = sealed(&a, 0, b"hello");
        assert_eq!(b.open(0, HEADER, &mut genuine.clone()), Ok(5));
        assert_eq!(
            b.open(0, HEADER, &mut genuine.clone()),
            Err(OpenError::Replayed)
        );
        let later = sealed(&a, 9000, b"later");
        assert_eq!(b.open(9000, HEADER, &mut later.clone()), Ok(5));
        let old = sealed(&a, 1, b"old");
        assert_eq!(
            b.open(1, HEADER, &mut old.clone()),
            Err(OpenError::Replayed)
        );
    }

    #[test]
    fn each_lane_has_its_own_window() {
        let (a, mut b) = pair();
        // Lane 1 runs 9000 counters ahead: a late counter on lane 0 still opens, once.
        for counter in 100..9100 {
            let mut buf = sealed(&a, counter, b"fast");
            assert_eq!(b.open_lane(1, counter, HEADER, &mut buf), Ok(4));
        }
        let late = sealed(&a, 7, b"late");
        assert_eq!(b.open_lane(0, 7, HEADER, &mut late.clone()), Ok(4));
        assert_eq!(
            b.open_lane(0, 7, HEADER, &mut late.clone()),
            Err(OpenError::Replayed)
        );
        // The shared window of one lane would have refused it.
        assert_eq!(
            b.open_lane(1, 7, HEADER, &mut late.clone()),
            Err(OpenError::Replayed)
        );
        assert_eq!(
            b.open_lane(REPLAY_LANES, 9200, HEADER, &mut sealed(&a, 9200, b"x")),
            Err(OpenError::Replayed)
        );
    }

    #[test]
    fn counter_is_bound_into_the_nonce() {
        let (a, mut b) = pair();
        let mut buf = sealed(&a, 4, b"counter four");
        assert_eq!(b.open(5, HEADER, &mut buf), Err(OpenError::Forged));
    }

    #[test]
    fn directions_use_different_keys() {
        let (mut a, b) = pair();
        let mut own = sealed(&a, 0, b"to myself");
        assert_eq!(a.open(0, HEADER, &mut own), Err(OpenError::Forged));
        let mut back = sealed(&b, 0, b"reply");
        assert_eq!(a.open(0, HEADER, &mut back), Ok(5));
    }

    #[test]
    fn swapped_records_are_forged() {
        let (a, mut b) = pair();
        let genuine = sealed(&a, 2, &plaintext(2 * RECORD_LEN));
        let (body, tags) = genuine.split_at(2 * RECORD_LEN);
        let mut both = [
            &body[RECORD_LEN..],
            &body[..RECORD_LEN],
            &tags[TAG_LEN..],
            &tags[..TAG_LEN],
        ]
        .concat();
        assert_eq!(b.open(2, HEADER, &mut both), Err(OpenError::Forged));
        let mut tags_only = [body, &tags[TAG_LEN..], &tags[..TAG_LEN]].concat();
        assert_eq!(b.open(2, HEADER, &mut tags_only), Err(OpenError::Forged));
        let mut bodies_only = [&body[RECORD_LEN..], &body[..RECORD_LEN], tags].concat();
        assert_eq!(b.open(2, HEADER, &mut bodies_only), Err(OpenError::Forged));
        assert_eq!(b.open(2, HEADER, &mut genuine.clone()), Ok(2 * RECORD_LEN));
    }

    #[test]
    fn impossible_lengths_are_malformed() {
        let (a, mut b) = pair();
        let genuine = sealed(&a, 0, &plaintext(RECORD_LEN + 1));
        for len in [0, 1, 15, RECORD_LEN + 17, RECORD_LEN + 32] {
            let mut buf = genuine[..len].to_vec();
            assert_eq!(
                b.open(0, HEADER, &mut buf),
                Err(OpenError::Malformed),
                "{len}"
            );
        }
        assert_eq!(b.open(0, HEADER, &mut genuine.clone()), Ok(RECORD_LEN + 1));
    }

    #[test]
    fn counters_count_up_and_run_out() {
        let (mut a, mut b) = pair();
        assert_eq!(a.sent_batches(), 0);
        assert_eq!(a.next_counter(), Ok(0));
        assert_eq!(a.next_counter(), Ok(1));
        assert_eq!(a.sent_batches(), 2);
        a.next_counter = REJECT_AFTER_MESSAGES - 1;
        assert_eq!(a.next_counter(), Ok(REJECT_AFTER_MESSAGES - 1));
        assert_eq!(a.next_counter(), Err(SessionError::Exhausted));
        assert_eq!(a.sent_batches(), REJECT_AFTER_MESSAGES);
        let mut last = sealed(&a, REJECT_AFTER_MESSAGES - 1, b"last");
        assert_eq!(b.open(REJECT_AFTER_MESSAGES - 1, HEADER, &mut last), Ok(4));
        let mut beyond = sealed(&a, REJECT_AFTER_MESSAGES, b"beyond");
        assert_eq!(
            b.open(REJECT_AFTER_MESSAGES, HEADER, &mut beyond),
            Err(OpenError::Replayed)
        );
    }

    #[test]
    #[should_panic(expected = "cannot hold")]
    fn seal_into_a_short_buffer_is_a_caller_bug() {
        let (a, _) = pair();
        let mut buf = vec![0; 20];
        a.seal(0, HEADER, &mut buf, 10);
    }
}

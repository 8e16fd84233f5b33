//! Session setup for the link: when to initiate, answering initiations, simultaneous starts,
//! key confirmation and detecting a restarted peer. The Noise IK messages themselves are
//! built and checked by [`crate::crypto::handshake`].

use std::time::Duration;

use super::wire::{BatchHeader, BatchType, HEADER_LEN};
use super::{Event, Link, Pending, ReceivedCookie};
use crate::crypto::Session;
use crate::crypto::cookie::{
    COOKIE_LIFETIME, COOKIE_NONCE_LEN, COOKIE_REPLY_LEN, open_cookie_reply,
};
use crate::crypto::handshake::{self as noise_hs, INITIATION_LEN, PAYLOAD_LEN, RESPONSE_LEN};

/// Most COOKIE replies a link sends per second (all paths).
const COOKIE_REPLIES_PER_SECOND: u32 = 50;

/// The link's payload inside both handshake messages (encrypted by Noise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hello {
    /// The sender's session index: the peer puts it in the header of every batch it seals.
    pub sender_index: u32,
    /// Wall-clock time of an initiation (ns since the Unix epoch); 0 in a response.
    pub timestamp: u64,
    /// The sender's instance: a new value means it lost its link state.
    pub instance: u64,
    /// The lowest sequence number the sender still holds (where the peer's receiver starts
    /// after a restart).
    pub send_base: u64,
}

impl Hello {
    /// Layout: sender_index u32, flags u32 (0), timestamp u64, instance u64, send_base u64.
    pub fn encode(&self) -> [u8; PAYLOAD_LEN] {
        let mut b = [0u8; PAYLOAD_LEN];
        b[0..4].copy_from_slice(&self.sender_index.to_le_bytes());
        b[8..16].copy_from_slice(&self.timestamp.to_le_bytes());
        b[16..24].copy_from_slice(&self.instance.to_le_bytes());
        b[24..32].copy_from_slice(&self.send_base.to_le_bytes());
        b
    }

    /// Parses an authenticated payload; `None` if a reserved field is set or `send_base` is
    /// at or beyond [`super::seq::MAX_SEQ`].
    pub fn decode(b: &[u8; PAYLOAD_LEN]) -> Option<Self> {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        if u32_at(4) != 0 || u64_at(24) >= super::seq::MAX_SEQ {
            return None;
        }
        Some(Self {
            sender_index: u32_at(0),
            timestamp: u64_at(8),
            instance: u64_at(16),
            send_base: u64_at(24),
        })
    }
}

impl Link {
    /// Sends a fresh initiation on path index `path` and arms the retry timer.
    pub(super) fn initiate(&mut self, now: Duration, path: usize) {
        let local_index = self.fresh_index();
        let hello = Hello {
            sender_index: local_index,
            timestamp: self.cfg.epoch_unix_ns.saturating_add(now.as_nanos() as u64),
            instance: self.cfg.instance,
            send_base: self.send.base(),
        };
        let header = handshake_header(
            BatchType::Initiation,
            self.paths[path].config.id,
            0,
            INITIATION_LEN,
        );
        let mut ephemeral = [0u8; 32];
        self.entropy.fill(&mut ephemeral);
        let mut msg = [0u8; INITIATION_LEN];
        let handshake =
            self.statics
                .create_initiation(ephemeral, &hello.encode(), &header, &mut msg);
        if let Some(key) = self.mac2_key(now, path) {
            noise_hs::set_initiation_mac2(&key, &header, &mut msg);
        }
        let attempts = self.sessions.pending.as_ref().map_or(0, |p| p.attempts + 1);
        self.sessions.pending = Some(Pending {
            handshake,
            local_index,
            attempts,
            mac1: noise_hs::initiation_mac1(&msg),
        });
        self.hs_out[path] = Some([header.as_slice(), &msg].concat());
        self.sessions.retry_at = Some(now + self.retry_interval());
    }

    /// The key of the mac2 for an initiation on path index `path`: a fresh cookie the peer
    /// sent for that path, else the proof of our current session, else none (mac2 zero).
    fn mac2_key(&self, now: Duration, path: usize) -> Option<Vec<u8>> {
        let s = &self.sessions;
        let fresh =
            |c: &&ReceivedCookie| c.path == path && now.saturating_sub(c.at) < COOKIE_LIFETIME;
        if let Some(c) = s.cookie.as_ref().filter(fresh) {
            return Some(c.cookie.to_vec());
        }
        s.current.as_ref().map(|c| c.proof_key().to_vec())
    }

    /// The retry interval plus up to 1/8 of it as random jitter.
    fn retry_interval(&mut self) -> Duration {
        let mut r = [0u8; 2];
        self.entropy.fill(&mut r);
        let base = self.cfg.handshake_retry;
        base + base / 8 * u32::from(u16::from_le_bytes(r)) / u32::from(u16::MAX)
    }

    /// A random session index that is non-zero and not in use.
    fn fresh_index(&mut self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            self.entropy.fill(&mut b);
            let i = u32::from_le_bytes(b);
            if i != 0
                && self.session_for(i).is_none()
                && self
                    .sessions
                    .pending
                    .as_ref()
                    .is_none_or(|p| p.local_index != i)
            {
                return i;
            }
        }
    }

    /// Whether an initiation's mac2 proves that its sender holds one of our sessions.
    fn proves_session(&self, head: &[u8], msg: &[u8]) -> bool {
        let s = &self.sessions;
        [&s.current, &s.previous, &s.next]
            .into_iter()
            .flatten()
            .any(|x| noise_hs::initiation_mac2_valid(x.proof_key(), head, msg))
    }

    /// Takes the budget an initiation with a valid mac1 is answered from: the session-proved
    /// one, the cookie one (datagram paths), or its path's. Under load on a datagram path an
    /// initiation without a valid cookie gets a COOKIE instead. Returns whether to go on.
    fn admit_initiation(
        &mut self,
        now: Duration,
        path: usize,
        source: Option<&[u8]>,
        head: &[u8],
        msg: &[u8],
    ) -> bool {
        let rate = self.cfg.handshakes_per_second;
        if self.proves_session(head, msg) {
            let admitted = self.proved_budget.take(now, rate);
            return self.count_limited(admitted);
        }
        let Some(source) = source else {
            let admitted = self.hs_budget[path].take(now, rate);
            return self.count_limited(admitted);
        };
        if self.cookie_maker.needs_rotation(now) {
            let mut secret = [0u8; 32];
            self.entropy.fill(&mut secret);
            self.cookie_maker.rotate(secret, now);
        }
        let covered = noise_hs::initiation_mac2_covered(head, msg);
        let mac2 = noise_hs::initiation_mac2(msg);
        if self.cookie_maker.mac2_valid(source, &covered, mac2) {
            let admitted = self.cookie_budget.take(now, rate);
            return self.count_limited(admitted);
        }
        if self.hs_budget[path].take(now, rate) {
            return true;
        }
        let peer = self.paths[path].config.peer_source.as_deref();
        if peer.is_none_or(|p| p == source) {
            self.send_cookie(now, path, source, &noise_hs::initiation_mac1(msg));
        } else {
            self.rejected.handshake_rate_limited += 1;
        }
        false
    }

    /// Counts a refusal when `admitted` is false; passes it on.
    fn count_limited(&mut self, admitted: bool) -> bool {
        if !admitted {
            self.rejected.handshake_rate_limited += 1;
        }
        admitted
    }

    /// Queues a COOKIE for `source` answering the initiation with `mac1`, within the reply
    /// budget (over it, the initiation is just dropped and counted).
    fn send_cookie(&mut self, now: Duration, path: usize, source: &[u8], mac1: &[u8; 16]) {
        if !self.cookie_replies.take(now, COOKIE_REPLIES_PER_SECOND) {
            self.rejected.handshake_rate_limited += 1;
            return;
        }
        let header = handshake_header(
            BatchType::Cookie,
            self.paths[path].config.id,
            0,
            COOKIE_REPLY_LEN,
        );
        let mut nonce = [0u8; COOKIE_NONCE_LEN];
        self.entropy.fill(&mut nonce);
        let mut body = [0u8; COOKIE_REPLY_LEN];
        self.cookie_maker.reply(source, mac1, nonce, &mut body);
        self.cookie_out[path] = Some([header.as_slice(), &body].concat());
        self.rejected.handshake_cookie_sent += 1;
    }

    /// Handles a COOKIE received on path index `path`: kept for the next initiations on it if
    /// it answers our pending initiation.
    pub(super) fn on_cookie(
        &mut self,
        now: Duration,
        path: usize,
        batch: &[u8],
        header: &BatchHeader,
    ) {
        if header.receiver != 0 || header.body_len as usize != COOKIE_REPLY_LEN {
            self.rejected.handshake_invalid += 1;
            return;
        }
        let Some(pending) = &self.sessions.pending else {
            self.rejected.handshake_unexpected += 1;
            return;
        };
        let body = &batch[HEADER_LEN..];
        match open_cookie_reply(&self.cfg.peer, &pending.mac1, body) {
            Some(cookie) => {
                self.sessions.cookie = Some(ReceivedCookie {
                    cookie,
                    at: now,
                    path,
                })
            }
            None => self.rejected.handshake_invalid += 1,
        }
    }

    /// Handles an initiation received on path index `path`; `source` is the sender's address
    /// on a datagram path (what a cookie is bound to), `None` on FC.
    pub(super) fn on_initiation(
        &mut self,
        now: Duration,
        path: usize,
        source: Option<&[u8]>,
        batch: &[u8],
        header: &BatchHeader,
    ) {
        if header.body_len as usize != INITIATION_LEN || header.receiver != 0 {
            self.rejected.handshake_invalid += 1;
            return;
        }
        let (head, body) = batch.split_at(HEADER_LEN);
        let msg = &body[..INITIATION_LEN];
        if self.statics.check_initiation_mac1(head, msg).is_err() {
            self.rejected.handshake_bad_mac1 += 1;
            return;
        }
        if !self.admit_initiation(now, path, source, head, msg) {
            return;
        }
        let responder = match self.statics.consume_initiation(head, msg) {
            Ok(r) => r,
            Err(_) => {
                self.rejected.handshake_invalid += 1;
                return;
            }
        };
        let Some(hello) = Hello::decode(responder.payload()) else {
            self.rejected.handshake_invalid += 1;
            return;
        };
        let s = &mut self.sessions;
        if hello.timestamp <= s.peer_timestamp || hello.timestamp < s.timestamp_floor {
            self.rejected.handshake_replayed += 1;
            return;
        }
        // Authenticated and newer: the high-water mark moves whether or not we answer, so a
        // side that wins every tie-break still refuses replays of the peer's initiations.
        s.peer_timestamp = hello.timestamp;
        if s.pending.is_some() && self.cfg.local.public > self.cfg.peer {
            // Both sides started at once: the initiation from the larger static key stands,
            // and the peer answers ours.
            self.handshake_collisions += 1;
            return;
        }
        self.sessions.pending = None;
        self.respond(now, path, responder, &hello);
    }

    fn respond(
        &mut self,
        now: Duration,
        path: usize,
        responder: noise_hs::ResponderHandshake,
        peer: &Hello,
    ) {
        let local_index = self.fresh_index();
        let ours = Hello {
            sender_index: local_index,
            timestamp: 0,
            instance: self.cfg.instance,
            send_base: self.send.base(),
        };
        let header = handshake_header(
            BatchType::Response,
            self.paths[path].config.id,
            peer.sender_index,
            RESPONSE_LEN,
        );
        let mut ephemeral = [0u8; 32];
        self.entropy.fill(&mut ephemeral);
        let mut msg = [0u8; RESPONSE_LEN];
        let keys = responder.respond(ephemeral, &ours.encode(), &header, &mut msg);
        self.sessions.next = Some(Session::new(
            keys,
            local_index,
            peer.sender_index,
            now,
            false,
        ));
        self.sessions.next_hello = Some(*peer);
        self.hs_out[path] = Some([header.as_slice(), &msg].concat());
    }

    /// Handles a response received on path index `path`.
    pub(super) fn on_response(
        &mut self,
        now: Duration,
        path: usize,
        batch: &[u8],
        header: &BatchHeader,
    ) {
        let expected = self
            .sessions
            .pending
            .as_ref()
            .is_some_and(|p| p.local_index == header.receiver);
        if !expected || header.body_len as usize != RESPONSE_LEN {
            self.rejected.handshake_unexpected += 1;
            return;
        }
        let Some(pending) = self.sessions.pending.take() else {
            return;
        };
        let (head, body) = batch.split_at(HEADER_LEN);
        let (keys, payload) = match pending
            .handshake
            .consume_response(head, &body[..RESPONSE_LEN])
        {
            Ok(done) => done,
            Err((handshake, err)) => {
                self.sessions.pending = Some(Pending {
                    handshake,
                    ..pending
                });
                match err {
                    noise_hs::HandshakeError::BadMac1 => self.rejected.handshake_bad_mac1 += 1,
                    _ => self.rejected.handshake_invalid += 1,
                }
                return;
            }
        };
        let Some(hello) = Hello::decode(&payload) else {
            self.rejected.handshake_invalid += 1;
            return;
        };
        let session = Session::new(keys, pending.local_index, hello.sender_index, now, true);
        let rekey = self.adopt_peer_instance(&hello);
        self.install(now, path, session, rekey);
        // Our first batch under the new keys confirms them to the responder.
        self.paths[path].probe_now(now);
    }

    /// A transport batch opened under the unconfirmed responder session: it becomes current,
    /// and only now does the initiator's instance and send base apply (key confirmation).
    pub(super) fn confirm_next(&mut self, now: Duration, path: usize) {
        let Some(session) = self.sessions.next.take() else {
            return;
        };
        if let Some(hello) = self.sessions.next_hello.take() {
            self.adopt_peer_instance(&hello);
        }
        self.install(now, path, session, self.sessions.current.is_some());
    }

    fn install(&mut self, now: Duration, path: usize, session: Session, rekey: bool) {
        self.sessions.previous = self.sessions.current.replace(session);
        self.sessions.retry_at = None;
        self.handshakes += 1;
        self.path_up(now, path);
        self.push_event(Event::HandshakeCompleted {
            path: self.paths[path].config.id,
            rekey,
        });
        self.update_active(now);
    }

    /// Notes the peer's instance; if it changed, the peer lost its state: our receiver restarts
    /// at the peer's send base and everything we had in flight is resent. Returns whether the
    /// instance is the one we knew (a rekey).
    fn adopt_peer_instance(&mut self, hello: &Hello) -> bool {
        if self.sessions.peer_instance == Some(hello.instance) {
            return true;
        }
        if self.sessions.peer_instance.is_some() {
            self.push_event(Event::PeerRestarted);
            self.sessions.previous = None;
        }
        self.sessions.peer_instance = Some(hello.instance);
        self.recv.reset(hello.send_base);
        self.send.requeue_all();
        self.peer_cum = self.peer_cum.min(self.send.base());
        self.skip_sent = None;
        false
    }

    /// The session whose local index is `index`, with whether it is the unconfirmed one.
    pub(super) fn session_for(&self, index: u32) -> Option<(&Session, bool)> {
        let s = &self.sessions;
        if let Some(x) = s.current.as_ref().filter(|x| x.local_index() == index) {
            return Some((x, false));
        }
        if let Some(x) = s.previous.as_ref().filter(|x| x.local_index() == index) {
            return Some((x, false));
        }
        s.next
            .as_ref()
            .filter(|x| x.local_index() == index)
            .map(|x| (x, true))
    }

    /// The same, mutable.
    pub(super) fn session_for_mut(&mut self, index: u32) -> Option<&mut Session> {
        let s = &mut self.sessions;
        [&mut s.current, &mut s.previous, &mut s.next]
            .into_iter()
            .filter_map(|x| x.as_mut())
            .find(|x| x.local_index() == index)
    }

    /// Starts, retries or renews handshakes as time requires, and drops expired sessions.
    pub(super) fn drive_handshakes(&mut self, now: Duration) {
        let reject = self.cfg.reject_after;
        let s = &mut self.sessions;
        for slot in [&mut s.current, &mut s.previous, &mut s.next] {
            if slot.as_ref().is_some_and(|x| now >= x.created() + reject) {
                *slot = None;
            }
        }
        let s = &mut self.sessions;
        if s.current.is_none() && s.pending.is_none() && s.retry_at.is_none() {
            // Lost the session (expired, or never confirmed): try again after one interval.
            s.retry_at = Some(now + self.cfg.handshake_retry);
        }
        if self.sessions.retry_at.is_some_and(|t| now >= t) || self.rekey_due(now) {
            let path = self.handshake_path();
            self.initiate(now, path);
        }
    }

    /// Whether the current session should be renewed: its initiator renews it at `rekey_after`
    /// (or at the message limit); the other side only if that did not happen in time.
    fn rekey_due(&self, now: Duration) -> bool {
        let Some(cur) = &self.sessions.current else {
            return false;
        };
        if self.sessions.pending.is_some() {
            return false;
        }
        let age = now.saturating_sub(cur.created());
        let late = self.cfg.rekey_after + self.cfg.handshake_retry * 3;
        let by_time = if cur.is_initiator() {
            age >= self.cfg.rekey_after
        } else {
            age >= late
        };
        by_time || cur.sent_batches() >= crate::crypto::session::REKEY_AFTER_MESSAGES
    }

    /// When [`Link::drive_handshakes`] has something to do next.
    pub(super) fn handshake_deadline(&self) -> Option<Duration> {
        let s = &self.sessions;
        let mut t = s.retry_at;
        if let (Some(cur), None) = (&s.current, &s.pending) {
            let after = if cur.is_initiator() {
                self.cfg.rekey_after
            } else {
                self.cfg.rekey_after + self.cfg.handshake_retry * 3
            };
            t = Some(t.map_or(cur.created() + after, |x| x.min(cur.created() + after)));
        }
        let reject = self.cfg.reject_after;
        for x in [&s.current, &s.previous, &s.next].into_iter().flatten() {
            t = Some(t.map_or(x.created() + reject, |y| y.min(x.created() + reject)));
        }
        t
    }

    /// The path for the next initiation: the active one, else the paths in turn.
    fn handshake_path(&self) -> usize {
        if let Some(a) = self.active {
            return a;
        }
        let attempt = self.sessions.pending.as_ref().map_or(0, |p| p.attempts + 1);
        attempt as usize % self.paths.len()
    }

    /// Forgets every session (the peer closed); handshakes start again.
    pub(super) fn drop_sessions(&mut self, now: Duration) {
        let s = &mut self.sessions;
        s.current = None;
        s.previous = None;
        s.next = None;
        s.next_hello = None;
        s.pending = None;
        s.retry_at = Some(now + self.cfg.handshake_retry);
    }
}

fn handshake_header(ty: BatchType, path: u8, receiver: u32, body_len: usize) -> [u8; HEADER_LEN] {
    BatchHeader {
        batch_type: ty,
        path,
        receiver,
        body_len: body_len as u32,
        counter: 0,
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip_and_reserved_field() {
        let h = Hello {
            sender_index: 7,
            timestamp: 1 << 40,
            instance: 0xabcdef,
            send_base: crate::link::seq::MAX_SEQ - 1,
        };
        let mut b = h.encode();
        assert_eq!(Hello::decode(&b), Some(h));
        let near_the_top = Hello {
            send_base: u64::MAX - 3,
            ..h
        };
        assert_eq!(Hello::decode(&near_the_top.encode()), None);
        b[5] = 1;
        assert_eq!(Hello::decode(&b), None);
    }
}

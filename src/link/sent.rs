//! The sender's side of reliability: accepted frames, what is in flight where, acknowledgement,
//! loss detection, retransmission and expiry.
//!
//! Every accepted packet gets the next sequence number and stays here until it is acknowledged
//! or older than the maximum frame age. A frame declared lost is queued again and leaves in a
//! *new* batch (new batch number, new AEAD counter); it is never re-sealed under an old counter.

use std::collections::VecDeque;
use std::time::Duration;

use super::config::MAX_PATHS;
use super::seq;
use super::wire::{self, AckRange, FrameWriter};

/// A transmission of a frame: which batch carried (the end of) it, on which path, when.
#[derive(Debug, Clone, Copy)]
struct Tx {
    /// Link-wide batch number of the batch that carried the frame (or its last fragment).
    pn: u64,
    /// Index of the path in the link's path list.
    path: u8,
    sent: Duration,
    /// Whether an earlier transmission exists (its RTT sample would be ambiguous).
    retransmitted: bool,
}

#[derive(Debug)]
enum State {
    /// Waiting to be sent (new, or declared lost).
    Queued { retransmission: bool },
    /// Carried by a batch that is not yet acknowledged or declared lost.
    InFlight(Tx),
    /// Acknowledged: the payload is released. Every sequence number from this frame's up to
    /// `next` (exclusive) is acknowledged too: a hint that lets acknowledgement processing
    /// step over acknowledged runs instead of visiting each frame again.
    Acked { next: u64 },
}

#[derive(Debug)]
struct Frame {
    payload: Vec<u8>,
    flags: u8,
    accepted: Duration,
    state: State,
}

/// Why an accepted packet could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The send buffer's frame or byte limit is reached.
    Full,
}

/// What an acknowledgement did. Paths are named by their index in the link's path list.
#[derive(Debug, Default, Clone, Copy)]
pub struct AckOutcome {
    /// Frames acknowledged for the first time.
    pub newly_acked: u64,
    /// Per path index: the largest batch number among the newly acknowledged frames sent there.
    pub largest_pn: [Option<u64>; MAX_PATHS],
    /// The newest transmission among the newly acknowledged frames that was not a
    /// retransmission: `(path, pn, sent)`, an RTT sample candidate.
    pub rtt_sample: Option<(u8, u64, Duration)>,
}

/// Counters kept by the send buffer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendCounters {
    /// Packets taken for delivery.
    pub accepted: u64,
    /// Packets refused because the buffer was full.
    pub refused_full: u64,
    /// Frame transmissions after the first (each counts once per resend).
    pub retransmitted: u64,
    /// Frames dropped unacknowledged at the maximum frame age.
    pub expired: u64,
    /// Frames acknowledged.
    pub acked: u64,
    /// Work done applying acknowledgements: frames visited, each acknowledged one and each
    /// step over an acknowledged run. Grows with newly acknowledged frames, not with how often
    /// or how widely the peer repeats itself.
    pub ack_steps: u64,
}

/// Accepted frames from the oldest unacknowledged (`base`) to the newest.
#[derive(Debug)]
pub struct SendBuffer {
    frames: VecDeque<Frame>,
    base: u64,
    /// Index into `frames` of the first frame never sent.
    next_new: usize,
    /// Frames declared lost, in the order they are to be resent (sequence numbers).
    lost: VecDeque<u64>,
    /// A frame whose fragments are partly written: (seq, next offset).
    partial: Option<(u64, u32)>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
    in_flight: usize,
    /// Payload bytes in flight, per path index.
    path_bytes: [usize; MAX_PATHS],
    pool: Vec<Vec<u8>>,
    counters: SendCounters,
}

/// Most spare payload buffers kept for reuse.
const POOL_MAX: usize = 1024;
/// Smallest fragment chunk worth a FRAGMENT header.
const MIN_FRAGMENT: usize = 64;

impl SendBuffer {
    /// An empty buffer whose first frame will get `initial_seq`.
    pub fn new(initial_seq: u64, max_frames: usize, max_bytes: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            base: initial_seq,
            next_new: 0,
            lost: VecDeque::new(),
            partial: None,
            bytes: 0,
            max_frames,
            max_bytes,
            in_flight: 0,
            path_bytes: [0; MAX_PATHS],
            pool: Vec::new(),
            counters: SendCounters::default(),
        }
    }

    /// The lowest sequence number still held: everything below is acknowledged or expired.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The sequence number the next accepted packet gets.
    pub fn next_seq(&self) -> u64 {
        self.base + self.frames.len() as u64
    }

    /// The counters.
    pub fn counters(&self) -> SendCounters {
        self.counters
    }

    /// Frames held (queued, in flight or acknowledged but not yet released).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Frames currently in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether a packet of `len` bytes would be refused.
    pub fn is_full(&self, len: usize) -> bool {
        self.frames.len() >= self.max_frames
            || self.bytes + len > self.max_bytes
            || self.next_seq() >= seq::MAX_SEQ
    }

    /// A cleared buffer from the pool for the caller to fill with a packet.
    pub fn take_buffer(&mut self) -> Vec<u8> {
        let mut b = self.pool.pop().unwrap_or_default();
        b.clear();
        b
    }

    /// Takes `payload` (as it will be sent) with `flags`, accepted at `now`; returns its
    /// sequence number. A refused payload's buffer is recycled.
    pub fn accept(&mut self, now: Duration, payload: Vec<u8>, flags: u8) -> Result<u64, Refused> {
        if self.is_full(payload.len()) {
            self.counters.refused_full += 1;
            self.recycle(payload);
            return Err(Refused::Full);
        }
        let seq = self.next_seq();
        self.bytes += payload.len();
        self.frames.push_back(Frame {
            payload,
            flags,
            accepted: now,
            state: State::Queued {
                retransmission: false,
            },
        });
        self.counters.accepted += 1;
        Ok(seq)
    }

    /// Whether a frame is half sent in fragments (it must be finished before others).
    pub fn has_partial(&self) -> bool {
        self.partial.is_some()
    }

    /// Whether any frame waits to be (re)sent.
    pub fn has_queued(&self) -> bool {
        self.partial.is_some() || !self.lost.is_empty() || self.next_new < self.frames.len()
    }

    fn index(&self, seq: u64) -> Option<usize> {
        let i = seq.checked_sub(self.base)?;
        (i < self.frames.len() as u64).then_some(i as usize)
    }

    /// Writes queued frames (resends first, then new ones, oldest first) into `w` until it is
    /// full. `max_plain` is the plaintext capacity of an empty batch on this path: frames
    /// larger than that are fragmented. Frames completed in this batch are marked in flight as
    /// batch `pn` on `path`. Returns the number of frames (or fragments) written.
    pub fn write_frames(
        &mut self,
        w: &mut FrameWriter<'_>,
        max_plain: usize,
        pn: u64,
        path: u8,
        now: Duration,
    ) -> usize {
        let mut written = 0;
        while let Some((seq, offset)) = self.next_to_send() {
            let Some(i) = self.index(seq) else {
                self.partial = None;
                continue;
            };
            let tx = Tx {
                pn,
                path,
                sent: now,
                retransmitted: false,
            };
            match self.write_one(w, i, seq, offset, max_plain, tx) {
                WriteResult::NoRoom => break,
                WriteResult::Whole => written += 1,
                WriteResult::Part(next) => {
                    written += 1;
                    self.partial = Some((seq, next));
                    break;
                }
            }
        }
        written
    }

    /// The frame to continue or start: a partial frame first, then the lost queue, then new.
    /// Entries for frames acknowledged or expired since they were queued are dropped here.
    fn next_to_send(&mut self) -> Option<(u64, u32)> {
        if let Some(p) = self.partial {
            return Some(p);
        }
        while let Some(&seq) = self.lost.front() {
            match self.index(seq).map(|i| &self.frames[i].state) {
                Some(State::Queued { .. }) => return Some((seq, 0)),
                _ => {
                    self.lost.pop_front();
                }
            }
        }
        // A frame acknowledged before it was ever sent is passed over.
        while self
            .frames
            .get(self.next_new)
            .is_some_and(|f| matches!(f.state, State::Acked { .. }))
        {
            self.next_new += 1;
        }
        (self.next_new < self.frames.len()).then(|| (self.base + self.next_new as u64, 0))
    }

    fn write_one(
        &mut self,
        w: &mut FrameWriter<'_>,
        i: usize,
        seq: u64,
        offset: u32,
        max_plain: usize,
        tx: Tx,
    ) -> WriteResult {
        let frame = &self.frames[i];
        let len = frame.payload.len();
        let wire_seq = seq::truncate(seq);
        let fits_whole_batch = len + wire::DATA_HEADER_LEN <= max_plain;
        if offset == 0 && fits_whole_batch {
            if !w.put_data(wire_seq, frame.flags, &frame.payload) {
                return WriteResult::NoRoom;
            }
            self.mark_sent(i, seq, tx);
            return WriteResult::Whole;
        }
        let room = w.remaining().saturating_sub(wire::FRAGMENT_HEADER_LEN);
        let left = len - offset as usize;
        if room < MIN_FRAGMENT.min(left) {
            return WriteResult::NoRoom;
        }
        let take = room.min(left);
        let chunk = &frame.payload[offset as usize..offset as usize + take];
        let flags = frame.flags;
        w.put_fragment(wire_seq, flags, len as u32, offset, chunk);
        if take == left {
            self.partial = None;
            self.mark_sent(i, seq, tx);
            WriteResult::Whole
        } else {
            WriteResult::Part(offset + take as u32)
        }
    }

    fn mark_sent(&mut self, i: usize, seq: u64, mut tx: Tx) {
        let frame = &mut self.frames[i];
        let State::Queued { retransmission } = frame.state else {
            return;
        };
        tx.retransmitted = retransmission;
        if retransmission {
            self.counters.retransmitted += 1;
            if self.lost.front() == Some(&seq) {
                self.lost.pop_front();
            }
        } else if i == self.next_new {
            self.next_new += 1;
        }
        frame.state = State::InFlight(tx);
        let len = frame.payload.len();
        self.enter_flight(tx.path, len);
    }

    fn enter_flight(&mut self, path: u8, len: usize) {
        self.in_flight += 1;
        if let Some(b) = self.path_bytes.get_mut(path as usize) {
            *b += len;
        }
    }

    fn leave_flight(&mut self, path: u8, len: usize) {
        self.in_flight -= 1;
        if let Some(b) = self.path_bytes.get_mut(path as usize) {
            *b -= len;
        }
    }

    /// Payload bytes in flight on path index `path`.
    pub fn bytes_in_flight(&self, path: u8) -> usize {
        self.path_bytes.get(path as usize).copied().unwrap_or(0)
    }

    /// Applies an acknowledgement: everything below `cum` and the `ranges` (64-bit `start..end`
    /// pairs, as [`expand_ranges`] makes them). Sequence numbers below the base or beyond what
    /// was sent are ignored. The work is the newly acknowledged frames plus O(1) amortised per
    /// range (see [`SendCounters::ack_steps`]).
    pub fn on_ack(&mut self, cum: u64, ranges: &[(u64, u64)]) -> AckOutcome {
        let mut out = AckOutcome::default();
        let top = self.next_seq();
        let cum = cum.min(top);
        self.ack_span(self.base, cum, &mut out);
        for &(start, end) in ranges {
            self.ack_span(start.max(cum), end.min(top), &mut out);
        }
        self.release_front();
        out
    }

    /// Acknowledges the frames of `from..to` not acknowledged yet, stepping over acknowledged
    /// runs.
    fn ack_span(&mut self, from: u64, to: u64, out: &mut AckOutcome) {
        let mut seq = self.next_unacked(from.max(self.base));
        while seq < to {
            self.ack_one(seq, out);
            seq = self.next_unacked(seq + 1);
        }
    }

    /// The first sequence number at or after `seq` (held, at or above the base) that is not
    /// acknowledged, or [`SendBuffer::next_seq`]. Follows the hints of acknowledged frames and
    /// shortens the path it took (path compression), so repeated questions cost O(1).
    fn next_unacked(&mut self, seq: u64) -> u64 {
        let mut root = seq;
        while let Some(State::Acked { next }) = self.index(root).map(|i| &self.frames[i].state) {
            root = *next;
            self.counters.ack_steps += 1;
        }
        let mut at = seq;
        while at != root {
            let Some(i) = self.index(at) else { break };
            let State::Acked { next } = &mut self.frames[i].state else {
                break;
            };
            at = std::mem::replace(next, root);
        }
        root
    }

    fn ack_one(&mut self, seq: u64, out: &mut AckOutcome) {
        let Some(i) = self.index(seq) else { return };
        self.counters.ack_steps += 1;
        let acked = State::Acked { next: seq + 1 };
        let previous = std::mem::replace(&mut self.frames[i].state, acked);
        let payload = std::mem::take(&mut self.frames[i].payload);
        match previous {
            State::Acked { .. } => {
                self.frames[i].payload = payload;
                return;
            }
            State::InFlight(tx) => {
                self.leave_flight(tx.path, payload.len());
                if let Some(l) = out.largest_pn.get_mut(tx.path as usize) {
                    *l = Some(l.map_or(tx.pn, |x| x.max(tx.pn)));
                }
                let newer = out.rtt_sample.is_none_or(|(_, pn, _)| tx.pn > pn);
                if !tx.retransmitted && newer {
                    out.rtt_sample = Some((tx.path, tx.pn, tx.sent));
                }
            }
            State::Queued { .. } => {}
        }
        if self.partial.is_some_and(|(s, _)| s == seq) {
            self.partial = None;
        }
        self.bytes -= payload.len();
        self.recycle(payload);
        self.counters.acked += 1;
        out.newly_acked += 1;
    }

    /// Drops acknowledged frames from the front.
    fn release_front(&mut self) {
        while matches!(self.frames.front(), Some(f) if matches!(f.state, State::Acked { .. })) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(f) = self.frames.pop_front() {
            self.base += 1;
            self.next_new = self.next_new.saturating_sub(1);
            if let Some((seq, _)) = self.partial {
                if seq < self.base {
                    self.partial = None;
                }
            }
            if let State::InFlight(tx) = f.state {
                self.leave_flight(tx.path, f.payload.len());
            }
            if !matches!(f.state, State::Acked { .. }) {
                self.bytes -= f.payload.len();
            }
            self.recycle(f.payload);
        }
    }

    fn recycle(&mut self, mut payload: Vec<u8>) {
        if self.pool.len() < POOL_MAX && payload.capacity() > 0 {
            payload.clear();
            self.pool.push(payload);
        }
    }

    /// Declares lost the frames in flight on `path` that are at least `packet_threshold`
    /// batches older than `largest_acked_pn`, or that were sent `loss_delay` or more before
    /// `now` and are older than `largest_acked_pn`. Returns how many were declared lost and the
    /// earliest time a frame still in flight there would be declared lost by time.
    pub fn detect_losses(
        &mut self,
        now: Duration,
        path: u8,
        largest_acked_pn: u64,
        loss_delay: Duration,
    ) -> (u64, Option<Duration>) {
        const PACKET_THRESHOLD: u64 = 3;
        let mut lost = 0;
        let mut next_loss: Option<Duration> = None;
        for i in 0..self.frames.len() {
            let State::InFlight(tx) = self.frames[i].state else {
                continue;
            };
            if tx.path != path || tx.pn >= largest_acked_pn {
                continue;
            }
            let by_count = largest_acked_pn - tx.pn >= PACKET_THRESHOLD;
            let deadline = tx.sent + loss_delay;
            if by_count || deadline <= now {
                self.requeue(i);
                lost += 1;
            } else {
                next_loss = Some(next_loss.map_or(deadline, |t| t.min(deadline)));
            }
        }
        (lost, next_loss)
    }

    /// Declares lost every frame in flight on `path` sent at or before `sent_before` (a probe
    /// timeout, or the path going down when `sent_before` is `now`). Returns how many.
    pub fn requeue_path(&mut self, path: u8, sent_before: Duration) -> u64 {
        let mut n = 0;
        for i in 0..self.frames.len() {
            if let State::InFlight(tx) = self.frames[i].state {
                if tx.path == path && tx.sent <= sent_before {
                    self.requeue(i);
                    n += 1;
                }
            }
        }
        if self.partial.is_some() {
            // A frame half sent in fragments starts again from its first byte.
            self.partial = None;
        }
        n
    }

    fn requeue(&mut self, i: usize) {
        if let State::InFlight(tx) = self.frames[i].state {
            let len = self.frames[i].payload.len();
            self.leave_flight(tx.path, len);
        }
        self.frames[i].state = State::Queued {
            retransmission: true,
        };
        self.lost.push_back(self.base + i as u64);
    }

    /// Declares lost the `n` oldest frames in flight on `path` (the probe a probe timeout
    /// sends). Returns how many.
    pub fn requeue_oldest(&mut self, path: u8, n: usize) -> u64 {
        let mut done = 0;
        for i in 0..self.frames.len() {
            if done == n {
                break;
            }
            if matches!(self.frames[i].state, State::InFlight(tx) if tx.path == path) {
                self.requeue(i);
                done += 1;
            }
        }
        done as u64
    }

    /// Whether any frame is in flight on `path`.
    pub fn has_in_flight(&self, path: u8) -> bool {
        self.in_flight > 0 && self.oldest_in_flight(path).is_some()
    }

    /// The oldest time a frame in flight on `path` was sent, if any.
    pub fn oldest_in_flight(&self, path: u8) -> Option<Duration> {
        self.frames.iter().find_map(|f| match f.state {
            State::InFlight(tx) if tx.path == path => Some(tx.sent),
            _ => None,
        })
    }

    /// Drops unacknowledged frames accepted at or before `now - max_age` from the front
    /// (frames are accepted in order, so the oldest are at the front). Returns how many.
    pub fn expire(&mut self, now: Duration, max_age: Duration) -> u64 {
        let mut n = 0;
        while let Some(f) = self.frames.front() {
            if f.accepted + max_age > now {
                break;
            }
            if !matches!(f.state, State::Acked { .. }) {
                n += 1;
            }
            self.pop_front();
        }
        self.counters.expired += n;
        n
    }

    /// When the oldest held frame reaches `max_age`.
    pub fn next_expiry(&self, max_age: Duration) -> Option<Duration> {
        self.frames.front().map(|f| f.accepted + max_age)
    }

    /// Restarts the sequence space at `base` after the peer lost its state: nothing is kept.
    pub fn reset(&mut self, base: u64) {
        while !self.frames.is_empty() {
            self.pop_front();
        }
        self.base = base;
        self.next_new = 0;
        self.lost.clear();
        self.partial = None;
    }

    /// Marks every frame in flight anywhere as lost, to be resent on whichever path is used
    /// next (after a handshake with a restarted peer). Returns how many.
    pub fn requeue_all(&mut self) -> u64 {
        let mut n = 0;
        for i in 0..self.frames.len() {
            if matches!(self.frames[i].state, State::InFlight(_)) {
                self.requeue(i);
                n += 1;
            }
        }
        self.partial = None;
        n
    }
}

enum WriteResult {
    NoRoom,
    Whole,
    Part(u32),
}

/// The peer acknowledged a sequence number we never sent: its state and ours disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeyondSent;

/// Expands the wire ranges of an ACK near `reference` (our base) into sorted, disjoint 64-bit
/// `start..end` pairs in `out`, overlapping and touching ranges merged (at most
/// [`wire::MAX_ACK_RANGES`], sorted in O(n log n)). A range that reaches beyond `top` (the
/// next sequence number we would send) is [`BeyondSent`].
pub fn expand_ranges(
    raw: &[u8],
    reference: u64,
    top: u64,
    out: &mut Vec<(u64, u64)>,
) -> Result<(), BeyondSent> {
    out.clear();
    for AckRange { start, len } in wire::ack_ranges(raw) {
        let s = seq::expand(start, reference);
        match s.checked_add(u64::from(len)) {
            Some(e) if e <= top => out.push((s, e)),
            _ => return Err(BeyondSent),
        }
    }
    out.sort_unstable();
    let mut kept = 0;
    for i in 0..out.len() {
        let (s, e) = out[i];
        if kept > 0 && s <= out[kept - 1].1 {
            out[kept - 1].1 = out[kept - 1].1.max(e);
        } else {
            out[kept] = (s, e);
            kept += 1;
        }
    }
    out.truncate(kept);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::ZERO;
    const MS: Duration = Duration::from_millis(1);

    fn buffer_with(n: u64) -> SendBuffer {
        let mut b = SendBuffer::new(100, 16, 1 << 20);
        for i in 0..n {
            assert_eq!(b.accept(T0, vec![i as u8; 10], 0), Ok(100 + i));
        }
        b
    }

    fn send_all(b: &mut SendBuffer, pn: u64, now: Duration) -> usize {
        let mut buf = [0u8; 4096];
        let mut w = FrameWriter::new(&mut buf);
        b.write_frames(&mut w, 4096, pn, 0, now)
    }

    #[test]
    fn refuses_when_full_and_counts() {
        let mut b = buffer_with(16);
        assert_eq!(b.accept(T0, vec![1], 0), Err(Refused::Full));
        assert_eq!(b.counters().refused_full, 1);
        let mut small = SendBuffer::new(0, 100, 25);
        assert!(small.accept(T0, vec![0; 20], 0).is_ok());
        assert_eq!(small.accept(T0, vec![0; 6], 0), Err(Refused::Full));
    }

    #[test]
    fn ack_releases_and_samples_rtt() {
        let mut b = buffer_with(4);
        assert_eq!(send_all(&mut b, 7, MS), 4);
        assert_eq!(b.in_flight(), 4);
        let out = b.on_ack(102, &[(103, 104)]);
        assert_eq!(out.newly_acked, 3);
        assert_eq!(out.rtt_sample.map(|s| s.1), Some(7));
        assert_eq!(b.base(), 102);
        assert_eq!(b.in_flight(), 1);
        // A duplicate ack changes nothing.
        assert_eq!(b.on_ack(102, &[(103, 104)]).newly_acked, 0);
    }

    #[test]
    fn loss_by_packet_threshold_resends_in_new_batch() {
        let mut b = buffer_with(2);
        send_all(&mut b, 1, MS);
        b.accept(T0, vec![9; 10], 0).unwrap();
        send_all(&mut b, 4, MS * 2);
        b.on_ack(100, &[(101, 103)]);
        let (lost, _) = b.detect_losses(MS * 2, 0, 4, MS * 100);
        assert_eq!(lost, 1);
        assert!(b.has_queued());
        assert_eq!(send_all(&mut b, 5, MS * 3), 1);
        assert_eq!(b.counters().retransmitted, 1);
        assert_eq!(b.on_ack(103, &[]).newly_acked, 1);
        assert!(b.is_empty());
    }

    #[test]
    fn loss_by_time_and_next_loss_deadline() {
        let mut b = buffer_with(2);
        send_all(&mut b, 1, MS);
        b.accept(T0, vec![9; 10], 0).unwrap();
        send_all(&mut b, 2, MS * 2);
        b.on_ack(100, &[(102, 103)]);
        let (lost, next) = b.detect_losses(MS * 2, 0, 2, MS * 5);
        assert_eq!((lost, next), (0, Some(MS * 6)));
        let (lost, _) = b.detect_losses(MS * 6, 0, 2, MS * 5);
        assert_eq!(lost, 2);
    }

    #[test]
    fn expiry_drops_old_frames_from_the_front() {
        let mut b = buffer_with(3);
        b.accept(MS * 10, vec![1; 10], 0).unwrap();
        assert_eq!(b.next_expiry(MS * 100), Some(MS * 100));
        assert_eq!(b.expire(MS * 100, MS * 100), 3);
        assert_eq!(b.base(), 103);
        assert_eq!(b.len(), 1);
        assert_eq!(b.bytes(), 10);
        assert_eq!(b.counters().expired, 3);
    }

    #[test]
    fn fragments_large_frames_and_marks_in_flight_at_the_end() {
        let mut b = SendBuffer::new(0, 16, 1 << 20);
        b.accept(T0, (0..=255).cycle().take(1000).collect(), 0)
            .unwrap();
        let mut chunks = Vec::new();
        for pn in 0..10 {
            let mut buf = [0u8; 300];
            let mut w = FrameWriter::new(&mut buf);
            if b.write_frames(&mut w, 300, pn, 0, MS) == 0 {
                break;
            }
            let n = w.len();
            let Ok(Some(wire::Frame::Fragment {
                offset,
                chunk,
                total,
                ..
            })) = wire::FrameReader::new(&buf[..n]).next_frame()
            else {
                panic!("fragment expected");
            };
            assert_eq!(total, 1000);
            chunks.push((offset, chunk.to_vec()));
        }
        assert_eq!(chunks.len(), 4);
        let joined: Vec<u8> = chunks.into_iter().flat_map(|c| c.1).collect();
        assert_eq!(joined, (0..=255).cycle().take(1000).collect::<Vec<u8>>());
        assert_eq!(b.in_flight(), 1);
    }

    #[test]
    fn repeated_acks_cost_only_the_newly_acknowledged_frames() {
        let mut b = SendBuffer::new(0, 4096, 1 << 24);
        for _ in 0..4000 {
            b.accept(T0, vec![1; 8], 0).unwrap();
        }
        let mut buf = vec![0u8; 1 << 16];
        b.write_frames(&mut FrameWriter::new(&mut buf), 1 << 16, 1, 0, MS);
        // Everything but frame 0 acknowledged in one range, then the same range 64 times
        // over, a thousand times: the repeats step over the acknowledged run at once.
        let wide = [(1, 4000)];
        assert_eq!(b.on_ack(0, &wide).newly_acked, 3999);
        let first = b.counters().ack_steps;
        assert!(first <= 2 * 3999 + 2, "{first} steps");
        let repeated = [(1, 4000); 64];
        for _ in 0..1000 {
            assert_eq!(b.on_ack(0, &repeated).newly_acked, 0);
        }
        let repeats = b.counters().ack_steps - first;
        assert!(
            repeats <= 2 * 64 * 1000,
            "{repeats} steps for 64 000 repeated ranges"
        );
        assert_eq!(b.on_ack(1, &[]).newly_acked, 1);
        assert!(b.is_empty());
    }

    #[test]
    fn ranges_are_merged_and_refused_beyond_what_was_sent() {
        let mut raw = Vec::new();
        for (start, len) in [(20u32, 5u32), (10, 3), (12, 4), (24, 1), (30, 2)] {
            raw.extend_from_slice(&start.to_le_bytes());
            raw.extend_from_slice(&len.to_le_bytes());
        }
        let mut out = Vec::new();
        assert_eq!(expand_ranges(&raw, 8, 40, &mut out), Ok(()));
        assert_eq!(out, [(10, 16), (20, 25), (30, 32)]);
        assert_eq!(expand_ranges(&raw, 8, 31, &mut out), Err(BeyondSent));
        let huge = [0xffff_fff0u32.to_le_bytes(), u32::MAX.to_le_bytes()].concat();
        let near_top = u64::MAX - 4;
        assert_eq!(
            expand_ranges(&huge, near_top, u64::MAX, &mut out),
            Err(BeyondSent)
        );
    }

    #[test]
    fn path_down_requeues_its_frames_only() {
        let mut b = buffer_with(2);
        let mut buf = [0u8; 4096];
        b.write_frames(&mut FrameWriter::new(&mut buf), 4096, 1, 0, MS);
        b.accept(T0, vec![1; 10], 0).unwrap();
        b.write_frames(&mut FrameWriter::new(&mut buf), 4096, 2, 1, MS);
        assert_eq!(b.requeue_path(0, MS), 2);
        assert_eq!(b.in_flight(), 1);
        assert_eq!(b.oldest_in_flight(1), Some(MS));
    }
}

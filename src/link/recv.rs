//! The receiver's side of reliability: duplicate suppression, the bounded reorder hold,
//! reassembly of fragments, skips, acknowledgement ranges and in-order delivery.
//!
//! Contract: every packet is handed to the delivery sink at most once, in sequence order;
//! a sequence number is passed over only when the peer's SKIP says it will never come.

use std::collections::VecDeque;
use std::time::Duration;

use super::config::WINDOW_FRAMES;
use super::seq;
use super::wire::{self, AckRange, FLAG_LZ4};

/// Counters kept by the receive buffer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecvCounters {
    /// Packets handed to the sink.
    pub delivered: u64,
    /// Bytes handed to the sink.
    pub delivered_bytes: u64,
    /// Frames (or fragments) received again after they were already received.
    pub duplicates: u64,
    /// Sequence numbers passed over because the peer skipped them.
    pub skipped: u64,
    /// Frames dropped because they lay beyond the reorder window.
    pub beyond_window: u64,
    /// Frames dropped because the hold was at its byte limit.
    pub hold_full: u64,
    /// Packets that could not be decompressed or reassembled consistently.
    pub malformed: u64,
}

#[derive(Debug, Default)]
enum Slot {
    #[default]
    Empty,
    Whole {
        flags: u8,
        data: Vec<u8>,
    },
    Partial {
        flags: u8,
        /// Length of the whole packet.
        total: u32,
        /// The chunks received, back to back in arrival order (only bytes that arrived are
        /// stored, so the work and memory of a partial packet are what was received).
        buf: Vec<u8>,
        /// Where each chunk of `buf` belongs in the packet.
        pieces: Vec<Piece>,
        /// Received byte ranges `start..end`, sorted and disjoint.
        covered: Vec<(u32, u32)>,
    },
}

/// A chunk of a packet in reassembly: `len` bytes at `offset` in the packet, stored at `at`
/// in the slot's buffer.
#[derive(Debug, Clone, Copy)]
struct Piece {
    offset: u32,
    len: u32,
    at: u32,
}

/// What a SKIP did to the receive state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipOutcome {
    /// At or below the cumulative point: nothing changed.
    Stale,
    /// Within the reorder window: the cumulative point moved to it.
    Advanced,
    /// Beyond the reorder window, so the peer was out of step with us (a desync): the
    /// cumulative point jumped to it.
    Jumped,
    /// At or beyond [`seq::MAX_SEQ`]: nothing changed (a desync).
    Refused,
}

/// Most disjoint byte ranges one packet in reassembly may have before it is dropped.
const MAX_FRAGMENT_RANGES: usize = 64;
/// Most chunks one packet in reassembly may store before it is dropped.
const MAX_FRAGMENT_PIECES: usize = 2 * MAX_FRAGMENT_RANGES;

/// In-order delivery state for one peer instance.
#[derive(Debug)]
pub struct RecvBuffer {
    /// Next sequence number to deliver: everything below is delivered or skipped.
    cum: u64,
    /// `hold[i]` is sequence number `cum + i`; `hold[0]` is never `Whole` between calls.
    hold: VecDeque<Slot>,
    hold_bytes: usize,
    max_hold_bytes: usize,
    scratch: Vec<u8>,
    ack: AckState,
    counters: RecvCounters,
}

#[derive(Debug, Default)]
struct AckState {
    /// When the oldest unacknowledged ack-eliciting batch arrived.
    pending_since: Option<Duration>,
    /// Ack-eliciting batches since the last acknowledgement was sent.
    batches: u32,
    /// Something arrived out of order or twice: acknowledge without delay.
    urgent: bool,
}

impl RecvBuffer {
    /// A receiver expecting `cum` next, holding at most `max_hold_bytes` out of order.
    pub fn new(cum: u64, max_hold_bytes: usize) -> Self {
        Self {
            cum,
            hold: VecDeque::new(),
            hold_bytes: 0,
            max_hold_bytes,
            scratch: Vec::new(),
            ack: AckState::default(),
            counters: RecvCounters::default(),
        }
    }

    /// The next sequence number expected.
    pub fn cum(&self) -> u64 {
        self.cum
    }

    /// The counters.
    pub fn counters(&self) -> RecvCounters {
        self.counters
    }

    /// Bytes held out of order (including partial reassemblies).
    pub fn hold_bytes(&self) -> usize {
        self.hold_bytes
    }

    /// Slots held past the cumulative point.
    pub fn hold_len(&self) -> usize {
        self.hold.len()
    }

    /// Forgets everything and expects `cum` next (the peer restarted).
    pub fn reset(&mut self, cum: u64) {
        self.cum = cum;
        self.hold.clear();
        self.hold_bytes = 0;
        self.ack = AckState::default();
    }

    /// Resolves a wire sequence number; `None` (counted) if it lies beyond the window or at
    /// [`seq::MAX_SEQ`] and above.
    fn resolve(&mut self, wire_seq: u32) -> Option<u64> {
        let s = seq::expand(wire_seq, self.cum);
        if s >= self.cum.saturating_add(WINDOW_FRAMES) || s >= seq::MAX_SEQ {
            self.counters.beyond_window += 1;
            return None;
        }
        Some(s)
    }

    /// Takes a DATA frame. In-order packets go straight to `deliver`, without a copy.
    pub fn on_data(
        &mut self,
        wire_seq: u32,
        flags: u8,
        payload: &[u8],
        deliver: &mut dyn FnMut(&[u8]),
    ) {
        let Some(s) = self.resolve(wire_seq) else {
            return;
        };
        if s < self.cum {
            self.duplicate();
            return;
        }
        let i = (s - self.cum) as usize;
        if i == 0 {
            // A partial reassembly of the same packet may be held: the whole one supersedes it.
            let old = self.hold.pop_front().unwrap_or_default();
            self.hold_bytes -= slot_bytes(&old);
            self.cum += 1;
            self.deliver(flags, payload, deliver);
            self.drain(deliver);
            return;
        }
        self.ack.urgent = true;
        if !matches!(self.slot(i), Some(Slot::Empty) | None) {
            self.duplicate();
            return;
        }
        if !self.reserve_hold(payload.len()) {
            return;
        }
        self.ensure_slot(i);
        self.hold[i] = Slot::Whole {
            flags,
            data: payload.to_vec(),
        };
    }

    /// Takes a FRAGMENT frame (already checked: `offset + chunk.len() <= total`).
    pub fn on_fragment(
        &mut self,
        wire_seq: u32,
        flags: u8,
        total: u32,
        offset: u32,
        chunk: &[u8],
        deliver: &mut dyn FnMut(&[u8]),
    ) {
        let Some(s) = self.resolve(wire_seq) else {
            return;
        };
        if s < self.cum {
            self.duplicate();
            return;
        }
        let i = (s - self.cum) as usize;
        self.ensure_slot(i);
        let complete = match &mut self.hold[i] {
            Slot::Whole { .. } => {
                self.duplicate();
                return;
            }
            Slot::Empty => {
                self.hold[i] = Slot::Partial {
                    flags,
                    total,
                    buf: Vec::new(),
                    pieces: Vec::new(),
                    covered: Vec::new(),
                };
                let complete = self.fill_fragment(i, flags, total, offset, chunk);
                if matches!(&self.hold[i], Slot::Partial { pieces, .. } if pieces.is_empty()) {
                    self.hold[i] = Slot::Empty;
                }
                complete
            }
            Slot::Partial { .. } => self.fill_fragment(i, flags, total, offset, chunk),
        };
        if complete && i == 0 {
            self.drain(deliver);
        }
    }

    /// Stores a chunk of the partial packet at hold index `i` (unless it brings nothing new);
    /// returns whether the packet is now whole. Linear in the chunk, and in the packet once
    /// when it completes.
    fn fill_fragment(
        &mut self,
        i: usize,
        flags: u8,
        total: u32,
        offset: u32,
        chunk: &[u8],
    ) -> bool {
        let Slot::Partial {
            flags: f,
            total: t,
            covered,
            ..
        } = &self.hold[i]
        else {
            return false;
        };
        if (*f, *t) != (flags, total) {
            self.counters.malformed += 1;
            return false;
        }
        let (start, end) = (offset, offset + chunk.len() as u32);
        if covered.iter().any(|&(a, b)| a <= start && end <= b) || !self.reserve_hold(chunk.len()) {
            return false;
        }
        let Slot::Partial {
            buf,
            pieces,
            covered,
            ..
        } = &mut self.hold[i]
        else {
            return false;
        };
        let at = buf.len() as u32;
        buf.extend_from_slice(chunk);
        pieces.push(Piece {
            offset,
            len: chunk.len() as u32,
            at,
        });
        if !add_range(covered, start, end) || pieces.len() > MAX_FRAGMENT_PIECES {
            self.counters.malformed += 1;
            self.drop_slot(i);
            return false;
        }
        if covered.as_slice() != [(0, total)] {
            return false;
        }
        let stored = buf.len();
        let data = assemble(total as usize, buf, pieces);
        // The pieces cover the packet, so they hold at least its length: the hold shrinks.
        self.hold_bytes = self.hold_bytes - stored + data.len();
        self.hold[i] = Slot::Whole { flags, data };
        true
    }

    fn drop_slot(&mut self, i: usize) {
        let old = std::mem::take(&mut self.hold[i]);
        self.hold_bytes -= slot_bytes(&old);
    }

    /// Takes a SKIP: the peer will never send anything below `forward`. A forward point at or
    /// below ours is stale and changes nothing. One beyond the reorder window cannot come
    /// from a peer in step with us (our receiver fell behind its send base, say after a long
    /// outage): the receiver jumps to it all the same, and says so. One at [`seq::MAX_SEQ`] or
    /// above is refused. The work is the slots held below `forward`, never the distance.
    pub fn on_skip(&mut self, wire_forward: u32, deliver: &mut dyn FnMut(&[u8])) -> SkipOutcome {
        let forward = seq::expand(wire_forward, self.cum);
        if forward <= self.cum {
            return SkipOutcome::Stale;
        }
        if forward >= seq::MAX_SEQ {
            return SkipOutcome::Refused;
        }
        let outcome = match forward > self.cum.saturating_add(WINDOW_FRAMES) {
            true => SkipOutcome::Jumped,
            false => SkipOutcome::Advanced,
        };
        let distance = forward - self.cum;
        let held = distance.min(self.hold.len() as u64);
        let mut delivered = 0;
        for _ in 0..held {
            let slot = self.hold.pop_front().unwrap_or_default();
            self.hold_bytes -= slot_bytes(&slot);
            if let Slot::Whole { flags, data } = slot {
                self.deliver(flags, &data, deliver);
                delivered += 1;
            }
        }
        self.counters.skipped += distance - delivered;
        self.cum = forward;
        self.ack.urgent = true;
        self.drain(deliver);
        outcome
    }

    /// Delivers consecutive whole packets from the front of the hold.
    fn drain(&mut self, deliver: &mut dyn FnMut(&[u8])) {
        while matches!(self.hold.front(), Some(Slot::Whole { .. })) {
            let Some(Slot::Whole { flags, data }) = self.hold.pop_front() else {
                break;
            };
            self.hold_bytes -= data.len();
            self.cum += 1;
            self.deliver(flags, &data, deliver);
        }
    }

    fn deliver(&mut self, flags: u8, payload: &[u8], deliver: &mut dyn FnMut(&[u8])) {
        if flags & FLAG_LZ4 == 0 {
            self.count_delivery(payload.len());
            deliver(payload);
            return;
        }
        match decompress(payload, &mut self.scratch) {
            Some(n) => {
                self.count_delivery(n);
                deliver(&self.scratch[..n]);
            }
            None => self.counters.malformed += 1,
        }
    }

    fn count_delivery(&mut self, len: usize) {
        self.counters.delivered += 1;
        self.counters.delivered_bytes += len as u64;
    }

    fn duplicate(&mut self) {
        self.counters.duplicates += 1;
        self.ack.urgent = true;
    }

    fn slot(&self, i: usize) -> Option<&Slot> {
        self.hold.get(i)
    }

    fn ensure_slot(&mut self, i: usize) {
        if self.hold.len() <= i {
            self.hold.resize_with(i + 1, Slot::default);
        }
    }

    fn reserve_hold(&mut self, len: usize) -> bool {
        if self.hold_bytes + len > self.max_hold_bytes {
            self.counters.hold_full += 1;
            return false;
        }
        self.hold_bytes += len;
        true
    }

    /// Records that an authenticated batch with ack-eliciting frames arrived at `now`.
    pub fn note_eliciting(&mut self, now: Duration) {
        self.ack.pending_since.get_or_insert(now);
        self.ack.batches += 1;
    }

    /// Whether an acknowledgement is owed at all.
    pub fn ack_pending(&self) -> bool {
        self.ack.pending_since.is_some()
    }

    /// When an acknowledgement must leave even with nothing to carry it: now if something
    /// arrived out of order or twice or two batches wait, else `max_delay` after the first.
    pub fn ack_deadline(&self, max_delay: Duration) -> Option<Duration> {
        let since = self.ack.pending_since?;
        if self.ack.urgent || self.ack.batches >= 2 {
            Some(since)
        } else {
            Some(since + max_delay)
        }
    }

    /// The ACK to send now: the cumulative point, the delay, and up to `max` ranges of whole
    /// packets held above it, highest first. Marks the acknowledgement as sent.
    pub fn take_ack(
        &mut self,
        now: Duration,
        ranges: &mut Vec<AckRange>,
        max: usize,
    ) -> (u32, u32) {
        let delay = self
            .ack
            .pending_since
            .map_or(Duration::ZERO, |t| now.saturating_sub(t));
        self.ack = AckState::default();
        ranges.clear();
        let mut end: Option<usize> = None;
        for i in (0..self.hold.len()).rev() {
            let whole = matches!(self.hold[i], Slot::Whole { .. });
            match (whole, end) {
                (true, None) => end = Some(i + 1),
                (false, Some(e)) => {
                    ranges.push(self.range(i + 1, e));
                    end = None;
                }
                _ => {}
            }
            if ranges.len() == max {
                break;
            }
        }
        if let (Some(e), true) = (end, ranges.len() < max) {
            ranges.push(self.range(0, e));
        }
        let delay_us = u32::try_from(delay.as_micros()).unwrap_or(u32::MAX);
        (seq::truncate(self.cum), delay_us)
    }

    fn range(&self, from: usize, to: usize) -> AckRange {
        AckRange {
            start: seq::truncate(self.cum + from as u64),
            len: (to - from) as u32,
        }
    }
}

fn slot_bytes(slot: &Slot) -> usize {
    match slot {
        Slot::Empty => 0,
        Slot::Whole { data, .. } => data.len(),
        Slot::Partial { buf, .. } => buf.len(),
    }
}

/// The packet of `total` bytes from the pieces stored in `buf`, which cover it. Pieces that
/// arrived in order and without overlap already are the packet.
fn assemble(total: usize, buf: &mut Vec<u8>, pieces: &[Piece]) -> Vec<u8> {
    if buf.len() == total && pieces.iter().all(|p| p.offset == p.at) {
        return std::mem::take(buf);
    }
    let mut data = vec![0u8; total];
    for p in pieces {
        let (from, to, len) = (p.at as usize, p.offset as usize, p.len as usize);
        data[to..to + len].copy_from_slice(&buf[from..from + len]);
    }
    data
}

/// Adds `start..end` to sorted disjoint `ranges`, merging overlaps; false if too many ranges.
fn add_range(ranges: &mut Vec<(u32, u32)>, start: u32, end: u32) -> bool {
    let (mut s, mut e) = (start, end);
    ranges.retain(|&(a, b)| {
        let touches = a <= e && s <= b;
        if touches {
            s = s.min(a);
            e = e.max(b);
        }
        !touches
    });
    let at = ranges.partition_point(|&(a, _)| a < s);
    ranges.insert(at, (s, e));
    ranges.len() <= MAX_FRAGMENT_RANGES
}

/// Decompresses an LZ4-flagged packet (u32 length, then the block) into `scratch`.
fn decompress(payload: &[u8], scratch: &mut Vec<u8>) -> Option<usize> {
    let (len, block) = payload.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > wire::MAX_PACKET_LEN {
        return None;
    }
    if scratch.len() < len {
        scratch.resize(len, 0);
    }
    let n = lz4_flex::block::decompress_into(block, &mut scratch[..len]).ok()?;
    (n == len).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rx() -> RecvBuffer {
        RecvBuffer::new(10, 1 << 20)
    }

    fn collect(out: &mut Vec<Vec<u8>>) -> impl FnMut(&[u8]) + '_ {
        move |p| out.push(p.to_vec())
    }

    #[test]
    fn delivers_in_order_holds_gaps_and_drops_duplicates() {
        let mut r = rx();
        let mut out = Vec::new();
        r.on_data(11, 0, b"b", &mut collect(&mut out));
        r.on_data(13, 0, b"d", &mut collect(&mut out));
        assert!(out.is_empty());
        assert_eq!(r.hold_bytes(), 2);
        r.on_data(10, 0, b"a", &mut collect(&mut out));
        assert_eq!(out, [b"a".to_vec(), b"b".to_vec()]);
        r.on_data(11, 0, b"b", &mut collect(&mut out));
        r.on_data(13, 0, b"d", &mut collect(&mut out));
        assert_eq!(r.counters().duplicates, 2);
        r.on_data(12, 0, b"c", &mut collect(&mut out));
        assert_eq!(out.len(), 4);
        assert_eq!(r.cum(), 14);
        assert_eq!(r.hold_bytes(), 0);
    }

    #[test]
    fn ack_ranges_cover_held_packets_highest_first() {
        let mut r = rx();
        let mut sink = |_: &[u8]| {};
        for s in [12, 13, 15, 18, 19, 20] {
            r.on_data(s, 0, b"x", &mut sink);
        }
        r.note_eliciting(Duration::from_micros(5));
        assert_eq!(
            r.ack_deadline(Duration::from_millis(1)),
            Some(Duration::from_micros(5))
        );
        let mut ranges = Vec::new();
        let (cum, delay) = r.take_ack(Duration::from_micros(30), &mut ranges, 64);
        assert_eq!((cum, delay), (10, 25));
        let got: Vec<(u32, u32)> = ranges.iter().map(|r| (r.start, r.len)).collect();
        assert_eq!(got, [(18, 3), (15, 1), (12, 2)]);
        assert!(!r.ack_pending());
        r.take_ack(Duration::ZERO, &mut ranges, 2);
        assert_eq!(ranges.len(), 2);
    }

    #[test]
    fn skip_passes_over_holes_but_delivers_what_is_held() {
        let mut r = rx();
        let mut out = Vec::new();
        r.on_data(12, 0, b"c", &mut collect(&mut out));
        r.on_data(14, 0, b"e", &mut collect(&mut out));
        assert_eq!(r.on_skip(13, &mut collect(&mut out)), SkipOutcome::Advanced);
        assert_eq!(out, [b"c".to_vec()]);
        assert_eq!((r.counters().skipped, r.cum()), (2, 13));
        // Skipping 13 also releases the held 14.
        assert_eq!(r.on_skip(14, &mut collect(&mut out)), SkipOutcome::Advanced);
        assert_eq!((r.counters().skipped, r.cum()), (3, 15));
        // A stale skip changes nothing.
        assert_eq!(r.on_skip(12, &mut collect(&mut out)), SkipOutcome::Stale);
        r.on_data(16, 0, b"g", &mut collect(&mut out));
        assert_eq!(r.on_skip(16, &mut collect(&mut out)), SkipOutcome::Advanced);
        assert_eq!(out, [b"c".to_vec(), b"e".to_vec(), b"g".to_vec()]);
        assert_eq!((r.counters().skipped, r.cum(), r.hold_bytes()), (4, 17, 0));
    }

    #[test]
    fn a_skip_of_the_window_or_beyond_costs_only_the_held_slots() {
        let mut r = rx();
        let mut out = Vec::new();
        r.on_data(12, 0, b"c", &mut collect(&mut out));
        assert_eq!(r.hold_len(), 3);
        // The whole window in one step: the held packet is delivered, the rest counted.
        let edge = (10 + WINDOW_FRAMES) as u32;
        assert_eq!(
            r.on_skip(edge, &mut collect(&mut out)),
            SkipOutcome::Advanced
        );
        assert_eq!(out, [b"c".to_vec()]);
        assert_eq!(r.cum(), 10 + WINDOW_FRAMES);
        assert_eq!(r.counters().skipped, WINDOW_FRAMES - 1);
        assert_eq!((r.hold_len(), r.hold_bytes()), (0, 0));
        // Far beyond it (a receiver left behind): it jumps, and says so.
        r.on_data(edge + 1, 0, b"e", &mut collect(&mut out));
        let far = 10 + 40 * WINDOW_FRAMES;
        assert_eq!(
            r.on_skip(far as u32, &mut collect(&mut out)),
            SkipOutcome::Jumped
        );
        assert_eq!((r.cum(), r.hold_len(), out.len()), (far, 0, 2));
        assert_eq!(r.counters().skipped, far - 12);
    }

    #[test]
    fn sequence_values_near_the_limit_are_refused() {
        let mut r = RecvBuffer::new(seq::MAX_SEQ - 2, 1 << 20);
        let mut out = Vec::new();
        let at = |s: u64| seq::truncate(s);
        r.on_data(at(seq::MAX_SEQ - 2), 0, b"a", &mut collect(&mut out));
        r.on_data(at(seq::MAX_SEQ - 1), 0, b"b", &mut collect(&mut out));
        r.on_data(at(seq::MAX_SEQ), 0, b"c", &mut collect(&mut out));
        assert_eq!(out.len(), 2);
        assert_eq!(r.counters().beyond_window, 1);
        assert_eq!(
            r.on_skip(at(seq::MAX_SEQ + 5), &mut collect(&mut out)),
            SkipOutcome::Refused
        );
        assert_eq!(r.cum(), seq::MAX_SEQ);
    }

    #[test]
    fn reassembles_overlapping_fragments() {
        let mut r = rx();
        let mut out = Vec::new();
        let pkt: Vec<u8> = (0..100).collect();
        r.on_fragment(10, 0, 100, 50, &pkt[50..], &mut collect(&mut out));
        r.on_fragment(10, 0, 100, 0, &pkt[..30], &mut collect(&mut out));
        assert!(out.is_empty());
        r.on_fragment(10, 0, 100, 20, &pkt[20..60], &mut collect(&mut out));
        assert_eq!(out, std::slice::from_ref(&pkt));
        r.on_fragment(10, 0, 100, 0, &pkt[..30], &mut collect(&mut out));
        assert_eq!(r.counters().duplicates, 1);
        assert_eq!(r.hold_bytes(), 0);
    }

    #[test]
    fn a_partial_packet_costs_what_arrived_not_its_stated_length() {
        let mut r = rx();
        let mut out = Vec::new();
        // A thousand one-byte fragments of thousand distinct 64 KiB packets: a kilobyte held.
        for k in 0..1000u32 {
            r.on_fragment(11 + k, 0, 65_536, 65_535, b"z", &mut collect(&mut out));
        }
        assert_eq!(r.hold_bytes(), 1000);
        // In-order chunks complete without a copy; scrambled ones are assembled.
        let pkt: Vec<u8> = (0..=255).cycle().take(3000).collect();
        for (offset, len) in [(0, 1000), (1000, 1000), (2000, 1000)] {
            r.on_fragment(
                10,
                0,
                3000,
                offset,
                &pkt[offset as usize..][..len],
                &mut collect(&mut out),
            );
        }
        assert_eq!(out, std::slice::from_ref(&pkt));
        assert_eq!(r.hold_bytes(), 1000);
    }

    #[test]
    fn bounded_hold_and_window() {
        let mut r = RecvBuffer::new(0, 10);
        let mut sink = |_: &[u8]| {};
        r.on_data(1, 0, &[0; 8], &mut sink);
        r.on_data(2, 0, &[0; 8], &mut sink);
        assert_eq!(r.counters().hold_full, 1);
        r.on_data(WINDOW_FRAMES as u32, 0, b"x", &mut sink);
        assert_eq!(r.counters().beyond_window, 1);
    }

    #[test]
    fn lz4_packets_are_decompressed_and_garbage_is_counted() {
        let mut r = rx();
        let mut out = Vec::new();
        let pkt = b"abcabcabcabcabcabcabcabcabcabcabcabc".to_vec();
        let mut payload = Vec::new();
        assert_eq!(crate::link::compress(&pkt, &mut payload), FLAG_LZ4);
        r.on_data(10, FLAG_LZ4, &payload, &mut collect(&mut out));
        r.on_data(11, FLAG_LZ4, &[5, 0, 0, 0, 0xff], &mut collect(&mut out));
        assert_eq!(out, [pkt]);
        assert_eq!(r.counters().malformed, 1);
        assert_eq!(r.cum(), 12);
    }

    #[test]
    fn wraps_the_32_bit_sequence_space() {
        let mut r = RecvBuffer::new(0xffff_fffe, 1 << 20);
        let mut out = Vec::new();
        for s in [0xffff_fffeu32, 0xffff_ffff, 0, 1] {
            r.on_data(s, 0, &s.to_le_bytes(), &mut collect(&mut out));
        }
        assert_eq!(out.len(), 4);
        assert_eq!(r.cum(), 0x1_0000_0002);
    }
}

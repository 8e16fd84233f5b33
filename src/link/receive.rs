//! Receiving batches: header checks, session lookup, opening, and applying the frames.

use std::time::Duration;

use super::recv::SkipOutcome;
use super::seq;
use super::wire::{BatchHeader, BatchType, Frame, FrameReader, HEADER_LEN};
use super::{Event, Link};
use crate::crypto::OpenError;

impl Link {
    /// Takes one batch that arrived on path `path_id` at `now`. `batch` may be longer than the
    /// batch (SCSI block padding); it is decrypted in place. Packets for the TUN device are
    /// passed to `deliver`, in order. A batch that fails any check is counted and changes
    /// nothing else.
    pub fn handle_batch(
        &mut self,
        now: Duration,
        path_id: u8,
        batch: &mut [u8],
        deliver: &mut dyn FnMut(&[u8]),
    ) {
        self.receive(now, path_id, None, batch, deliver);
    }

    /// [`Link::handle_batch`] for a datagram path, with the sender's address `source` (any
    /// stable encoding of it, such as IP bytes then port): under load, initiations from a
    /// source must prove with a cookie that they can receive at it.
    pub fn handle_datagram(
        &mut self,
        now: Duration,
        path_id: u8,
        source: &[u8],
        batch: &mut [u8],
        deliver: &mut dyn FnMut(&[u8]),
    ) {
        self.receive(now, path_id, Some(source), batch, deliver);
    }

    fn receive(
        &mut self,
        now: Duration,
        path_id: u8,
        source: Option<&[u8]>,
        batch: &mut [u8],
        deliver: &mut dyn FnMut(&[u8]),
    ) {
        let header = match BatchHeader::parse(batch) {
            Ok(h) => h,
            Err(_) => {
                self.rejected.bad_header += 1;
                return;
            }
        };
        let Some(path) = self.path_index(path_id).filter(|_| header.path == path_id) else {
            self.rejected.wrong_path += 1;
            return;
        };
        let batch = &mut batch[..header.batch_len()];
        match header.batch_type {
            BatchType::Idle => self.idle_batches += 1,
            BatchType::Initiation => self.on_initiation(now, path, source, batch, &header),
            BatchType::Cookie => self.on_cookie(now, path, batch, &header),
            BatchType::Response => self.on_response(now, path, batch, &header),
            BatchType::Transport => self.on_transport(now, path, batch, &header, deliver),
        }
    }

    fn on_transport(
        &mut self,
        now: Duration,
        path: usize,
        batch: &mut [u8],
        header: &BatchHeader,
        deliver: &mut dyn FnMut(&[u8]),
    ) {
        let Some((_, unconfirmed)) = self.session_for(header.receiver) else {
            self.rejected.unknown_session += 1;
            return;
        };
        let (head, body) = batch.split_at_mut(HEADER_LEN);
        let Some(session) = self.session_for_mut(header.receiver) else {
            return;
        };
        // The replay window is the header path's (authenticated, and equal to the arrival
        // path): SPEC §9.
        let plain_len = match session.open_lane(path, header.counter, head, body) {
            Ok(n) => n,
            Err(e) => {
                match e {
                    OpenError::Replayed => self.rejected.replayed += 1,
                    OpenError::Forged => self.rejected.forged += 1,
                    OpenError::Malformed => self.rejected.malformed += 1,
                }
                return;
            }
        };
        let plain = &body[..plain_len];
        let Some(once) = scan_frames(plain, self.send.base(), self.recv.cum()) else {
            self.rejected.malformed += 1;
            return;
        };
        if unconfirmed {
            self.confirm_next(now, path);
        }
        let counters = &mut self.paths[path].counters;
        counters.rx_batches += 1;
        counters.rx_bytes += header.batch_len() as u64;
        self.apply_frames(now, path, plain, once, deliver);
        self.update_active(now);
    }

    /// Applies an opened batch: its SKIP first, then DATA, FRAGMENT, PROBE and CLOSE in
    /// order, then its ACK (SPEC §3: one SKIP and one ACK per batch).
    fn apply_frames(
        &mut self,
        now: Duration,
        path: usize,
        plain: &[u8],
        once: OncePerBatch<'_>,
        deliver: &mut dyn FnMut(&[u8]),
    ) {
        let mut eliciting = false;
        if let Some((_, forward)) = once.skip {
            eliciting = true;
            match self.recv.on_skip(forward, deliver) {
                SkipOutcome::Stale | SkipOutcome::Advanced => {}
                SkipOutcome::Jumped | SkipOutcome::Refused => self.rejected.desyncs += 1,
            }
        }
        let mut reader = FrameReader::new(plain);
        while let Ok(Some(frame)) = reader.next_frame() {
            match frame {
                Frame::Data {
                    seq,
                    flags,
                    payload,
                } => {
                    eliciting = true;
                    self.recv.on_data(seq, flags, payload, deliver);
                }
                Frame::Fragment {
                    seq,
                    flags,
                    total,
                    offset,
                    chunk,
                } => {
                    eliciting = true;
                    self.recv
                        .on_fragment(seq, flags, total, offset, chunk, deliver);
                }
                Frame::Probe { id, reply: false } => self.paths[path].owe_reply(id),
                Frame::Probe { id, reply: true } => {
                    if self.paths[path].on_probe_reply(id, now) {
                        self.push_event(Event::PathUp {
                            path: self.paths[path].config.id,
                        });
                    }
                }
                Frame::Close { .. } => self.on_close(now),
                Frame::Ack { .. } | Frame::Skip { .. } => {}
            }
        }
        if let Some(ack) = once.ack {
            self.on_ack(now, path, ack);
        }
        if eliciting {
            self.recv.note_eliciting(now);
        }
    }

    /// Applies the batch's ACK. One that acknowledges a sequence number we never sent is a
    /// desync: nothing is applied.
    fn on_ack(&mut self, now: Duration, path: usize, ack: ChosenAck<'_>) {
        let (base, top) = (self.send.base(), self.send.next_seq());
        let mut expanded = std::mem::take(&mut self.scratch_expanded);
        let ranges = super::sent::expand_ranges(ack.ranges, base, top, &mut expanded);
        if ack.cum > top || ranges.is_err() {
            self.scratch_expanded = expanded;
            self.on_desync(now, path);
            return;
        }
        self.peer_cum = self.peer_cum.max(ack.cum);
        let out = self.send.on_ack(ack.cum, &expanded);
        self.scratch_expanded = expanded;
        if out.newly_acked == 0 {
            return;
        }
        let ack_delay = Duration::from_micros(u64::from(ack.delay_us));
        if let Some((p, _, sent)) = out.rtt_sample {
            self.paths[p as usize]
                .rtt
                .update(now.saturating_sub(sent), ack_delay);
        }
        for (i, largest) in out.largest_pn.iter().enumerate() {
            let Some(largest) = *largest else { continue };
            let p = &mut self.paths[i];
            p.largest_acked_pn = Some(p.largest_acked_pn.map_or(largest, |x| x.max(largest)));
            p.pto_count = 0;
            self.path_up(now, i);
            self.detect_losses(now, i);
        }
    }

    /// Runs loss detection for path index `i` and re-arms its loss timer.
    pub(super) fn detect_losses(&mut self, now: Duration, i: usize) {
        let p = &mut self.paths[i];
        let Some(largest) = p.largest_acked_pn else {
            return;
        };
        let (lost, next) = self
            .send
            .detect_losses(now, i as u8, largest, p.rtt.loss_delay());
        p.counters.retransmits += lost;
        p.loss_time = next;
    }

    fn on_close(&mut self, now: Duration) {
        self.drop_sessions(now);
        self.push_event(Event::PeerClosed);
    }
}

/// The ACK a batch's receiver applies: its cumulative point expanded near our send base.
#[derive(Debug, Clone, Copy)]
struct ChosenAck<'a> {
    cum: u64,
    delay_us: u32,
    ranges: &'a [u8],
}

/// The frames applied at most once per batch, picked while every frame is checked.
#[derive(Debug, Default, Clone, Copy)]
struct OncePerBatch<'a> {
    /// The ACK with the greatest cumulative point (the first of equals).
    ack: Option<ChosenAck<'a>>,
    /// The SKIP with the greatest forward point (expanded near our receive point, then as
    /// sent).
    skip: Option<(u64, u32)>,
}

/// Checks that every frame of an opened batch parses (frames are applied only if all do) and
/// picks the one ACK and the one SKIP to apply (SPEC §3); `None` if a frame is malformed.
/// Linear in the batch: repeated ACKs or SKIPs cost their parse, nothing more.
fn scan_frames(plain: &[u8], send_base: u64, recv_cum: u64) -> Option<OncePerBatch<'_>> {
    let mut once = OncePerBatch::default();
    let mut reader = FrameReader::new(plain);
    loop {
        match reader.next_frame() {
            Ok(Some(Frame::Ack {
                cum,
                delay_us,
                ranges,
            })) => {
                let cum = seq::expand(cum, send_base);
                if once.ack.is_none_or(|a| cum > a.cum) {
                    once.ack = Some(ChosenAck {
                        cum,
                        delay_us,
                        ranges,
                    });
                }
            }
            Ok(Some(Frame::Skip { forward })) => {
                let at = seq::expand(forward, recv_cum);
                if once.skip.is_none_or(|(s, _)| at > s) {
                    once.skip = Some((at, forward));
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return Some(once),
            Err(_) => return None,
        }
    }
}

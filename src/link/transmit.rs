//! Building and sealing batches for a path.

use std::time::Duration;

use super::Link;
use super::config::{MIN_PADDING_BUCKET, Padding};
use super::seq;
use super::wire::{self, BatchHeader, BatchType, FrameWriter, HEADER_LEN};
use crate::crypto::session::{RECORD_LEN, TAG_LEN, sealed_len};

/// The largest plaintext whose sealed form fits in `body_cap` bytes.
pub fn max_plain(body_cap: usize) -> usize {
    let whole = body_cap / (RECORD_LEN + TAG_LEN);
    let rest = body_cap % (RECORD_LEN + TAG_LEN);
    whole * RECORD_LEN + rest.saturating_sub(TAG_LEN)
}

/// The plaintext length a batch of `plain_len` bytes is padded to under [`Padding::Bucket`]:
/// the most that fits the smallest bucket holding the sealed batch, where the buckets are the
/// powers of two from [`MIN_PADDING_BUCKET`] and, last, `cap` (the path's largest batch).
pub fn padded_plain(plain_len: usize, cap: usize) -> usize {
    let whole = HEADER_LEN + sealed_len(plain_len);
    let bucket = whole
        .max(MIN_PADDING_BUCKET)
        .checked_next_power_of_two()
        .unwrap_or(cap)
        .min(cap);
    max_plain(bucket - HEADER_LEN)
}

/// What a batch for one path will carry.
#[derive(Debug, Default, Clone, Copy)]
struct Plan {
    close: bool,
    ack: bool,
    skip: bool,
    replies: bool,
    probe: bool,
    data: bool,
}

impl Plan {
    fn is_empty(&self) -> bool {
        !(self.close || self.ack || self.skip || self.replies || self.probe || self.data)
    }
}

impl Link {
    /// The next batch for path `path_id`, written into `buf` (whose length, capped by the path's
    /// `max_batch`, bounds the batch); returns its length, or `None` if the path has nothing to
    /// carry now. Call it whenever the path's transport can take a batch, until `None`.
    pub fn poll_transmit(&mut self, now: Duration, path_id: u8, buf: &mut [u8]) -> Option<usize> {
        let i = self.path_index(path_id)?;
        self.last_data_frames = 0;
        let cap = buf.len().min(self.paths[i].config.max_batch);
        if let Some(msg) = self.hs_out[i].take().or_else(|| self.cookie_out[i].take()) {
            let out = buf.get_mut(..msg.len())?;
            out.copy_from_slice(&msg);
            return Some(msg.len());
        }
        self.sessions.current.as_ref()?;
        let plan = self.plan(now, i);
        if plan.is_empty() || cap < HEADER_LEN + TAG_LEN + wire::PROBE_LEN {
            return None;
        }
        let (head, body) = buf[..cap].split_at_mut(HEADER_LEN);
        let plain_cap = max_plain(body.len());
        let mut w = FrameWriter::new(&mut body[..plain_cap]);
        let eliciting = self.write_plan(now, i, plan, &mut w);
        let plain_len = w.len();
        if plain_len == 0 {
            return None;
        }
        let plain_len = match self.cfg.padding {
            Padding::Off => plain_len,
            Padding::Bucket => {
                let padded = padded_plain(plain_len, cap).max(plain_len);
                // 0x00 is PADDING: it ends the frame list, the rest is ignored.
                body[plain_len..padded].fill(0);
                padded
            }
        };
        let n = self.seal(i, head, body, plain_len)?;
        let p = &mut self.paths[i];
        p.counters.tx_batches += 1;
        p.counters.tx_bytes += n as u64;
        if eliciting {
            p.last_eliciting = Some(now);
            self.next_pn += 1;
        }
        Some(n)
    }

    /// Seals `plain`, frames written by the caller, as the next TRANSPORT batch on path
    /// `path_id` under the current session, into `buf`; returns the batch length (`None`
    /// without a session, for an unknown path or if `buf` is too short). For test harnesses and
    /// fuzzers, which need batches that are authentic but say anything: the peer could seal
    /// the same. Nothing of this link changes except the session's send counter.
    pub fn seal_frames(&mut self, path_id: u8, plain: &[u8], buf: &mut [u8]) -> Option<usize> {
        let i = self.path_index(path_id)?;
        let body_len = sealed_len(plain.len());
        let (head, body) = buf
            .get_mut(..HEADER_LEN + body_len)?
            .split_at_mut(HEADER_LEN);
        body[..plain.len()].copy_from_slice(plain);
        self.seal(i, head, body, plain.len())
    }

    /// Data frames (or fragments) in the batch the last [`Link::poll_transmit`] returned.
    pub fn last_batch_data_frames(&self) -> usize {
        self.last_data_frames
    }

    /// Decides what the next batch on path index `i` carries.
    fn plan(&self, now: Duration, i: usize) -> Plan {
        let active = self.active == Some(i) || (self.active.is_none() && i == 0);
        let ack_due = self
            .recv
            .ack_deadline(self.cfg.max_ack_delay)
            .is_some_and(|t| now >= t);
        let mut plan = Plan {
            close: self.close_out[i],
            replies: self.paths[i].owes_replies(),
            probe: self.paths[i].probe_due(now),
            data: active && self.send.has_queued() && self.window_open(i),
            skip: active && self.skip_due(now),
            ack: false,
        };
        plan.ack = self.recv.ack_pending() && (!plan.is_empty() || (active && ack_due));
        plan
    }

    /// Whether path index `i` may carry more data: below its in-flight limit, or finishing a
    /// fragmented frame.
    fn window_open(&self, i: usize) -> bool {
        self.send.has_partial()
            || self.send.bytes_in_flight(i as u8) < self.paths[i].config.max_in_flight
    }

    /// Whether a SKIP must be (re)sent: frames expired beyond what the peer acknowledged, and
    /// no SKIP left within a probe timeout.
    fn skip_due(&self, now: Duration) -> bool {
        if self.send.base() <= self.peer_cum {
            return false;
        }
        let pto = self.active.map_or(self.cfg.initial_rtt, |a| {
            self.paths[a].rtt.pto(self.cfg.max_ack_delay)
        });
        self.skip_sent.is_none_or(|t| now >= t + pto)
    }

    /// Writes the planned frames, control first; returns whether any is ack-eliciting.
    fn write_plan(&mut self, now: Duration, i: usize, plan: Plan, w: &mut FrameWriter<'_>) -> bool {
        let mut eliciting = false;
        if plan.close && w.put_close(wire::close_reason::SHUTDOWN) {
            self.close_out[i] = false;
        }
        if plan.ack {
            let mut ranges = std::mem::take(&mut self.scratch_ranges);
            let max = wire::MAX_ACK_RANGES
                .min(w.remaining().saturating_sub(wire::ACK_HEADER_LEN) / wire::ACK_RANGE_LEN);
            let (cum, delay) = self.recv.take_ack(now, &mut ranges, max);
            w.put_ack(cum, delay, &ranges);
            self.scratch_ranges = ranges;
        }
        if plan.skip && w.put_skip(seq::truncate(self.send.base())) {
            self.skip_sent = Some(now);
            eliciting = true;
        }
        for id in self.paths[i].take_replies() {
            w.put_probe(id, true);
        }
        if plan.probe {
            let id = self.paths[i].start_probe(now);
            w.put_probe(id, false);
        }
        if plan.data {
            let max_plain = max_plain(self.paths[i].config.max_batch - HEADER_LEN);
            self.last_data_frames =
                self.send
                    .write_frames(w, max_plain, self.next_pn, i as u8, now);
            eliciting |= self.last_data_frames > 0;
        }
        eliciting
    }

    /// Seals `body[..plain_len]` under the current session with a fresh counter and writes the
    /// header; returns the batch length. A session out of counters is dropped (a handshake
    /// follows) and nothing is sent.
    fn seal(
        &mut self,
        i: usize,
        head: &mut [u8],
        body: &mut [u8],
        plain_len: usize,
    ) -> Option<usize> {
        let path_id = self.paths[i].config.id;
        let session = self.sessions.current.as_mut()?;
        let Ok(counter) = session.next_counter() else {
            self.sessions.current = None;
            return None;
        };
        let header = BatchHeader {
            batch_type: BatchType::Transport,
            path: path_id,
            receiver: session.remote_index(),
            body_len: sealed_len(plain_len) as u32,
            counter,
        };
        head.copy_from_slice(&header.to_bytes());
        let n = session.seal(counter, head, body, plain_len);
        Some(HEADER_LEN + n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_sizes_are_buckets() {
        let cap = 1 << 20;
        let mut sizes = std::collections::BTreeSet::new();
        for plain in (1..200_000).step_by(97) {
            let padded = padded_plain(plain, cap);
            assert!(padded >= plain, "{plain}");
            let whole = HEADER_LEN + sealed_len(padded);
            assert!(whole <= cap);
            sizes.insert(whole);
        }
        // 512, 1024, ..., 256 KiB: ten sizes for two thousand batch lengths.
        assert_eq!(sizes.len(), 10, "{sizes:?}");
        for s in &sizes {
            assert!(
                s.is_power_of_two() || s + TAG_LEN >= s.next_power_of_two(),
                "{s}"
            );
        }
        // Past the last power of two below the cap, the cap is the bucket.
        let big = max_plain(cap - HEADER_LEN) - 10;
        assert_eq!(padded_plain(big, cap), max_plain(cap - HEADER_LEN));
        // A path whose largest batch is not a power of two (a UDP datagram).
        assert_eq!(HEADER_LEN + sealed_len(padded_plain(1100, 1472)), 1472);
        assert_eq!(HEADER_LEN + sealed_len(padded_plain(900, 1472)), 1024);
        assert_eq!(HEADER_LEN + sealed_len(padded_plain(100, 1472)), 512);
    }

    #[test]
    fn max_plain_fits_exactly() {
        for cap in [
            16,
            17,
            100,
            RECORD_LEN + 16,
            RECORD_LEN + 17,
            3 * (RECORD_LEN + 16) + 1,
            1 << 20,
            16 << 20,
        ] {
            let p = max_plain(cap);
            assert!(sealed_len(p) <= cap, "cap {cap}");
            assert!(sealed_len(p + 1) > cap, "cap {cap} not maximal");
        }
    }
}

//! Timers: frame expiry, path silence, loss and probe timeouts, handshakes, fail-back.
//! [`Link::poll_timeout`] says when [`Link::handle_timeout`] has work next.

use std::time::Duration;

use super::Link;
use super::path::{DownCause, PathState};

impl Link {
    /// Runs every timer due at `now`. Calling it early or often is harmless.
    pub fn handle_timeout(&mut self, now: Duration) {
        let expired = self.send.expire(now, self.cfg.max_frame_age);
        if expired > 0 {
            self.skip_sent = None;
        }
        for i in 0..self.paths.len() {
            if self.paths[i].is_silent(now) {
                let quiet = self.paths[i].config.dead_after;
                self.path_down(now, i, DownCause::Silent(quiet));
            }
            if self.paths[i].loss_time.is_some_and(|t| now >= t) {
                self.detect_losses(now, i);
            }
            if self.pto_deadline(i).is_some_and(|t| now >= t) {
                self.on_pto(now, i);
            }
        }
        self.drive_handshakes(now);
        self.update_active(now);
    }

    /// The earliest time [`Link::handle_timeout`] or [`Link::poll_transmit`] has work, if any.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let mut t: Option<Duration> = None;
        let mut at = |x: Option<Duration>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |y| y.min(x)));
            }
        };
        at(self.send.next_expiry(self.cfg.max_frame_age));
        at(self.handshake_deadline());
        if self.sessions.current.is_some() {
            at(self.recv.ack_deadline(self.cfg.max_ack_delay));
            at(self.skip_deadline());
            for (i, p) in self.paths.iter().enumerate() {
                at(Some(p.next_probe()));
                at(p.silence_deadline());
                at(p.loss_time);
                at(self.pto_deadline(i));
            }
            at(self.fail_back_deadline());
        }
        t
    }

    /// The probe timeout of path index `i` (RFC 9002 6.2): the last ack-eliciting batch sent
    /// there plus the PTO, doubled per consecutive timeout and capped at `max_pto`; only while
    /// frames are in flight there.
    fn pto_deadline(&self, i: usize) -> Option<Duration> {
        let p = &self.paths[i];
        if !self.send.has_in_flight(i as u8) {
            return None;
        }
        let last = p.last_eliciting?;
        let base = p.rtt.pto(self.cfg.max_ack_delay);
        let backed_off = base.saturating_mul(1 << p.pto_count.min(16));
        Some(last + backed_off.min(self.cfg.max_pto))
    }

    /// Nothing was acknowledged on path `i` for a probe timeout: its two oldest frames in
    /// flight are sent again as a probe (an acknowledgement of the probe then lets loss
    /// detection find the rest), and the next timeout backs off.
    fn on_pto(&mut self, now: Duration, i: usize) {
        const PROBE_FRAMES: usize = 2;
        let lost = self.send.requeue_oldest(i as u8, PROBE_FRAMES);
        let p = &mut self.paths[i];
        p.counters.retransmits += lost;
        p.pto_count = p.pto_count.saturating_add(1);
        // The probe's transmission re-arms the timer; until it leaves, do not fire again.
        p.last_eliciting = Some(now);
    }

    fn skip_deadline(&self) -> Option<Duration> {
        if self.send.base() <= self.peer_cum {
            return None;
        }
        let pto = self.active.map_or(self.cfg.initial_rtt, |a| {
            self.paths[a].rtt.pto(self.cfg.max_ack_delay)
        });
        Some(self.skip_sent.map_or(Duration::ZERO, |t| t + pto))
    }

    /// When a more preferred path that is up will have been up long enough to take traffic back.
    fn fail_back_deadline(&self) -> Option<Duration> {
        let cur = self.paths.get(self.active?)?;
        self.paths
            .iter()
            .filter(|p| p.state == PathState::Up && p.config.preference < cur.config.preference)
            .filter_map(|p| p.up_since)
            .map(|t| t + self.cfg.fail_back_after)
            .min()
    }
}

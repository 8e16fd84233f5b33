//! Desynchronisation: an authenticated peer whose sequence state contradicts ours.
//!
//! Two things cannot come from a peer whose state matches ours (SPEC §5):
//! - a SKIP beyond our reorder window: **our receiver** fell behind the peer's send base by
//!   more than the window (frames expired during a long outage, say). The receiver jumps to
//!   the SKIP's forward point at once ([`super::recv::SkipOutcome::Jumped`]): it only ever
//!   moves forward, so nothing is delivered twice, and the work is what it held.
//! - an ACK of a sequence number we never sent: **the peer's receiver** is ahead of our send
//!   space, and everything we send would look old to it. The ACK is not applied; this link
//!   takes a fresh `instance` and initiates at once, so the peer restarts its receiver at our
//!   send base (SPEC §8.5) as after a restart of ours. Our send buffer keeps its frames, and
//!   the peer's in flight are resent.
//!
//! Each is counted in [`super::RejectCounters::desyncs`].

use std::time::Duration;

use super::Link;

impl Link {
    /// An ACK opened on path index `path` acknowledged what we never sent: counted, and a
    /// handshake under a fresh instance starts (at most one per retry interval).
    pub(super) fn on_desync(&mut self, now: Duration, path: usize) {
        self.rejected.desyncs += 1;
        if self.resync_after.is_some_and(|t| now < t) {
            return;
        }
        self.resync_after = Some(now + self.cfg.handshake_retry);
        let mut instance = [0u8; 8];
        self.entropy.fill(&mut instance);
        self.cfg.instance = u64::from_le_bytes(instance);
        self.initiate(now, path);
    }
}

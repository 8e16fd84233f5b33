//! Desynchronisation: an authenticated peer whose sequence state contradicts ours.
//!
//! Two things cannot come from a peer whose state matches ours, and neither is applied
//! (applying, or ignoring, either could stall a direction for good):
//! - a SKIP beyond our reorder window: **our receiver** is behind the peer's send base by
//!   more than the window (or by more than the 32-bit wire form can tell). We forget the
//!   peer's instance and initiate at once; the response's `send_base` restarts our receiver
//!   (SPEC §8.5). Nothing the peer holds is below that base, so nothing is delivered twice.
//! - an ACK of a sequence number we never sent: **the peer's receiver** is ahead of our send
//!   space. We take a fresh `instance` and initiate at once; the peer sees a new instance and
//!   restarts its receiver at our send base, as after a restart of ours.
//!
//! Send buffers keep their frames either way, and what was in flight is resent.

use std::time::Duration;

use super::Link;

/// Which side's receive state a desync shows to be wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Desync {
    /// A SKIP beyond our window: our receiver must move to the peer's send base.
    OurReceiver,
    /// An ACK beyond what we sent: the peer's receiver must move to our send base.
    PeerReceiver,
}

impl Link {
    /// The batch just opened on path index `path` showed the peer out of step with us:
    /// counted, and a resynchronising handshake starts (at most one per retry interval).
    pub(super) fn on_desync(&mut self, now: Duration, path: usize, which: Desync) {
        self.rejected.desyncs += 1;
        if self.resync_after.is_some_and(|t| now < t) {
            return;
        }
        self.resync_after = Some(now + self.cfg.handshake_retry);
        match which {
            Desync::OurReceiver => self.sessions.peer_instance = None,
            Desync::PeerReceiver => {
                let mut instance = [0u8; 8];
                self.entropy.fill(&mut instance);
                self.cfg.instance = u64::from_le_bytes(instance);
            }
        }
        self.initiate(now, path);
    }
}

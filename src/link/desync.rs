//! Desynchronisation: an authenticated peer whose sequence state contradicts ours.
//!
//! An ACK for a sequence number we never sent, or a SKIP beyond our reorder window, cannot
//! come from a peer whose state matches ours; neither is applied (applying it could stall a
//! direction for good). Both sides' states are realigned the way a restart realigns them
//! (SPEC §8.5): this link takes a fresh `instance`, forgets the peer's, and initiates a
//! handshake at once. The peer then sees a new instance and restarts its receiver at our
//! send base; we restart ours at the peer's when the handshake completes. Send buffers keep
//! their frames, and what was in flight is resent.

use std::time::Duration;

use super::Link;

impl Link {
    /// The batch just opened on path index `path` showed the peer out of step with us:
    /// counted, and a resynchronising handshake starts (at most one per retry interval).
    pub(super) fn on_desync(&mut self, now: Duration, path: usize) {
        self.rejected.desyncs += 1;
        if self.resync_after.is_some_and(|t| now < t) {
            return;
        }
        self.resync_after = Some(now + self.cfg.handshake_retry);
        let mut instance = [0u8; 8];
        self.entropy.fill(&mut instance);
        self.cfg.instance = u64::from_le_bytes(instance);
        self.sessions.peer_instance = None;
        self.initiate(now, path);
    }
}

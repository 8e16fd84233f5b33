//! Counters of a link, read with [`crate::link::Link::stats`].

use super::path::{PathChange, PathCounters, PathState};
use super::recv::RecvCounters;
use super::sent::SendCounters;

/// Batches and handshakes the link refused, by reason. Each is counted, never logged per batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RejectCounters {
    /// Header not parseable (magic, version, type, length).
    pub bad_header: u64,
    /// Header names a path that is not configured, or not the one it arrived on.
    pub wrong_path: u64,
    /// Transport batch for a session index we do not have.
    pub unknown_session: u64,
    /// Counter already seen or behind the replay window.
    pub replayed: u64,
    /// Authentication failed.
    pub forged: u64,
    /// Sealed length impossible, or frames inside malformed.
    pub malformed: u64,
    /// Handshake message that failed decryption or the pinned key, or had the wrong length.
    pub handshake_invalid: u64,
    /// Handshake message whose mac1 failed (checked first, before any budget or DH).
    pub handshake_bad_mac1: u64,
    /// Initiation whose timestamp was not newer than the last accepted one.
    pub handshake_replayed: u64,
    /// Initiations over the rate limit.
    pub handshake_rate_limited: u64,
    /// Initiations not processed but answered with a COOKIE (a datagram path under load).
    pub handshake_cookie_sent: u64,
    /// Response matching no initiation of ours.
    pub handshake_unexpected: u64,
    /// Authenticated ACKs or SKIPs inconsistent with our sequence state (SPEC §5): not
    /// applied, and a resynchronising handshake starts (at most one per retry interval). Not
    /// a rejected batch (the rest of the batch is applied), so not part of [`Self::total`].
    pub desyncs: u64,
}

impl RejectCounters {
    /// All rejected batches.
    pub fn total(&self) -> u64 {
        self.bad_header
            + self.wrong_path
            + self.unknown_session
            + self.replayed
            + self.forged
            + self.malformed
            + self.handshake_invalid
            + self.handshake_bad_mac1
            + self.handshake_replayed
            + self.handshake_rate_limited
            + self.handshake_cookie_sent
            + self.handshake_unexpected
    }
}

/// One path's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct PathStats {
    /// Path id.
    pub id: u8,
    /// Path name.
    pub name: String,
    /// Health.
    pub state: PathState,
    /// Smoothed RTT in microseconds (the initial guess until sampled).
    pub rtt_us: u64,
    /// Fraction of recent probes unanswered.
    pub loss: f64,
    /// Counters.
    pub counters: PathCounters,
}

/// A snapshot of everything counted.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkStats {
    /// Sender counters.
    pub send: SendCounters,
    /// Receiver counters.
    pub recv: RecvCounters,
    /// Rejections.
    pub rejected: RejectCounters,
    /// Packets refused because they exceed the largest packet size.
    pub oversize_packets: u64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Simultaneous initiations resolved by ignoring the peer's.
    pub handshake_collisions: u64,
    /// IDLE batches received (empty SCSI READ answers).
    pub idle_batches: u64,
    /// Frames in the send buffer now.
    pub send_buffer_frames: usize,
    /// Bytes in the send buffer now.
    pub send_buffer_bytes: usize,
    /// Bytes held out of order now.
    pub hold_bytes: usize,
    /// Active path id.
    pub active_path: Option<u8>,
    /// Changes of the active path (see [`crate::link::Link::path_changes`]).
    pub path_changes: u64,
    /// The latest of them.
    pub last_path_change: Option<PathChange>,
    /// Per path.
    pub paths: Vec<PathStats>,
}

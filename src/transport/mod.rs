//! Transports move sealed batches for one path of a [`Link`].
//!
//! The SCSI asymmetry lives here and nowhere else: on the Fibre Channel path the initiator
//! ([`initiator::InitiatorPort`]) WRITEs batches and keeps READs parked at the target, and the
//! target ([`target::TargetPort`]) answers parked READs when the link has a batch. Both are
//! written once, over a backend trait ([`target::TargetBackend`], [`initiator::InitiatorBackend`]):
//! the simulated fabric, LIO TCMU and SG_IO differ only there. The link above sees two
//! symmetric batch pipes.

pub mod initiator;
pub mod lio;
pub mod sg;
pub mod sg_discovery;
pub mod sim;
pub mod target;
pub mod tcmu;
pub mod udp;

use std::os::fd::BorrowedFd;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::link::Link;

/// The link path id of the Fibre Channel path.
pub const FC_PATH: u8 = 0;

/// What the driver needs from every transport.
pub trait Transport {
    /// The link path this transport carries.
    fn path(&self) -> u8;
    /// The descriptor to wait on and whether writability matters, if connected.
    fn interest(&self) -> Option<(BorrowedFd<'_>, bool)>;
    /// Moves batches at `now`: takes what arrived (into the link; packets for the TUN device go
    /// to `deliver`), then sends what the link has while there is capacity, and handles its
    /// own timers. Failures are counted and reported to the link as path errors; it never
    /// blocks.
    fn drive(&mut self, now: Duration, link: &mut Link, deliver: &mut dyn FnMut(&[u8]));
    /// When [`Transport::drive`] must run again at the latest.
    fn deadline(&self) -> Option<Duration>;
    /// Counters for `fcvpn show`.
    fn counters(&self) -> TransportCounters;
    /// The wall clock: `unix` (time since the Unix epoch) read at `now`. The driver calls this
    /// before each turn; transports that need wall-clock seconds (the FC command tokens) keep
    /// the offset, so a stepped clock is followed.
    fn set_wall_clock(&mut self, now: Duration, unix: Duration) {
        let _ = (now, unix);
    }
}

/// Wall-clock seconds on a port's monotonic time line: the Unix time at its time zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WallClock {
    unix_at_zero: Duration,
}

impl WallClock {
    /// A clock that read `unix` at time zero.
    pub fn new(unix_at_zero: Duration) -> Self {
        Self { unix_at_zero }
    }

    /// Re-reads the clock: `unix` at monotonic `now`.
    pub fn set(&mut self, now: Duration, unix: Duration) {
        self.unix_at_zero = unix.saturating_sub(now);
    }

    /// Whole Unix seconds at monotonic `now`.
    pub fn seconds(&self, now: Duration) -> u64 {
        self.unix_at_zero.saturating_add(now).as_secs()
    }
}

/// SCSI-level counters of a transport.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportCounters {
    /// Commands issued (initiator) or received (target).
    pub commands: u64,
    /// Batches handed over in WRITEs (initiator) or READ answers (target).
    pub batches_out: u64,
    /// Batches received in READ answers (initiator) or WRITEs (target).
    pub batches_in: u64,
    /// READs answered with an IDLE batch because the hold time ran out.
    pub idle_answers: u64,
    /// Commands that timed out (and were aborted).
    pub timeouts: u64,
    /// Commands that failed in transport (fabric error, no connection, aborted).
    pub transport_errors: u64,
    /// Commands completed with CHECK CONDITION (initiator) or answered with it (target).
    pub check_conditions: u64,
    /// BUSY or TASK SET FULL completions, retried.
    pub busy: u64,
    /// Data commands refused by the target for an invalid command token (strangers' commands,
    /// replays, a peer whose clock is beyond the allowed skew).
    pub foreign_commands: u64,
    /// Commands the target refused for their token (initiator): each jumps the counter once.
    #[serde(default)]
    pub token_refusals: u64,
    /// READ pauses after a run of IDLE answers that came back far sooner than the hold time
    /// (initiator): the target is answering at once instead of parking.
    #[serde(default)]
    pub idle_backoffs: u64,
    /// Times the backend connection was lost.
    pub disconnects: u64,
    /// Times it was re-established.
    pub reconnects: u64,
}

/// Why a backend operation failed.
#[derive(Debug, Error)]
pub enum BackendError {
    /// The connection to the fabric or device is gone; the port reconnects.
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// Any other I/O failure.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Rounds `len` up to whole 512-byte SCSI blocks.
pub fn block_round(len: usize) -> usize {
    len.div_ceil(crate::scsi::BLOCK_LEN) * crate::scsi::BLOCK_LEN
}

/// Reconnection bookkeeping shared by the FC ports: when the next attempt is due, and a lost
/// backend logged and counted once per outage.
#[derive(Debug)]
struct Reconnect {
    /// The port's name in log lines ("fc target", "fc initiator").
    who: &'static str,
    every: Duration,
    next: Duration,
    connected: bool,
}

impl Reconnect {
    fn new(who: &'static str, every: Duration, connected: bool) -> Self {
        Self {
            who,
            every,
            next: Duration::ZERO,
            connected,
        }
    }

    /// When the next attempt is due.
    fn next(&self) -> Duration {
        self.next
    }

    /// Tries `reconnect` if an attempt is due at `now`; true once it succeeds.
    fn attempt(
        &mut self,
        now: Duration,
        counters: &mut TransportCounters,
        reconnect: impl FnOnce() -> Result<(), BackendError>,
    ) -> bool {
        if now < self.next {
            return false;
        }
        if let Err(e) = reconnect() {
            self.next = now + self.every;
            tracing::debug!("{}: reconnect failed: {e}", self.who);
            return false;
        }
        tracing::info!("{}: backend connected", self.who);
        counters.reconnects += 1;
        self.connected = true;
        true
    }

    /// The backend failed with `why` at `now`: logged and counted once per outage.
    fn lost(&mut self, now: Duration, counters: &mut TransportCounters, why: &BackendError) {
        if self.connected {
            tracing::warn!("{}: backend lost: {why}", self.who);
            counters.disconnects += 1;
            self.connected = false;
        }
        self.next = now + self.every;
    }
}

//! Per-path health: probes, RTT, loss, state, and the choice of the active path.
//!
//! A path is **up** after a proof of a round trip on it (a probe reply, or an acknowledgement of
//! frames sent on it) and **down** once no proof arrived for `dead_after`, or when its transport
//! reports an error. The active path is the most preferred path that is up; traffic returns to a
//! more preferred path only after it has been up for `fail_back_after` (hysteresis), unless
//! that path never went down (it merely came up later, as FC may at start).

use std::time::Duration;

use super::config::PathConfig;
use super::rtt::RttEstimator;

/// Health of one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    /// No proof yet either way.
    Unknown,
    /// Round trips complete.
    Up,
    /// Silent for too long, or its transport failed.
    Down,
}

impl PathState {
    /// The lower-case name used by `fcvpn show`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// Why a path went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownCause {
    /// No probe reply or acknowledgement for `dead_after`.
    Silent(Duration),
    /// The transport reported an error (SCSI failure, socket error).
    TransportError,
}

/// Why the active path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeCause {
    /// The active path went down (failover, or no path left).
    Down(DownCause),
    /// A more preferred path that had failed before has been up for `fail_back_after`
    /// (fail-back).
    FailBack(Duration),
    /// A more preferred path that never failed came up (it takes over at once).
    Preferred,
    /// A path came up while none was active.
    Up,
}

/// One change of the active path, as [`crate::link::Link::last_path_change`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathChange {
    /// When it happened.
    pub at: Duration,
    /// The previous active path id.
    pub from: Option<u8>,
    /// The new active path id.
    pub to: Option<u8>,
    /// Why.
    pub cause: ChangeCause,
}

/// Counters of one path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PathCounters {
    /// Bytes of batches sent.
    pub tx_bytes: u64,
    /// Bytes of authenticated batches received.
    pub rx_bytes: u64,
    /// Batches sent.
    pub tx_batches: u64,
    /// Authenticated batches received.
    pub rx_batches: u64,
    /// Frames declared lost here and queued again.
    pub retransmits: u64,
    /// Probes sent.
    pub probes_sent: u64,
    /// Probe replies received.
    pub probes_answered: u64,
    /// Times the path went from up to down.
    pub downs: u64,
}

/// How many recent probes the loss estimate looks at.
const PROBE_HISTORY: usize = 32;

/// One path's state.
#[derive(Debug)]
pub struct Path {
    /// Its configuration.
    pub config: PathConfig,
    /// Its health.
    pub state: PathState,
    /// Its RTT estimate.
    pub rtt: RttEstimator,
    /// When a round trip last completed on it.
    pub last_proof: Option<Duration>,
    /// When it last came up.
    pub up_since: Option<Duration>,
    /// Why it last went down.
    pub down_cause: Option<DownCause>,
    /// Its counters.
    pub counters: PathCounters,
    /// Largest batch number acknowledged among frames sent here.
    pub largest_acked_pn: Option<u64>,
    /// When a frame in flight here would be declared lost by the time threshold.
    pub loss_time: Option<Duration>,
    /// Consecutive probe timeouts (backoff exponent).
    pub pto_count: u32,
    /// When the last ack-eliciting batch left on this path.
    pub last_eliciting: Option<Duration>,
    next_probe: Duration,
    probe_id: u32,
    /// Recent probes: (id, sent, answered).
    probes: Vec<(u32, Duration, bool)>,
    /// Peer probe ids to answer on this path (bounded).
    replies: Vec<u32>,
}

/// Most probe replies owed at once; more are dropped (the peer simply probes again).
const MAX_REPLIES: usize = 8;

impl Path {
    /// A path in the unknown state, probing from `now`.
    pub fn new(config: PathConfig, initial_rtt: Duration, now: Duration) -> Self {
        Self {
            config,
            state: PathState::Unknown,
            rtt: RttEstimator::new(initial_rtt),
            last_proof: None,
            up_since: None,
            down_cause: None,
            counters: PathCounters::default(),
            largest_acked_pn: None,
            loss_time: None,
            pto_count: 0,
            last_eliciting: None,
            next_probe: now,
            probe_id: 0,
            probes: Vec::new(),
            replies: Vec::new(),
        }
    }

    /// Whether a probe is due at `now`.
    pub fn probe_due(&self, now: Duration) -> bool {
        now >= self.next_probe
    }

    /// When the next probe is due.
    pub fn next_probe(&self) -> Duration {
        self.next_probe
    }

    /// Makes a probe due now (to confirm a fresh session quickly).
    pub fn probe_now(&mut self, now: Duration) {
        self.next_probe = self.next_probe.min(now);
    }

    /// Records a probe sent at `now`; returns its id.
    pub fn start_probe(&mut self, now: Duration) -> u32 {
        self.probe_id = self.probe_id.wrapping_add(1);
        if self.probes.len() == PROBE_HISTORY {
            self.probes.remove(0);
        }
        self.probes.push((self.probe_id, now, false));
        self.next_probe = now + self.config.probe_interval;
        self.counters.probes_sent += 1;
        self.probe_id
    }

    /// A reply to probe `id` arrived at `now`: an RTT sample and a proof. Unknown or repeated
    /// ids are ignored. Returns whether the path came up.
    pub fn on_probe_reply(&mut self, id: u32, now: Duration) -> bool {
        let Some(p) = self.probes.iter_mut().find(|p| p.0 == id && !p.2) else {
            return false;
        };
        p.2 = true;
        let sent = p.1;
        self.counters.probes_answered += 1;
        self.rtt.update(now.saturating_sub(sent), Duration::ZERO);
        self.on_proof(now)
    }

    /// A round trip completed at `now`; returns whether the path came up.
    pub fn on_proof(&mut self, now: Duration) -> bool {
        self.last_proof = Some(now);
        if self.state == PathState::Up {
            return false;
        }
        self.state = PathState::Up;
        self.up_since = Some(now);
        true
    }

    /// Marks the path down for `cause`; returns whether it was not down already (only then is
    /// the cause recorded). A path that was up counts a down.
    pub fn set_down(&mut self, cause: DownCause) -> bool {
        let was = self.state != PathState::Down;
        if was {
            self.down_cause = Some(cause);
        }
        if self.state == PathState::Up {
            self.counters.downs += 1;
        }
        self.state = PathState::Down;
        self.up_since = None;
        self.pto_count = 0;
        was
    }

    /// Whether an up path has been silent for `dead_after` at `now`.
    pub fn is_silent(&self, now: Duration) -> bool {
        let Some(proof) = self.last_proof else {
            return false;
        };
        self.state == PathState::Up && now >= proof + self.config.dead_after
    }

    /// When an up path will count as silent.
    pub fn silence_deadline(&self) -> Option<Duration> {
        match (self.state, self.last_proof) {
            (PathState::Up, Some(p)) => Some(p + self.config.dead_after),
            _ => None,
        }
    }

    /// Queues a reply to the peer's probe `id`.
    pub fn owe_reply(&mut self, id: u32) {
        if self.replies.len() < MAX_REPLIES {
            self.replies.push(id);
        }
    }

    /// Replies owed, to be written into the next batch on this path.
    pub fn take_replies(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.replies)
    }

    /// Whether replies are owed.
    pub fn owes_replies(&self) -> bool {
        !self.replies.is_empty()
    }

    /// Fraction of recent probes (those answered, or older than `dead_after`) left unanswered.
    pub fn loss(&self, now: Duration) -> f64 {
        let settled = self
            .probes
            .iter()
            .filter(|p| p.2 || now >= p.1 + self.config.dead_after);
        let (mut n, mut lost) = (0u32, 0u32);
        for p in settled {
            n += 1;
            lost += u32::from(!p.2);
        }
        if n == 0 {
            0.0
        } else {
            f64::from(lost) / f64::from(n)
        }
    }
}

/// Picks the active path among `paths` given the current one.
///
/// The most preferred path that is up wins, except that a path more preferred than a current
/// path which is still up must have been up for `fail_back_after` if it ever went down (a
/// path coming back from a failure may fail again; one that never failed, like FC coming up
/// a little after Ethernet when both ends start, takes over at once).
pub fn select_active(
    paths: &[Path],
    current: Option<usize>,
    now: Duration,
    fail_back_after: Duration,
) -> Option<usize> {
    let best = paths
        .iter()
        .enumerate()
        .filter(|(_, p)| p.state == PathState::Up)
        .min_by_key(|(_, p)| p.config.preference)
        .map(|(i, _)| i)?;
    let Some(cur) = current.filter(|&c| paths[c].state == PathState::Up) else {
        return Some(best);
    };
    let b = &paths[best];
    let held = b.counters.downs == 0 || b.up_since.is_some_and(|t| now >= t + fail_back_after);
    if paths[best].config.preference < paths[cur].config.preference && held {
        Some(best)
    } else {
        Some(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn path(id: u8, pref: u8) -> Path {
        Path::new(
            PathConfig::new(id, "p", pref, 1 << 20),
            MS * 10,
            Duration::ZERO,
        )
    }

    #[test]
    fn probe_reply_brings_path_up_and_measures_rtt() {
        let mut p = path(0, 0);
        assert!(p.probe_due(Duration::ZERO));
        let id = p.start_probe(MS);
        assert!(!p.probe_due(MS * 2));
        assert!(!p.on_probe_reply(id + 1, MS * 3));
        assert!(p.on_probe_reply(id, MS * 3));
        assert!(!p.on_probe_reply(id, MS * 4));
        assert_eq!(p.state, PathState::Up);
        assert_eq!(p.rtt.smoothed(), MS * 2);
        assert!(!p.is_silent(MS * 202));
        assert!(p.is_silent(MS * 203));
    }

    #[test]
    fn only_a_path_that_was_up_counts_a_down() {
        let mut p = path(0, 0);
        assert!(p.set_down(DownCause::TransportError));
        assert_eq!(
            (p.counters.downs, p.down_cause),
            (0, Some(DownCause::TransportError))
        );
        p.on_proof(MS);
        assert!(p.set_down(DownCause::Silent(MS * 200)));
        assert!(!p.set_down(DownCause::TransportError));
        assert_eq!(
            (p.counters.downs, p.down_cause),
            (1, Some(DownCause::Silent(MS * 200)))
        );
    }

    #[test]
    fn loss_counts_only_settled_probes() {
        let mut p = path(0, 0);
        let a = p.start_probe(Duration::ZERO);
        p.start_probe(MS);
        p.on_probe_reply(a, MS * 2);
        assert_eq!(p.loss(MS * 3), 0.0);
        assert_eq!(p.loss(MS * 201), 0.5);
    }

    #[test]
    fn a_preferred_path_that_never_failed_takes_over_at_once() {
        let mut paths = vec![path(0, 0), path(1, 1)];
        paths[1].on_proof(MS);
        assert_eq!(select_active(&paths, None, MS, MS * 1000), Some(1));
        // Down before it ever came up (its transport failed at start): no failure of an up
        // path, so no hold-down either.
        paths[0].set_down(DownCause::TransportError);
        paths[0].on_proof(MS * 10);
        assert_eq!(select_active(&paths, Some(1), MS * 10, MS * 1000), Some(0));
    }

    #[test]
    fn selection_prefers_and_holds_down() {
        let mut paths = vec![path(0, 0), path(1, 1)];
        assert_eq!(select_active(&paths, None, MS, MS * 1000), None);
        paths[1].on_proof(MS);
        assert_eq!(select_active(&paths, None, MS, MS * 1000), Some(1));
        paths[0].on_proof(MS * 5);
        paths[0].set_down(DownCause::Silent(MS * 200));
        paths[0].on_proof(MS * 10);
        assert_eq!(select_active(&paths, Some(1), MS * 500, MS * 1000), Some(1));
        assert_eq!(
            select_active(&paths, Some(1), MS * 1010, MS * 1000),
            Some(0)
        );
        assert!(paths[0].set_down(DownCause::TransportError));
        assert!(!paths[0].set_down(DownCause::Silent(MS)));
        assert_eq!(paths[0].counters.downs, 2);
        assert_eq!(paths[0].down_cause, Some(DownCause::TransportError));
        assert_eq!(
            select_active(&paths, Some(0), MS * 1020, MS * 1000),
            Some(1)
        );
    }
}

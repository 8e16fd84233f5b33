//! What `fcvpn show` reports: one JSON object per link, and its human-readable form.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::link::Link;
use crate::link::path::{ChangeCause, DownCause, PathChange};
use crate::transport::{FC_PATH, Transport, TransportCounters};
use crate::tun::Tun;

/// The display name of a path id.
pub fn path_name(id: u8) -> &'static str {
    match id {
        FC_PATH => "fc",
        1 => "ethernet",
        _ => "other",
    }
}

/// Facts about a running link that do not change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaticInfo {
    /// The interface (and control socket) name.
    pub name: String,
    /// "target" or "initiator".
    pub role: String,
    /// "tun" or "tap".
    pub mode: String,
    /// The backend ("sim", ...).
    pub backend: String,
    /// The peer's public key, base64.
    pub peer_public_key: String,
    /// Our public key, base64.
    pub public_key: String,
}

/// One path's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathStatus {
    /// "fc" or "ethernet".
    pub name: String,
    /// "up", "down" or "unknown".
    pub state: String,
    /// Smoothed RTT.
    pub rtt_us: u64,
    /// Fraction of recent probes unanswered.
    pub loss: f64,
    /// Batch bytes sent.
    pub tx_bytes: u64,
    /// Batch bytes received (authenticated).
    pub rx_bytes: u64,
    /// Batches sent.
    pub tx_batches: u64,
    /// Batches received.
    pub rx_batches: u64,
    /// Frames declared lost on this path and resent.
    pub retransmits: u64,
    /// Times this path went from up to down (each logged once, with its cause).
    #[serde(default)]
    pub downs: u64,
}

/// The latest change of the active path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathChangeStatus {
    /// The path traffic left: "fc", "ethernet" or null (none was up).
    pub from: Option<String>,
    /// The path traffic moved to: "fc", "ethernet" or null (none is up).
    pub to: Option<String>,
    /// Why, as logged: "fc down: no reply for 200 ms", "fc down: transport errors",
    /// "fail-back: fc up for 1.0 s", "fc up, preferred" (a more preferred path that never
    /// failed came up), or "ethernet up" (a path came up while none was).
    pub cause: String,
    /// Seconds since it happened.
    pub age_s: f64,
}

/// Packet counters of the link.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PacketStatus {
    /// Packets accepted from the TUN device.
    pub accepted: u64,
    /// Packets refused because the send buffer was full.
    pub dropped_full: u64,
    /// Packets larger than the largest packet.
    pub dropped_oversize: u64,
    /// Packets delivered to the TUN device.
    pub delivered: u64,
    /// Bytes delivered.
    pub delivered_bytes: u64,
    /// Frame resends.
    pub retransmitted: u64,
    /// Frames dropped at the maximum frame age.
    pub expired: u64,
    /// Sequence numbers the peer skipped.
    pub skipped: u64,
    /// Duplicate frames received.
    pub duplicates: u64,
    /// Packets the TUN device refused (queue full).
    pub tun_dropped: u64,
}

/// Handshake messages refused, by cause.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HandshakeStatus {
    /// Messages whose mac1 failed (cost one hash, no budget).
    pub rejected_mac1: u64,
    /// Initiations over the answer budget of their path.
    pub rejected_budget: u64,
    /// Initiations whose timestamp was not newer than the last accepted, or older than this
    /// process's start minus the allowed skew.
    pub rejected_replay: u64,
    /// Messages that failed decryption or the pinned key, or had the wrong length.
    pub rejected_invalid: u64,
    /// Responses or COOKIEs matching no initiation of ours.
    pub rejected_unexpected: u64,
    /// Initiations answered with a COOKIE instead (the UDP path under load).
    pub cookies_sent: u64,
    /// Simultaneous initiations resolved by ignoring the peer's.
    pub collisions: u64,
}

impl HandshakeStatus {
    fn from_stats(s: &crate::link::LinkStats) -> Self {
        let r = &s.rejected;
        Self {
            rejected_mac1: r.handshake_bad_mac1,
            rejected_budget: r.handshake_rate_limited,
            rejected_replay: r.handshake_replayed,
            rejected_invalid: r.handshake_invalid,
            rejected_unexpected: r.handshake_unexpected,
            cookies_sent: r.handshake_cookie_sent,
            collisions: s.handshake_collisions,
        }
    }
}

/// Everything `fcvpn show --json` prints for one link.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkStatus {
    /// Static facts.
    #[serde(flatten)]
    pub info: StaticInfo,
    /// Seconds since the current session was established.
    pub handshake_age_s: Option<f64>,
    /// "fc", "ethernet" or null.
    pub active_path: Option<String>,
    /// How many times the active path changed since `up` (failovers, fail-backs, losing every
    /// path, regaining one), not counting the first choice of a path when the link came up.
    #[serde(default)]
    pub path_changes: u64,
    /// The latest of those changes; null before the first.
    #[serde(default)]
    pub last_path_change: Option<PathChangeStatus>,
    /// Whether the link can deliver (the TUN carrier).
    pub carrier: bool,
    /// Batches rejected (forged, replayed, malformed, ...).
    pub rejected_batches: u64,
    /// Authenticated ACKs or SKIPs out of step with our sequence state (SPEC §5.6).
    #[serde(default)]
    pub desyncs: u64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Handshake messages refused, by cause (each also counts in `rejected_batches`).
    #[serde(default)]
    pub handshake: HandshakeStatus,
    /// Packet counters.
    pub packets: PacketStatus,
    /// Per path.
    pub paths: Vec<PathStatus>,
    /// SCSI counters of the FC transport.
    pub scsi: Option<TransportCounters>,
}

impl LinkStatus {
    /// Collects the status at `now`.
    pub fn collect(
        info: &StaticInfo,
        link: &Link,
        transports: &[Box<dyn Transport>],
        tun: &dyn Tun,
        now: Duration,
    ) -> Self {
        let s = link.stats(now);
        let paths = s
            .paths
            .iter()
            .map(|p| PathStatus {
                name: p.name.clone(),
                state: p.state.name().to_owned(),
                rtt_us: p.rtt_us,
                loss: p.loss,
                tx_bytes: p.counters.tx_bytes,
                rx_bytes: p.counters.rx_bytes,
                tx_batches: p.counters.tx_batches,
                rx_batches: p.counters.rx_batches,
                retransmits: p.counters.retransmits,
                downs: p.counters.downs,
            })
            .collect();
        let scsi = transports
            .iter()
            .find(|t| t.path() == FC_PATH)
            .map(|t| t.counters());
        LinkStatus {
            info: info.clone(),
            handshake_age_s: link.handshake_age(now).map(|d| d.as_secs_f64()),
            active_path: s.active_path.map(|p| path_name(p).to_owned()),
            path_changes: s.path_changes,
            last_path_change: s.last_path_change.map(|c| PathChangeStatus {
                from: c.from.map(|p| path_name(p).to_owned()),
                to: c.to.map(|p| path_name(p).to_owned()),
                cause: describe_change(&c),
                age_s: now.saturating_sub(c.at).as_secs_f64(),
            }),
            carrier: link.is_established() && s.active_path.is_some(),
            rejected_batches: s.rejected.total(),
            desyncs: s.rejected.desyncs,
            handshakes: s.handshakes,
            handshake: HandshakeStatus::from_stats(&s),
            packets: PacketStatus {
                accepted: s.send.accepted,
                dropped_full: s.send.refused_full,
                dropped_oversize: s.oversize_packets,
                delivered: s.recv.delivered,
                delivered_bytes: s.recv.delivered_bytes,
                retransmitted: s.send.retransmitted,
                expired: s.send.expired,
                skipped: s.recv.skipped,
                duplicates: s.recv.duplicates,
                tun_dropped: tun.dropped(),
            },
            paths,
            scsi,
        }
    }

    /// The human-readable form (like `wg show`).
    pub fn render(&self) -> String {
        let mut o = String::new();
        let i = &self.info;
        let _ = writeln!(
            o,
            "link {} ({} {}, {} backend)",
            i.name, i.role, i.mode, i.backend
        );
        let _ = writeln!(o, "  public key: {}", i.public_key);
        let _ = writeln!(o, "  peer: {}", i.peer_public_key);
        let hs = self
            .handshake_age_s
            .map_or("none".to_owned(), |a| format!("{a:.1} s ago"));
        let _ = writeln!(o, "  latest handshake: {hs}");
        let active = self.active_path.as_deref().unwrap_or("none");
        let carrier = if self.carrier { "on" } else { "off" };
        let _ = writeln!(o, "  active path: {active}, carrier {carrier}");
        let name = |p: &Option<String>| p.clone().unwrap_or_else(|| "none".to_owned());
        match &self.last_path_change {
            Some(c) => {
                let _ = writeln!(
                    o,
                    "  path changes: {}, latest {} -> {} {:.1} s ago ({})",
                    self.path_changes,
                    name(&c.from),
                    name(&c.to),
                    c.age_s,
                    c.cause
                );
            }
            None => {
                let _ = writeln!(o, "  path changes: {}", self.path_changes);
            }
        }
        let p = &self.packets;
        let _ = writeln!(
            o,
            "  packets: {} sent, {} received ({}), {} resent, {} expired, {} skipped, {} refused",
            p.accepted,
            p.delivered,
            bytes(p.delivered_bytes),
            p.retransmitted,
            p.expired,
            p.skipped,
            p.dropped_full + p.dropped_oversize
        );
        let _ = writeln!(o, "  rejected batches: {}", self.rejected_batches);
        if self.desyncs > 0 {
            let _ = writeln!(o, "  desyncs (resynchronised): {}", self.desyncs);
        }
        for path in &self.paths {
            let _ = writeln!(
                o,
                "  path {}: {}, rtt {} us, loss {:.1}%, tx {}, rx {}, retransmits {}, downs {}",
                path.name,
                path.state,
                path.rtt_us,
                path.loss * 100.0,
                bytes(path.tx_bytes),
                bytes(path.rx_bytes),
                path.retransmits,
                path.downs
            );
        }
        if let Some(s) = &self.scsi {
            let _ = writeln!(
                o,
                "  scsi: {} commands, {} timeouts, {} transport errors, {} check conditions, {} foreign",
                s.commands, s.timeouts, s.transport_errors, s.check_conditions, s.foreign_commands
            );
            if s.token_refusals + s.idle_backoffs > 0 {
                let _ = writeln!(
                    o,
                    "  scsi: {} token refusals, {} READ backoffs after IDLE answered at once",
                    s.token_refusals, s.idle_backoffs
                );
            }
        }
        o
    }
}

/// Why a path went down, as logged and shown: "no reply for 200 ms", "transport errors".
pub fn describe_down(cause: &DownCause) -> String {
    match cause {
        DownCause::Silent(d) => format!("no reply for {} ms", d.as_millis()),
        DownCause::TransportError => "transport errors".to_owned(),
    }
}

/// Why the active path changed, as logged and shown: "fc down: no reply for 200 ms",
/// "fail-back: fc up for 1.0 s", "ethernet up".
pub fn describe_change(c: &PathChange) -> String {
    let name = |p: Option<u8>| p.map_or("none", path_name);
    match c.cause {
        ChangeCause::Down(d) => format!("{} down: {}", name(c.from), describe_down(&d)),
        ChangeCause::FailBack(held) => {
            format!(
                "fail-back: {} up for {:.1} s",
                name(c.to),
                held.as_secs_f64()
            )
        }
        ChangeCause::Preferred => format!("{} up, preferred", name(c.to)),
        ChangeCause::Up => format!("{} up", name(c.to)),
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_changes_are_described_with_their_cause() {
        let change = |from, to, cause| PathChange {
            at: Duration::ZERO,
            from,
            to,
            cause,
        };
        let silent = ChangeCause::Down(DownCause::Silent(Duration::from_millis(200)));
        assert_eq!(
            describe_change(&change(Some(0), Some(1), silent)),
            "fc down: no reply for 200 ms"
        );
        let failed = ChangeCause::Down(DownCause::TransportError);
        assert_eq!(
            describe_change(&change(Some(1), None, failed)),
            "ethernet down: transport errors"
        );
        let back = ChangeCause::FailBack(Duration::from_secs(1));
        assert_eq!(
            describe_change(&change(Some(1), Some(0), back)),
            "fail-back: fc up for 1.0 s"
        );
        assert_eq!(
            describe_change(&change(None, Some(1), ChangeCause::Up)),
            "ethernet up"
        );
        assert_eq!(
            describe_change(&change(Some(1), Some(0), ChangeCause::Preferred)),
            "fc up, preferred"
        );
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}

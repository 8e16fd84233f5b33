//! What `fcvpn show` reports: one JSON object per link, and its human-readable form.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::link::Link;
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
    /// Whether the link can deliver (the TUN carrier).
    pub carrier: bool,
    /// Batches rejected (forged, replayed, malformed, ...).
    pub rejected_batches: u64,
    /// Handshakes completed.
    pub handshakes: u64,
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
            carrier: link.is_established() && s.active_path.is_some(),
            rejected_batches: s.rejected.total(),
            handshakes: s.handshakes,
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
        for path in &self.paths {
            let _ = writeln!(
                o,
                "  path {}: {}, rtt {} us, loss {:.1}%, tx {}, rx {}, retransmits {}",
                path.name,
                path.state,
                path.rtt_us,
                path.loss * 100.0,
                bytes(path.tx_bytes),
                bytes(path.rx_bytes),
                path.retransmits
            );
        }
        if let Some(s) = &self.scsi {
            let _ = writeln!(
                o,
                "  scsi: {} commands, {} timeouts, {} transport errors, {} check conditions, {} foreign",
                s.commands, s.timeouts, s.transport_errors, s.check_conditions, s.foreign_commands
            );
        }
        o
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
    fn bytes_are_human() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}

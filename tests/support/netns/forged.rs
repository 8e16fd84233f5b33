//! Ethernet-path datagrams made under keys the victim does not trust, with the sans-IO link
//! itself (no fcvpn process needed): handshake initiations from a stranger who knows the
//! victim's public key, and transport batches of a session between two strangers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fcvpn::crypto::{LocalStatic, PrivateKey, PublicKey};
use fcvpn::link::{Entropy, Link, LinkConfig, PathConfig};

/// The Ethernet path id.
const ETHERNET: u8 = 1;
const MAX_DATAGRAM: usize = 1472;

/// Deterministic randomness (SplitMix64): forged datagrams need no secrecy.
struct Counter(u64);

impl Entropy for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

fn stranger(seed: u8) -> LocalStatic {
    LocalStatic::new(PrivateKey::from_bytes([seed; 32]))
}

fn link(local: LocalStatic, peer: PublicKey, seed: u64) -> Link {
    let mut cfg = LinkConfig::new(
        local,
        peer,
        vec![PathConfig::new(ETHERNET, "ethernet", 0, MAX_DATAGRAM)],
    );
    cfg.instance = seed;
    cfg.epoch_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Link::new(cfg, Box::new(Counter(seed)), Duration::ZERO).expect("a valid link config")
}

/// `n` handshake initiations to `victim` from a stranger's key (each from a fresh link, so
/// each is new): mac1 is valid, the static key is not the pinned one.
pub fn initiations(victim: &PublicKey, n: usize) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    (0..n)
        .filter_map(|i| {
            let mut l = link(stranger(0x51), *victim, 1000 + i as u64);
            let now = Duration::from_millis(i as u64);
            l.handle_timeout(now);
            l.poll_transmit(now, ETHERNET, &mut buf)
                .map(|len| buf[..len].to_vec())
        })
        .collect()
}

/// Up to `n` transport batches (data, acks, probes) of a session between two strangers, each
/// sealed under that session's keys.
pub fn foreign_session(n: usize) -> Vec<Vec<u8>> {
    let (a, b) = (stranger(0x61), stranger(0x62));
    let (pa, pb) = (a.public, b.public);
    let mut links = [link(a, pb, 1), link(b, pa, 2)];
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::new();
    let mut now = Duration::ZERO;
    let mut packet = vec![0x45u8; 1200];
    for step in 0..2000u32 {
        if out.len() >= n {
            break;
        }
        now += Duration::from_millis(1);
        if links.iter().all(Link::is_established) {
            packet[1] = step as u8;
            let _ = links[0].handle_packet(now, &packet);
        }
        for side in 0..2 {
            links[side].handle_timeout(now);
            while let Some(len) = links[side].poll_transmit(now, ETHERNET, &mut buf) {
                let mut batch = buf[..len].to_vec();
                if links[side].is_established() && out.len() < n {
                    out.push(batch.clone());
                }
                links[1 - side].handle_batch(now, ETHERNET, &mut batch, &mut |_| {});
            }
        }
    }
    out
}

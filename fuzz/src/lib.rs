//! Helpers shared by the fcvpn fuzz targets: deterministic keys and entropy, the packet
//! pattern the delivery oracles check, and an established pair of links.

use std::sync::OnceLock;
use std::time::Duration;

use fcvpn::crypto::{LocalStatic, PrivateKey};
use fcvpn::link::{Entropy, Link, LinkConfig, PathConfig};

/// Deterministic randomness (SplitMix64), so every input replays exactly.
pub struct SeededEntropy(pub u64);

impl SeededEntropy {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let x = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&x[..chunk.len()]);
        }
    }
}

/// SplitMix64's finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fixed static key pair made from one byte (pairs for 1 and 2 are computed once).
pub fn key(seed: u8) -> LocalStatic {
    static PAIRS: OnceLock<[LocalStatic; 2]> = OnceLock::new();
    match seed {
        1 | 2 => PAIRS.get_or_init(|| [make_key(1), make_key(2)])[usize::from(seed - 1)].clone(),
        _ => make_key(seed),
    }
}

fn make_key(seed: u8) -> LocalStatic {
    let private = PrivateKey::from_bytes([seed; 32]);
    LocalStatic {
        public: private.public_key(),
        private,
    }
}

/// The packet the oracles expect for wire sequence number `seq`: `seq` (LE) then bytes
/// derived from it; its length is a function of `seq` too, so every DATA or FRAGMENT frame a
/// harness writes for `seq` carries parts of the same packet.
pub fn packet(seq: u32) -> Vec<u8> {
    let len = 4 + (mix(u64::from(seq)) % 3000) as usize;
    let mut p = seq.to_le_bytes().to_vec();
    let mut x = mix(u64::from(seq) ^ 0x5eed);
    while p.len() < len {
        x = mix(x);
        p.extend_from_slice(&x.to_le_bytes()[..(len - p.len()).min(8)]);
    }
    p
}

/// `packet(seq)` as a frame payload: plain, or LZ4 as the link sends it (u32 LE length, then
/// the block).
pub fn encoded(seq: u32, lz4: bool) -> Vec<u8> {
    let raw = packet(seq);
    if !lz4 {
        return raw;
    }
    let mut out = vec![0u8; 4 + lz4_flex::block::get_maximum_output_size(raw.len())];
    out[..4].copy_from_slice(&(raw.len() as u32).to_le_bytes());
    let n = lz4_flex::block::compress_into(&raw, &mut out[4..]).expect("room for the block");
    out.truncate(4 + n);
    out
}

/// Checks that delivered packets are `packet(seq)` for strictly increasing sequence numbers
/// (expanded to 64 bits against the previous one): in order, at most once, intact.
#[derive(Debug, Default)]
pub struct DeliveryOracle {
    last: Option<u64>,
    /// Packets delivered so far.
    pub delivered: u64,
}

impl DeliveryOracle {
    /// An oracle whose first delivery must be at or above 64-bit `first`.
    pub fn starting_at(first: u64) -> Self {
        Self {
            last: first.checked_sub(1),
            delivered: 0,
        }
    }

    /// Notes that the receiver's cumulative point is `cum` (a SKIP may move it far ahead with
    /// nothing delivered): later deliveries must lie at or above it, and are expanded from it.
    pub fn passed(&mut self, cum: u64) {
        if let Some(below) = cum.checked_sub(1) {
            self.last = Some(self.last.map_or(below, |l| l.max(below)));
        }
    }

    /// Checks one delivered packet; returns its 64-bit sequence number.
    pub fn check(&mut self, p: &[u8]) -> u64 {
        assert!(p.len() >= 4, "runt packet of {} bytes delivered", p.len());
        let wire = u32::from_le_bytes(p[..4].try_into().unwrap());
        assert!(p == packet(wire).as_slice(), "packet {wire:#x} corrupted");
        let reference = self.last.map_or(u64::from(wire), |l| l + 1);
        let seq = fcvpn::link::seq::expand(wire, reference);
        if let Some(last) = self.last {
            assert!(seq > last, "packet {seq:#x} delivered after {last:#x}");
        }
        self.last = Some(seq);
        self.delivered += 1;
        seq
    }
}

/// Path ids of the pair: 0 is FC-like (1 MiB batches), 1 Ethernet-like (1472 bytes).
pub const PATHS: [(u8, usize); 2] = [(0, 1 << 20), (1, 1472)];

/// The configuration of side `side` (0 or 1) of a pair whose first sequence number is
/// `initial_seq`.
pub fn link_config(side: usize, initial_seq: u64, hold_bytes: usize) -> LinkConfig {
    let paths = PATHS
        .iter()
        .map(|&(id, max)| PathConfig::new(id, if id == 0 { "fc" } else { "eth" }, id, max))
        .collect();
    let mut cfg = LinkConfig::new(key(1 + side as u8), key(2 - side as u8).public, paths);
    cfg.instance = 0x1000 + side as u64;
    cfg.initial_seq = initial_seq;
    cfg.hold_bytes = hold_bytes;
    cfg
}

/// Two links that share a current session at time `now` (returned), set up without the
/// handshake's Diffie-Hellman work (`fcvpn::fuzzing::pair_for_fuzzing`; the `handshake` target
/// covers the handshake). Side 1 can seal batches side 0 accepts.
pub fn established_pair(initial_seq: [u64; 2], hold_bytes: usize) -> ([Link; 2], Duration) {
    let now = Duration::from_millis(1);
    let configs = [0, 1].map(|side| link_config(side, initial_seq[side], hold_bytes));
    let entropy: [Box<dyn Entropy + Send>; 2] =
        [Box::new(SeededEntropy(7)), Box::new(SeededEntropy(8))];
    let links = fcvpn::fuzzing::pair_for_fuzzing(configs, entropy, now).expect("valid config");
    (links, now)
}

//! A deterministic harness that owns two links, the wire between them and a virtual clock.
//!
//! Every run is a function of its [`Scenario`] (seed included): a failing run prints the
//! scenario, and `FCVPN_SEED=<n>` replays one seed. The fault model drops, duplicates, delays
//! (reorders), corrupts and blacks out batches per path and direction; the harness checks that
//! packets arrive exactly once, in order and intact, and that memory stays bounded.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use fcvpn::crypto::{LocalStatic, PrivateKey};
use fcvpn::link::{Entropy, Event, Link, LinkConfig, LinkStats, PathConfig};

/// Deterministic randomness for links under test (SplitMix64).
pub struct SeededEntropy(pub u64);

impl SeededEntropy {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
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

pub fn key(seed: u8) -> LocalStatic {
    let private = PrivateKey::from_bytes([seed; 32]);
    LocalStatic {
        public: private.public_key(),
        private,
    }
}

/// Faults on one path, both directions.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub loss: f64,
    pub duplicate: f64,
    pub corrupt: f64,
    /// Extra random delay up to this, which reorders batches.
    pub jitter: Duration,
    /// Everything sent in `[start, end)` is lost.
    pub blackout: Option<(Duration, Duration)>,
}

impl Faults {
    pub const NONE: Faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        corrupt: 0.0,
        jitter: Duration::ZERO,
        blackout: None,
    };
}

/// One path of the simulated wire.
#[derive(Debug, Clone)]
pub struct SimPath {
    pub id: u8,
    pub name: &'static str,
    pub preference: u8,
    pub max_batch: usize,
    pub latency: Duration,
    /// Batches that may be in flight per direction (SCSI commands, socket buffer).
    pub slots: usize,
    pub faults: Faults,
}

impl SimPath {
    pub fn fc(faults: Faults) -> Self {
        Self {
            id: 0,
            name: "fc",
            preference: 0,
            max_batch: 1 << 20,
            latency: Duration::from_micros(40),
            slots: 8,
            faults,
        }
    }

    pub fn ethernet(faults: Faults) -> Self {
        Self {
            id: 1,
            name: "ethernet",
            preference: 1,
            max_batch: 1472,
            latency: Duration::from_micros(100),
            slots: 64,
            faults,
        }
    }
}

/// Traffic offered by one side.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    pub packets: u64,
    /// Gap between packets.
    pub interval: Duration,
    /// Fraction of packets that are 9000 bytes (the rest are 40-1500).
    pub jumbo: f64,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub paths: Vec<SimPath>,
    pub traffic: [Traffic; 2],
    pub max_frame_age: Duration,
    /// Stop this long after the last packet was offered.
    pub drain: Duration,
    pub initial_seq: u64,
    pub send_buffer_frames: usize,
    pub hold_bytes: usize,
    /// Last word on each side's configuration (side 0 or 1).
    pub tweak: fn(usize, &mut LinkConfig),
}

impl Scenario {
    pub fn new(seed: u64, paths: Vec<SimPath>) -> Self {
        let t = Traffic {
            packets: 3000,
            interval: Duration::from_micros(200),
            jumbo: 0.1,
        };
        Self {
            seed,
            paths,
            traffic: [t, t],
            max_frame_age: Duration::from_secs(3),
            drain: Duration::from_secs(6),
            initial_seq: 0xffff_fff0,
            send_buffer_frames: 4096,
            hold_bytes: 8 << 20,
            tweak: |_, _| {},
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub stats: [LinkStats; 2],
    /// Packets offered by each side that its link accepted, by index.
    pub accepted: [Vec<u64>; 2],
    /// Indexes delivered at each side (of the other side's packets), in delivery order.
    pub delivered: [Vec<u64>; 2],
    pub dropped_batches: u64,
    /// Data frames (first sends and resends) inside the dropped or corrupted batches.
    pub dropped_data_frames: u64,
    pub duplicated_batches: u64,
    pub corrupted_batches: u64,
    pub events: [Vec<(Duration, Event)>; 2],
    /// Largest send-buffer frames / hold bytes seen at any step.
    pub peak_send_frames: usize,
    pub peak_hold_bytes: usize,
    /// Longest time between two deliveries while traffic was flowing, per side.
    pub longest_gap: [Duration; 2],
    pub end: Duration,
    /// Every distinct batch length sent (handshake messages included), per side.
    pub batch_lens: [std::collections::BTreeSet<usize>; 2],
}

struct InFlight {
    at: Duration,
    to: usize,
    path: u8,
    bytes: Vec<u8>,
    /// The sender's address on the Ethernet path (what cookies are bound to).
    source: Vec<u8>,
}

/// The Ethernet path's id in the harness: batches on it arrive with a source address.
pub const ETHERNET_ID: u8 = 1;

/// Side `side`'s address as the other side's link sees it on the Ethernet path.
pub fn side_source(side: usize) -> Vec<u8> {
    format!("side {side}").into_bytes()
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.at.cmp(&o.at)
    }
}

/// The packet a side offers as its `index`-th: a header (side, index, length) then bytes
/// derived from them, so the receiver can check content and order.
pub fn make_packet(side: usize, index: u64, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len);
    p.push(side as u8);
    p.extend_from_slice(&index.to_le_bytes());
    p.extend_from_slice(&(len as u32).to_le_bytes());
    let mut x = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ side as u64;
    while p.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p.push((x >> 24) as u8);
    }
    p
}

/// Checks a delivered packet and returns (side, index).
pub fn check_packet(p: &[u8]) -> (usize, u64) {
    assert!(p.len() >= 13, "runt packet of {} bytes", p.len());
    let side = p[0] as usize;
    let index = u64::from_le_bytes(p[1..9].try_into().unwrap());
    let len = u32::from_le_bytes(p[9..13].try_into().unwrap()) as usize;
    assert_eq!(
        p,
        make_packet(side, index, len).as_slice(),
        "packet {index} corrupted"
    );
    (side, index)
}

pub struct Pair {
    pub sc: Scenario,
    pub links: [Link; 2],
    pub now: Duration,
    rng: SeededEntropy,
    wire: BinaryHeap<Reverse<InFlight>>,
    /// busy[side][path index]: times at which slots free.
    busy: [Vec<Vec<Duration>>; 2],
    next_packet: [u64; 2],
    pub out: Outcome,
    last_delivery: [Option<Duration>; 2],
    buf: Vec<u8>,
    /// Every INITIATION batch sent, as (receiving side, path id, bytes): what an attacker on
    /// the wire records for a later replay.
    pub captured_initiations: Vec<(usize, u8, Vec<u8>)>,
}

impl Pair {
    pub fn new(sc: Scenario) -> Self {
        let links = [0usize, 1].map(|side| build_link(&sc, side, 0, Duration::ZERO));
        let n = sc.paths.len();
        Self {
            rng: SeededEntropy(sc.seed),
            links,
            now: Duration::ZERO,
            wire: BinaryHeap::new(),
            busy: [vec![Vec::new(); n], vec![Vec::new(); n]],
            next_packet: [0, 0],
            out: Outcome {
                stats: [empty_stats(), empty_stats()],
                accepted: [Vec::new(), Vec::new()],
                delivered: [Vec::new(), Vec::new()],
                dropped_batches: 0,
                dropped_data_frames: 0,
                duplicated_batches: 0,
                corrupted_batches: 0,
                events: [Vec::new(), Vec::new()],
                peak_send_frames: 0,
                peak_hold_bytes: 0,
                longest_gap: [Duration::ZERO; 2],
                end: Duration::ZERO,
                batch_lens: Default::default(),
            },
            last_delivery: [None, None],
            buf: vec![0u8; 1 << 20],
            captured_initiations: Vec::new(),
            sc,
        }
    }

    /// Runs until all traffic was offered and the drain time passed.
    pub fn run(mut self) -> Outcome {
        let stop = self.traffic_end() + self.sc.drain;
        self.run_until(stop);
        self.finish()
    }

    /// Replaces side `side`'s link with a fresh process's (new instance, empty state); the
    /// new link's clock keeps counting from the same epoch, as a restarted daemon's would.
    pub fn restart(&mut self, side: usize, generation: u64) {
        self.links[side] = build_link(&self.sc, side, generation, self.now);
    }

    /// Puts `bytes` on the wire to side `to` on path `path`, arriving now (an attacker's batch).
    pub fn inject(&mut self, to: usize, path: u8, bytes: Vec<u8>) {
        self.inject_from(to, path, side_source(1 - to), bytes);
    }

    /// [`Pair::inject`] from the address `source` (on the Ethernet path).
    pub fn inject_from(&mut self, to: usize, path: u8, source: Vec<u8>, bytes: Vec<u8>) {
        self.wire.push(Reverse(InFlight {
            at: self.now,
            to,
            path,
            bytes,
            source,
        }));
    }

    pub fn traffic_end(&self) -> Duration {
        self.sc
            .traffic
            .iter()
            .map(|t| t.interval * t.packets as u32)
            .max()
            .unwrap_or_default()
    }

    pub fn finish(mut self) -> Outcome {
        self.out.stats = [self.links[0].stats(self.now), self.links[1].stats(self.now)];
        self.out.end = self.now;
        self.out
    }

    pub fn run_until(&mut self, stop: Duration) {
        let mut steps = 0u64;
        while self.now <= stop {
            self.step();
            steps += 1;
            assert!(
                steps < 20_000_000,
                "harness did not converge (seed {})",
                self.sc.seed
            );
            let next = self.next_event(stop);
            if next > stop {
                break;
            }
            self.now = next;
        }
        self.now = stop;
    }

    fn step(&mut self) {
        let now = self.now;
        self.offer_packets(now);
        self.deliver_wire(now);
        for side in 0..2 {
            self.links[side].handle_timeout(now);
            self.transmit(side, now);
            while let Some(e) = self.links[side].poll_event() {
                self.out.events[side].push((now, e));
            }
            let s = self.links[side].stats(now);
            self.out.peak_send_frames = self.out.peak_send_frames.max(s.send_buffer_frames);
            self.out.peak_hold_bytes = self.out.peak_hold_bytes.max(s.hold_bytes);
        }
    }

    fn offer_packets(&mut self, now: Duration) {
        for side in 0..2 {
            let t = self.sc.traffic[side];
            while self.next_packet[side] < t.packets
                && t.interval * self.next_packet[side] as u32 <= now
            {
                let i = self.next_packet[side];
                self.next_packet[side] += 1;
                let len = if self.rng.unit() < t.jumbo {
                    9000
                } else {
                    40 + self.rng.below(1461) as usize
                };
                if self.links[side]
                    .handle_packet(now, &make_packet(side, i, len))
                    .is_ok()
                {
                    self.out.accepted[side].push(i);
                }
            }
        }
    }

    fn deliver_wire(&mut self, now: Duration) {
        while self.wire.peek().is_some_and(|Reverse(f)| f.at <= now) {
            let Reverse(mut f) = self.wire.pop().unwrap();
            let to = f.to;
            let mut got = Vec::new();
            let mut deliver = |p: &[u8]| got.push(check_packet(p));
            if f.path == ETHERNET_ID {
                self.links[to].handle_datagram(now, f.path, &f.source, &mut f.bytes, &mut deliver);
            } else {
                self.links[to].handle_batch(now, f.path, &mut f.bytes, &mut deliver);
            }
            for (side, index) in got {
                assert_eq!(side, 1 - to, "packet from the wrong side");
                if let Some(last) = self.last_delivery[to] {
                    let gap = now - last;
                    self.out.longest_gap[to] = self.out.longest_gap[to].max(gap);
                }
                self.last_delivery[to] = Some(now);
                self.out.delivered[to].push(index);
            }
        }
    }

    fn transmit(&mut self, side: usize, now: Duration) {
        for pi in 0..self.sc.paths.len() {
            let p = self.sc.paths[pi].clone();
            loop {
                self.busy[side][pi].retain(|&t| t > now);
                if self.busy[side][pi].len() >= p.slots {
                    break;
                }
                let Some(n) =
                    self.links[side].poll_transmit(now, p.id, &mut self.buf[..p.max_batch])
                else {
                    break;
                };
                let bytes = self.buf[..n].to_vec();
                if bytes.get(3) == Some(&1) {
                    self.captured_initiations
                        .push((1 - side, p.id, bytes.clone()));
                }
                self.out.batch_lens[side].insert(n);
                let frames = self.links[side].last_batch_data_frames() as u64;
                let arrive = self.send_through_faults(side, &p, now, bytes, frames);
                self.busy[side][pi].push(arrive.max(now + p.latency));
            }
        }
    }

    /// Applies the path's faults; returns when the slot frees.
    fn send_through_faults(
        &mut self,
        side: usize,
        p: &SimPath,
        now: Duration,
        mut bytes: Vec<u8>,
        frames: u64,
    ) -> Duration {
        let f = p.faults;
        let to = 1 - side;
        let blacked = f.blackout.is_some_and(|(a, b)| now >= a && now < b);
        if blacked || self.rng.unit() < f.loss {
            self.out.dropped_batches += 1;
            self.out.dropped_data_frames += frames;
            return now + p.latency;
        }
        if self.rng.unit() < f.corrupt {
            self.out.dropped_data_frames += frames;
            let bit = self.rng.below(bytes.len() as u64 * 8);
            bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
            self.out.corrupted_batches += 1;
        }
        let copies = if self.rng.unit() < f.duplicate { 2 } else { 1 };
        self.out.duplicated_batches += copies - 1;
        let mut last = now;
        for _ in 0..copies {
            let jitter = Duration::from_nanos(self.rng.below(f.jitter.as_nanos() as u64 + 1));
            let at = now + p.latency + jitter;
            last = last.max(at);
            self.wire.push(Reverse(InFlight {
                at,
                to,
                path: p.id,
                bytes: bytes.clone(),
                source: side_source(side),
            }));
        }
        last
    }

    fn next_event(&self, stop: Duration) -> Duration {
        let now = self.now;
        let mut next = stop + Duration::from_nanos(1);
        let mut consider = |t: Duration| {
            if t > now && t < next {
                next = t;
            }
        };
        if let Some(Reverse(f)) = self.wire.peek() {
            consider(f.at);
        }
        for side in 0..2 {
            for b in &self.busy[side] {
                b.iter().for_each(|&t| consider(t));
            }
            if let Some(t) = self.links[side].poll_timeout() {
                consider(t);
            }
            let t = self.sc.traffic[side];
            if self.next_packet[side] < t.packets {
                consider(t.interval * self.next_packet[side] as u32);
            }
        }
        next
    }
}

/// Side `side`'s link as of a process start at `now` (`generation` > 0 after restarts).
pub fn build_link(sc: &Scenario, side: usize, generation: u64, now: Duration) -> Link {
    let mut cfg = LinkConfig::new(key(side as u8 + 1), key(2 - side as u8).public, paths(sc));
    cfg.instance = sc.seed ^ (side as u64 + 1) ^ (generation << 32);
    cfg.epoch_unix_ns = 1_700_000_000_000_000_000;
    cfg.max_frame_age = sc.max_frame_age;
    cfg.initial_seq = sc.initial_seq;
    cfg.send_buffer_frames = sc.send_buffer_frames;
    cfg.hold_bytes = sc.hold_bytes;
    for p in cfg.paths.iter_mut().filter(|p| p.id == ETHERNET_ID) {
        p.peer_source = Some(side_source(1 - side));
    }
    (sc.tweak)(side, &mut cfg);
    let seed = sc.seed.wrapping_mul(31) + side as u64 + (generation << 40);
    Link::new(cfg, Box::new(SeededEntropy(seed)), now).expect("valid config")
}

fn paths(sc: &Scenario) -> Vec<PathConfig> {
    sc.paths
        .iter()
        .map(|p| PathConfig::new(p.id, p.name, p.preference, p.max_batch))
        .collect()
}

fn empty_stats() -> LinkStats {
    LinkStats {
        send: Default::default(),
        recv: Default::default(),
        rejected: Default::default(),
        oversize_packets: 0,
        handshakes: 0,
        handshake_collisions: 0,
        idle_batches: 0,
        send_buffer_frames: 0,
        send_buffer_bytes: 0,
        hold_bytes: 0,
        active_path: None,
        path_changes: 0,
        last_path_change: None,
        paths: Vec::new(),
    }
}

/// Seeds to run: `FCVPN_SEED` alone if set, else `0..n`.
pub fn seeds(n: u64) -> Vec<u64> {
    match std::env::var("FCVPN_SEED") {
        Ok(s) => vec![s.parse().expect("FCVPN_SEED must be a number")],
        Err(_) => (0..n).collect(),
    }
}

/// Runs `check` on a scenario; on failure, says how to replay it.
pub fn replayable<T>(sc: &Scenario, check: impl FnOnce() -> T + std::panic::UnwindSafe) -> T {
    match std::panic::catch_unwind(check) {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "FAILED scenario: {sc:#?}\nreplay with: FCVPN_SEED={} cargo test <test name>",
                sc.seed
            );
            std::panic::resume_unwind(e)
        }
    }
}

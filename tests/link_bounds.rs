//! An authenticated but hostile (or confused) peer: the work one batch can cost, sequence
//! values near the limits, desyncs, and the spec's strictness rules (SPEC §2, §3, §5, §9).
//! The hostile frames are sealed under the real session key by the harness, which owns both
//! ends ([`fcvpn::link::Link::seal_frames`]).

mod support;

use std::time::Duration;

use fcvpn::link::seq::{self, MAX_SEQ};
use fcvpn::link::wire::{AckRange, FrameWriter, HEADER_LEN, frame_type};
use fcvpn::link::{Event, LinkConfigError, LinkStats};
use support::pair::{Faults, Outcome, Pair, Scenario, SimPath, Traffic, make_packet, seeds};

const MS: Duration = Duration::from_millis(1);
/// Where both sides' sequence numbers start in the harness (just below the 32-bit wrap).
const INITIAL: u64 = 0xffff_fff0;
const WINDOW: u64 = fcvpn::link::config::WINDOW_FRAMES;

fn quiet(seed: u64) -> Scenario {
    let mut sc = Scenario::new(seed, vec![SimPath::fc(Faults::NONE)]);
    sc.traffic = [Traffic {
        packets: 0,
        interval: MS,
        jumbo: 0.0,
    }; 2];
    sc
}

fn established(sc: Scenario) -> Pair {
    let mut pair = Pair::new(sc);
    pair.run_until(MS * 100);
    assert!(pair.links.iter().all(|l| l.is_established()));
    pair
}

/// Side `from` seals the frames `write` puts down (up to `cap` bytes of plaintext) as a batch
/// on path `path`; side `1 - from` takes it. Returns the packets it delivered.
fn inject(
    pair: &mut Pair,
    from: usize,
    path: u8,
    cap: usize,
    write: impl FnOnce(&mut FrameWriter<'_>),
) -> Vec<Vec<u8>> {
    let batch = seal(pair, from, path, cap, write);
    take(pair, 1 - from, path, batch)
}

fn seal(
    pair: &mut Pair,
    from: usize,
    path: u8,
    cap: usize,
    write: impl FnOnce(&mut FrameWriter<'_>),
) -> Vec<u8> {
    let mut plain = vec![0u8; cap];
    let mut w = FrameWriter::new(&mut plain);
    write(&mut w);
    let n = w.len();
    let mut buf = vec![0u8; cap + HEADER_LEN + 16 * (cap / 65536 + 1)];
    let len = pair.links[from]
        .seal_frames(path, &plain[..n], &mut buf)
        .expect("sealed");
    buf.truncate(len);
    buf
}

fn take(pair: &mut Pair, to: usize, path: u8, mut batch: Vec<u8>) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let now = pair.now;
    pair.links[to].handle_batch(now, path, &mut batch, &mut |p| got.push(p.to_vec()));
    got
}

fn stats(pair: &Pair, side: usize) -> LinkStats {
    pair.links[side].stats(pair.now)
}

/// Side 0 accepts `n` packets and sends them; the batches are lost.
fn in_flight(pair: &mut Pair, n: u64) {
    let now = pair.now;
    for i in 0..n {
        pair.links[0]
            .handle_packet(now, &make_packet(0, i, 100))
            .unwrap();
    }
    let mut buf = vec![0u8; 1 << 20];
    while pair.links[0].poll_transmit(now, 0, &mut buf).is_some() {}
    assert_eq!(stats(pair, 0).send_buffer_frames, n as usize);
}

fn wire(s: u64) -> u32 {
    seq::truncate(s)
}

#[test]
fn an_ack_bomb_costs_work_in_proportion_to_what_it_newly_acknowledges() {
    let mut pair = established(quiet(1));
    in_flight(&mut pair, 1000);
    // 64 overlapping ranges ending together, in each of ~500 ACK frames of one batch:
    // 32 000 ranges of up to 999 frames, 30 million frame visits if each were walked.
    let ranges: Vec<AckRange> = (0..64)
        .map(|k| AckRange {
            start: wire(INITIAL + 1 + k),
            len: 999 - k as u32,
        })
        .collect();
    let bomb = |w: &mut FrameWriter<'_>| while w.put_ack(wire(INITIAL), 0, &ranges) {};
    let before = stats(&pair, 0).send;
    inject(&mut pair, 1, 0, 256 << 10, bomb);
    let first = stats(&pair, 0).send;
    assert_eq!(first.acked - before.acked, 999);
    let steps = first.ack_steps - before.ack_steps;
    println!("ack bomb: {steps} steps for 999 newly acknowledged frames");
    assert!(steps <= 2 * 999 + 64, "{steps} steps");
    // The same bomb again acknowledges nothing new and costs a handful of steps.
    inject(&mut pair, 1, 0, 256 << 10, bomb);
    let again = stats(&pair, 0).send;
    assert_eq!(again.acked, first.acked);
    let repeat = again.ack_steps - first.ack_steps;
    println!("repeated ack bomb: {repeat} steps (one walk over the run, which it shortens)");
    assert!(repeat <= 1100, "{repeat} steps for nothing new");
    inject(&mut pair, 1, 0, 256 << 10, bomb);
    let third = stats(&pair, 0).send.ack_steps - again.ack_steps;
    println!("third ack bomb: {third} steps");
    assert!(third <= 10, "{third} steps for nothing new");
    assert_eq!(stats(&pair, 0).rejected.desyncs, 0);
}

#[test]
fn of_several_acks_in_a_batch_only_the_greatest_cumulative_point_applies() {
    let mut pair = established(quiet(2));
    in_flight(&mut pair, 100);
    inject(&mut pair, 1, 0, 4096, |w| {
        assert!(w.put_ack(wire(INITIAL + 10), 0, &[]));
        assert!(w.put_ack(wire(INITIAL + 40), 0, &[]));
        assert!(w.put_ack(wire(INITIAL + 20), 0, &[]));
    });
    let s = stats(&pair, 0);
    assert_eq!(s.send.acked, 40);
    assert_eq!(s.send_buffer_frames, 60);
}

#[test]
fn a_skip_bomb_applies_one_skip_bounded_by_the_window() {
    let mut pair = established(quiet(3));
    // 4000 SKIPs in one batch, in scrambled order: one jump to the greatest.
    let before = stats(&pair, 0).recv;
    inject(&mut pair, 1, 0, 64 << 10, |w| {
        for k in 0..4000u64 {
            let k = (k * 2731) % 4000 + 1;
            assert!(w.put_skip(wire(INITIAL + k)));
        }
    });
    let after = stats(&pair, 0).recv;
    assert_eq!(after.skipped - before.skipped, 4000);
    // SKIPs each a whole window beyond the one before (once, 130 million sequence numbers
    // walked): the greatest is beyond the window, a desync, and the receiver jumps to it
    // without walking the distance.
    let s0 = stats(&pair, 0);
    inject(&mut pair, 1, 0, 64 << 10, |w| {
        for k in 1..=4000u64 {
            assert!(w.put_skip(wire(INITIAL + 4000 + k * WINDOW / 2)));
        }
    });
    let s1 = stats(&pair, 0);
    assert_eq!(s1.rejected.desyncs - s0.rejected.desyncs, 1);
    assert_eq!(s1.recv.skipped - s0.recv.skipped, 4000 * WINDOW / 2);
    assert_eq!(s1.hold_bytes, 0);
}

#[test]
fn sequence_values_that_would_overflow_are_refused() {
    // Our own start is bounded.
    let mut sc = quiet(4);
    sc.initial_seq = u64::MAX - 100;
    let err = fcvpn::link::Link::new(
        config_of(&sc, 0),
        Box::new(support::pair::SeededEntropy(1)),
        Duration::ZERO,
    );
    assert_eq!(err.err(), Some(LinkConfigError::InitialSeq));
    // A range whose end passes 2^64, and a cumulative point beyond what was sent: neither is
    // applied; each is a desync.
    let mut pair = established(quiet(4));
    in_flight(&mut pair, 10);
    let before = stats(&pair, 0);
    inject(&mut pair, 1, 0, 4096, |w| {
        let r = [AckRange {
            start: wire(INITIAL + 5),
            len: u32::MAX,
        }];
        assert!(w.put_ack(wire(INITIAL), 0, &r));
    });
    inject(&mut pair, 1, 0, 4096, |w| {
        assert!(w.put_ack(wire(INITIAL + 11), 0, &[]));
    });
    let after = stats(&pair, 0);
    assert_eq!(after.send.acked, before.send.acked);
    assert_eq!(after.rejected.desyncs - before.rejected.desyncs, 2);
    // DATA that would resolve beyond the window is dropped and counted.
    let got = inject(&mut pair, 1, 0, 4096, |w| {
        assert!(w.put_data(wire(INITIAL + 2 * WINDOW), 0, &make_packet(1, 0, 50)));
    });
    assert!(got.is_empty());
    assert_eq!(stats(&pair, 0).recv.beyond_window, 1);
}

fn config_of(sc: &Scenario, side: usize) -> fcvpn::link::LinkConfig {
    let mut cfg = fcvpn::link::LinkConfig::new(
        support::pair::key(side as u8 + 1),
        support::pair::key(2 - side as u8).public,
        vec![fcvpn::link::PathConfig::new(0, "fc", 0, 1 << 20)],
    );
    cfg.initial_seq = sc.initial_seq;
    cfg
}

fn offered(packets: u64) -> Traffic {
    Traffic {
        packets,
        interval: Duration::from_micros(300),
        jumbo: 0.05,
    }
}

fn assert_exactly_once(o: &Outcome) {
    for side in 0..2 {
        assert_eq!(o.delivered[1 - side], o.accepted[side], "side {side}");
    }
}

#[test]
fn sequence_numbers_just_below_the_limit_carry_traffic() {
    let mut sc = Scenario::new(5, vec![SimPath::fc(Faults::NONE)]);
    sc.initial_seq = MAX_SEQ - WINDOW - 5000;
    sc.traffic = [offered(3000); 2];
    let o = Pair::new(sc).run();
    assert_exactly_once(&o);
}

/// Side `side` accepts `n` more packets (indexes from 1 000 000) now; returns their indexes.
fn offer_more(pair: &mut Pair, side: usize, n: u64) -> Vec<u64> {
    let now = pair.now;
    let indexes: Vec<u64> = (1_000_000..1_000_000 + n).collect();
    for &i in &indexes {
        let p = make_packet(side, i, 300 + (i % 900) as usize);
        pair.links[side].handle_packet(now, &p).unwrap();
    }
    indexes
}

/// Traffic both ways for 1.2 s, then quiet at 2 s (everything acknowledged).
fn after_traffic(seed: u64) -> Pair {
    let mut sc = Scenario::new(seed, vec![SimPath::fc(Faults::NONE)]);
    sc.traffic = [offered(4000); 2];
    let mut pair = Pair::new(sc);
    pair.run_until(MS * 2000);
    pair
}

/// Both sides offer 500 more packets, run 2 s, and every packet arrived exactly once.
fn assert_recovers(mut pair: Pair) -> Outcome {
    let more = [offer_more(&mut pair, 0, 500), offer_more(&mut pair, 1, 500)];
    let stop = pair.now + Duration::from_secs(2);
    pair.run_until(stop);
    let o = pair.finish();
    for (side, more) in more.iter().enumerate() {
        let want = [o.accepted[side].as_slice(), more].concat();
        assert_eq!(o.delivered[1 - side], want, "side {side}");
    }
    o
}

#[test]
fn an_ack_beyond_what_was_sent_resynchronises_the_peer() {
    for seed in seeds(3) {
        let mut pair = after_traffic(seed);
        let handshakes = stats(&pair, 0).handshakes;
        inject(&mut pair, 1, 0, 4096, |w| {
            assert!(w.put_ack(wire(INITIAL + 1_000_000), 0, &[]));
        });
        assert_eq!(stats(&pair, 0).rejected.desyncs, 1);
        let o = assert_recovers(pair);
        assert!(o.stats[0].handshakes > handshakes, "seed {seed}");
        assert!(
            o.events[1].iter().any(|(_, e)| *e == Event::PeerRestarted),
            "seed {seed}: the peer restarts its receiver"
        );
    }
}

#[test]
fn a_skip_far_ahead_jumps_the_receiver_and_the_link_heals() {
    for seed in seeds(3) {
        let mut pair = after_traffic(seed);
        // Side 0's receiver is told side 1's send space is far ahead of where it is: side 0
        // jumps there (a desync). Side 1's next frames then look old to side 0, whose ACK
        // then acknowledges what side 1 never sent: side 1 resynchronises side 0.
        let ahead = 3 * WINDOW;
        inject(&mut pair, 1, 0, 4096, |w| {
            assert!(w.put_skip(wire(INITIAL + 4000 + ahead)));
        });
        let s = stats(&pair, 0);
        assert_eq!(s.rejected.desyncs, 1);
        assert!(s.recv.skipped >= ahead);
        let o = assert_recovers(pair);
        assert!(o.stats[1].rejected.desyncs >= 1, "seed {seed}");
        assert!(o.events[0].iter().any(|(_, e)| *e == Event::PeerRestarted));
    }
}

#[test]
fn batches_with_reserved_bytes_set_in_skip_or_close_are_malformed() {
    let mut pair = established(quiet(7));
    for (bytes, what) in [
        (vec![frame_type::SKIP, 1, 0, 0, 1, 0, 0, 0], "skip byte 1"),
        (vec![frame_type::SKIP, 0, 0, 1, 1, 0, 0, 0], "skip byte 3"),
        (vec![frame_type::CLOSE, 0, 1, 0], "close byte 2"),
        (vec![frame_type::CLOSE, 0, 0, 0x80], "close byte 3"),
    ] {
        let before = stats(&pair, 1);
        let batch = seal_raw(&mut pair, 0, &bytes);
        take(&mut pair, 1, 0, batch);
        let after = stats(&pair, 1);
        assert_eq!(
            after.rejected.malformed,
            before.rejected.malformed + 1,
            "{what}"
        );
        assert!(
            pair.links[1].is_established(),
            "{what}: a CLOSE was applied"
        );
    }
    // The same frames with their reserved bytes zero are applied.
    let close = seal_raw(&mut pair, 0, &[frame_type::CLOSE, 0, 0, 0]);
    take(&mut pair, 1, 0, close);
    assert!(!pair.links[1].is_established());
}

/// Seals raw frame bytes from side `from` on path 0.
fn seal_raw(pair: &mut Pair, from: usize, frames: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; frames.len() + HEADER_LEN + 16];
    let n = pair.links[from]
        .seal_frames(0, frames, &mut buf)
        .expect("sealed");
    buf.truncate(n);
    buf
}

#[test]
fn an_idle_batch_with_a_body_is_rejected_and_counted() {
    let mut pair = established(quiet(8));
    let mut idle = [0u8; 512];
    fcvpn::link::wire::write_idle(0, &mut idle).unwrap();
    let before = stats(&pair, 1);
    take(&mut pair, 1, 0, idle.to_vec());
    let mid = stats(&pair, 1);
    assert_eq!(mid.idle_batches, before.idle_batches + 1);
    // The same with body_len 16 (and 16 bytes of body).
    idle[12] = 16;
    take(&mut pair, 1, 0, idle.to_vec());
    let after = stats(&pair, 1);
    assert_eq!(after.idle_batches, mid.idle_batches);
    assert_eq!(after.rejected.bad_header, mid.rejected.bad_header + 1);
}

#[test]
fn late_fc_batches_survive_a_fast_ethernet_path_and_replays_across_paths_fail() {
    let mut pair = established(Scenario::new(
        9,
        vec![SimPath::fc(Faults::NONE), SimPath::ethernet(Faults::NONE)],
    ));
    // One FC batch held back while 9000 batches go over Ethernet (more than the 8128 a
    // shared window would have kept).
    let late = seal(&mut pair, 0, 0, 4096, |w| {
        assert!(w.put_probe(77, false));
    });
    for _ in 0..9000 {
        let b = seal(&mut pair, 0, 1, 64, |w| {
            assert!(w.put_probe(1, true));
        });
        take(&mut pair, 1, 1, b);
    }
    let before = stats(&pair, 1);
    take(&mut pair, 1, 0, late.clone());
    let after = stats(&pair, 1);
    assert_eq!(after.rejected.replayed, before.rejected.replayed);
    assert_eq!(
        after.paths[0].counters.rx_batches,
        before.paths[0].counters.rx_batches + 1
    );
    // Replayed on FC: refused by FC's window. Replayed on Ethernet: its header names FC.
    take(&mut pair, 1, 0, late.clone());
    take(&mut pair, 1, 1, late);
    let replays = stats(&pair, 1);
    assert_eq!(replays.rejected.replayed, after.rejected.replayed + 1);
    assert_eq!(replays.rejected.wrong_path, after.rejected.wrong_path + 1);
    assert_eq!(
        replays.paths[0].counters.rx_batches,
        after.paths[0].counters.rx_batches
    );
}

#[test]
fn a_fragment_bomb_holds_only_the_bytes_it_carries() {
    let mut pair = established(quiet(10));
    // 3000 one-byte FRAGMENTs, each of another packet claiming the largest size: 60 KB of
    // batch, which a buffer per stated length would have turned into 190 MB to zero.
    inject(&mut pair, 1, 0, 64 << 10, |w| {
        for k in 1..=3000u64 {
            let total = fcvpn::link::wire::MAX_PACKET_LEN as u32;
            assert!(w.put_fragment(wire(INITIAL + k), 0, total, total - 1, b"z"));
        }
    });
    let s = stats(&pair, 0);
    assert_eq!(s.hold_bytes, 3000);
    assert_eq!(s.recv.hold_full, 0);
}

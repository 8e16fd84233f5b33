//! Hostile input and key handling, end to end through two links: forged, truncated, replayed
//! and corrupted batches; a peer with the wrong key; rekeys under traffic; simultaneous
//! starts; a peer restart.

mod support;

use std::time::Duration;

use fcvpn::link::wire::HEADER_LEN;
use fcvpn::link::{Event, LinkStats};
use support::pair::{Faults, Pair, Scenario, SimPath, Traffic, key, make_packet, seeds};

const MS: Duration = Duration::from_millis(1);

fn quiet(seed: u64) -> Scenario {
    let mut sc = Scenario::new(seed, vec![SimPath::fc(Faults::NONE)]);
    sc.traffic = [Traffic {
        packets: 0,
        interval: MS,
        jumbo: 0.0,
    }; 2];
    sc
}

/// Stats with the rejection counters cleared, to compare "everything else".
fn without_rejections(mut s: LinkStats) -> LinkStats {
    s.rejected = Default::default();
    s
}

/// An established pair and one genuine batch from side 0 to side 1 carrying one packet.
fn established_with_batch() -> (Pair, Vec<u8>, Vec<u8>) {
    let mut pair = Pair::new(quiet(1));
    pair.run_until(MS * 100);
    assert!(pair.links.iter().all(|l| l.is_established()));
    let now = pair.now;
    let packet = make_packet(0, 4242, 700);
    pair.links[0].handle_packet(now, &packet).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let n = pair.links[0]
        .poll_transmit(now, 0, &mut buf)
        .expect("a batch");
    buf.truncate(n);
    (pair, buf, packet)
}

fn deliver(pair: &mut Pair, batch: &[u8]) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut b = batch.to_vec();
    let now = pair.now;
    pair.links[1].handle_batch(now, 0, &mut b, &mut |p| got.push(p.to_vec()));
    got
}

#[test]
fn damaged_batches_are_rejected_counted_and_change_nothing_else() {
    let (mut pair, genuine, packet) = established_with_batch();
    let now = pair.now;
    let mut variants: Vec<Vec<u8>> = Vec::new();
    // Every single-bit flip of the header, and a spread of flips over the body and tags.
    for bit in 0..HEADER_LEN * 8 {
        variants.push(flip(&genuine, bit));
    }
    for bit in (HEADER_LEN * 8..genuine.len() * 8).step_by(61) {
        variants.push(flip(&genuine, bit));
    }
    // Truncations.
    for len in [
        0,
        1,
        10,
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + 16,
        genuine.len() - 1,
    ] {
        variants.push(genuine[..len].to_vec());
    }
    // A forged body under a genuine header.
    let mut forged = genuine.clone();
    forged[HEADER_LEN..]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    variants.push(forged);

    for (i, v) in variants.iter().enumerate() {
        let before = pair.links[1].stats(now);
        let got = deliver(&mut pair, v);
        let after = pair.links[1].stats(now);
        assert!(got.is_empty(), "variant {i} delivered a packet");
        assert_eq!(
            after.rejected.total(),
            before.rejected.total() + 1,
            "variant {i} not counted"
        );
        assert_eq!(
            without_rejections(after),
            without_rejections(before),
            "variant {i} changed state"
        );
    }
    // The genuine batch still opens, once; its replay is rejected.
    assert_eq!(deliver(&mut pair, &genuine), [packet]);
    let before = pair.links[1].stats(now);
    assert!(deliver(&mut pair, &genuine).is_empty());
    let after = pair.links[1].stats(now);
    assert_eq!(after.rejected.replayed, before.rejected.replayed + 1);
    assert_eq!(without_rejections(after), without_rejections(before));
}

fn flip(b: &[u8], bit: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    v[bit / 8] ^= 1 << (bit % 8);
    v
}

#[test]
fn a_peer_with_another_key_never_completes_a_handshake() {
    let mut sc = quiet(2);
    // Side 1 expects a key side 0 does not have; side 0 pins side 1 correctly.
    sc.tweak = |side, cfg| {
        if side == 1 {
            cfg.peer = key(9).public;
        }
    };
    sc.traffic = [Traffic {
        packets: 200,
        interval: MS,
        jumbo: 0.0,
    }; 2];
    let o = Pair::new(sc).run();
    for side in 0..2 {
        assert_eq!(o.stats[side].handshakes, 0);
        assert!(o.delivered[side].is_empty());
        assert!(
            !o.events[side]
                .iter()
                .any(|(_, e)| matches!(e, Event::HandshakeCompleted { .. }))
        );
    }
    assert!(
        o.stats[0].rejected.handshake_invalid + o.stats[0].rejected.handshake_bad_mac1 > 0,
        "side 0 must refuse side 1's initiations"
    );
    assert!(
        o.stats[1].rejected.handshake_invalid + o.stats[1].rejected.handshake_bad_mac1 > 0,
        "side 1 must refuse side 0's initiations"
    );
}

#[test]
fn rekeys_under_traffic_lose_nothing() {
    for seed in seeds(3) {
        let mut sc = Scenario::new(
            seed,
            vec![SimPath::fc(Faults {
                loss: 0.02,
                jitter: MS / 10,
                ..Faults::NONE
            })],
        );
        sc.traffic = [Traffic {
            packets: 30_000,
            interval: Duration::from_micros(250),
            jumbo: 0.05,
        }; 2];
        sc.tweak = |_, cfg| {
            cfg.rekey_after = Duration::from_millis(700);
            cfg.reject_after = Duration::from_millis(1500);
        };
        let o = Pair::new(sc).run();
        for side in 0..2 {
            assert!(
                o.stats[side].handshakes >= 8,
                "side {side}: {} handshakes",
                o.stats[side].handshakes
            );
            assert_eq!(
                o.delivered[1 - side],
                o.accepted[side],
                "seed {seed} side {side}"
            );
            let rekeys = o.events[side]
                .iter()
                .filter(|(_, e)| matches!(e, Event::HandshakeCompleted { rekey: true, .. }))
                .count();
            assert!(rekeys >= 7);
        }
    }
}

#[test]
fn simultaneous_starts_converge_on_one_handshake() {
    for seed in seeds(8) {
        let mut pair = Pair::new(quiet(seed));
        pair.run_until(MS * 20);
        let [a, b] = [pair.links[0].stats(pair.now), pair.links[1].stats(pair.now)];
        assert_eq!((a.handshakes, b.handshakes), (1, 1), "seed {seed}");
        assert_eq!(
            a.handshake_collisions + b.handshake_collisions,
            1,
            "both sides initiated at t=0"
        );
        assert!(pair.links.iter().all(|l| l.active_path() == Some(0)));
    }
}

#[test]
fn a_restarted_peer_is_picked_up_and_traffic_resumes() {
    let mut sc = Scenario::new(4, vec![SimPath::fc(Faults::NONE)]);
    sc.traffic = [Traffic {
        packets: 10_000,
        interval: Duration::from_micros(300),
        jumbo: 0.0,
    }; 2];
    let mut pair = Pair::new(sc);
    pair.run_until(MS * 1000);
    pair.restart(1, 1);
    let restarted_at = pair.now;
    let stop = pair.traffic_end() + Duration::from_secs(4);
    pair.run_until(stop);
    let o = pair.finish();
    assert!(o.events[0].iter().any(|(_, e)| *e == Event::PeerRestarted));
    // Everything the new instance accepted arrived, in order.
    let first_new = o.accepted[1]
        .iter()
        .position(|&i| i as u32 as u64 * 300 >= restarted_at.as_micros() as u64);
    let new_ones = &o.accepted[1][first_new.unwrap()..];
    assert!(new_ones.len() > 5000);
    assert!(o.delivered[0].ends_with(new_ones));
    // Side 0's packets accepted after the restart reached the new instance.
    let tail = &o.accepted[0][o.accepted[0].len() - 1000..];
    assert!(o.delivered[1].ends_with(tail));
}

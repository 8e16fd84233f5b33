//! The handshake against an attacker on the wire, end to end through two links: initiations
//! captured and replayed after a restart of either end, floods of initiations that fail mac1
//! or come from a stranger's key, and rekeys under such a flood.

mod support;

use std::time::Duration;

use fcvpn::crypto::handshake::{INITIATION_LEN, PAYLOAD_LEN, create_initiation};
use fcvpn::link::Event;
use fcvpn::link::wire::{BatchHeader, BatchType, HEADER_LEN};
use support::pair::{Faults, Pair, Scenario, SimPath, Traffic, key};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

/// Steady traffic both ways, one packet per `interval` until `end`.
fn steady(seed: u64, paths: Vec<SimPath>, interval: Duration, end: Duration) -> Scenario {
    let mut sc = Scenario::new(seed, paths);
    sc.traffic = [Traffic {
        packets: (end.as_micros() / interval.as_micros()) as u64,
        interval,
        jumbo: 0.0,
    }; 2];
    sc.drain = SEC;
    sc
}

/// A batch header for an initiation on path `path`.
fn initiation_header(path: u8) -> [u8; HEADER_LEN] {
    BatchHeader {
        batch_type: BatchType::Initiation,
        path,
        receiver: 0,
        body_len: INITIATION_LEN as u32,
        counter: 0,
    }
    .to_bytes()
}

/// An initiation to side `to` from a stranger's key (seed 9): its mac1 is right (the
/// receiver's public key is public), so it costs the receiver budget and a DH.
fn stranger_initiation(to: usize, path: u8, n: u64) -> Vec<u8> {
    let header = initiation_header(path);
    let mut ephemeral = [0u8; 32];
    ephemeral[..8].copy_from_slice(&n.to_le_bytes());
    let mut msg = [0u8; INITIATION_LEN];
    create_initiation(
        &key(9),
        &key(to as u8 + 1).public,
        ephemeral,
        &[0; PAYLOAD_LEN],
        &header,
        &mut msg,
    );
    [header.as_slice(), &msg].concat()
}

/// A pool of stranger initiations to each side on `path`, reused round robin (making each
/// costs the harness two DHs).
fn stranger_pool(path: u8) -> [Vec<Vec<u8>>; 2] {
    [0, 1].map(|to| (0..32).map(|n| stranger_initiation(to, path, n)).collect())
}

/// An initiation-shaped batch whose mac1 is wrong.
fn garbage_initiation(path: u8, n: u64) -> Vec<u8> {
    let mut b = initiation_header(path).to_vec();
    b.extend((0..INITIATION_LEN as u64).map(|i| (i.wrapping_mul(n | 1) >> 3) as u8));
    b
}

/// Runs the pair to `until`, injecting `per_ms` batches from `make` to each side every
/// millisecond.
fn run_flooded(
    pair: &mut Pair,
    until: Duration,
    per_ms: u64,
    make: &dyn Fn(usize, u64) -> Vec<u8>,
) -> u64 {
    let mut n = 0;
    while pair.now < until {
        for to in 0..2 {
            for _ in 0..per_ms {
                n += 1;
                let b = make(to, n);
                let path = b[4];
                pair.inject(to, path, b);
            }
        }
        let next = pair.now + MS;
        pair.run_until(next);
    }
    n
}

/// Whether every packet side `from` accepted at or after index `first` reached the other side,
/// in order, at the end of its delivery list.
fn tail_delivered(o: &support::pair::Outcome, from: usize, first: u64) -> bool {
    let accepted: Vec<u64> = o.accepted[from]
        .iter()
        .copied()
        .filter(|&i| i >= first)
        .collect();
    !accepted.is_empty() && o.delivered[1 - from].ends_with(&accepted)
}

#[test]
fn captured_initiations_replayed_after_a_restart_of_either_end_change_nothing() {
    for restarted in 0..2 {
        let interval = MS * 5;
        let mut pair = Pair::new(steady(
            11,
            vec![SimPath::fc(Faults::NONE)],
            interval,
            SEC * 45,
        ));
        pair.run_until(SEC * 35);
        let captured = std::mem::take(&mut pair.captured_initiations);
        assert!(captured.len() >= 2, "both sides initiated at the start");
        // A restart more than the allowed clock skew (30 s) after the capture.
        pair.restart(restarted, 1);
        pair.run_until(SEC * 37);
        assert!(pair.links.iter().all(|l| l.is_established()));
        let before = [0, 1].map(|s| pair.links[s].stats(pair.now));
        let replay_at = pair.now;
        for (to, path, bytes) in &captured {
            pair.inject(*to, *path, bytes.clone());
        }
        let stop = pair.traffic_end() + SEC;
        pair.run_until(stop);
        let o = pair.finish();
        for (side, before) in before.iter().enumerate() {
            let s = &o.stats[side];
            let replayed_here = captured.iter().filter(|c| c.0 == side).count() as u64;
            assert_eq!(
                s.rejected.handshake_replayed - before.rejected.handshake_replayed,
                replayed_here,
                "restarted {restarted}, side {side}: every replay refused as such"
            );
            assert_eq!(s.handshakes, before.handshakes, "no new handshake");
            let late: Vec<_> = o.events[side]
                .iter()
                .filter(|(t, e)| {
                    *t >= replay_at
                        && matches!(
                            e,
                            Event::HandshakeCompleted { .. }
                                | Event::PeerRestarted
                                | Event::Carrier(false)
                        )
                })
                .collect();
            assert!(late.is_empty(), "restarted {restarted}: {late:?}");
            // Traffic offered after the replay arrived, in order, with nothing skipped.
            let first = (replay_at.as_micros() / interval.as_micros()) as u64 + 1;
            assert!(tail_delivered(&o, side, first), "restarted {restarted}");
            assert_eq!(s.recv.skipped, before.recv.skipped);
        }
    }
}

#[test]
fn initiations_failing_mac1_cost_no_budget() {
    let mut pair = Pair::new(steady(12, vec![SimPath::fc(Faults::NONE)], MS * 2, SEC * 6));
    pair.run_until(SEC);
    pair.restart(1, 1);
    // 50 garbage initiations a millisecond to each side: 2500 times the answer budget.
    let sent = run_flooded(&mut pair, SEC * 3, 50, &|_, n| garbage_initiation(0, n));
    pair.run_until(pair.traffic_end() + SEC);
    let o = pair.finish();
    for side in 0..2 {
        let r = &o.stats[side].rejected;
        assert_eq!(
            r.handshake_bad_mac1,
            sent / 2,
            "side {side}: each one counted"
        );
        assert_eq!(r.handshake_rate_limited, 0, "side {side}: no budget spent");
    }
    assert!(o.events[0].iter().any(|(_, e)| *e == Event::PeerRestarted));
    let restart_done = o.events[1]
        .iter()
        .find(|(_, e)| matches!(e, Event::HandshakeCompleted { .. }))
        .map(|(t, _)| *t)
        .expect("the restarted side completed a handshake");
    assert!(restart_done < SEC + MS * 50, "at once: {restart_done:?}");
    assert!(tail_delivered(&o, 0, 2000) && tail_delivered(&o, 1, 2000));
}

#[test]
fn a_flood_on_one_path_does_not_spend_the_other_paths_budget() {
    let mut pair = Pair::new(steady(
        13,
        vec![SimPath::fc(Faults::NONE), SimPath::ethernet(Faults::NONE)],
        MS * 2,
        SEC * 6,
    ));
    pair.run_until(SEC);
    pair.restart(1, 1);
    // Stranger initiations with a valid mac1 on the Ethernet path: they spend its budget.
    let pool = stranger_pool(1);
    let sent = run_flooded(&mut pair, SEC * 3, 2, &|to, n| {
        pool[to][n as usize % 32].clone()
    });
    pair.run_until(pair.traffic_end() + SEC);
    let o = pair.finish();
    for side in 0..2 {
        let r = &o.stats[side].rejected;
        assert!(
            r.handshake_rate_limited > sent / 2 * 9 / 10,
            "side {side}: {r:?}"
        );
        assert!(
            r.handshake_invalid > 0,
            "side {side}: the answered ones fail the pinned key"
        );
    }
    let done = o.events[1]
        .iter()
        .find(|(_, e)| matches!(e, Event::HandshakeCompleted { path: 0, .. }))
        .map(|(t, _)| *t)
        .expect("the restarted side completed a handshake on FC");
    assert!(done < SEC + MS * 50, "at once: {done:?}");
    assert!(tail_delivered(&o, 0, 2000) && tail_delivered(&o, 1, 2000));
}

#[test]
fn rekeys_succeed_under_a_flood_of_initiations_that_spend_the_path_budget() {
    let mut sc = steady(14, vec![SimPath::fc(Faults::NONE)], MS * 2, SEC * 8);
    sc.tweak = |_, cfg| {
        cfg.rekey_after = SEC;
        cfg.reject_after = SEC * 3 / 2;
    };
    let mut pair = Pair::new(sc);
    pair.run_until(MS * 100);
    let established = [0, 1].map(|s| pair.links[s].stats(pair.now).handshakes);
    // 5 stranger initiations a millisecond to each side, 250 times the path's answer budget.
    let pool = stranger_pool(0);
    let sent = run_flooded(&mut pair, SEC * 8, 5, &|to, n| {
        pool[to][n as usize % 32].clone()
    });
    pair.run_until(pair.traffic_end() + SEC);
    let o = pair.finish();
    for (side, established) in established.iter().enumerate() {
        let s = &o.stats[side];
        let rekeys = s.handshakes - established;
        assert!(rekeys >= 6, "side {side}: {rekeys} rekeys in 8 s of flood");
        assert!(
            s.rejected.handshake_rate_limited > sent / 2 * 9 / 10,
            "side {side}: the flood was refused: {:?}",
            s.rejected
        );
        let carrier_lost = o.events[side]
            .iter()
            .any(|(t, e)| *t > MS * 100 && *e == Event::Carrier(false));
        assert!(!carrier_lost, "side {side}: the link never went down");
        assert!(tail_delivered(&o, side, 100), "side {side}");
        assert_eq!(s.recv.skipped, 0, "side {side}");
    }
}

#[test]
fn a_restarted_peer_gets_a_cookie_and_through_on_a_flooded_ethernet_path() {
    let mut pair = Pair::new(steady(
        15,
        vec![SimPath::ethernet(Faults::NONE)],
        MS * 2,
        SEC * 6,
    ));
    pair.run_until(SEC);
    assert!(pair.links.iter().all(|l| l.is_established()));
    // Side 0 is flooded from other addresses: its Ethernet budget is spent before side 1
    // restarts.
    let pool = stranger_pool(1);
    let mut n = 0u64;
    let mut restarted = false;
    while pair.now < SEC * 4 {
        if !restarted && pair.now >= SEC + MS * 200 {
            pair.restart(1, 1);
            restarted = true;
        }
        for _ in 0..5 {
            n += 1;
            let source = format!("stranger {}", n % 7).into_bytes();
            pair.inject_from(0, 1, source, pool[0][n as usize % 32].clone());
        }
        let next = pair.now + MS;
        pair.run_until(next);
    }
    pair.run_until(pair.traffic_end() + SEC);
    let o = pair.finish();
    let r = &o.stats[0].rejected;
    assert!(r.handshake_cookie_sent >= 1, "{r:?}");
    assert!(
        r.handshake_cookie_sent <= 10,
        "cookies answer only the peer's address: {r:?}"
    );
    assert!(r.handshake_rate_limited > n * 9 / 10, "{r:?}");
    let done = o.events[1]
        .iter()
        .find(|(_, e)| matches!(e, Event::HandshakeCompleted { .. }))
        .map(|(t, _)| *t)
        .expect("the restarted side got through with its cookie");
    assert!(done < SEC * 3, "after one retry or two: {done:?}");
    assert!(o.events[0].iter().any(|(_, e)| *e == Event::PeerRestarted));
    assert!(tail_delivered(&o, 0, 2000) && tail_delivered(&o, 1, 2000));
}

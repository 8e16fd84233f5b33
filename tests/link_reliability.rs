//! Level 2 of the testing ladder: two links, a virtual clock and a seeded fault model.
//! Every accepted packet must arrive exactly once, in order and intact; drops must be followed
//! by resends; memory must stay bounded. Replay a failing seed with `FCVPN_SEED=<n>`.

mod support;

use std::time::Duration;

use fcvpn::link::Event;
use fcvpn::link::path::{ChangeCause, DownCause};
use support::pair::{Faults, Outcome, Pair, Scenario, SimPath, Traffic, replayable, seeds};

const MS: Duration = Duration::from_millis(1);

/// The exactly-once, in-order, intact contract, for both directions.
fn assert_all_delivered(o: &Outcome) {
    for side in 0..2 {
        let to = 1 - side;
        assert_eq!(
            o.delivered[to].len(),
            o.accepted[side].len(),
            "side {side}: {} accepted, {} delivered (skipped {}, expired {})",
            o.accepted[side].len(),
            o.delivered[to].len(),
            o.stats[to].recv.skipped,
            o.stats[side].send.expired,
        );
        assert_eq!(
            o.delivered[to], o.accepted[side],
            "side {side}: order or identity differs"
        );
        assert_eq!(o.stats[side].send.expired, 0);
        assert_eq!(o.stats[to].recv.skipped, 0);
    }
}

/// Every data frame a fault removed was sent again (resends beyond that are spurious).
fn assert_drops_resent(o: &Outcome) -> u64 {
    let resent: u64 = o.stats.iter().map(|s| s.send.retransmitted).sum();
    assert!(
        resent >= o.dropped_data_frames,
        "{} data frames dropped but only {resent} resends",
        o.dropped_data_frames
    );
    resent - o.dropped_data_frames
}

fn assert_bounded(o: &Outcome, sc: &Scenario) {
    assert!(
        o.peak_send_frames <= sc.send_buffer_frames,
        "send buffer {} frames",
        o.peak_send_frames
    );
    assert!(
        o.peak_hold_bytes <= sc.hold_bytes,
        "hold {} bytes",
        o.peak_hold_bytes
    );
}

#[test]
fn loss_duplication_reordering_and_corruption_lose_nothing() {
    for seed in seeds(12) {
        for loss in [0.0, 0.01, 0.05, 0.1, 0.2, 0.3] {
            let faults = Faults {
                loss,
                duplicate: 0.02,
                corrupt: 0.01,
                jitter: Duration::from_micros(150),
                blackout: None,
            };
            let sc = Scenario::new(seed, vec![SimPath::fc(faults)]);
            replayable(&sc, || {
                let o = Pair::new(sc.clone()).run();
                assert_all_delivered(&o);
                let spurious = assert_drops_resent(&o);
                assert_bounded(&o, &sc);
                let rejected: u64 = o.stats.iter().map(|s| s.rejected.total()).sum();
                assert!(
                    rejected >= o.corrupted_batches,
                    "corrupted batches must be rejected"
                );
                let dups: u64 = o.stats.iter().map(|s| s.recv.duplicates).sum();
                if seed == 0 {
                    eprintln!(
                        "loss {loss:.2}: dropped {} batches ({} data frames), spurious resends {spurious}, duplicate frames {dups}, rejected {rejected}",
                        o.dropped_batches, o.dropped_data_frames
                    );
                }
            });
        }
    }
}

#[test]
fn blackout_shorter_than_max_frame_age_loses_nothing() {
    for seed in seeds(6) {
        let faults = Faults {
            blackout: Some((MS * 200, MS * 2200)),
            loss: 0.01,
            ..Faults::NONE
        };
        let sc = Scenario::new(seed, vec![SimPath::fc(faults)]);
        replayable(&sc, || {
            let o = Pair::new(sc.clone()).run();
            assert_all_delivered(&o);
            assert_drops_resent(&o);
            assert_bounded(&o, &sc);
            assert!(
                o.longest_gap.iter().all(|g| *g >= MS * 1900),
                "the blackout must show"
            );
            if seed == 0 {
                eprintln!(
                    "2 s blackout: longest delivery gap {:?} / {:?}",
                    o.longest_gap[0], o.longest_gap[1]
                );
            }
        });
    }
}

#[test]
fn blackout_longer_than_max_frame_age_ends_in_counted_skips() {
    for seed in seeds(4) {
        let faults = Faults {
            blackout: Some((MS * 100, MS * 5100)),
            ..Faults::NONE
        };
        let mut sc = Scenario::new(seed, vec![SimPath::fc(faults)]);
        sc.traffic = [Traffic {
            packets: 40_000,
            interval: Duration::from_micros(200),
            jumbo: 0.0,
        }; 2];
        sc.send_buffer_frames = 32_768;
        sc.hold_bytes = 64 << 20;
        replayable(&sc, || {
            let o = Pair::new(sc.clone()).run();
            for side in 0..2 {
                let to = 1 - side;
                let d = &o.delivered[to];
                assert!(
                    d.windows(2).all(|w| w[0] < w[1]),
                    "delivery must stay in order"
                );
                let expired = o.stats[side].send.expired;
                let skipped = o.stats[to].recv.skipped;
                assert!(
                    expired > 0 && skipped > 0,
                    "expired {expired}, skipped {skipped}"
                );
                assert!(skipped <= expired);
                // Nothing is lost silently: the receiver delivered or skipped every sequence
                // number exactly once (a packet may be both delivered and expired at the
                // sender when only its acknowledgement was lost).
                assert_eq!(d.len() as u64 + skipped, o.accepted[side].len() as u64);
                assert!(d.len() as u64 + expired >= o.accepted[side].len() as u64);
                // The link is not stuck: packets offered well after the blackout arrive.
                let last = *o.accepted[side].last().unwrap();
                assert_eq!(d.last(), Some(&last));
            }
            assert_bounded(&o, &sc);
        });
    }
}

#[test]
fn overload_is_refused_and_counted_while_memory_stays_bounded() {
    let mut sc = Scenario::new(
        7,
        vec![SimPath::fc(Faults {
            loss: 0.05,
            ..Faults::NONE
        })],
    );
    sc.traffic = [Traffic {
        packets: 20_000,
        interval: Duration::from_nanos(200),
        jumbo: 0.3,
    }; 2];
    sc.send_buffer_frames = 1024;
    replayable(&sc, || {
        let o = Pair::new(sc.clone()).run();
        assert!(
            o.stats[0].send.refused_full > 0,
            "the offered load must exceed the buffer"
        );
        assert_all_delivered(&o);
        assert_bounded(&o, &sc);
    });
}

#[test]
fn failover_to_ethernet_and_back_is_hitless() {
    for seed in seeds(4) {
        let fc = SimPath::fc(Faults {
            blackout: Some((MS * 300, MS * 1800)),
            ..Faults::NONE
        });
        let sc = Scenario::new(
            seed,
            vec![
                fc,
                SimPath::ethernet(Faults {
                    loss: 0.01,
                    ..Faults::NONE
                }),
            ],
        );
        replayable(&sc, || {
            let o = Pair::new(sc.clone()).run();
            assert_all_delivered(&o);
            assert_bounded(&o, &sc);
            let moves: Vec<_> = o.events[0]
                .iter()
                .filter_map(|(t, e)| match e {
                    Event::ActivePathChanged { to, .. } => Some((*t, *to)),
                    _ => None,
                })
                .collect();
            let tos: Vec<_> = moves.iter().map(|m| m.1).collect();
            assert_eq!(
                tos,
                [Some(0), Some(1), Some(0)],
                "fc, then ethernet, then fc: {moves:?}"
            );
            for s in &o.stats {
                // The first choice of fc is not a change; failover and fail-back are.
                assert_eq!(s.path_changes, 2, "path changes: {moves:?}");
                let last = s.last_path_change.expect("a latest path change");
                assert_eq!(
                    (last.from, last.to, last.cause),
                    (Some(1), Some(0), ChangeCause::FailBack(MS * 1000)),
                );
                assert_eq!(s.paths[0].counters.downs, 1, "fc went down once");
                assert_eq!(s.paths[1].counters.downs, 0, "ethernet never went down");
            }
            let causes: Vec<_> = o.events[0]
                .iter()
                .filter_map(|(_, e)| match e {
                    Event::ActivePathChanged { cause, .. } => Some(*cause),
                    _ => None,
                })
                .collect();
            assert!(
                matches!(
                    causes[..],
                    [
                        ChangeCause::Up,
                        ChangeCause::Down(DownCause::Silent(_)),
                        ChangeCause::FailBack(_)
                    ]
                ),
                "causes: {causes:?}"
            );
            let failover = moves[1].0 - MS * 300;
            assert!(failover < MS * 500, "failover took {failover:?}");
            assert!(
                o.longest_gap.iter().all(|g| *g < MS * 600),
                "gaps {:?}",
                o.longest_gap
            );
            if seed == 0 {
                eprintln!(
                    "failover after {failover:?}; longest delivery gaps {:?}",
                    o.longest_gap
                );
            }
        });
    }
}

#[test]
fn healthy_backup_path_carries_only_probes() {
    let sc = Scenario::new(
        3,
        vec![SimPath::fc(Faults::NONE), SimPath::ethernet(Faults::NONE)],
    );
    let o = Pair::new(sc).run();
    assert_all_delivered(&o);
    for s in &o.stats {
        assert_eq!(s.recv.duplicates, 0);
        let (fc, eth) = (&s.paths[0].counters, &s.paths[1].counters);
        // Probes and probe replies only: at most two small batches per probe interval.
        let most = 2 * eth.probes_sent + 2;
        assert!(
            eth.tx_batches <= most,
            "ethernet carried {} batches",
            eth.tx_batches
        );
        assert!(
            eth.tx_bytes < eth.tx_batches * 160,
            "ethernet batches carry data: {eth:?}"
        );
        assert!(
            eth.tx_bytes * 20 < fc.tx_bytes,
            "ethernet {eth:?} vs fc {fc:?}"
        );
    }
}

#[test]
fn fc_coming_up_after_ethernet_takes_over_at_once() {
    // Both ends start while FC is dark (an initiator logged in before its target): the link
    // comes up on Ethernet, and FC, which never failed, takes the traffic as soon as it
    // proves a round trip, without the fail-back hold-down.
    let fc = SimPath::fc(Faults {
        blackout: Some((Duration::ZERO, MS * 700)),
        ..Faults::NONE
    });
    let sc = Scenario::new(5, vec![fc, SimPath::ethernet(Faults::NONE)]);
    let mut pair = Pair::new(sc);
    // The initiator's first SCSI commands fail: FC is down before it was ever up.
    pair.links[0].handle_path_error(Duration::ZERO, 0);
    let o = pair.run();
    assert_all_delivered(&o);
    for side in 0..2 {
        let moves: Vec<_> = o.events[side]
            .iter()
            .filter_map(|(t, e)| match e {
                Event::ActivePathChanged { to, cause, .. } => Some((*t, *to, *cause)),
                _ => None,
            })
            .collect();
        assert!(
            matches!(
                moves[..],
                [
                    (_, Some(1), ChangeCause::Up),
                    (_, Some(0), ChangeCause::Preferred)
                ]
            ),
            "ethernet first, then fc at once: {moves:?}"
        );
        // The first probe after the blackout proves FC (probes go every 50 ms); with the
        // hold-down it would take a second more.
        assert!(moves[1].0 < MS * 900, "fc took over at {:?}", moves[1].0);
        assert_eq!(o.stats[side].path_changes, 1);
        assert_eq!(o.stats[side].paths[0].counters.downs, 0);
    }
}

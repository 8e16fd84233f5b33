//! `padding = "bucket"`: batch lengths collapse to a few buckets and delivery is unchanged.

mod support;

use fcvpn::link::{MIN_PADDING_BUCKET, Padding};
use support::pair::{Faults, Outcome, Pair, Scenario, SimPath};

fn run(padding: Padding) -> Outcome {
    let mut sc = Scenario::new(7, vec![SimPath::fc(Faults::NONE)]);
    sc.tweak = match padding {
        Padding::Off => |_, _| {},
        Padding::Bucket => |_, c| c.padding = Padding::Bucket,
    };
    Pair::new(sc).run()
}

/// Lengths of TRANSPORT batches: handshake messages (their own fixed sizes) left out.
fn transport_lens(o: &Outcome, side: usize) -> Vec<usize> {
    o.batch_lens[side]
        .iter()
        .copied()
        .filter(|&n| n >= MIN_PADDING_BUCKET)
        .collect()
}

#[test]
fn bucket_padding_hides_lengths_and_delivers_the_same() {
    let plain = run(Padding::Off);
    let padded = run(Padding::Bucket);
    for side in 0..2 {
        // Same packets, in the same order, intact (checked by the pair), with or without.
        assert_eq!(padded.delivered[side], plain.delivered[side], "side {side}");
        assert_eq!(
            padded.delivered[side].len(),
            padded.accepted[1 - side].len()
        );
        let lens = transport_lens(&padded, side);
        let buckets: Vec<usize> = lens.iter().map(|n| n.next_power_of_two()).collect();
        // Each length is a bucket (a power of two, or at most a tag short of one).
        for (n, b) in lens.iter().zip(&buckets) {
            assert!(b - n <= 16, "side {side}: length {n} is not a bucket");
        }
        let distinct = plain.batch_lens[side].len();
        eprintln!(
            "padding: side {side}: {distinct} distinct batch lengths unpadded, {} padded: {lens:?}",
            padded.batch_lens[side].len()
        );
        assert!(lens.len() <= 12, "side {side}: {} lengths", lens.len());
        assert!(distinct > 10 * padded.batch_lens[side].len(), "side {side}");
    }
}

//! `RecvBuffer` against a simple model: every delivered packet is the one its sequence number
//! names (fragments reassembled right, LZ4 undone), deliveries are in order and at most once,
//! a DATA frame at the cumulative point is delivered at once, a SKIP moves the cumulative
//! point to where it says, the hold stays within its byte bound, and ACKs describe only whole
//! packets held above the cumulative point.
//! API: `link::recv::RecvBuffer`, `link::seq`.
#![no_main]

use std::time::Duration;

use fcvpn::link::recv::RecvBuffer;
use fcvpn::link::seq;
use fcvpn_fuzz::{DeliveryOracle, encoded};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// The reorder window in frames (`link::config::WINDOW_FRAMES`).
const WINDOW: u64 = 32_768;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Seq {
    Near(i16),
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Data {
        seq: Seq,
        lz4: bool,
    },
    Fragment {
        seq: Seq,
        lz4: bool,
        offset: u16,
        len: u16,
    },
    Skip {
        forward: Seq,
    },
    Ack {
        max: u8,
    },
    Reset {
        cum: u32,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    start: u64,
    hold_kib: u8,
    ops: Vec<Op>,
}

fn wire(s: Seq, cum: u64) -> u32 {
    match s {
        Seq::Near(d) => seq::truncate(cum).wrapping_add(d as i32 as u32),
        Seq::Raw(w) => w,
    }
}

fuzz_target!(|input: Input| {
    let start = input.start % (1 << 62);
    let max_hold = (usize::from(input.hold_kib) + 1) << 10;
    let mut rb = RecvBuffer::new(start, max_hold);
    let mut oracle = DeliveryOracle::starting_at(start);
    for op in input.ops.iter().take(256) {
        let cum = rb.cum();
        let mut got = Vec::new();
        let mut sink = |p: &[u8]| got.push(oracle.check(p));
        match *op {
            Op::Data { seq, lz4 } => {
                let w = wire(seq, cum);
                rb.on_data(w, u8::from(lz4), &encoded(w, lz4), &mut sink);
                if seq::expand(w, cum) == cum {
                    assert_eq!(
                        got.first(),
                        Some(&cum),
                        "in-order DATA not delivered at once"
                    );
                }
            }
            Op::Fragment {
                seq,
                lz4,
                offset,
                len,
            } => {
                let w = wire(seq, cum);
                let p = encoded(w, lz4);
                let a = usize::from(offset) % p.len();
                let b = (a + usize::from(len)).min(p.len());
                rb.on_fragment(
                    w,
                    u8::from(lz4),
                    p.len() as u32,
                    a as u32,
                    &p[a..b],
                    &mut sink,
                );
            }
            Op::Skip { forward } => {
                let w = wire(forward, cum);
                rb.on_skip(w, &mut sink);
                let f = seq::expand(w, cum);
                if f > cum && f <= cum + WINDOW {
                    assert!(rb.cum() >= f, "SKIP to {f:#x} left cum at {:#x}", rb.cum());
                }
            }
            Op::Ack { max } => {
                let mut ranges = Vec::new();
                let max = usize::from(max % 65);
                let (c, _) = rb.take_ack(Duration::from_millis(1), &mut ranges, max);
                assert_eq!(c, seq::truncate(cum));
                assert!(ranges.len() <= max);
                let mut above = u64::MAX;
                for r in &ranges {
                    let s = seq::expand(r.start, cum);
                    assert!(r.len > 0 && s > cum, "range {r:?} at cum {cum:#x}");
                    assert!(
                        s + u64::from(r.len) < above,
                        "ranges overlap or not descending"
                    );
                    above = s;
                }
            }
            Op::Reset { cum } => {
                let c = (start + u64::from(cum)) % (1 << 62);
                rb.reset(c);
                oracle = DeliveryOracle::starting_at(c);
            }
        }
        oracle.passed(rb.cum());
        if let Some(&last) = got.last() {
            assert!(
                last < rb.cum(),
                "delivered {last:#x} not below cum {:#x}",
                rb.cum()
            );
        }
        assert!(
            rb.cum() >= cum || matches!(op, Op::Reset { .. }),
            "cum went back"
        );
        assert!(
            rb.hold_bytes() <= max_hold,
            "hold {} > {max_hold}",
            rb.hold_bytes()
        );
        assert!(
            rb.hold_len() as u64 <= WINDOW,
            "hold of {} slots",
            rb.hold_len()
        );
    }
});

//! `SendBuffer` against a model (the set of accepted payloads and of acknowledged sequence
//! numbers): sequence numbers are handed out in order, frames written carry the payload (or
//! the fragment of it) accepted under their sequence number and are never ones already
//! acknowledged, ACK counts match the model, the base only passes acknowledged or expired
//! frames, and byte and frame counts stay exact and within their bounds.
//! API: `link::sent::SendBuffer`, `link::wire::{FrameWriter, FrameReader}`, `link::seq`.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fcvpn::link::sent::SendBuffer;
use fcvpn::link::seq;
use fcvpn::link::wire::{FLAG_LZ4, Frame, FrameReader, FrameWriter};
use fcvpn_fuzz::mix;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const MAX_FRAMES: usize = 256;
const MAX_BYTES: usize = 512 << 10;
const PATHS: u8 = 3;

#[derive(Arbitrary, Debug)]
enum Op {
    Accept {
        len: u16,
        flags: u8,
    },
    Write {
        cap: u16,
        max_plain: u16,
        path: u8,
    },
    Ack {
        cum: i16,
        ranges: Vec<(i16, u8)>,
    },
    DetectLosses {
        path: u8,
        largest_pn: u8,
        delay_ms: u8,
    },
    RequeuePath {
        path: u8,
    },
    RequeueOldest {
        path: u8,
        n: u8,
    },
    RequeueAll,
    Expire {
        age_ms: u16,
    },
    Wait {
        ms: u16,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    start: u64,
    ops: Vec<Op>,
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| mix(seq ^ ((i as u64) << 40)) as u8)
        .collect()
}

#[derive(Default)]
struct Model {
    /// Accepted and not yet passed by the base: seq -> (payload, flags).
    held: BTreeMap<u64, (Vec<u8>, u8)>,
    acked: BTreeSet<u64>,
}

struct Harness {
    sb: SendBuffer,
    m: Model,
    now: Duration,
    pn: u64,
    buf: Vec<u8>,
}

impl Harness {
    fn check_frames(&self, len: usize) -> usize {
        let base = self.sb.base();
        let mut reader = FrameReader::new(&self.buf[..len]);
        let mut n = 0;
        while let Some(frame) = reader.next_frame().expect("the buffer wrote a bad frame") {
            let (w, flags, at, chunk, total) = match frame {
                Frame::Data {
                    seq,
                    flags,
                    payload,
                } => (seq, flags, 0, payload, payload.len()),
                Frame::Fragment {
                    seq,
                    flags,
                    total,
                    offset,
                    chunk,
                } => (seq, flags, offset as usize, chunk, total as usize),
                other => panic!("unexpected frame {other:?}"),
            };
            let s = seq::expand(w, base);
            let (p, f) = self
                .m
                .held
                .get(&s)
                .expect("frame for a sequence number not held");
            assert!(
                !self.m.acked.contains(&s),
                "acknowledged frame {s:#x} sent again"
            );
            assert_eq!((flags, total), (*f, p.len()), "flags or length of {s:#x}");
            assert!(
                chunk == &p[at..at + chunk.len()],
                "payload of {s:#x} corrupted"
            );
            n += 1;
        }
        n
    }

    fn ack(&mut self, cum: i16, ranges: &[(i16, u8)]) {
        let base = self.sb.base();
        let top = self.sb.next_seq();
        let at = |d: i16| base.saturating_add_signed(i64::from(d));
        let cum = at(cum);
        let ranges: Vec<(u64, u64)> = ranges
            .iter()
            .map(|&(s, l)| (at(s), at(s) + u64::from(l)))
            .collect();
        let mut expect = 0;
        for s in base..top {
            let covered = s < cum || ranges.iter().any(|&(a, b)| a <= s && s < b);
            if covered && self.m.acked.insert(s) {
                expect += 1;
            }
        }
        let out = self.sb.on_ack(cum, &ranges);
        assert_eq!(out.newly_acked, expect, "newly acknowledged");
    }

    fn run(&mut self, op: &Op) {
        let sb = &mut self.sb;
        match *op {
            Op::Accept { len, flags } => {
                let len = usize::from(len) % 9000;
                let expect = sb.next_seq();
                let flags = flags & FLAG_LZ4;
                let p = payload(expect, len);
                match sb.accept(self.now, p.clone(), flags) {
                    Ok(s) => {
                        assert_eq!(s, expect, "sequence numbers out of order");
                        self.m.held.insert(s, (p, flags));
                    }
                    Err(_) => assert!(sb.is_full(len), "refused while not full"),
                }
            }
            Op::Write {
                cap,
                max_plain,
                path,
            } => {
                let cap = usize::from(cap) % self.buf.len();
                let mut w = FrameWriter::new(&mut self.buf[..cap]);
                let max_plain = usize::from(max_plain).max(64);
                let n = sb.write_frames(&mut w, max_plain, self.pn, path % PATHS, self.now);
                let len = w.len();
                self.pn += 1;
                let parsed = self.check_frames(len);
                assert_eq!(parsed, n, "frames written");
            }
            Op::Ack { cum, ref ranges } => {
                let ranges: Vec<(i16, u8)> = ranges.iter().take(64).copied().collect();
                self.ack(cum, &ranges);
            }
            Op::DetectLosses {
                path,
                largest_pn,
                delay_ms,
            } => {
                let largest = self.pn.saturating_sub(u64::from(largest_pn % 8));
                let delay = Duration::from_millis(u64::from(delay_ms));
                sb.detect_losses(self.now, path % PATHS, largest, delay);
            }
            Op::RequeuePath { path } => {
                sb.requeue_path(path % PATHS, self.now);
            }
            Op::RequeueOldest { path, n } => {
                sb.requeue_oldest(path % PATHS, usize::from(n));
            }
            Op::RequeueAll => {
                sb.requeue_all();
            }
            Op::Expire { age_ms } => {
                sb.expire(self.now, Duration::from_millis(u64::from(age_ms)));
            }
            Op::Wait { ms } => self.now += Duration::from_millis(u64::from(ms)),
        }
    }

    /// Moves the model's base along with the buffer's; checks what the base passed.
    fn follow_base(&mut self, old_base: u64, expiring: bool) {
        let base = self.sb.base();
        assert!(base >= old_base, "base went back");
        for s in old_base..base {
            assert!(
                expiring || self.m.acked.contains(&s),
                "base passed unacknowledged {s:#x}"
            );
            self.m.held.remove(&s);
            self.m.acked.remove(&s);
        }
        let sb = &self.sb;
        assert_eq!(sb.next_seq(), base + sb.len() as u64);
        let unacked: usize = self
            .m
            .held
            .iter()
            .filter(|(s, _)| !self.m.acked.contains(s))
            .map(|(_, p)| p.0.len())
            .sum();
        assert_eq!(sb.bytes(), unacked, "payload bytes held");
        assert!(sb.len() <= MAX_FRAMES && sb.bytes() <= MAX_BYTES);
        assert!(sb.in_flight() <= sb.len());
    }
}

fuzz_target!(|input: Input| {
    let start = input.start % (1 << 62);
    let mut h = Harness {
        sb: SendBuffer::new(start, MAX_FRAMES, MAX_BYTES),
        m: Model::default(),
        now: Duration::from_secs(1),
        pn: 0,
        buf: vec![0u8; 20_000],
    };
    for op in input.ops.iter().take(256) {
        let old = h.sb.base();
        h.run(op);
        h.follow_base(old, matches!(op, Op::Expire { .. }));
    }
});

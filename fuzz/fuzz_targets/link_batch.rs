//! `Link::handle_batch` on an established pair, the fuzzer playing the peer: its frames are
//! sealed under the session key, so they reach frame processing. Oracles: no panic (overflow
//! checks on), hold bytes within the configured bound, packets delivered in order, at most
//! once and intact, and libFuzzer's per-input timeout for bounded work.
//! API: `Link::{new, handle_batch, handle_packet, handle_timeout, poll_transmit, stats}`,
//! `Link::seal_frames_for_fuzzing`, `link::wire::FrameWriter`.
#![no_main]

use std::time::Duration;

use fcvpn::link::Link;
use fcvpn::link::wire::{AckRange, FrameWriter};
use fcvpn_fuzz::{DeliveryOracle, PATHS, encoded, established_pair};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// The peer's first sequence number: just below a 32-bit wrap.
const PEER_SEQ: u64 = 0xffff_ff00;
/// Our first sequence number (what the peer's ACKs name).
const OUR_SEQ: u64 = 0x7fff_fff0;
/// The receive hold bound under test.
const HOLD_BYTES: usize = 256 << 10;

/// A sequence number near `base`, or anywhere.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Seq {
    Near(i16),
    Raw(u32),
}

impl Seq {
    fn wire(self, base: u64) -> u32 {
        match self {
            Seq::Near(d) => (base as u32).wrapping_add(d as i32 as u32),
            Seq::Raw(w) => w,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FrameOp {
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
    Ack {
        cum: Seq,
        delay_us: u32,
        ranges: Vec<(Seq, u16)>,
    },
    Probe {
        id: u32,
        reply: bool,
    },
    Skip {
        forward: Seq,
    },
    Close,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A batch of frames sealed by the peer, on path index `path % 2`.
    Batch { path: u8, frames: Vec<FrameOp> },
    /// The batch sealed `back` batches ago, again (a replay).
    Replay { back: u8 },
    /// Bytes as they come, unsealed.
    Raw { path: u8, bytes: Vec<u8> },
    /// We send `count` packets of `len` bytes and transmit what we can.
    Send { count: u8, len: u16 },
    /// Time passes; timers run.
    Wait { ms: u16 },
}

fn write_frame(w: &mut FrameWriter<'_>, f: &FrameOp) {
    match *f {
        FrameOp::Data { seq, lz4 } => {
            let s = seq.wire(PEER_SEQ);
            w.put_data(s, u8::from(lz4), &encoded(s, lz4));
        }
        FrameOp::Fragment {
            seq,
            lz4,
            offset,
            len,
        } => {
            let s = seq.wire(PEER_SEQ);
            let p = encoded(s, lz4);
            let start = usize::from(offset) % p.len();
            let end = (start + usize::from(len).max(1)).min(p.len());
            w.put_fragment(
                s,
                u8::from(lz4),
                p.len() as u32,
                start as u32,
                &p[start..end],
            );
        }
        FrameOp::Ack {
            cum,
            delay_us,
            ref ranges,
        } => {
            let ranges: Vec<AckRange> = ranges
                .iter()
                .take(64)
                .map(|&(s, len)| AckRange {
                    start: s.wire(OUR_SEQ),
                    len: u32::from(len),
                })
                .collect();
            w.put_ack(cum.wire(OUR_SEQ), delay_us, &ranges);
        }
        FrameOp::Probe { id, reply } => {
            w.put_probe(id, reply);
        }
        FrameOp::Skip { forward } => {
            w.put_skip(forward.wire(PEER_SEQ));
        }
        FrameOp::Close => {
            w.put_close(0);
        }
    }
}

struct Harness {
    links: [Link; 2],
    now: Duration,
    sealed: Vec<(u8, Vec<u8>)>,
    oracle: DeliveryOracle,
    buf: Vec<u8>,
}

impl Harness {
    fn deliver(&mut self, path: u8, mut batch: Vec<u8>) {
        let oracle = &mut self.oracle;
        self.links[0].handle_batch(self.now, path, &mut batch, &mut |p| {
            oracle.check(p);
        });
        let stats = self.links[0].stats(self.now);
        assert!(
            stats.hold_bytes <= HOLD_BYTES,
            "hold {} bytes",
            stats.hold_bytes
        );
    }

    fn transmit(&mut self) {
        for (id, max) in PATHS {
            let mut n = 0;
            while self.links[0]
                .poll_transmit(self.now, id, &mut self.buf[..max])
                .is_some()
            {
                n += 1;
                assert!(n < 10_000, "poll_transmit does not run dry");
            }
        }
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Batch { path, frames } => {
                let (path, max) = PATHS[usize::from(*path % 2)];
                let mut plain = vec![0u8; max.min(64 << 10)];
                let mut w = FrameWriter::new(&mut plain);
                frames.iter().for_each(|f| write_frame(&mut w, f));
                let len = w.len();
                if let Some(b) = self.links[1].seal_frames_for_fuzzing(path, &plain[..len]) {
                    self.sealed.push((path, b.clone()));
                    self.deliver(path, b);
                }
            }
            Op::Replay { back } => {
                let n = self.sealed.len();
                if let Some(i) = n.checked_sub(1 + usize::from(*back)) {
                    let (path, b) = self.sealed[i].clone();
                    self.deliver(path, b);
                }
            }
            Op::Raw { path, bytes } => self.deliver(*path % 4, bytes.clone()),
            Op::Send { count, len } => {
                for _ in 0..*count % 32 {
                    let p = vec![0x45u8; usize::from(*len) % 9000 + 1];
                    let _ = self.links[0].handle_packet(self.now, &p);
                }
                self.transmit();
            }
            Op::Wait { ms } => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.links[0].handle_timeout(self.now);
                self.transmit();
            }
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let (links, now) = established_pair([OUR_SEQ, PEER_SEQ], HOLD_BYTES);
    let mut h = Harness {
        links,
        now,
        sealed: Vec::new(),
        oracle: DeliveryOracle::starting_at(PEER_SEQ),
        buf: vec![0u8; 1 << 20],
    };
    for op in ops.iter().take(64) {
        h.run(op);
    }
});

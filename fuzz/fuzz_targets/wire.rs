//! The batch header and frame parser: arbitrary bytes never panic; whatever parses emits back
//! to the same bytes (header) or to frames that parse to the same values (frames).
//! API: `link::wire::{BatchHeader, FrameReader, FrameWriter, ack_ranges}`.
#![no_main]

use fcvpn::link::wire::{
    AckRange, BatchHeader, Frame, FrameReader, FrameWriter, HEADER_LEN, ack_ranges,
};
use libfuzzer_sys::fuzz_target;

/// Writes `f` with the writer; false if it did not fit.
fn emit(w: &mut FrameWriter<'_>, f: &Frame<'_>) -> bool {
    match *f {
        Frame::Data {
            seq,
            flags,
            payload,
        } => w.put_data(seq, flags, payload),
        Frame::Fragment {
            seq,
            flags,
            total,
            offset,
            chunk,
        } => w.put_fragment(seq, flags, total, offset, chunk),
        Frame::Ack {
            cum,
            delay_us,
            ranges,
        } => {
            let r: Vec<AckRange> = ack_ranges(ranges).collect();
            w.put_ack(cum, delay_us, &r)
        }
        Frame::Probe { id, reply } => w.put_probe(id, reply),
        Frame::Skip { forward } => w.put_skip(forward),
        Frame::Close { reason } => w.put_close(reason),
    }
}

fn header_round_trip(data: &[u8]) {
    let Ok(h) = BatchHeader::parse(data) else {
        return;
    };
    assert_eq!(
        &h.to_bytes()[..],
        &data[..HEADER_LEN],
        "header not canonical"
    );
    assert!(h.batch_len() <= data.len());
    let again = BatchHeader::parse(&data[..h.batch_len()]).expect("parse(emit(h))");
    assert_eq!(again.to_bytes(), h.to_bytes());
}

fn frames_round_trip(data: &[u8]) {
    let mut reader = FrameReader::new(data);
    let mut frames = Vec::new();
    while let Ok(Some(f)) = reader.next_frame() {
        frames.push(f);
        assert!(frames.len() <= data.len(), "more frames than bytes");
    }
    let mut buf = vec![0u8; data.len() + 64];
    let mut w = FrameWriter::new(&mut buf);
    for f in &frames {
        assert!(emit(&mut w, f), "a parsed frame does not fit back: {f:?}");
    }
    let len = w.len();
    let mut again = FrameReader::new(&buf[..len]);
    for f in &frames {
        let g = again
            .next_frame()
            .expect("re-emitted frame parses")
            .expect("frame missing");
        assert_eq!(&g, f, "parse(emit(frame))");
    }
    assert_eq!(again.next_frame(), Ok(None), "extra frames after re-emit");
}

fuzz_target!(|data: &[u8]| {
    header_round_trip(data);
    frames_round_trip(data);
});

//! The ring against a fake kernel over a region shaped like the real one.

use super::fake_kernel::{CMDR_OFF, FakeKernel};
use super::ring::{Ring, RingError};
use crate::scsi::status;
use crate::sys::tcmu::{SENSE_BUFFER_LEN, entry, mb, tmr};
use crate::transport::target::{TargetCommand, TargetEvent};

const INQUIRY: [u8; 6] = [0x12, 0, 0, 0, 96, 0];
const TUR: [u8; 6] = [0; 6];

fn read16(blocks: u32) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = 0x88;
    cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

fn write16(blocks: u32) -> [u8; 16] {
    let mut cdb = read16(blocks);
    cdb[0] = 0x8a;
    cdb
}

fn setup(cmdr_size: usize, blocks: usize, block: usize) -> (FakeKernel, Ring) {
    let (kernel, mem) = FakeKernel::new(cmdr_size, blocks, block);
    (kernel, Ring::new(mem).unwrap())
}

fn command(ring: &mut Ring) -> TargetCommand {
    match ring.next_event().unwrap() {
        Some(TargetEvent::Command(c)) => c,
        other => panic!("expected a command, got {other:?}"),
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

#[test]
fn commands_are_copied_out_with_cdb_data_out_and_data_in_length() {
    let (mut k, mut ring) = setup(4096, 16, 512);
    k.push_cmd(&INQUIRY, &[], 96, 0xaa).unwrap();
    let payload = pattern(3 * 512, 1);
    k.push_cmd(&write16(3), &payload, 0, 0).unwrap();
    k.push_cmd(&TUR, &[], 0, 0).unwrap();
    k.push_cmd(&read16(4), &[], 2048, 0xbb).unwrap();

    let inq = command(&mut ring);
    assert_eq!(inq.cdb, INQUIRY);
    assert!(inq.data_out.is_empty());
    assert_eq!(inq.data_in_len, 96);
    let w = command(&mut ring);
    assert_eq!(w.cdb, write16(3));
    assert_eq!(w.data_out, payload);
    assert_eq!(w.data_in_len, 0);
    let t = command(&mut ring);
    assert_eq!((t.cdb.len(), t.data_in_len, t.data_out.len()), (6, 0, 0));
    let r = command(&mut ring);
    assert_eq!(r.cdb, read16(4));
    assert_eq!(r.data_in_len, 2048);
    assert!(ring.next_event().unwrap().is_none());
    assert_eq!(ring.outstanding(), 4);
    let ids = [inq.id, w.id, t.id, r.id];
    assert!(
        ids.windows(2).all(|w| w[0] != w[1]),
        "ids are unique: {ids:?}"
    );
}

#[test]
fn data_out_spanning_scattered_blocks_is_gathered_in_order() {
    let (mut k, mut ring) = setup(4096, 8, 512);
    // Occupy blocks 0..4, free 1 and 3, so the next command gets 1, 3, 4, 5.
    let a = k.push_cmd(&read16(1), &[], 512, 0).unwrap();
    let b = k.push_cmd(&read16(1), &[], 512, 0).unwrap();
    let c = k.push_cmd(&read16(1), &[], 512, 0).unwrap();
    let d = k.push_cmd(&read16(1), &[], 512, 0).unwrap();
    let cmds: Vec<_> = (0..4).map(|_| command(&mut ring)).collect();
    ring.complete(cmds[1].id, status::GOOD, &[], &[1; 512])
        .unwrap();
    ring.complete(cmds[3].id, status::GOOD, &[], &[3; 512])
        .unwrap();
    let reaped: Vec<u16> = k.reap().iter().map(|r| r.cmd_id).collect();
    assert_eq!(reaped, [b, d]);
    let payload = pattern(4 * 512 - 100, 9);
    k.push_cmd(&write16(4), &payload, 0, 0).unwrap();
    assert_eq!(command(&mut ring).data_out, payload);
    let _ = (a, c);
}

#[test]
fn completion_writes_data_read_len_and_sense_as_the_kernel_reads_them() {
    let (mut k, mut ring) = setup(4096, 16, 512);
    let short = k.push_cmd(&read16(4), &[], 2048, 0xee).unwrap();
    let full = k.push_cmd(&INQUIRY, &[], 36, 0xee).unwrap();
    let empty = k.push_cmd(&read16(2), &[], 1024, 0xee).unwrap();
    let check = k.push_cmd(&[0x77, 0, 0, 0, 0, 0], &[], 64, 0xee).unwrap();
    let cmds: Vec<_> = (0..4).map(|_| command(&mut ring)).collect();
    let batch = pattern(700, 3);
    ring.complete(cmds[0].id, status::GOOD, &[], &batch)
        .unwrap();
    ring.complete(cmds[1].id, status::GOOD, &[], &pattern(36, 4))
        .unwrap();
    ring.complete(cmds[2].id, status::GOOD, &[], &[]).unwrap();
    let sense = [0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0];
    ring.complete(cmds[3].id, status::CHECK_CONDITION, &sense, &[])
        .unwrap();
    let reaped = k.reap();
    let by_id = |id: u16| reaped.iter().find(|r| r.cmd_id == id).unwrap().clone();

    let r = by_id(short);
    assert_eq!(
        (r.status, r.read_len, r.data),
        (status::GOOD, Some(700), batch)
    );
    let r = by_id(full);
    assert_eq!((r.read_len, r.data), (None, pattern(36, 4)));
    let r = by_id(empty);
    assert_eq!(r.read_len, None, "read_len 0 is never reported");
    assert_eq!(r.data, vec![0; 1024], "no stale bytes reach the initiator");
    let r = by_id(check);
    assert_eq!(r.status, status::CHECK_CONDITION);
    assert_eq!(&r.sense[..18], &sense);
    assert!(r.sense[18..].iter().all(|&b| b == 0));
    assert_eq!(k.in_flight(), 0);
    assert_eq!(k.tail(), k.head());
}

#[test]
fn sense_is_cut_to_the_buffer_and_only_kept_for_check_condition() {
    let (mut k, mut ring) = setup(4096, 4, 512);
    let a = k.push_cmd(&TUR, &[], 0, 0).unwrap();
    let b = k.push_cmd(&TUR, &[], 0, 0).unwrap();
    let (ca, cb) = (command(&mut ring), command(&mut ring));
    ring.complete(ca.id, status::CHECK_CONDITION, &[0x72; 200], &[])
        .unwrap();
    ring.complete(cb.id, status::BUSY, &[0x72; 18], &[])
        .unwrap();
    let reaped = k.reap();
    assert_eq!(reaped[0].cmd_id, a);
    assert_eq!(reaped[0].sense, vec![0x72; SENSE_BUFFER_LEN]);
    assert_eq!((reaped[1].cmd_id, reaped[1].status), (b, status::BUSY));
    assert!(reaped[1].sense.iter().all(|&x| x == 0));
}

#[test]
fn out_of_order_completions_reach_the_kernel_at_once() {
    let (mut k, mut ring) = setup(4096, 16, 512);
    let read = k.push_cmd(&read16(2), &[], 1024, 0).unwrap();
    let w1 = k.push_cmd(&write16(1), &[1; 512], 0, 0).unwrap();
    let w2 = k.push_cmd(&write16(1), &[2; 512], 0, 0).unwrap();
    let (r, a, b) = (command(&mut ring), command(&mut ring), command(&mut ring));
    assert!(!ring.take_notify());

    // The parked READ is the oldest entry; later WRITEs complete first, newest first.
    ring.complete(b.id, status::GOOD, &[], &[]).unwrap();
    ring.complete(a.id, status::GOOD, &[], &[]).unwrap();
    assert!(ring.take_notify());
    assert!(!ring.take_notify(), "the flag clears");
    let reaped: Vec<u16> = k.reap().iter().map(|x| x.cmd_id).collect();
    assert_eq!(
        reaped,
        [w2, w1],
        "completions go into the slots at the tail, in completion order"
    );
    assert_eq!(ring.outstanding(), 1);

    ring.complete(r.id, status::GOOD, &[], &[5; 512]).unwrap();
    let reaped = k.reap();
    assert_eq!(
        (reaped[0].cmd_id, &reaped[0].data[..]),
        (read, &[5u8; 512][..])
    );
    assert_eq!(k.tail(), k.head());
}

#[test]
fn the_tail_never_passes_an_entry_not_yet_read() {
    let (mut k, mut ring) = setup(4096, 16, 512);
    k.push_cmd(&TUR, &[], 0, 0).unwrap();
    k.push_cmd(&TUR, &[], 0, 0).unwrap();
    let (a, b) = (command(&mut ring), command(&mut ring));
    let unread_at = k.head();
    k.push_cmd(&TUR, &[], 0, 0).unwrap();
    ring.complete(b.id, status::GOOD, &[], &[]).unwrap();
    ring.complete(a.id, status::GOOD, &[], &[]).unwrap();
    assert_eq!(ring.tail(), unread_at);
    assert_eq!(k.tail(), unread_at);
    assert_eq!(k.reap().len(), 2);
    let c = command(&mut ring);
    ring.complete(c.id, status::GOOD, &[], &[]).unwrap();
    assert_eq!(k.tail(), k.head());
}

#[test]
fn stale_and_repeated_completions_are_ignored_even_when_the_kernel_reuses_the_cmd_id() {
    let (mut k, mut ring) = setup(4096, 16, 512);
    let first = k.push_cmd(&TUR, &[], 0, 0).unwrap();
    let old = command(&mut ring);
    ring.complete(old.id, status::GOOD, &[], &[]).unwrap();
    ring.complete(old.id, status::GOOD, &[], &[]).unwrap();
    assert_eq!(k.reap().len(), 1);
    let again = k.push_cmd(&TUR, &[], 0, 0).unwrap();
    assert_eq!(again, first, "the kernel hands out the lowest free cmd_id");
    let new = command(&mut ring);
    assert_ne!(new.id, old.id);
    ring.complete(old.id, status::GOOD, &[], &[]).unwrap();
    assert_eq!(ring.outstanding(), 1);
    assert!(k.reap().is_empty());
    ring.complete(new.id, status::GOOD, &[], &[]).unwrap();
    assert_eq!(k.reap().len(), 1);
    assert_eq!(ring.stats().stale_completions, 2);
}

#[test]
fn tmr_aborts_outstanding_commands_and_completes_them_for_lio() {
    let (mut k, mut ring) = setup(4096, 16, 512);
    let parked = k.push_cmd(&read16(1), &[], 512, 0).unwrap();
    let other = k.push_cmd(&read16(1), &[], 512, 0).unwrap();
    let done = k.push_cmd(&TUR, &[], 0, 0).unwrap();
    let (p, o, d) = (command(&mut ring), command(&mut ring), command(&mut ring));
    ring.complete(d.id, status::GOOD, &[], &[]).unwrap();
    assert_eq!(k.reap()[0].cmd_id, done);
    // LUN RESET naming the parked READ, a completed command and an unknown id.
    k.push_tmr(tmr::LUN_RESET, &[parked, done, 999]).unwrap();
    match ring.next_event().unwrap() {
        Some(TargetEvent::Abort(id)) => assert_eq!(id, p.id),
        other => panic!("expected an abort, got {other:?}"),
    }
    assert!(ring.next_event().unwrap().is_none());
    let reaped = k.reap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(
        (reaped[0].cmd_id, reaped[0].status),
        (parked, status::TASK_ABORTED)
    );
    // The port does not complete an aborted command, but if it did, nothing would break.
    ring.complete(p.id, status::GOOD, &[], &[0; 512]).unwrap();
    assert!(k.reap().is_empty());
    ring.complete(o.id, status::GOOD, &[], &[1; 512]).unwrap();
    assert_eq!(k.reap()[0].cmd_id, other);
    assert_eq!(k.tail(), k.head(), "the TMR entry was passed");
    assert_eq!((ring.stats().tmrs, ring.stats().aborted), (1, 1));
}

#[test]
fn a_tmr_naming_nothing_outstanding_is_passed_at_once() {
    let (mut k, mut ring) = setup(4096, 4, 512);
    k.push_tmr(tmr::ABORT_TASK, &[]).unwrap();
    assert!(ring.next_event().unwrap().is_none());
    assert_eq!(k.tail(), k.head());
    assert!(ring.take_notify());
}

/// A small generator for the wrap-around soak.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn wraps_around_the_ring_with_pads_many_times_under_random_completion_order() {
    // A ring of 1000 bytes: entries of 120 and 128 bytes leave a gap at the end of most laps,
    // which the kernel fills with a PAD.
    let (mut k, mut ring) = setup(1000, 32, 256);
    let mut rng = Lcg(7);
    let mut parked: Vec<(TargetCommand, Vec<u8>)> = Vec::new();
    let mut expected = std::collections::HashMap::new();
    let mut completed = 0;
    for round in 0..3000 {
        if rng.below(3) > 0 {
            let len = 256 * (1 + rng.below(3));
            let (cdb, out, len): (Vec<u8>, Vec<u8>, usize) = match rng.below(3) {
                0 => (read16((len / 512) as u32).to_vec(), vec![], len),
                1 => (write16(1).to_vec(), pattern(len, round as u8), 0),
                _ => (TUR.to_vec(), vec![], 0),
            };
            if let Some(id) = k.push_cmd(&cdb, &out, len, 0x55) {
                let c = command(&mut ring);
                assert_eq!(c.cdb, cdb);
                assert_eq!(c.data_out, out);
                let reply = if len > 0 {
                    pattern(1 + rng.below(len), 1)
                } else {
                    vec![]
                };
                expected.insert(id, reply.clone());
                parked.push((c, reply));
            }
        }
        if !parked.is_empty() && rng.below(2) == 0 {
            let (c, reply) = parked.swap_remove(rng.below(parked.len()));
            ring.complete(c.id, status::GOOD, &[], &reply).unwrap();
        }
        if ring.take_notify() {
            for r in k.reap() {
                let want = expected.remove(&r.cmd_id).expect("completed once");
                if !want.is_empty() {
                    assert_eq!(r.data, want);
                }
                completed += 1;
            }
        }
    }
    assert!(k.pads > 20, "only {} PADs", k.pads);
    assert!(completed > 500, "only {completed} completions");
    for (c, reply) in parked.drain(..) {
        ring.complete(c.id, status::GOOD, &[], &reply).unwrap();
    }
    for r in k.reap() {
        expected.remove(&r.cmd_id).expect("completed once");
    }
    assert!(expected.is_empty());
    assert_eq!(k.tail(), k.head());
    assert_eq!(ring.stats().pads as usize, k.pads);
}

#[test]
fn complete_all_and_restart_after_a_ring_reset() {
    let (mut k, mut ring) = setup(4096, 16, 512);
    for _ in 0..3 {
        k.push_cmd(&read16(1), &[], 512, 0).unwrap();
        command(&mut ring);
    }
    assert_eq!(ring.complete_all(status::BUSY).unwrap(), 3);
    let reaped = k.reap();
    assert!(reaped.iter().all(|r| r.status == status::BUSY));
    assert_eq!(reaped.len(), 3);

    k.push_cmd(&read16(1), &[], 512, 0).unwrap();
    let stale = command(&mut ring);
    k.reset_ring();
    ring.restart().unwrap();
    assert_eq!((ring.tail(), ring.outstanding()), (0, 0));
    k.push_cmd(&TUR, &[], 0, 0).unwrap();
    let fresh = command(&mut ring);
    ring.complete(stale.id, status::GOOD, &[], &[]).unwrap();
    ring.complete(fresh.id, status::GOOD, &[], &[]).unwrap();
    assert_eq!(k.reap().len(), 1);
}

#[test]
fn a_bad_mailbox_is_refused() {
    let (k, mem) = FakeKernel::new(4096, 4, 512);
    k.mem().write(mb::VERSION, &1u16.to_ne_bytes()).unwrap();
    assert!(matches!(Ring::new(mem), Err(RingError::Mailbox(_))));

    let (k, mem) = FakeKernel::new(4096, 4, 512);
    k.mem().write(mb::FLAGS, &0u16.to_ne_bytes()).unwrap();
    assert!(matches!(Ring::new(mem), Err(RingError::Mailbox(_))));

    let (k, mem) = FakeKernel::new(4096, 4, 512);
    k.mem()
        .write(mb::CMDR_SIZE, &u32::MAX.to_ne_bytes())
        .unwrap();
    assert!(matches!(Ring::new(mem), Err(RingError::Mailbox(_))));

    let (k, mem) = FakeKernel::new(4096, 4, 512);
    k.mem().store_release(mb::CMD_TAIL, 4096).unwrap();
    assert!(matches!(Ring::new(mem), Err(RingError::Mailbox(_))));
}

/// Damage done to a queued entry (the kernel, the entry's region offset).
type Tamper = Box<dyn Fn(&FakeKernel, usize)>;

/// Queues one INQUIRY, lets `tamper` damage it, and returns what reading it gives.
fn read_tampered(tamper: impl Fn(&FakeKernel, usize)) -> Result<Option<TargetEvent>, RingError> {
    let (mut k, mut ring) = setup(4096, 4, 512);
    k.push_cmd(&INQUIRY, &[], 96, 0).unwrap();
    tamper(&k, CMDR_OFF);
    ring.next_event()
}

#[test]
fn inconsistent_entries_are_errors_never_panics() {
    let put32 = |k: &FakeKernel, off: usize, v: u32| k.mem().write(off, &v.to_ne_bytes()).unwrap();
    let put64 = |k: &FakeKernel, off: usize, v: u64| k.mem().write(off, &v.to_ne_bytes()).unwrap();
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "zero length",
            Box::new(move |k, e| put32(k, e + entry::LEN_OP, 1)),
        ),
        (
            "past the ring",
            Box::new(move |k, e| put32(k, e + entry::LEN_OP, 8192 | 1)),
        ),
        (
            "past the head",
            Box::new(move |k, e| put32(k, e + entry::LEN_OP, 1024 | 1)),
        ),
        (
            "too short for a response",
            Box::new(move |k, e| put32(k, e + entry::LEN_OP, 64 | 1)),
        ),
        (
            "unknown opcode",
            Box::new(move |k, e| put32(k, e + entry::LEN_OP, 120 | 5)),
        ),
        (
            "iovecs overflow",
            Box::new(move |k, e| put32(k, e + entry::IOV_CNT, u32::MAX)),
        ),
        (
            "cdb outside",
            Box::new(move |k, e| put64(k, e + entry::CDB_OFF, u64::MAX)),
        ),
        (
            "cdb in the header",
            Box::new(move |k, e| put64(k, e + entry::CDB_OFF, e as u64)),
        ),
        (
            "iov base outside",
            Box::new(move |k, e| put64(k, e + entry::IOV, 1 << 40)),
        ),
        (
            "iov in the ring",
            Box::new(move |k, e| put64(k, e + entry::IOV, 200)),
        ),
        (
            "iov length",
            Box::new(move |k, e| put64(k, e + entry::IOV + 8, u64::MAX)),
        ),
        (
            "head past the ring",
            Box::new(move |k, _| put32(k, mb::CMD_HEAD, 5000)),
        ),
    ];
    for (name, tamper) in cases {
        assert!(read_tampered(tamper).is_err(), "{name}");
    }
    // A CDB cut short by the entry end is read as far as it goes.
    let event = read_tampered(|k, e| put64(k, e + entry::CDB_OFF, (e + 116) as u64)).unwrap();
    assert!(matches!(event, Some(TargetEvent::Command(c)) if c.cdb.len() == 4));
}

#[test]
fn a_malformed_tmr_is_an_error() {
    let (mut k, mut ring) = setup(4096, 4, 512);
    k.push_tmr(tmr::ABORT_TASK, &[1, 2]).unwrap();
    k.mem()
        .write(CMDR_OFF + entry::TMR_CMD_CNT, &100u32.to_ne_bytes())
        .unwrap();
    assert!(ring.next_event().is_err());
}

#[test]
fn without_read_len_short_data_in_is_padded_with_zeros() {
    let (mut k, mem) = FakeKernel::new(4096, 4, 512);
    k.mem()
        .write(mb::FLAGS, &crate::sys::tcmu::CAP_OOOC.to_ne_bytes())
        .unwrap();
    let mut ring = Ring::new(mem).unwrap();
    k.push_cmd(&read16(2), &[], 1024, 0xee).unwrap();
    let c = command(&mut ring);
    ring.complete(c.id, status::GOOD, &[], &[7; 100]).unwrap();
    let r = &k.reap()[0];
    assert_eq!(r.read_len, None);
    assert_eq!(&r.data[..100], &[7; 100]);
    assert!(r.data[100..].iter().all(|&b| b == 0));
    assert_eq!(r.data.len(), 1024);
}

//! The backend and the target port over an in-memory ring with the fake kernel.

use std::time::Duration;

use super::TcmuTarget;
use super::fake_kernel::FakeKernel;
use super::ring::Ring;
use crate::crypto::fabric::{FabricKey, FabricRole};
use crate::crypto::{LocalStatic, PrivateKey};
use crate::link::{Entropy, Link, LinkConfig, PathConfig};
use crate::scsi::token::slot_start;
use crate::scsi::{CommandVerifier, DeviceIdentity, VirtualDevice, nexus_tag, status};
use crate::sys::tcmu::{entry, tmr};
use crate::transport::WallClock;
use crate::transport::target::{TargetBackend, TargetEvent, TargetPort, TargetSettings};
use crate::transport::{FC_PATH, Transport};

fn backend() -> (FakeKernel, TcmuTarget) {
    let (kernel, mem) = FakeKernel::new(64 * 1024, 64, 4096);
    (kernel, TcmuTarget::over_ring(Ring::new(mem).unwrap()))
}

fn next_command(b: &mut TcmuTarget) -> crate::transport::target::TargetCommand {
    match b.next_event().unwrap() {
        Some(TargetEvent::Command(c)) => c,
        other => panic!("expected a command, got {other:?}"),
    }
}

#[test]
fn one_notification_per_flush_however_many_completions() {
    let (mut k, mut b) = backend();
    for _ in 0..3 {
        k.push_cmd(&[0; 6], &[], 0, 0).unwrap();
    }
    let cmds: Vec<_> = (0..3).map(|_| next_command(&mut b)).collect();
    assert!(b.next_event().unwrap().is_none());
    b.flush().unwrap();
    assert_eq!(b.notifications(), 0, "nothing completed yet");
    for c in &cmds {
        b.complete(c.id, status::GOOD, &[], &[]).unwrap();
    }
    b.flush().unwrap();
    b.flush().unwrap();
    assert_eq!(b.notifications(), 1);
    assert_eq!(k.reap().len(), 3);
    assert!(b.is_connected());
    assert!(!b.wants_write());
    assert!(b.fd().is_none(), "no UIO device in memory");
}

#[test]
fn a_broken_ring_disconnects_and_reconnect_retakes_it() {
    let (mut k, mut b) = backend();
    k.push_cmd(&[0; 6], &[], 0, 0).unwrap();
    let stale = next_command(&mut b);
    // A garbage entry: the ring is unusable until reset.
    k.push_cmd(&[0; 6], &[], 0, 0).unwrap();
    let at = super::fake_kernel::CMDR_OFF + 120;
    k.mem()
        .write(at + entry::LEN_OP, &7u32.to_ne_bytes())
        .unwrap();
    assert!(b.next_event().is_err());
    assert!(!b.is_connected());
    assert!(b.next_event().is_err(), "stays broken");
    assert!(b.complete(stale.id, status::GOOD, &[], &[]).is_err());

    k.reset_ring(); // what action/reset_ring does in the kernel
    b.reconnect().unwrap();
    assert!(b.is_connected());
    k.push_cmd(&[0; 6], &[], 0, 0).unwrap();
    let fresh = next_command(&mut b);
    b.complete(stale.id, status::GOOD, &[], &[]).unwrap();
    b.complete(fresh.id, status::GOOD, &[], &[]).unwrap();
    b.flush().unwrap();
    assert_eq!(k.reap().len(), 1);
}

#[test]
fn aborts_come_out_as_events() {
    let (mut k, mut b) = backend();
    let cdb = [0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0];
    let id = k.push_cmd(&cdb, &[], 512, 0).unwrap();
    let c = next_command(&mut b);
    k.push_tmr(tmr::ABORT_TASK, &[id]).unwrap();
    assert!(matches!(b.next_event().unwrap(), Some(TargetEvent::Abort(a)) if a == c.id));
    b.flush().unwrap();
    assert_eq!(k.reap()[0].status, status::TASK_ABORTED);
}

/// Deterministic randomness for the link.
struct Counter(u8);

impl Entropy for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
    }
}

fn key(seed: u8) -> LocalStatic {
    let private = PrivateKey::from_bytes([seed; 32]);
    LocalStatic {
        public: private.public_key(),
        private,
    }
}

fn rw16(op: u8, tag: u64, blocks: u32) -> [u8; 16] {
    let mut cdb = [0u8; 16];
    cdb[0] = op;
    cdb[2..10].copy_from_slice(&tag.to_be_bytes());
    cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

#[test]
fn the_target_port_serves_inquiry_and_parked_reads_over_the_ring() {
    let (target, initiator) = (key(1), key(2));
    // The old nexus tag is public: it no longer opens anything.
    let tag = nexus_tag(target.public.as_bytes(), initiator.public.as_bytes());
    let now_s = 1_700_000_000;
    let fabric_key = FabricKey::derive(&target.private, &initiator.public, FabricRole::Target);
    let fabric_key = fabric_key.unwrap();
    let device = VirtualDevice::new(
        DeviceIdentity::from_target_public(target.public.as_bytes()),
        CommandVerifier::new(fabric_key.clone()),
    );
    let hold = Duration::from_millis(250);
    let settings = TargetSettings {
        read_hold: hold,
        max_transfer: 64 * 1024,
        reconnect_every: Duration::from_millis(200),
        wall_clock: WallClock::new(Duration::from_secs(now_s)),
    };
    let token = |i: u64| fabric_key.token(slot_start(now_s).unwrap() + i);
    let (mut k, backend) = backend();
    let mut port = TargetPort::new(backend, device, settings);
    let paths = vec![PathConfig::new(FC_PATH, "fc", 0, 64 * 1024)];
    let cfg = LinkConfig::new(target, initiator.public, paths);
    let mut link = Link::new(cfg, Box::new(Counter(0)), Duration::ZERO).unwrap();
    let mut deliver = |_: &[u8]| {};

    let inquiry = k.push_cmd(&[0x12, 0, 0, 0, 96, 0], &[], 96, 0xff).unwrap();
    let foreign = k.push_cmd(&rw16(0x88, tag, 8), &[], 4096, 0xff).unwrap();
    let reads: Vec<u16> = (0..2)
        .map(|i| {
            k.push_cmd(&rw16(0x88, token(i), 8), &[], 4096, 0xff)
                .unwrap()
        })
        .collect();
    port.drive(Duration::ZERO, &mut link, &mut deliver);
    let mut reaped = k.reap();
    let inq = reaped.iter().find(|r| r.cmd_id == inquiry).unwrap();
    assert_eq!(inq.status, status::GOOD);
    assert_eq!(inq.data[0], 0x03, "processor device");
    assert_eq!(inq.read_len, Some(36));
    let f = reaped.iter().find(|r| r.cmd_id == foreign).unwrap();
    assert_eq!((f.status, f.sense[2] & 0xf), (status::CHECK_CONDITION, 5));
    assert_eq!(port.counters().foreign_commands, 1);

    // Every READ is answered by the end of the hold time: with a batch (the handshake) or
    // with IDLE; either way GOOD, whole blocks, and never a zero-length or stale transfer.
    port.drive(hold, &mut link, &mut deliver);
    reaped.extend(k.reap());
    for &r in &reads {
        let got = reaped.iter().find(|x| x.cmd_id == r).unwrap();
        assert_eq!(got.status, status::GOOD);
        assert!(!got.data.is_empty() && got.data.len() % 512 == 0);
        assert!(got.data.len() < 4096);
        assert_eq!(got.read_len, Some(got.data.len() as u32));
    }
    assert_eq!(k.in_flight(), 0);
    assert_eq!(port.counters().commands, 4);
}

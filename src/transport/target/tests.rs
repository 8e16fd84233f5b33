//! An initiator port and a target port over an in-memory fabric, with a keyless stranger on the
//! same LUN: what arrives, what the stranger gets, and what it costs the pair.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::*;
use crate::crypto::fabric::{FabricKey, FabricRole};
use crate::crypto::{LocalStatic, PrivateKey};
use crate::link::{Entropy, LinkConfig, PathConfig};
use crate::scsi::{CommandVerifier, DeviceIdentity, cdb, nexus_tag};
use crate::transport::initiator::{
    Completion, Direction, InitiatorBackend, InitiatorPort, InitiatorSettings, Outcome,
};

/// The wall clock of both ends (Unix seconds at time zero).
const UNIX_AT_ZERO: u64 = 1_700_000_000;
/// Bytes per command.
const MAX_TRANSFER: usize = 64 * 1024;
/// Initiator tags at or above this are the stranger's.
const STRANGER: u64 = 1 << 63;

/// A command on its way to the target.
struct Submitted {
    tag: u64,
    cdb: Vec<u8>,
    dir: Direction,
    buffer: Vec<u8>,
    len: usize,
}

#[derive(Default)]
struct Wire {
    to_target: VecDeque<Submitted>,
    to_initiator: VecDeque<Completion>,
    /// (status, sense key) of every completed stranger command.
    stranger: Vec<(u8, u8)>,
}

type Shared = Rc<RefCell<Wire>>;

struct FakeInitiator(Shared);

impl InitiatorBackend for FakeInitiator {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn wants_write(&self) -> bool {
        false
    }
    fn submit(
        &mut self,
        tag: u64,
        cdb: &[u8],
        dir: Direction,
        buffer: Vec<u8>,
        len: usize,
        _timeout: Duration,
    ) -> Result<(), (Vec<u8>, BackendError)> {
        let cdb = cdb.to_vec();
        let s = Submitted {
            tag,
            cdb,
            dir,
            buffer,
            len,
        };
        self.0.borrow_mut().to_target.push_back(s);
        Ok(())
    }
    fn abort(&mut self, _tag: u64) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(None)
    }
    fn next_completion(&mut self) -> Result<Option<Completion>, BackendError> {
        Ok(self.0.borrow_mut().to_initiator.pop_front())
    }
    fn flush(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
    fn is_connected(&self) -> bool {
        true
    }
    fn reconnect(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
    fn enforces_timeouts(&self) -> bool {
        false
    }
}

struct FakeTarget {
    wire: Shared,
    pending: HashMap<u64, (u64, Vec<u8>)>,
    next_id: u64,
}

impl TargetBackend for FakeTarget {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn wants_write(&self) -> bool {
        false
    }
    fn next_event(&mut self) -> Result<Option<TargetEvent>, BackendError> {
        let Some(s) = self.wire.borrow_mut().to_target.pop_front() else {
            return Ok(None);
        };
        self.next_id += 1;
        let (data_out, data_in_len) = match s.dir {
            Direction::Out => (s.buffer[..s.len].to_vec(), 0),
            Direction::In => (Vec::new(), s.len),
        };
        self.pending.insert(self.next_id, (s.tag, s.buffer));
        Ok(Some(TargetEvent::Command(TargetCommand {
            id: self.next_id,
            cdb: s.cdb,
            data_out,
            data_in_len,
        })))
    }
    fn complete(
        &mut self,
        id: u64,
        st: u8,
        sense: &[u8],
        data_in: &[u8],
    ) -> Result<(), BackendError> {
        let (tag, mut buffer) = self.pending.remove(&id).expect("a pending command");
        let mut wire = self.wire.borrow_mut();
        if tag >= STRANGER {
            wire.stranger
                .push((st, sense.get(2).map_or(0, |k| k & 0xf)));
            return Ok(());
        }
        let outcome = if st == status::GOOD {
            buffer[..data_in.len()].copy_from_slice(data_in);
            Outcome::Good { len: data_in.len() }
        } else {
            let sense = sense.to_vec();
            Outcome::Status { status: st, sense }
        };
        wire.to_initiator.push_back(Completion {
            tag,
            buffer,
            outcome,
        });
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
    fn is_connected(&self) -> bool {
        true
    }
    fn reconnect(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

struct Counter(u8);

impl Entropy for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
    }
}

fn local(seed: u8) -> LocalStatic {
    LocalStatic::new(PrivateKey::from_bytes([seed; 32]))
}

fn link(me: LocalStatic, peer: &LocalStatic, seed: u8) -> Link {
    let paths = vec![PathConfig::new(FC_PATH, "fc", 0, MAX_TRANSFER)];
    let cfg = LinkConfig::new(me, peer.public, paths);
    Link::new(cfg, Box::new(Counter(seed)), Duration::ZERO).unwrap()
}

struct Pair {
    wire: Shared,
    initiator: InitiatorPort<FakeInitiator>,
    target: TargetPort<FakeTarget>,
    i_link: Link,
    t_link: Link,
    delivered: Vec<Vec<u8>>,
    stranger_tag: u64,
    next_stranger: u64,
}

fn pair() -> Pair {
    pair_holding(Duration::from_millis(250))
}

/// A pair whose target holds READs for `target_hold` (the initiator expects 250 ms).
fn pair_holding(target_hold: Duration) -> Pair {
    let (t, i) = (local(0x22), local(0x11));
    let wire = Shared::default();
    let clock = WallClock::new(Duration::from_secs(UNIX_AT_ZERO));
    let t_key = FabricKey::derive(&t.private, &i.public, FabricRole::Target).unwrap();
    let i_key = FabricKey::derive(&i.private, &t.public, FabricRole::Initiator).unwrap();
    let mut device = VirtualDevice::new(
        DeviceIdentity::from_target_public(t.public.as_bytes()),
        CommandVerifier::new(t_key),
    );
    device.tick(UNIX_AT_ZERO);
    let target_settings = TargetSettings {
        read_hold: target_hold,
        max_transfer: MAX_TRANSFER,
        reconnect_every: Duration::from_millis(200),
        wall_clock: clock,
    };
    let fake_target = FakeTarget {
        wire: wire.clone(),
        pending: HashMap::new(),
        next_id: 0,
    };
    let initiator_settings = InitiatorSettings {
        fabric_key: i_key,
        read_hold: Duration::from_millis(250),
        wall_clock: clock,
        reads_in_flight: 8,
        writes_in_flight: 8,
        max_transfer: MAX_TRANSFER,
        command_timeout: Duration::from_millis(1500),
        reconnect_every: Duration::from_millis(200),
        impostor_after: None,
    };
    Pair {
        stranger_tag: nexus_tag(t.public.as_bytes(), i.public.as_bytes()),
        initiator: InitiatorPort::new(FakeInitiator(wire.clone()), initiator_settings),
        target: TargetPort::new(fake_target, device, target_settings),
        i_link: link(i.clone(), &t, 1),
        t_link: link(t, &i, 2),
        wire,
        delivered: Vec::new(),
        next_stranger: STRANGER,
    }
}

impl Pair {
    fn step(&mut self, now: Duration) {
        for l in [&mut self.i_link, &mut self.t_link] {
            if l.poll_timeout().is_some_and(|t| t <= now) {
                l.handle_timeout(now);
            }
        }
        let mut ignore = |_: &[u8]| {};
        self.initiator.drive(now, &mut self.i_link, &mut ignore);
        let delivered = &mut self.delivered;
        let mut keep = |p: &[u8]| delivered.push(p.to_vec());
        self.target.drive(now, &mut self.t_link, &mut keep);
    }

    /// The stranger's commands, queued at the target before the initiator's next ones: READs
    /// of one block and of full size with the pair's (public) nexus tag, random tokens, WRITEs.
    fn stranger_burst(&mut self, n: u64) {
        let mut wire = self.wire.borrow_mut();
        for k in 0..n {
            let token = match k % 3 {
                0 => self.stranger_tag,
                _ => self.next_stranger.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            let (cdb, dir, len) = match k % 4 {
                0 => (cdb::read16(token, 512), Direction::In, 512),
                1 => (
                    cdb::read16(token, MAX_TRANSFER),
                    Direction::In,
                    MAX_TRANSFER,
                ),
                _ => (cdb::write16(token, 4096), Direction::Out, 4096),
            };
            wire.to_target.push_back(Submitted {
                tag: self.next_stranger,
                cdb: cdb.to_vec(),
                dir,
                buffer: vec![0xEE; len],
                len,
            });
            self.next_stranger += 1;
        }
    }
}

/// Runs `packets` packets of 1000 bytes from the initiator to the target, `burst` stranger
/// commands per millisecond; returns the pair and the milliseconds until all arrived.
fn transfer(packets: usize, burst: u64) -> (Pair, u64) {
    let mut p = pair();
    let mut sent = 0;
    for ms in 0..20_000u64 {
        let now = Duration::from_millis(ms);
        if p.i_link.is_established() {
            while sent < packets && p.i_link.can_accept(1000) {
                let packet: Vec<u8> = (0..1000).map(|j| (sent + j) as u8).collect();
                if p.i_link.handle_packet(now, &packet).is_err() {
                    break;
                }
                sent += 1;
            }
        }
        p.stranger_burst(burst);
        p.step(now);
        if p.delivered.len() == packets {
            return (p, ms);
        }
    }
    panic!("only {} of {packets} packets arrived", p.delivered.len());
}

#[test]
fn a_keyless_stranger_neither_takes_nor_stalls_batches() {
    let packets = 4000;
    let (quiet, quiet_ms) = transfer(packets, 0);
    let (attacked, attacked_ms) = transfer(packets, 40);
    for p in [&quiet, &attacked] {
        for (n, packet) in p.delivered.iter().enumerate() {
            assert_eq!(packet[0], n as u8, "in order, each once");
        }
    }
    let wire = attacked.wire.borrow();
    assert!(wire.stranger.len() > 10_000, "{}", wire.stranger.len());
    let all_refused = wire.stranger.iter().all(|&(st, key)| {
        st == status::CHECK_CONDITION && key == crate::scsi::SenseKey::ILLEGAL_REQUEST.0
    });
    assert!(all_refused, "every stranger command gets ILLEGAL REQUEST");
    let counted = attacked.target.counters().foreign_commands;
    assert_eq!(counted, wire.stranger.len() as u64);
    assert_eq!(quiet.target.counters().foreign_commands, 0);
    assert_eq!(attacked.initiator.counters().token_refusals, 0);
    // In virtual time the stranger costs the pair nothing: the same transfer, as fast.
    println!("{packets} packets: {quiet_ms} ms quiet, {attacked_ms} ms under attack");
    assert!(
        attacked_ms <= quiet_ms + quiet_ms / 10 + 2,
        "{attacked_ms} ms attacked vs {quiet_ms} ms"
    );
}

#[test]
fn a_flood_is_taken_in_bounded_rounds() {
    let mut p = pair();
    p.stranger_burst(10_000);
    p.step(Duration::ZERO);
    let refused = p.wire.borrow().stranger.len();
    assert_eq!(refused, REFUSALS_PER_ROUND * ROUNDS_PER_PUMP);
    for ms in 1..100 {
        p.step(Duration::from_millis(ms));
    }
    // All refused by now; the genuine commands queued behind them on the fabric got through.
    assert_eq!(p.wire.borrow().stranger.len(), 10_000);
    assert!(p.initiator.counters().batches_in > 0);
    assert_eq!(p.target.counters().foreign_commands, 10_000);
}

#[test]
fn a_target_restarted_minutes_later_is_reached_again_after_a_jump() {
    let (mut p, done) = transfer(100, 0);
    // The target restarts with empty state (a new verifier) while the wall clock shows 200 s
    // later (beyond SKEW): the initiator's counters are no slot starts for it.
    let (t, i) = (local(0x22), local(0x11));
    let key = FabricKey::derive(&t.private, &i.public, FabricRole::Target).unwrap();
    let mut device = VirtualDevice::new(
        DeviceIdentity::from_target_public(t.public.as_bytes()),
        CommandVerifier::new(key),
    );
    device.tick(UNIX_AT_ZERO + 200);
    p.target.device = device;
    let t0 = Duration::from_millis(done + 1);
    let unix = Duration::from_secs(UNIX_AT_ZERO + 200);
    p.target.set_wall_clock(t0, unix);
    p.initiator.set_wall_clock(t0, unix);
    let receives = p.target.device().counters().receives;
    for ms in 0..300 {
        p.step(t0 + Duration::from_millis(ms));
    }
    let c = p.initiator.counters();
    assert!(c.token_refusals >= 1, "{c:?}");
    let accepted_after = p.target.device().counters().receives;
    assert!(accepted_after > receives, "READs park again after the jump");
    assert_eq!(p.target.counters().foreign_commands, c.token_refusals);
}

#[test]
fn an_initiator_backs_off_from_a_target_that_answers_idle_at_once() {
    let run = |hold_ms: u64| {
        let mut p = pair_holding(Duration::from_millis(hold_ms));
        for ms in 0..1000 {
            p.step(Duration::from_millis(ms));
        }
        assert!(p.i_link.is_established());
        p.initiator.counters()
    };
    let parking = run(250);
    let at_once = run(0);
    println!(
        "READs in 1 s: {} parking, {} answered at once",
        parking.commands, at_once.commands
    );
    assert_eq!(parking.idle_backoffs, 0);
    assert!(at_once.idle_backoffs > 0);
    // Without the backoff, 8 READs a millisecond: 8000 in the second.
    assert!(at_once.commands < 800, "{at_once:?}");
}

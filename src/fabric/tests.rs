//! The fabric in a thread on a temporary socket, driven by real ports.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;

const WAIT: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(50);
const TARGET: u64 = 0x2000_0024_ff00_0001;
const INIT_A: u64 = 0x2100_0024_ff00_000a;
const INIT_B: u64 = 0x2100_0024_ff00_000b;

/// A private directory for one test's socket, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fcvpn-fabric-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A fabric running in a thread.
struct Running {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<FabricStats, FabricError>>>,
    _dir: Option<TempDir>,
}

impl Running {
    fn start(tweak: impl FnOnce(&mut FabricOptions)) -> Self {
        let dir = TempDir::new();
        let mut run = Self::start_at(&dir.0.join("fabric.sock"), tweak);
        run._dir = Some(dir);
        run
    }

    fn start_at(path: &Path, tweak: impl FnOnce(&mut FabricOptions)) -> Self {
        let mut opts = FabricOptions::new(path);
        tweak(&mut opts);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || run(opts, &flag));
        let deadline = Instant::now() + WAIT;
        while !path.exists() {
            assert!(Instant::now() < deadline, "the fabric did not bind");
            std::thread::sleep(Duration::from_millis(2));
        }
        Running {
            path: path.to_path_buf(),
            stop,
            handle: Some(handle),
            _dir: None,
        }
    }

    fn port(&self, role: Role, wwpn: u64) -> PortConnection {
        PortConnection::connect(&self.path, role, wwpn, WAIT).unwrap()
    }

    fn stop(mut self) -> FabricStats {
        self.stop.store(true, Ordering::Relaxed);
        let stats = self.handle.take().unwrap().join().unwrap().unwrap();
        assert!(!self.path.exists(), "the socket file is removed at exit");
        stats
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn expect(port: &mut PortConnection) -> Message {
    port.recv_timeout(WAIT)
        .unwrap()
        .expect("a message within the wait")
}

fn expect_quiet(port: &mut PortConnection) {
    if let Some(m) = port.recv_timeout(QUIET).unwrap() {
        panic!("unexpected {m:?}");
    }
}

fn expect_command(port: &mut PortConnection) -> Command {
    match expect(port) {
        Message::Command(c) => c,
        other => panic!("expected a command, got {other:?}"),
    }
}

fn expect_completion(port: &mut PortConnection) -> Completion {
    match expect(port) {
        Message::Completion(c) => c,
        other => panic!("expected a completion, got {other:?}"),
    }
}

fn read16(task: u64, len: u32) -> Message {
    Message::Command(Command {
        task,
        initiator: 0,
        direction: Direction::Read,
        cdb: vec![0x88, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0],
        data_in_len: len,
        data_out: Vec::new(),
    })
}

fn write16(task: u64, data: Vec<u8>) -> Message {
    Message::Command(Command {
        task,
        initiator: 0,
        direction: Direction::Write,
        cdb: vec![0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0],
        data_in_len: 0,
        data_out: data,
    })
}

fn good(task: u64, initiator: u64, data_in: Vec<u8>) -> Message {
    Message::Completion(Completion {
        task,
        initiator,
        transport: TransportStatus::Delivered,
        status: 0,
        sense: Vec::new(),
        data_in,
    })
}

#[test]
fn routes_commands_and_completions_between_initiators_and_the_target() {
    let fabric = Running::start(|_| {});
    let mut target = fabric.port(Role::Target, TARGET);
    let mut a = fabric.port(Role::Initiator, INIT_A);
    let mut b = fabric.port(Role::Initiator, INIT_B);
    assert_eq!((a.role(), a.wwpn()), (Role::Initiator, INIT_A));

    a.send(&write16(1, vec![0x5a; 512])).unwrap();
    let wa = expect_command(&mut target);
    b.send(&read16(1, 4096)).unwrap();
    let rb = expect_command(&mut target);

    assert_eq!(wa.initiator, INIT_A, "the fabric fills in the initiator");
    assert_eq!(
        (wa.direction, wa.data_out.len(), wa.cdb[0]),
        (Direction::Write, 512, 0x8a)
    );
    assert_eq!(
        (rb.initiator, rb.direction, rb.data_in_len),
        (INIT_B, Direction::Read, 4096)
    );
    assert_ne!(
        wa.task, rb.task,
        "the target sees distinct exchange identifiers"
    );

    // Complete out of order; each initiator gets its own, under its own tag.
    target
        .send(&good(rb.task, rb.initiator, vec![7; 100]))
        .unwrap();
    target
        .send(&good(wa.task, wa.initiator, Vec::new()))
        .unwrap();
    let cb = expect_completion(&mut b);
    assert_eq!(
        (cb.task, cb.initiator, cb.transport),
        (1, INIT_B, TransportStatus::Delivered)
    );
    assert_eq!(cb.data_in, vec![7; 100]);
    assert_eq!(cb.resid(4096), 3996);
    let ca = expect_completion(&mut a);
    assert_eq!((ca.task, ca.initiator, ca.status), (1, INIT_A, 0));
    expect_quiet(&mut a);
    expect_quiet(&mut b);

    // CHECK CONDITION with sense passes through untouched.
    a.send(&read16(2, 512)).unwrap();
    let c = expect_command(&mut target);
    let sense = vec![0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0];
    let check = Completion {
        task: c.task,
        initiator: c.initiator,
        transport: TransportStatus::Delivered,
        status: crate::scsi::status::CHECK_CONDITION,
        sense: sense.clone(),
        data_in: Vec::new(),
    };
    target.send(&Message::Completion(check)).unwrap();
    let got = expect_completion(&mut a);
    assert_eq!((got.task, got.status, got.sense), (2, 0x02, sense));

    drop((a, b, target));
    let stats = fabric.stop();
    assert_eq!((stats.logins, stats.commands, stats.completions), (3, 3, 3));
    assert_eq!(
        (
            stats.dropped,
            stats.errored,
            stats.stray,
            stats.protocol_errors
        ),
        (0, 0, 0, 0)
    );
}

#[test]
fn without_a_target_commands_get_no_connection_at_once() {
    let fabric = Running::start(|_| {});
    let mut a = fabric.port(Role::Initiator, INIT_A);
    a.send(&read16(9, 4096)).unwrap();
    let c = expect_completion(&mut a);
    assert_eq!(
        (c.task, c.initiator, c.transport),
        (9, INIT_A, TransportStatus::NoConnection)
    );
    assert!(c.data_in.is_empty());
    drop(a);
    let stats = fabric.stop();
    assert_eq!((stats.commands, stats.no_target), (1, 1));
}

#[test]
fn a_lost_target_leaves_no_command_unanswered_and_a_new_one_may_log_in() {
    let fabric = Running::start(|_| {});
    let mut target = fabric.port(Role::Target, TARGET);
    let mut a = fabric.port(Role::Initiator, INIT_A);
    for task in 10..13 {
        a.send(&read16(task, 1024)).unwrap();
    }
    let held: Vec<Command> = (0..3).map(|_| expect_command(&mut target)).collect();
    target
        .send(&good(held[1].task, INIT_A, vec![1; 10]))
        .unwrap();
    let first = expect_completion(&mut a);
    assert_eq!(
        (first.task, first.transport),
        (11, TransportStatus::Delivered)
    );
    drop(target);
    let mut lost: Vec<(u64, TransportStatus)> = (0..2)
        .map(|_| {
            let c = expect_completion(&mut a);
            (c.task, c.transport)
        })
        .collect();
    lost.sort_by_key(|&(task, _)| task);
    assert_eq!(
        lost,
        [
            (10, TransportStatus::NoConnection),
            (12, TransportStatus::NoConnection)
        ]
    );
    expect_quiet(&mut a);

    // The tags are free again; a new target serves them.
    let mut target = fabric.port(Role::Target, TARGET);
    a.send(&read16(10, 1024)).unwrap();
    let c = expect_command(&mut target);
    assert!(
        held.iter().all(|h| h.task != c.task),
        "exchange identifiers are never reused"
    );
    target.send(&good(c.task, INIT_A, vec![2; 3])).unwrap();
    assert_eq!(expect_completion(&mut a).data_in, vec![2; 3]);

    drop((a, target));
    let stats = fabric.stop();
    assert_eq!(
        (stats.target_lost, stats.logins, stats.disconnects),
        (2, 3, 3)
    );
}

#[test]
fn aborts_reach_the_target_and_late_completions_are_discarded() {
    let fabric = Running::start(|_| {});
    let mut target = fabric.port(Role::Target, TARGET);
    let mut a = fabric.port(Role::Initiator, INIT_A);
    a.send(&read16(5, 4096)).unwrap();
    let parked = expect_command(&mut target);
    a.send(&Message::Abort {
        task: 5,
        initiator: 0,
    })
    .unwrap();
    assert_eq!(
        expect(&mut target),
        Message::Abort {
            task: parked.task,
            initiator: INIT_A
        }
    );
    // The target had completed it already: the completion crosses the abort and is discarded.
    target
        .send(&good(parked.task, INIT_A, vec![0; 16]))
        .unwrap();
    expect_quiet(&mut a);
    // An abort for nothing outstanding is not forwarded.
    a.send(&Message::Abort {
        task: 99,
        initiator: 0,
    })
    .unwrap();
    expect_quiet(&mut target);
    // The tag is free again.
    a.send(&read16(5, 4096)).unwrap();
    let again = expect_command(&mut target);
    assert_ne!(again.task, parked.task);

    drop((a, target));
    let stats = fabric.stop();
    assert_eq!((stats.aborts, stats.stray, stats.completions), (2, 1, 1));
}

#[test]
fn a_departed_initiator_is_aborted_and_its_successor_may_reuse_tags() {
    let fabric = Running::start(|_| {});
    let mut target = fabric.port(Role::Target, TARGET);
    let mut a = fabric.port(Role::Initiator, INIT_A);
    a.send(&read16(0, 4096)).unwrap();
    let old = expect_command(&mut target);
    drop(a);
    assert_eq!(
        expect(&mut target),
        Message::Abort {
            task: old.task,
            initiator: INIT_A
        }
    );
    let mut a = fabric.port(Role::Initiator, INIT_A);
    a.send(&read16(0, 4096)).unwrap();
    let new = expect_command(&mut target);
    // The old READ's late answer must not be taken for the new one.
    target
        .send(&good(old.task, INIT_A, b"stale".to_vec()))
        .unwrap();
    target
        .send(&good(new.task, INIT_A, b"fresh".to_vec()))
        .unwrap();
    let c = expect_completion(&mut a);
    assert_eq!((c.task, c.data_in.as_slice()), (0, &b"fresh"[..]));
    expect_quiet(&mut a);

    drop((a, target));
    let stats = fabric.stop();
    assert_eq!((stats.implicit_aborts, stats.stray), (1, 1));
}

#[test]
fn a_second_target_is_refused() {
    let fabric = Running::start(|_| {});
    let _target = fabric.port(Role::Target, TARGET);
    let second = PortConnection::connect(&fabric.path, Role::Target, TARGET + 1, WAIT);
    assert!(
        matches!(
            second,
            Err(FabricError::LoginRefused(LoginStatus::TargetInUse))
        ),
        "{second:?}"
    );
    drop(_target);
    let stats = fabric.stop();
    assert_eq!((stats.logins, stats.rejected_logins), (1, 1));
}

/// Sends `n` commands through a fabric with `drop` = 0.5 and returns (commands the target saw,
/// completions the initiator saw, the stats).
fn drop_run(seed: u64, n: u64) -> (u64, u64, FabricStats) {
    // What the fault model says, computed apart.
    let mut model = FaultModel::new(0.5, 0.0, seed);
    let forwarded = (0..n).filter(|_| model.command() == Fault::Pass).count() as u64;
    let answered = (0..forwarded)
        .filter(|_| model.completion() == Fault::Pass)
        .count() as u64;

    let fabric = Running::start(|o| {
        o.drop = 0.5;
        o.seed = seed;
    });
    let mut target = fabric.port(Role::Target, TARGET);
    let mut a = fabric.port(Role::Initiator, INIT_A);
    for task in 0..n {
        a.send(&read16(task, 512)).unwrap();
    }
    let mut seen = 0;
    while seen < forwarded {
        let c = expect_command(&mut target);
        target
            .send(&good(c.task, c.initiator, vec![0; 512]))
            .unwrap();
        seen += 1;
    }
    expect_quiet(&mut target);
    let mut completed = 0;
    while completed < answered {
        expect_completion(&mut a);
        completed += 1;
    }
    expect_quiet(&mut a);
    drop((a, target));
    let stats = fabric.stop();
    assert_eq!(stats.dropped, (n - forwarded) + (forwarded - answered));
    (seen, completed, stats)
}

#[test]
fn seeded_drops_are_deterministic() {
    let (seen, completed, stats) = drop_run(1234, 200);
    assert!(
        (60..140).contains(&seen),
        "{seen} of 200 commands forwarded"
    );
    assert!(completed < seen);
    assert_eq!((stats.commands, stats.completions), (200, seen));
    let again = drop_run(1234, 200);
    assert_eq!(
        (again.0, again.1, again.2.dropped),
        (seen, completed, stats.dropped)
    );
}

#[test]
fn error_fault_fails_commands_at_once() {
    let fabric = Running::start(|o| o.error = 1.0);
    let mut target = fabric.port(Role::Target, TARGET);
    let mut a = fabric.port(Role::Initiator, INIT_A);
    a.send(&write16(3, vec![1; 512])).unwrap();
    let c = expect_completion(&mut a);
    assert_eq!((c.task, c.transport), (3, TransportStatus::Error));
    expect_quiet(&mut target);
    drop((a, target));
    assert_eq!(fabric.stop().errored, 1);
}

#[test]
fn an_overrun_becomes_a_transport_error() {
    let fabric = Running::start(|_| {});
    let mut target = fabric.port(Role::Target, TARGET);
    let mut a = fabric.port(Role::Initiator, INIT_A);
    a.send(&read16(4, 512)).unwrap();
    let c = expect_command(&mut target);
    target.send(&good(c.task, INIT_A, vec![0; 1024])).unwrap();
    let got = expect_completion(&mut a);
    assert_eq!(
        (got.task, got.transport, got.data_in.len()),
        (4, TransportStatus::Error, 0)
    );
    drop((a, target));
    assert_eq!(fabric.stop().overruns, 1);
}

#[test]
fn delay_holds_messages_in_order() {
    let delay = Duration::from_millis(60);
    let fabric = Running::start(|o| o.delay = delay);
    let mut target = fabric.port(Role::Target, TARGET);
    let mut a = fabric.port(Role::Initiator, INIT_A);
    let sent = Instant::now();
    a.send(&read16(1, 512)).unwrap();
    a.send(&Message::Abort {
        task: 1,
        initiator: 0,
    })
    .unwrap();
    let c = expect_command(&mut target);
    assert!(sent.elapsed() >= delay, "{:?}", sent.elapsed());
    assert!(matches!(expect(&mut target), Message::Abort { task, .. } if task == c.task));

    a.send(&read16(2, 512)).unwrap();
    let c = expect_command(&mut target);
    let sent = Instant::now();
    target.send(&good(c.task, INIT_A, vec![9; 512])).unwrap();
    assert_eq!(expect_completion(&mut a).task, 2);
    assert!(sent.elapsed() >= delay, "{:?}", sent.elapsed());
    drop((a, target));
    fabric.stop();
}

/// Reads until the fabric closes `s`; false if it stays open past the wait.
fn closed_by_fabric(mut s: UnixStream) -> bool {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn protocol_violations_close_the_connection() {
    let fabric = Running::start(|_| {});
    // A frame longer than the maximum.
    let mut s = UnixStream::connect(&fabric.path).unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 3]).unwrap();
    assert!(closed_by_fabric(s));
    // A command before the login.
    let mut s = UnixStream::connect(&fabric.path).unwrap();
    s.write_all(&proto::encode_to_vec(&read16(1, 512)).unwrap())
        .unwrap();
    assert!(closed_by_fabric(s));
    // A task tag reused while outstanding.
    let mut target = fabric.port(Role::Target, TARGET);
    let mut a = fabric.port(Role::Initiator, INIT_A);
    a.send(&read16(1, 512)).unwrap();
    a.send(&read16(1, 512)).unwrap();
    expect_command(&mut target);
    // The outstanding command is aborted at the target as the initiator is closed.
    assert!(matches!(expect(&mut target), Message::Abort { .. }));
    assert!(matches!(a.recv_timeout(WAIT), Err(FabricError::Closed)));
    // A target may not send commands.
    target.send(&read16(1, 512)).unwrap();
    assert!(matches!(
        target.recv_timeout(WAIT),
        Err(FabricError::Closed)
    ));
    let stats = fabric.stop();
    assert_eq!(stats.protocol_errors, 4);
}

#[test]
fn a_port_that_stops_reading_is_disconnected() {
    let fabric = Running::start(|_| {});
    let target = fabric.port(Role::Target, TARGET);
    let mut a = fabric.port(Role::Initiator, INIT_A);
    // The target never reads: five 16 MiB writes pass the 64 MiB write buffer limit.
    for task in 0..5 {
        a.send(&write16(task, vec![0; 16 << 20])).unwrap();
        while a.wants_write() {
            std::thread::sleep(Duration::from_millis(1));
            a.flush().unwrap();
        }
    }
    let mut lost = 0;
    while lost < 5 {
        let c = expect_completion(&mut a);
        assert_eq!(c.transport, TransportStatus::NoConnection);
        lost += 1;
    }
    drop((a, target));
    let stats = fabric.stop();
    assert_eq!((stats.slow_ports, stats.target_lost), (1, 5));
}

#[test]
fn binding_replaces_a_stale_socket_and_refuses_a_live_one() {
    let dir = TempDir::new();
    let path = dir.0.join("fabric.sock");
    // A stale socket: bound, then its listener gone.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let fabric = Running::start_at(&path, |_| {});
    let _a = fabric.port(Role::Initiator, INIT_A);
    let stop = AtomicBool::new(false);
    let second = run(FabricOptions::new(&path), &stop);
    assert!(
        matches!(second, Err(FabricError::AlreadyRunning(_))),
        "{second:?}"
    );
    drop(_a);
    fabric.stop();

    let plain = dir.0.join("plain");
    fs::write(&plain, b"not a socket").unwrap();
    let third = run(FabricOptions::new(&plain), &stop);
    assert!(
        matches!(third, Err(FabricError::NotASocket(_))),
        "{third:?}"
    );
    assert!(plain.exists(), "a file that is not a socket is left alone");
}

#[test]
fn ports_see_a_stopped_fabric_and_reconnect_to_its_successor() {
    let dir = TempDir::new();
    let path = dir.0.join("fabric.sock");
    let fabric = Running::start_at(&path, |_| {});
    let mut a = fabric.port(Role::Initiator, INIT_A);
    fabric.stop();
    assert!(matches!(a.recv_timeout(WAIT), Err(FabricError::Closed)));
    // Connecting waits for the socket to come back.
    let restarter = {
        let path = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            Running::start_at(&path, |_| {})
        })
    };
    let mut a = PortConnection::connect(&path, Role::Initiator, INIT_A, WAIT).unwrap();
    let fabric = restarter.join().unwrap();
    a.send(&read16(1, 512)).unwrap();
    assert_eq!(
        expect_completion(&mut a).transport,
        TransportStatus::NoConnection
    );
    drop(a);
    fabric.stop();

    let missing =
        PortConnection::connect(&path, Role::Initiator, INIT_A, Duration::from_millis(30));
    assert!(
        matches!(missing, Err(FabricError::Connect { .. })),
        "{missing:?}"
    );
}

#[test]
fn invalid_options_are_refused_before_binding() {
    let dir = TempDir::new();
    let path = dir.0.join("fabric.sock");
    let stop = AtomicBool::new(false);
    let bad = FabricOptions {
        drop: 2.0,
        ..FabricOptions::new(&path)
    };
    assert!(matches!(
        run(bad, &stop),
        Err(FabricError::InvalidOptions(_))
    ));
    assert!(!path.exists());
}

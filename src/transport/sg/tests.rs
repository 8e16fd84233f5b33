//! `SgInitiator` against stand-in devices: each search hands out one end of a socket pair
//! whose other end plays the sg driver (it reads submitted headers and writes replies).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::mpsc::Sender;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use super::*;
use crate::scsi::{cdb, status};
use crate::sys::sg::{DRIVER_SENSE, SG_INFO_CHECK, did};

const WAIT: Duration = Duration::from_secs(5);
const MIB: usize = 1024 * 1024;

/// What the next search finds: a device with this limit, or an error.
type Script = Result<usize, String>;

/// The driver end of a stand-in device.
struct Driver(UnixStream);

impl Driver {
    /// The next submitted header: (tag, direction, dxfer_len, timeout in ms).
    fn next(&mut self) -> (u64, i32, u32, u32) {
        let mut h = [0u8; 88];
        assert_eq!(self.0.read(&mut h).unwrap(), 88);
        let at = |o: usize| <[u8; 4]>::try_from(&h[o..o + 4]).unwrap();
        let tag = u64::from_ne_bytes(h[56..64].try_into().unwrap());
        (
            tag,
            i32::from_ne_bytes(at(4)),
            u32::from_ne_bytes(at(12)),
            u32::from_ne_bytes(at(40)),
        )
    }

    /// Whether no further header was submitted.
    fn idle(&mut self) -> bool {
        self.0.set_nonblocking(true).unwrap();
        let mut h = [0u8; 88];
        let idle = self.0.read(&mut h).is_err();
        self.0.set_nonblocking(false).unwrap();
        idle
    }

    fn finish(&mut self, tag: u64, status: u8, host: u16, resid: i32, sb_len_wr: u8) {
        let mut h = [0u8; 88];
        h[0] = b'S';
        h[56..64].copy_from_slice(&tag.to_ne_bytes());
        h[64] = status;
        h[65] = status >> 1;
        h[67] = sb_len_wr;
        h[68..70].copy_from_slice(&host.to_ne_bytes());
        let driver = if sb_len_wr > 0 { DRIVER_SENSE } else { 0 };
        h[70..72].copy_from_slice(&driver.to_ne_bytes());
        h[72..76].copy_from_slice(&resid.to_ne_bytes());
        if status != 0 || host != 0 {
            h[80..84].copy_from_slice(&SG_INFO_CHECK.to_ne_bytes());
        }
        self.0.write_all(&h).unwrap();
    }
}

/// A backend whose searches follow `scripts`; found devices' driver ends arrive on the
/// returned receiver.
fn backend(scripts: Vec<Script>) -> (SgInitiator, mpsc::Receiver<Driver>) {
    let scripts = Mutex::new(VecDeque::from(scripts));
    let (tx, rx) = mpsc::channel::<Driver>();
    let tx = Mutex::new(tx);
    let n = Mutex::new(0u32);
    let searcher: Searcher = Arc::new(move |_avoid: Option<&Path>| {
        let next = scripts.lock().unwrap().pop_front();
        let limit = next.unwrap_or_else(|| Err("no more scripted devices".into()))?;
        let mut count = n.lock().unwrap();
        *count += 1;
        found(limit, *count, &tx.lock().unwrap())
    });
    (SgInitiator::with_searcher(searcher), rx)
}

fn found(limit: usize, n: u32, drivers: &Sender<Driver>) -> Result<Found, String> {
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, flags).unwrap();
    let driver = UnixStream::from(theirs);
    driver.set_nonblocking(false).unwrap();
    drivers.send(Driver(driver)).unwrap();
    Ok(Found {
        file: SgFile::for_tests(ours).unwrap(),
        path: PathBuf::from(format!("/dev/sg{n}")),
        limit,
    })
}

/// Calls `reconnect` until it succeeds (the search runs on its own thread).
fn reconnect(sg: &mut SgInitiator) {
    for _ in 0..500 {
        if sg.reconnect().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never reconnected");
}

fn read(sg: &mut SgInitiator, tag: u64, len: usize) {
    let cdb = cdb::read16(0x1234, len);
    sg.submit(
        tag,
        &cdb,
        Direction::In,
        vec![0; len],
        len,
        Duration::from_secs(2),
    )
    .unwrap();
}

fn write(sg: &mut SgInitiator, tag: u64, len: usize) {
    let cdb = cdb::write16(0x1234, len);
    sg.submit(
        tag,
        &cdb,
        Direction::Out,
        vec![1; len],
        len,
        Duration::from_secs(2),
    )
    .unwrap();
}

fn show(c: &Completion) -> String {
    match &c.outcome {
        Outcome::Good { len } => format!("{} good {len}", c.tag),
        Outcome::Status { status, sense } => {
            format!("{} status {status:#04x} sense {}", c.tag, sense.len())
        }
        Outcome::Failed(why) => format!("{} failed: {why}", c.tag),
    }
}

/// Every completion ready now, shown.
fn drain(sg: &mut SgInitiator) -> Vec<String> {
    std::iter::from_fn(|| sg.next_completion().unwrap())
        .map(|c| show(&c))
        .collect()
}

#[test]
fn the_first_search_connects_and_sets_the_limit() {
    let (mut sg, drivers) = backend(vec![Ok(MIB)]);
    assert_eq!(sg.max_transfer(), MAX_TRANSFER_LEN, "nothing known yet");
    assert!(sg.wait_connected(WAIT));
    assert!(sg.is_connected() && sg.fd().is_some());
    assert_eq!(sg.max_transfer(), MIB);
    assert_eq!(sg.device(), Some(Path::new("/dev/sg1")));
    assert!(sg.enforces_timeouts());
    assert!(!sg.wants_write());
    drivers.recv_timeout(WAIT).unwrap();
}

#[test]
fn commands_round_trip_by_tag_with_their_outcomes() {
    let (mut sg, drivers) = backend(vec![Ok(MIB)]);
    assert!(sg.wait_connected(WAIT));
    let mut driver = drivers.recv_timeout(WAIT).unwrap();
    read(&mut sg, 1, 65536);
    write(&mut sg, 2, 4096);
    read(&mut sg, 3, 65536);
    read(&mut sg, 4, 65536);
    let seen: Vec<_> = (0..4).map(|_| driver.next()).collect();
    assert_eq!(
        seen,
        [
            (1, -3, 65536, 2000),
            (2, -2, 4096, 2000),
            (3, -3, 65536, 2000),
            (4, -3, 65536, 2000),
        ]
    );
    assert!(drain(&mut sg).is_empty());
    driver.finish(2, status::GOOD, did::OK, 0, 0);
    driver.finish(1, status::GOOD, did::OK, 65536 - 1024, 0);
    driver.finish(3, status::CHECK_CONDITION, did::OK, 0, 18);
    driver.finish(4, status::GOOD, did::TIME_OUT, 65536, 0);
    assert_eq!(
        drain(&mut sg),
        [
            "2 good 0",
            "1 good 1024",
            "3 status 0x02 sense 18",
            "4 failed: timed out and aborted by the kernel (DID_TIME_OUT)",
        ]
    );
}

#[test]
fn buffers_come_back_whole_with_their_commands() {
    let (mut sg, drivers) = backend(vec![Ok(MIB)]);
    assert!(sg.wait_connected(WAIT));
    let mut driver = drivers.recv_timeout(WAIT).unwrap();
    let buffer = vec![0u8; 8192];
    let at = buffer.as_ptr();
    let cdb = cdb::read16(1, 4096);
    sg.submit(9, &cdb, Direction::In, buffer, 4096, Duration::from_secs(2))
        .unwrap();
    driver.next();
    driver.finish(9, status::GOOD, did::OK, 0, 0);
    let c = sg.next_completion().unwrap().unwrap();
    assert_eq!((c.tag, c.buffer.as_ptr(), c.buffer.len()), (9, at, 8192));
}

#[test]
fn beyond_sg_max_queue_commands_wait_for_a_slot_in_order() {
    let (mut sg, drivers) = backend(vec![Ok(MIB)]);
    assert!(sg.wait_connected(WAIT));
    let mut driver = drivers.recv_timeout(WAIT).unwrap();
    for tag in 1..=20 {
        read(&mut sg, tag, 4096);
    }
    sg.flush().unwrap();
    let sent: Vec<u64> = (0..SG_MAX_QUEUE).map(|_| driver.next().0).collect();
    assert_eq!(sent, (1..=16).collect::<Vec<_>>());
    assert!(driver.idle(), "no 17th command in the driver");
    let cdb = cdb::read16(1, 4096);
    let dup = sg.submit(
        17,
        &cdb,
        Direction::In,
        vec![0; 4096],
        4096,
        Duration::from_secs(2),
    );
    assert!(dup.is_err(), "tag 17 is already waiting");
    assert_eq!(sg.abort(18).unwrap().map(|b| b.len()), Some(4096));
    assert_eq!(
        sg.abort(5).unwrap(),
        None,
        "in the driver: the kernel times it out"
    );
    driver.finish(1, status::GOOD, did::OK, 0, 0);
    driver.finish(2, status::GOOD, did::OK, 0, 0);
    assert_eq!(drain(&mut sg), ["1 good 4096", "2 good 4096"]);
    sg.flush().unwrap();
    assert_eq!((driver.next().0, driver.next().0), (17, 19));
    assert!(driver.idle());
    for tag in 21..=35 {
        read(&mut sg, tag, 4096);
    }
    let cdb = cdb::read16(1, 4096);
    let full = sg.submit(
        99,
        &cdb,
        Direction::In,
        vec![0; 4096],
        4096,
        Duration::from_secs(2),
    );
    let (back, e) = full.unwrap_err();
    assert_eq!(back.len(), 4096);
    assert!(e.to_string().contains("os error"), "{e}");
}

#[test]
fn a_vanished_device_disconnects_and_another_is_found() {
    let (mut sg, drivers) = backend(vec![Ok(MIB), Err("nothing yet".into()), Ok(MIB)]);
    assert!(sg.wait_connected(WAIT));
    let mut driver = drivers.recv_timeout(WAIT).unwrap();
    read(&mut sg, 1, 4096);
    driver.next();
    drop(driver);
    let e = sg.next_completion().unwrap_err();
    assert!(matches!(e, BackendError::Disconnected(_)), "{e}");
    assert!(e.to_string().starts_with("disconnected: /dev/sg1: "), "{e}");
    assert!(!sg.is_connected() && sg.fd().is_none());
    let cdb = cdb::read16(1, 4096);
    let (_, e) = sg
        .submit(
            2,
            &cdb,
            Direction::In,
            vec![0; 4096],
            4096,
            Duration::from_secs(2),
        )
        .unwrap_err();
    assert!(matches!(e, BackendError::Disconnected(_)));
    reconnect(&mut sg);
    assert_eq!(sg.device(), Some(Path::new("/dev/sg2")));
    let mut driver = drivers.recv_timeout(WAIT).unwrap();
    read(&mut sg, 3, 4096);
    assert_eq!(driver.next().0, 3);
}

#[test]
fn a_missing_device_is_searched_for_without_blocking() {
    let (mut sg, _drivers) = backend(vec![Err("no device".into()), Ok(2 * MIB)]);
    assert!(!sg.wait_connected(WAIT));
    assert!(!sg.is_connected());
    assert_eq!(sg.max_transfer(), MAX_TRANSFER_LEN);
    reconnect(&mut sg);
    assert_eq!(sg.max_transfer(), 2 * MIB);
}

#[test]
fn a_device_that_cannot_take_the_transfer_size_is_refused() {
    let (mut sg, _drivers) = backend(vec![Ok(512 * 1024), Ok(MIB)]);
    sg.set_transfer(MIB);
    assert!(!sg.wait_connected(WAIT));
    reconnect(&mut sg);
    assert_eq!(sg.max_transfer(), MIB);
}

#[test]
fn refusal_message_says_what_to_configure() {
    let (mut sg, _drivers) = backend(vec![]);
    sg.set_transfer(MIB);
    let (tx, _rx) = mpsc::channel();
    let small = found(256 * 1024, 7, &tx).unwrap();
    assert_eq!(
        sg.adopt(small).unwrap_err(),
        "/dev/sg7 takes at most 262144 bytes per command but fcvpn sends 1048576: set \
         fc.max_transfer to 262144 or less and restart"
    );
}

#[test]
fn driver_errors_are_classified() {
    let kind = |errno| match refusal(&io::Error::from_raw_os_error(errno)) {
        Refusal::Transient => "transient".to_owned(),
        Refusal::Gone => "gone".to_owned(),
        Refusal::Fatal(why) => why.to_owned(),
    };
    for errno in [
        libc::EDOM,
        libc::EAGAIN,
        libc::EINTR,
        libc::ENOMEM,
        libc::EBUSY,
    ] {
        assert_eq!(kind(errno), "transient", "{errno}");
    }
    for errno in [libc::ENODEV, libc::ENXIO, libc::EBADF] {
        assert_eq!(kind(errno), "gone", "{errno}");
    }
    assert!(kind(libc::EINVAL).contains("EINVAL"));
    assert_eq!(
        kind(libc::EMSGSIZE),
        "refused by the sg driver: bad CDB length"
    );
    assert_eq!(kind(libc::ENOSYS), "refused by the sg driver");
}

#[test]
fn refused_commands_complete_as_failed_before_others() {
    let (mut sg, drivers) = backend(vec![Ok(MIB)]);
    assert!(sg.wait_connected(WAIT));
    let mut driver = drivers.recv_timeout(WAIT).unwrap();
    read(&mut sg, 1, 4096);
    driver.next();
    driver.finish(1, status::GOOD, did::OK, 0, 0);
    let e = io::Error::from_raw_os_error(libc::EINVAL);
    sg.refuse(2, vec![0; 4096], "refused by the sg driver: EINVAL", &e);
    assert_eq!(
        drain(&mut sg),
        ["2 failed: refused by the sg driver: EINVAL", "1 good 4096"]
    );
}

#[test]
fn without_a_device_everything_says_disconnected() {
    let (mut sg, _drivers) = backend(vec![Err("none".into())]);
    assert!(!sg.wait_connected(WAIT));
    assert!(matches!(
        sg.next_completion(),
        Err(BackendError::Disconnected(_))
    ));
    assert!(matches!(sg.flush(), Err(BackendError::Disconnected(_))));
    assert_eq!(sg.abort(1).unwrap(), None);
}

#[test]
fn search_again_drops_the_device_and_probes_it_last() {
    let (tx, drivers) = mpsc::channel::<Driver>();
    let tx = Mutex::new(tx);
    let avoided = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&avoided);
    let n = Mutex::new(0u32);
    let searcher: Searcher = Arc::new(move |avoid: Option<&Path>| {
        seen.lock().unwrap().push(avoid.map(Path::to_path_buf));
        let mut count = n.lock().unwrap();
        *count += 1;
        found(MIB, *count, &tx.lock().unwrap())
    });
    let mut sg = SgInitiator::with_searcher(searcher);
    assert!(
        !sg.search_again(),
        "nothing to drop before a device is in use"
    );
    assert!(sg.wait_connected(WAIT));
    let _first = drivers.recv_timeout(WAIT).unwrap();
    assert_eq!(sg.device(), Some(Path::new("/dev/sg1")));
    assert!(sg.search_again());
    assert!(!sg.is_connected() && sg.device().is_none());
    reconnect(&mut sg);
    assert_eq!(sg.device(), Some(Path::new("/dev/sg2")));
    let avoided = avoided.lock().unwrap().clone();
    assert_eq!(avoided, [None, Some(PathBuf::from("/dev/sg1"))]);
}

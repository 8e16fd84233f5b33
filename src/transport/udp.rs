//! The Ethernet path (FC's backup, or the only path): each batch is one UDP datagram to the
//! peer's endpoint.
//!
//! It carries the same session as Fibre Channel (same keys, counter and sequence space), so a
//! frame sent on FC and resent here is delivered once. Datagrams that fail any check are
//! dropped and counted by the link; they never move traffic away from FC.

mod coalesce;

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, getsockopt, recvmsg, sendmsg,
    setsockopt, sockopt,
};

use self::coalesce::{Coalescer, Commit, MAX_GROUP_BYTES, MAX_SEGMENTS, segments};
use super::{Transport, TransportCounters};
use crate::link::Link;

/// The link path id of the Ethernet path.
pub const ETHERNET_PATH: u8 = 1;
/// Most batches taken from the link, and most receive calls, per drive, so one busy direction
/// cannot starve the loop.
const BURST: usize = 256;
/// Receive buffer: the largest datagram, or the largest group UDP GRO hands over at once.
const RECV_BUFFER: usize = 65_536;
/// Socket errors mark the path down at most once per this interval (SPEC §12): a route that
/// keeps failing keeps the path down, a single error does not make it flap.
pub const ERROR_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The sender's address as the link's cookies see it: the IPv6 address (an IPv4 one mapped,
/// `::ffff:a.b.c.d`), then the port, big-endian; empty if the kernel did not say.
pub fn source_bytes(from: Option<SocketAddr>) -> ([u8; 18], usize) {
    let mut b = [0u8; 18];
    let Some(from) = from else {
        return (b, 0);
    };
    let ip = match from.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    };
    b[..16].copy_from_slice(&ip);
    b[16..].copy_from_slice(&from.port().to_be_bytes());
    (b, 18)
}

/// The UDP transport.
///
/// Batches leave in groups through UDP segmentation offload (one `sendmsg` carries up to 64
/// datagrams, see [`coalesce`]) and arrive in groups through UDP GRO, when the kernel offers
/// both (Linux 5.0 and later): per-datagram work in the kernel is what limits this path, not
/// the bytes. Without them, each batch is its own system call.
pub struct UdpPath {
    socket: UdpSocket,
    endpoint: SocketAddr,
    endpoint_addr: SockaddrStorage,
    max_datagram: usize,
    /// Batches waiting to be sent as one group: the group, then room for one more batch.
    send_buf: Vec<u8>,
    coalescer: Coalescer,
    /// Whether sends use UDP segmentation offload.
    gso: bool,
    /// Whether receives may return several datagrams at once (UDP GRO).
    gro: bool,
    recv_buf: Vec<u8>,
    counters: TransportCounters,
    errors: u64,
    /// Whether a socket error happened since the last drive reported one to the link.
    failed: bool,
    /// When a socket error last marked the path down.
    reported_at: Option<Duration>,
    /// Times socket errors marked the path down.
    reports: u64,
    /// Whether the last drive stopped at [`BURST`] with work left (the loop must come back at
    /// once rather than wait for a descriptor or a timer).
    more: bool,
}

impl UdpPath {
    /// Binds `listen` and sends to `endpoint`, in datagrams of at most `max_datagram` bytes.
    pub fn bind(listen: SocketAddr, endpoint: SocketAddr, max_datagram: usize) -> io::Result<Self> {
        let socket = UdpSocket::bind(listen)?;
        socket.set_nonblocking(true)?;
        set_buffers(&socket);
        // Reading the option tells whether the kernel knows UDP_SEGMENT at all.
        let gso = getsockopt(&socket, sockopt::UdpGsoSegment).is_ok();
        let gro = setsockopt(&socket, sockopt::UdpGroSegment, &true).is_ok();
        let mut coalescer = Coalescer::new(MAX_SEGMENTS);
        if !gso {
            coalescer.disable();
        }
        tracing::debug!("ethernet: UDP GSO {gso}, GRO {gro}");
        Ok(Self {
            socket,
            endpoint,
            endpoint_addr: SockaddrStorage::from(endpoint),
            max_datagram,
            send_buf: vec![0u8; MAX_GROUP_BYTES.max(max_datagram) + max_datagram],
            coalescer,
            gso,
            gro,
            recv_buf: vec![0u8; RECV_BUFFER],
            counters: TransportCounters::default(),
            errors: 0,
            failed: false,
            reported_at: None,
            reports: 0,
            more: false,
        })
    }

    /// Takes what arrived; false if it stopped at [`BURST`] with more perhaps waiting.
    fn receive(&mut self, now: Duration, link: &mut Link, deliver: &mut dyn FnMut(&[u8])) -> bool {
        for _ in 0..BURST {
            match self.receive_group() {
                Ok((n, segment, from)) => {
                    let (source, len) = source_bytes(from);
                    for r in segments(n, segment) {
                        self.counters.batches_in += 1;
                        let batch = &mut self.recv_buf[r];
                        link.handle_datagram(now, ETHERNET_PATH, &source[..len], batch, deliver);
                    }
                }
                Err(e) if is_transient(&e) => return true,
                Err(e) => {
                    self.error("receive", &e);
                    return true;
                }
            }
        }
        false
    }

    /// Receives one datagram, or a group of them (GRO); returns the length, the segment
    /// size (0: one datagram) and the sender.
    fn receive_group(&mut self) -> io::Result<(usize, usize, Option<SocketAddr>)> {
        if !self.gro {
            let (n, from) = self.socket.recv_from(&mut self.recv_buf)?;
            return Ok((n, 0, Some(from)));
        }
        let mut cmsg = nix::cmsg_space!(i32);
        let mut iov = [IoSliceMut::new(&mut self.recv_buf)];
        let msg = recvmsg::<SockaddrStorage>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )?;
        let segment = msg
            .cmsgs()
            .into_iter()
            .flatten()
            .find_map(|c| match c {
                ControlMessageOwned::UdpGroSegments(size) => usize::try_from(size).ok(),
                _ => None,
            })
            .unwrap_or(0);
        let from = msg.address.and_then(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(SocketAddr::from((v4.ip(), v4.port())))
            } else {
                a.as_sockaddr_in6()
                    .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
            }
        });
        Ok((msg.bytes, segment, from))
    }

    /// Sends what the link has; false if it stopped at [`BURST`] with more perhaps waiting.
    fn send(&mut self, now: Duration, link: &mut Link) -> bool {
        let mut done = false;
        for _ in 0..BURST {
            let at = self.coalescer.offset();
            let out = &mut self.send_buf[at..at + self.max_datagram];
            let Some(n) = link.poll_transmit(now, ETHERNET_PATH, out) else {
                done = true;
                break;
            };
            match self.coalescer.commit(n) {
                Commit::Joined => {}
                Commit::JoinedSend => self.flush(),
                Commit::Apart { start } => {
                    self.flush();
                    self.send_buf.copy_within(start..start + n, 0);
                    if self.coalescer.restart(n) == Commit::JoinedSend {
                        self.flush();
                    }
                }
            }
        }
        if !self.coalescer.is_empty() {
            self.flush();
        }
        done
    }

    /// Sends the open group: one `sendmsg` with GSO, or one datagram at a time.
    fn flush(&mut self) {
        let (len, segment, count) = (
            self.coalescer.len(),
            self.coalescer.segment(),
            self.coalescer.count(),
        );
        self.coalescer.clear();
        if count > 1 && self.gso {
            match self.send_segmented(len, segment) {
                Ok(()) => {
                    self.counters.batches_out += count as u64;
                    return;
                }
                // A full socket buffer drops the group; the link resends what mattered.
                Err(Errno::EAGAIN) => {
                    self.counters.transport_errors += count as u64;
                    return;
                }
                // The kernel or the route refuses segmentation (a datagram larger than the
                // path MTU, say): from now on every batch goes alone.
                Err(e @ (Errno::EINVAL | Errno::EIO | Errno::ENOPROTOOPT | Errno::EOPNOTSUPP)) => {
                    tracing::info!(
                        "ethernet: UDP segmentation offload refused ({e}); not using it"
                    );
                    self.gso = false;
                    self.coalescer.disable();
                }
                Err(e) => {
                    self.counters.transport_errors += count as u64;
                    self.error("send", &e.into());
                    return;
                }
            }
        }
        for r in segments(len, segment) {
            match self.socket.send_to(&self.send_buf[r], self.endpoint) {
                Ok(_) => self.counters.batches_out += 1,
                Err(e) if is_transient(&e) => self.counters.transport_errors += 1,
                Err(e) => {
                    self.counters.transport_errors += 1;
                    self.error("send", &e);
                }
            }
        }
    }

    /// Hands `send_buf[..len]` to the kernel as datagrams of `segment` bytes (the last may be
    /// shorter).
    fn send_segmented(&self, len: usize, segment: usize) -> nix::Result<()> {
        let segment = u16::try_from(segment).map_err(|_| Errno::EINVAL)?;
        let iov = [IoSlice::new(&self.send_buf[..len])];
        let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
        sendmsg(
            self.socket.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::empty(),
            Some(&self.endpoint_addr),
        )?;
        Ok(())
    }

    /// A socket error other than EAGAIN/EINTR (ENETUNREACH, EHOSTUNREACH, ECONNREFUSED from
    /// ICMP, EACCES, ...): logged sparsely, and reported to the link at the end of the drive.
    fn error(&mut self, what: &str, e: &io::Error) {
        self.failed = true;
        self.errors += 1;
        if self.errors.is_power_of_two() {
            tracing::warn!("ethernet {what} failed ({} so far): {e}", self.errors);
        }
    }
}

impl UdpPath {
    /// Marks the path down after socket errors, at most once per [`ERROR_REPORT_INTERVAL`].
    fn report_errors(&mut self, now: Duration, link: &mut Link) {
        if !std::mem::take(&mut self.failed) {
            return;
        }
        if self
            .reported_at
            .is_some_and(|t| now < t + ERROR_REPORT_INTERVAL)
        {
            return;
        }
        self.reported_at = Some(now);
        self.reports += 1;
        link.handle_path_error(now, ETHERNET_PATH);
    }
}

/// Errors that say "not now" rather than "this path is broken".
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Socket buffer size asked for: room for the path's window in both directions.
const SOCKET_BUFFER: usize = 8 << 20;

/// Enlarges the socket buffers (beyond `net.core.*mem_max` when allowed); best effort.
fn set_buffers(socket: &UdpSocket) {
    let forced = setsockopt(socket, sockopt::RcvBufForce, &SOCKET_BUFFER).and(setsockopt(
        socket,
        sockopt::SndBufForce,
        &SOCKET_BUFFER,
    ));
    if forced.is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &SOCKET_BUFFER);
        let _ = setsockopt(socket, sockopt::SndBuf, &SOCKET_BUFFER);
    }
}

impl Transport for UdpPath {
    fn path(&self) -> u8 {
        ETHERNET_PATH
    }

    fn interest(&self) -> Option<(BorrowedFd<'_>, bool)> {
        Some((self.socket.as_fd(), false))
    }

    fn drive(&mut self, now: Duration, link: &mut Link, deliver: &mut dyn FnMut(&[u8])) {
        let received = self.receive(now, link, deliver);
        let sent = self.send(now, link);
        self.more = !(received && sent);
        self.report_errors(now, link);
    }

    fn deadline(&self) -> Option<Duration> {
        // Work left over from a burst is due now.
        self.more.then_some(Duration::ZERO)
    }

    fn counters(&self) -> TransportCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two sockets on the loopback interface: `a` sends to `b`.
    fn pair(max_datagram: usize) -> (UdpPath, UdpPath) {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let b = UdpPath::bind(any, any, max_datagram).unwrap();
        let to_b = b.socket.local_addr().unwrap();
        let a = UdpPath::bind(any, to_b, max_datagram).unwrap();
        (a, b)
    }

    /// Everything `b` receives within a second, as separate datagrams.
    fn drain(b: &mut UdpPath, want: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while got.len() < want && std::time::Instant::now() < deadline {
            match b.receive_group() {
                Ok((n, segment, _)) => {
                    got.extend(segments(n, segment).map(|r| b.recv_buf[r].to_vec()))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("receive: {e}"),
            }
        }
        got
    }

    #[test]
    fn a_group_arrives_as_its_datagrams() {
        let (mut a, mut b) = pair(1472);
        // Three full datagrams and a short one, each filled with its own byte.
        let lens = [1472, 1472, 1472, 300];
        let mut sent = Vec::new();
        for (i, &n) in lens.iter().enumerate() {
            let at = a.coalescer.offset();
            a.send_buf[at..at + n].fill(i as u8 + 1);
            sent.push(vec![i as u8 + 1; n]);
            let c = a.coalescer.commit(n);
            assert_eq!(c == Commit::JoinedSend, i == 3, "{c:?}");
        }
        a.flush();
        assert_eq!(a.counters.batches_out, 4);
        assert_eq!(a.counters.transport_errors, 0);
        assert_eq!(drain(&mut b, 4), sent, "gso {} gro {}", a.gso, b.gro);
    }

    #[test]
    fn socket_errors_mark_the_path_down_at_most_once_a_second() {
        use crate::link::path::{DownCause, PathState};
        use crate::link::{Event, LinkConfig, PathConfig};
        struct Counting(u8);
        impl crate::link::Entropy for Counting {
            fn fill(&mut self, buf: &mut [u8]) {
                buf.iter_mut().for_each(|b| {
                    self.0 = self.0.wrapping_add(1);
                    *b = self.0
                });
            }
        }
        let key = |b: u8| {
            let private = crate::crypto::PrivateKey::from_bytes([b; 32]);
            crate::crypto::LocalStatic {
                public: private.public_key(),
                private,
            }
        };
        let paths = vec![PathConfig::new(ETHERNET_PATH, "ethernet", 1, 1472)];
        let cfg = LinkConfig::new(key(1), key(2).public, paths);
        let mut link = Link::new(cfg, Box::new(Counting(0)), Duration::ZERO).unwrap();
        // A broadcast address without SO_BROADCAST: every send fails with EACCES.
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let broadcast: SocketAddr = "255.255.255.255:9".parse().unwrap();
        let mut udp = UdpPath::bind(any, broadcast, 1472).unwrap();
        let ms = Duration::from_millis(1);
        for t in [0, 600, 1100, 1300] {
            let now = ms * t;
            link.handle_timeout(now);
            udp.drive(now, &mut link, &mut |_| {});
        }
        // Initiations at 0, ~560 and ~1120 ms all failed; reports at 0 and ~1120 ms only.
        assert!(udp.errors >= 3, "{} errors", udp.errors);
        assert_eq!(udp.reports, 2);
        assert_eq!(link.stats(ms * 1300).paths[0].state, PathState::Down);
        let down = std::iter::from_fn(|| link.poll_event()).find(|e| {
            matches!(
                e,
                Event::PathDown {
                    path: ETHERNET_PATH,
                    cause: DownCause::TransportError
                }
            )
        });
        assert!(down.is_some());
    }

    #[test]
    fn without_offloads_datagrams_go_one_by_one() {
        let (mut a, mut b) = pair(1000);
        a.gso = false;
        a.coalescer.disable();
        b.gro = false;
        for i in 0..3u8 {
            a.send_buf[..1000].fill(i);
            assert_eq!(a.coalescer.commit(1000), Commit::JoinedSend);
            a.flush();
        }
        let got = drain(&mut b, 3);
        assert_eq!(got, (0..3u8).map(|i| vec![i; 1000]).collect::<Vec<_>>());
    }
}

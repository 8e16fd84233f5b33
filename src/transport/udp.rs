//! The Ethernet backup path: each batch is one UDP datagram to the peer's endpoint.
//!
//! It carries the same session as Fibre Channel (same keys, counter and sequence space), so a
//! frame sent on FC and resent here is delivered once. Datagrams that fail any check are
//! dropped and counted by the link; they never move traffic away from FC.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::{Transport, TransportCounters};
use crate::link::Link;

/// The link path id of the Ethernet path.
pub const ETHERNET_PATH: u8 = 1;
/// Most datagrams read or written per drive, so one busy direction cannot starve the loop.
const BURST: usize = 256;

/// The UDP transport.
pub struct UdpPath {
    socket: UdpSocket,
    endpoint: SocketAddr,
    max_datagram: usize,
    buf: Vec<u8>,
    counters: TransportCounters,
    errors: u64,
}

impl UdpPath {
    /// Binds `listen` and sends to `endpoint`, in datagrams of at most `max_datagram` bytes.
    pub fn bind(listen: SocketAddr, endpoint: SocketAddr, max_datagram: usize) -> io::Result<Self> {
        let socket = UdpSocket::bind(listen)?;
        socket.set_nonblocking(true)?;
        set_buffers(&socket);
        Ok(Self {
            socket,
            endpoint,
            max_datagram,
            buf: vec![0u8; 65_536],
            counters: TransportCounters::default(),
            errors: 0,
        })
    }

    fn receive(&mut self, now: Duration, link: &mut Link, deliver: &mut dyn FnMut(&[u8])) {
        for _ in 0..BURST {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, _from)) => {
                    self.counters.batches_in += 1;
                    link.handle_batch(now, ETHERNET_PATH, &mut self.buf[..n], deliver);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.error("receive", &e);
                    return;
                }
            }
        }
    }

    fn send(&mut self, now: Duration, link: &mut Link) {
        for _ in 0..BURST {
            let max = self.max_datagram;
            let Some(n) = link.poll_transmit(now, ETHERNET_PATH, &mut self.buf[..max]) else {
                return;
            };
            match self.socket.send_to(&self.buf[..n], self.endpoint) {
                Ok(_) => self.counters.batches_out += 1,
                // A full socket buffer drops the datagram; the link resends what mattered.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.counters.transport_errors += 1
                }
                Err(e) => {
                    self.counters.transport_errors += 1;
                    self.error("send", &e);
                }
            }
        }
    }

    fn error(&mut self, what: &str, e: &io::Error) {
        self.errors += 1;
        if self.errors.is_power_of_two() {
            tracing::warn!("ethernet {what} failed ({} so far): {e}", self.errors);
        }
    }
}

/// Socket buffer size asked for: room for the path's window in both directions.
const SOCKET_BUFFER: usize = 8 << 20;

/// Enlarges the socket buffers (beyond `net.core.*mem_max` when allowed); best effort.
fn set_buffers(socket: &UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
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
        self.receive(now, link, deliver);
        self.send(now, link);
    }

    fn deadline(&self) -> Option<Duration> {
        None
    }

    fn counters(&self) -> TransportCounters {
        self.counters
    }
}

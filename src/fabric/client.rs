//! A port's side of the fabric: [`PortConnection`].
//!
//! The connection is non-blocking once logged in, made for a driver's `poll` loop:
//! 1. poll [`PortConnection::fd`] for `POLLIN`, and for `POLLOUT` while
//!    [`PortConnection::wants_write`];
//! 2. on `POLLOUT`, call [`PortConnection::flush`];
//! 3. on `POLLIN` (or `POLLHUP`/`POLLERR`), call [`PortConnection::recv`] **until it returns
//!    `Ok(None)`**: messages already read into the buffer do not wake `poll` again.
//!
//! [`FabricError::Closed`] from any call means the fabric is gone (killed or restarted): every
//! command in flight is lost, and the port reconnects with [`PortConnection::connect`].

use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::FabricError;
use super::proto::{LoginStatus, Message};
use super::stream::{FramedStream, connect_nonblocking};

pub use super::proto::Role;

/// The most bytes a port lets wait for the fabric before [`PortConnection::send`] refuses more
/// with [`FabricError::Congested`] (the fabric itself disconnects a port that leaves this much
/// unread).
pub const MAX_SEND_QUEUE: usize = 64 * 1024 * 1024;

/// How often [`PortConnection::connect`] retries while the fabric is not there yet.
const CONNECT_RETRY: Duration = Duration::from_millis(10);

/// A port logged in to the fabric: a non-blocking Unix stream with frame buffers.
#[derive(Debug)]
pub struct PortConnection {
    stream: FramedStream,
    role: Role,
    wwpn: u64,
}

impl PortConnection {
    /// Connects to the fabric at `path`, logs in as `role` with `wwpn`, and waits for the
    /// LOGIN_ACK, all within `timeout`.
    ///
    /// While the socket file is missing, nobody listens on it, or its backlog is full (a
    /// restarting or paused fabric), it retries every 10 ms until the timeout, then returns
    /// [`FabricError::Connect`] with the last error. A refused login (a second target) is
    /// [`FabricError::LoginRefused`]; no answer in time is [`FabricError::Timeout`].
    pub fn connect(
        path: &Path,
        role: Role,
        wwpn: u64,
        timeout: Duration,
    ) -> Result<Self, FabricError> {
        let deadline = Instant::now() + timeout;
        let stream = connect_until(path, deadline)?;
        let mut conn = PortConnection {
            stream: FramedStream::new(stream)?,
            role,
            wwpn,
        };
        conn.stream.queue_message(&Message::Login { role, wwpn })?;
        loop {
            if let Some(msg) = conn.stream.next_buffered()? {
                return match msg {
                    Message::LoginAck {
                        status: LoginStatus::Ok,
                    } => Ok(conn),
                    Message::LoginAck { status } => Err(FabricError::LoginRefused(status)),
                    other => Err(FabricError::Unexpected(other.type_code())),
                };
            }
            conn.stream.flush()?;
            if !conn.wait(deadline)? {
                return Err(FabricError::Timeout);
            }
            conn.stream.fill()?;
        }
    }

    /// The role this port logged in with.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The WWPN this port logged in with.
    pub fn wwpn(&self) -> u64 {
        self.wwpn
    }

    /// The socket, for the driver's `poll`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.fd()
    }

    /// Queues `msg` and writes as much as the socket takes now. The rest leaves on later
    /// [`flush`](Self::flush) calls. Fails, queueing nothing, when `msg` breaks a limit of the
    /// codec ([`FabricError::Proto`]) or when [`MAX_SEND_QUEUE`] bytes already wait
    /// ([`FabricError::Congested`]).
    pub fn send(&mut self, msg: &Message) -> Result<(), FabricError> {
        let queued = self.stream.queued_bytes();
        if queued > 0 && queued + msg.encoded_len() > MAX_SEND_QUEUE {
            return Err(FabricError::Congested { queued });
        }
        self.stream.queue_message(msg)?;
        self.stream.flush()
    }

    /// Writes queued bytes until done or the socket would block (call it on `POLLOUT`).
    pub fn flush(&mut self) -> Result<(), FabricError> {
        self.stream.flush()
    }

    /// Whether bytes wait to be written: poll for `POLLOUT`.
    pub fn wants_write(&self) -> bool {
        self.stream.wants_write()
    }

    /// The number of bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.stream.queued_bytes()
    }

    /// The next message: from the buffer if one is complete there, else after reading what the
    /// socket has. `Ok(None)` when no complete message is available without blocking;
    /// [`FabricError::Closed`] at end of stream; [`FabricError::Proto`] on a malformed frame.
    pub fn recv(&mut self) -> Result<Option<Message>, FabricError> {
        loop {
            if let Some(msg) = self.stream.next_buffered()? {
                return Ok(Some(msg));
            }
            if !self.stream.fill()? {
                return Ok(None);
            }
        }
    }

    /// Like [`recv`](Self::recv), but waits up to `timeout` for a message, flushing queued
    /// bytes meanwhile: `Ok(None)` when none came. For tests and simple ports.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>, FabricError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(msg) = self.recv()? {
                return Ok(Some(msg));
            }
            self.stream.flush()?;
            if !self.wait(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Polls until the socket is readable (or writable while bytes wait), or the deadline.
    /// False at the deadline.
    fn wait(&self, deadline: Instant) -> Result<bool, FabricError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let mut events = PollFlags::POLLIN;
            if self.stream.wants_write() {
                events |= PollFlags::POLLOUT;
            }
            let mut fds = [PollFd::new(self.stream.fd(), events)];
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(0) => continue,
                Ok(_) => return Ok(true),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(FabricError::Io(e.into())),
            }
        }
    }
}

/// Connects to `path`, retrying while the fabric is absent or busy, until `deadline`.
fn connect_until(
    path: &Path,
    deadline: Instant,
) -> Result<std::os::unix::net::UnixStream, FabricError> {
    let connect_error = |source: io::Error| FabricError::Connect {
        path: PathBuf::from(path),
        source,
    };
    loop {
        let last = match connect_nonblocking(path) {
            Ok(Some(stream)) => return Ok(stream),
            Ok(None) => io::Error::from(io::ErrorKind::WouldBlock),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                e
            }
            Err(e) => return Err(connect_error(e)),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(connect_error(last));
        }
        std::thread::sleep(left.min(CONNECT_RETRY));
    }
}

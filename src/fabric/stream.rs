//! A non-blocking Unix stream with frame buffers, shared by the fabric and the ports.
//!
//! Reading: [`FramedStream::fill`] does at most one `read` into a buffer that grows to hold the
//! frame being received (never beyond one maximal frame plus a read chunk), and
//! [`FramedStream::next_buffered`] decodes complete frames out of it without reading. Writing:
//! frames wait in a queue of byte vectors (small frames share one vector, so a burst of small
//! messages leaves in one system call) and [`FramedStream::flush`] sends until the socket would
//! block. Writes use `MSG_NOSIGNAL`: a closed peer is an error, never a SIGPIPE.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

use super::FabricError;
use super::proto::{self, Message, ProtoError};

/// The read buffer's initial size, and the least free space a read is given.
const READ_CHUNK: usize = 256 * 1024;
/// Frames up to this size are appended to the last queued vector instead of getting their own.
const COALESCE: usize = 64 * 1024;

/// Starts a non-blocking connection to the Unix stream socket at `path`.
///
/// A listening socket accepts the connection at once; `Ok(None)` means its backlog is full (a busy
/// or stopped listener: try again later). A missing socket file or a socket nobody listens on is
/// an error (`NotFound`, `ConnectionRefused`).
pub(crate) fn connect_nonblocking(path: &Path) -> io::Result<Option<UnixStream>> {
    let addr = UnixAddr::new(path).map_err(io::Error::from)?;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)?;
    loop {
        match socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => return Ok(Some(UnixStream::from(fd))),
            Err(Errno::EINTR) => continue,
            // Linux answers EAGAIN when a Unix listener's backlog is full.
            Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A non-blocking Unix stream with a read buffer and a write queue of whole frames.
#[derive(Debug)]
pub(crate) struct FramedStream {
    stream: UnixStream,
    rbuf: Vec<u8>,
    /// Undecoded bytes are `rbuf[rstart..rend]`.
    rstart: usize,
    rend: usize,
    wqueue: VecDeque<Vec<u8>>,
    /// Bytes of the front vector already sent.
    woff: usize,
    /// Bytes queued and not yet sent.
    wbytes: usize,
}

impl FramedStream {
    /// Wraps `stream` and makes it non-blocking.
    pub(crate) fn new(stream: UnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(FramedStream {
            stream,
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            wqueue: VecDeque::new(),
            woff: 0,
            wbytes: 0,
        })
    }

    /// The socket, for `poll`.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Decodes the next complete frame already read, without reading: `Ok(None)` when the buffer
    /// holds no complete frame. An error means the stream is out of sync and must be closed.
    pub(crate) fn next_buffered(&mut self) -> Result<Option<Message>, ProtoError> {
        let buffered = &self.rbuf[self.rstart..self.rend];
        match proto::decode(buffered)? {
            Some((msg, used)) => {
                self.rstart += used;
                if self.rstart == self.rend {
                    self.rstart = 0;
                    self.rend = 0;
                }
                Ok(Some(msg))
            }
            None => Ok(None),
        }
    }

    /// Does one `read`: `Ok(true)` when bytes arrived, `Ok(false)` when the socket would block,
    /// [`FabricError::Closed`] at end of stream or on a reset, and [`FabricError::Proto`] when the
    /// frame being received announces an invalid length.
    pub(crate) fn fill(&mut self) -> Result<bool, FabricError> {
        let want = match proto::frame_len(&self.rbuf[self.rstart..self.rend])? {
            Some(total) => total.max(READ_CHUNK),
            None => READ_CHUNK,
        };
        if self.rstart > 0 && self.rstart + want > self.rbuf.len() {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            self.rend -= self.rstart;
            self.rstart = 0;
        }
        if self.rbuf.len() < self.rstart + want || self.rbuf.len() == self.rend {
            let len = (self.rstart + want).max(self.rend + READ_CHUNK);
            self.rbuf.resize(len, 0);
        }
        loop {
            match (&self.stream).read(&mut self.rbuf[self.rend..]) {
                Ok(0) => return Err(FabricError::Closed),
                Ok(n) => {
                    self.rend += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if is_disconnect(&e) => return Err(FabricError::Closed),
                Err(e) => return Err(FabricError::Io(e)),
            }
        }
    }

    /// Queues the frame of `msg` (nothing is queued when it breaks a limit of the codec).
    pub(crate) fn queue_message(&mut self, msg: &Message) -> Result<(), ProtoError> {
        let len = msg.encoded_len();
        match self.coalescing_tail(len) {
            Some(tail) => proto::encode(msg, tail)?,
            None => {
                let mut frame = Vec::with_capacity(len);
                proto::encode(msg, &mut frame)?;
                self.wqueue.push_back(frame);
            }
        }
        self.wbytes += len;
        Ok(())
    }

    /// Queues an encoded frame.
    pub(crate) fn queue_frame(&mut self, frame: Vec<u8>) {
        let len = frame.len();
        match self.coalescing_tail(len) {
            Some(tail) => tail.extend_from_slice(&frame),
            None => self.wqueue.push_back(frame),
        }
        self.wbytes += len;
    }

    /// The last queued vector, when a frame of `len` bytes should be appended to it.
    fn coalescing_tail(&mut self, len: usize) -> Option<&mut Vec<u8>> {
        if len > COALESCE {
            return None;
        }
        self.wqueue
            .back_mut()
            .filter(|tail| tail.len() + len <= COALESCE)
    }

    /// Sends queued bytes until the queue is empty or the socket would block.
    /// [`FabricError::Closed`] when the peer is gone.
    pub(crate) fn flush(&mut self) -> Result<(), FabricError> {
        let fd = self.stream.as_raw_fd();
        while let Some(front) = self.wqueue.front() {
            match socket::send(
                fd,
                &front[self.woff..],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) => {
                    self.woff += n;
                    self.wbytes -= n;
                    if self.woff == front.len() {
                        self.wqueue.pop_front();
                        self.woff = 0;
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EPIPE) | Err(Errno::ECONNRESET) => return Err(FabricError::Closed),
                Err(e) => return Err(FabricError::Io(e.into())),
            }
        }
        Ok(())
    }

    /// Whether bytes wait to be sent (poll for `POLLOUT`).
    pub(crate) fn wants_write(&self) -> bool {
        self.wbytes > 0
    }

    /// The number of bytes waiting to be sent.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.wbytes
    }
}

/// Whether an I/O error means the peer has gone.
fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::fabric::proto::{Completion, TransportStatus};

    fn pair() -> (FramedStream, FramedStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (FramedStream::new(a).unwrap(), FramedStream::new(b).unwrap())
    }

    fn completion(task: u64, len: usize) -> Message {
        Message::Completion(Completion {
            task,
            initiator: 1,
            transport: TransportStatus::Delivered,
            status: 0,
            sense: Vec::new(),
            data_in: (0..len).map(|i| i as u8).collect(),
        })
    }

    /// Moves bytes both ways until `b` has `n` messages.
    fn pump(a: &mut FramedStream, b: &mut FramedStream, n: usize) -> Vec<Message> {
        let mut got = Vec::new();
        while got.len() < n {
            a.flush().unwrap();
            b.fill().unwrap();
            while let Some(m) = b.next_buffered().unwrap() {
                got.push(m);
            }
        }
        got
    }

    #[test]
    fn small_and_large_frames_cross_in_order() {
        let (mut a, mut b) = pair();
        let sizes = [0, 1, 100, 70_000, 3, 5 << 20, 0, 300_000];
        let msgs: Vec<Message> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| completion(i as u64, n))
            .collect();
        for m in &msgs {
            a.queue_message(m).unwrap();
        }
        assert!(a.wants_write());
        let total: usize = msgs.iter().map(Message::encoded_len).sum();
        assert_eq!(a.queued_bytes(), total);
        assert_eq!(pump(&mut a, &mut b, msgs.len()), msgs);
        assert!(!a.wants_write());
        assert!(b.rbuf.len() <= (5 << 20) + 64 + READ_CHUNK);
    }

    #[test]
    fn would_block_then_eof() {
        let (mut a, mut b) = pair();
        assert!(!b.fill().unwrap());
        assert_eq!(b.next_buffered().unwrap(), None);
        a.queue_frame(proto::encode_to_vec(&completion(1, 10)).unwrap());
        a.flush().unwrap();
        drop(a);
        assert!(b.fill().unwrap());
        assert_eq!(b.next_buffered().unwrap(), Some(completion(1, 10)));
        assert!(matches!(b.fill(), Err(FabricError::Closed)));
    }

    #[test]
    fn bad_length_is_refused_before_buffering() {
        let (a, mut b) = pair();
        (&a.stream).write_all(&[0xff, 0xff, 0xff, 0xff, 1]).unwrap();
        assert!(b.fill().unwrap());
        assert!(matches!(
            b.next_buffered(),
            Err(ProtoError::FrameTooLarge(_))
        ));
        assert!(matches!(
            b.fill(),
            Err(FabricError::Proto(ProtoError::FrameTooLarge(_)))
        ));
    }

    #[test]
    fn write_to_closed_peer_is_closed_not_sigpipe() {
        let (mut a, b) = pair();
        drop(b);
        a.queue_message(&completion(1, 10)).unwrap();
        assert!(matches!(a.flush(), Err(FabricError::Closed)));
    }
}

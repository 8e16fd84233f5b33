//! Checksummed TCP transfers through the tunnel: a thread in one namespace streams
//! pseudo-random bytes to a thread in the other over one TCP connection; both hash what they
//! handled with SHA-256. The receiver accepts exactly one connection, so a transfer whose hashes
//! match was carried by a connection that was never reset.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{ADDRS, Netns, Topology};

const CHUNK: usize = 256 << 10;
/// The smallest write of a paced sender.
const MIN_PACED_CHUNK: usize = 16 << 10;
/// A paced sender writes about this often.
const PACE: Duration = Duration::from_millis(5);
/// By default, a gap between two reads at least this long is recorded as a [`Stall`].
pub const STALL: Duration = Duration::from_millis(50);

/// A pause in the data flow seen by the receiver.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    /// The last read before the pause.
    pub from: Instant,
    /// The first read after it.
    pub until: Instant,
    /// Bytes received before the pause.
    pub at_bytes: u64,
}

impl Stall {
    /// How long it lasted.
    pub fn length(&self) -> Duration {
        self.until - self.from
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct TransferSpec {
    /// Bytes to send.
    pub bytes: u64,
    /// Average sending rate in bytes per second (`None`: as fast as TCP goes).
    pub rate: Option<u64>,
    /// The receiver's TCP port.
    pub port: u16,
    /// Longest either side waits for the other before giving up (a read or write timeout).
    pub idle_timeout: Duration,
    /// Longest the whole transfer may take (the receiver gives up then).
    pub limit: Duration,
    /// Seed of the pseudo-random bytes.
    pub seed: u64,
    /// Gaps between two reads at least this long are recorded as [`Stall`]s.
    pub stall: Duration,
}

impl TransferSpec {
    /// `bytes` as fast as possible, port 7100, 20 s idle timeout, 75 s in all at most.
    pub fn new(bytes: u64) -> Self {
        Self {
            bytes,
            rate: None,
            port: 7100,
            idle_timeout: Duration::from_secs(20),
            limit: Duration::from_secs(75),
            seed: 0x5eed_f00d,
            stall: STALL,
        }
    }

    /// At most `bytes_per_s` on average, in writes about every 5 ms.
    pub fn rate(mut self, bytes_per_s: u64) -> Self {
        self.rate = Some(bytes_per_s);
        self
    }

    /// Records gaps of at least `gap` as stalls.
    pub fn stall(mut self, gap: Duration) -> Self {
        self.stall = gap;
        self
    }

    /// Receiver port `port`.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The size of each write.
    fn chunk(&self) -> usize {
        match self.rate {
            None => CHUNK,
            Some(rate) => {
                let per_pace = (rate as f64 * PACE.as_secs_f64()) as usize;
                per_pace.clamp(MIN_PACED_CHUNK, CHUNK)
            }
        }
    }
}

/// What a finished transfer measured.
#[derive(Debug, Clone)]
pub struct TransferReport {
    /// SHA-256 of the bytes sent.
    pub sent: [u8; 32],
    /// SHA-256 of the bytes received.
    pub received: [u8; 32],
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// From the connection's start to the receiver's end of stream.
    pub duration: Duration,
    /// The longest time between two reads that returned data.
    pub longest_stall: Duration,
}

impl TransferReport {
    /// Goodput in Mbit/s.
    pub fn mbit_per_s(&self) -> f64 {
        self.bytes_received as f64 * 8.0 / self.duration.as_secs_f64().max(1e-9) / 1e6
    }

    /// Whether every byte arrived intact.
    pub fn intact(&self) -> bool {
        self.sent == self.received && self.bytes_sent == self.bytes_received
    }
}

struct Sent {
    digest: [u8; 32],
    bytes: u64,
}

struct Received {
    digest: [u8; 32],
    bytes: u64,
    duration: Duration,
    longest_stall: Duration,
}

/// A transfer under way.
pub struct Transfer {
    received: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    stalls: Arc<Mutex<Vec<Stall>>>,
    sender: JoinHandle<io::Result<Sent>>,
    receiver: JoinHandle<io::Result<Received>>,
    /// When the sender started.
    pub started: Instant,
}

impl Transfer {
    /// Starts a transfer from a thread in `from` to a listener on `to_addr` in `to`.
    pub fn start(from: &Netns, to: &Netns, to_addr: &str, spec: TransferSpec) -> io::Result<Self> {
        let addr: SocketAddr = format!("{to_addr}:{}", spec.port)
            .parse()
            .map_err(io::Error::other)?;
        let received = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let stalls = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let receiver = {
            let (received, done, stalls, idle, limit, gap) = (
                Arc::clone(&received),
                Arc::clone(&done),
                Arc::clone(&stalls),
                spec.idle_timeout,
                spec.limit,
                spec.stall,
            );
            to.thread("transfer-receiver", move || {
                let r = receive(addr, (idle, limit, gap), &ready_tx, &received, &stalls);
                done.store(true, Ordering::Release);
                r
            })
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(()) => {}
            Err(_) => {
                let e = receiver
                    .join()
                    .map_err(|_| io::Error::other("receiver panicked"))?
                    .err()
                    .unwrap_or_else(|| io::Error::other("receiver not ready"));
                return Err(e);
            }
        }
        let started = Instant::now();
        let sender = from.thread("transfer-sender", move || send(addr, &spec));
        Ok(Self {
            received,
            done,
            stalls,
            sender,
            receiver,
            started,
        })
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Whether the receiver has finished (end of stream or error).
    pub fn finished(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Waits until at least `bytes` were received; fails if the transfer ends first or after
    /// `limit`.
    pub fn wait_for(&self, bytes: u64, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while self.received() < bytes {
            if self.finished() {
                return Err(format!(
                    "the transfer ended after {} bytes, before reaching {bytes}",
                    self.received()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {bytes} bytes received within {limit:?}",
                    self.received()
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Waits until more than `bytes` were received and returns when that happened.
    pub fn wait_beyond(&self, bytes: u64, limit: Duration) -> Result<Instant, String> {
        self.wait_for(bytes + 1, limit).map(|()| Instant::now())
    }

    /// The pauses of at least [`TransferSpec::stall`] so far.
    pub fn stalls(&self) -> Vec<Stall> {
        self.stalls.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The longest recorded pause that overlaps `from..until` (zero if none did).
    pub fn longest_stall_between(&self, from: Instant, until: Instant) -> Duration {
        self.stalls()
            .iter()
            .filter(|s| s.until > from && s.from < until)
            .map(Stall::length)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// The first pause that ends after `t` (an outage at `t` makes one), waiting up to `limit`
    /// for data to flow again.
    pub fn stall_after(&self, t: Instant, limit: Duration) -> Result<Stall, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.stalls().into_iter().find(|s| s.until > t) {
                return Ok(s);
            }
            if self.finished() {
                return Err(format!(
                    "the transfer ended after {} bytes without a pause",
                    self.received()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no data flowed within {limit:?} (at {} bytes)",
                    self.received()
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits for both sides to finish.
    pub fn wait(self) -> Result<TransferReport, String> {
        let sent = self
            .sender
            .join()
            .map_err(|_| "the sender panicked".to_owned())?
            .map_err(|e| format!("sender: {e}"));
        let received = self
            .receiver
            .join()
            .map_err(|_| "the receiver panicked".to_owned())?
            .map_err(|e| format!("receiver: {e}"));
        let (sent, received) = match (sent, received) {
            (Ok(s), Ok(r)) => (s, r),
            (Err(a), Err(b)) => return Err(format!("{a}; {b}")),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        Ok(TransferReport {
            sent: sent.digest,
            received: received.digest,
            bytes_sent: sent.bytes,
            bytes_received: received.bytes,
            duration: received.duration,
            longest_stall: received.longest_stall,
        })
    }
}

fn receive(
    addr: SocketAddr,
    (idle, limit, gap): (Duration, Duration, Duration),
    ready: &mpsc::Sender<()>,
    received: &AtomicU64,
    stalls: &Mutex<Vec<Stall>>,
) -> io::Result<Received> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let _ = ready.send(());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no connection within 15 s",
                ));
            }
            Err(e) => return Err(e),
        }
    };
    drop(listener);
    stream.set_nonblocking(false)?;
    let start = Instant::now();
    let mut last = start;
    let mut longest_stall = Duration::ZERO;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0u64;
    loop {
        let left = limit.checked_sub(start.elapsed()).unwrap_or_default();
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("only {bytes} bytes within {limit:?}"),
            ));
        }
        stream.set_read_timeout(Some(idle.min(left)))?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("after {bytes} bytes: {e}"),
                ));
            }
        };
        let now = Instant::now();
        if n == 0 {
            break;
        }
        if bytes > 0 {
            longest_stall = longest_stall.max(now - last);
            if now - last >= gap {
                if let Ok(mut v) = stalls.lock() {
                    v.push(Stall {
                        from: last,
                        until: now,
                        at_bytes: bytes,
                    });
                }
            }
        }
        last = now;
        hash.update(&buf[..n]);
        bytes += n as u64;
        received.store(bytes, Ordering::Relaxed);
    }
    let duration = start.elapsed();
    Ok(Received {
        digest: hash.finalize().into(),
        bytes,
        duration,
        longest_stall,
    })
}

fn send(addr: SocketAddr, spec: &TransferSpec) -> io::Result<Sent> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_write_timeout(Some(spec.idle_timeout))?;
    stream.set_read_timeout(Some(spec.idle_timeout))?;
    let start = Instant::now();
    let mut rng = spec.seed | 1;
    let mut hash = Sha256::new();
    let chunk = spec.chunk();
    let mut buf = vec![0u8; chunk];
    let mut sent = 0u64;
    while sent < spec.bytes {
        let n = (spec.bytes - sent).min(chunk as u64) as usize;
        for word in buf[..n].chunks_mut(8) {
            // xorshift64*
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            let x = rng.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            word.copy_from_slice(&x[..word.len()]);
        }
        stream
            .write_all(&buf[..n])
            .map_err(|e| io::Error::new(e.kind(), format!("after {sent} bytes: {e}")))?;
        hash.update(&buf[..n]);
        sent += n as u64;
        if let Some(rate) = spec.rate {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    stream.shutdown(Shutdown::Write)?;
    // The receiver closes once it has read everything: wait for that, so that a finished
    // sender means delivered bytes.
    let mut rest = [0u8; 64];
    loop {
        match stream.read(&mut rest) {
            Ok(0) => break,
            Ok(_) => return Err(io::Error::other("the receiver sent data")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Sent {
        digest: hash.finalize().into(),
        bytes: sent,
    })
}

impl Topology {
    /// Starts a transfer from end `from`'s namespace to end `to`'s address.
    pub fn transfer(&self, from: usize, to: usize, spec: TransferSpec) -> Transfer {
        Transfer::start(&self.ns[from], &self.ns[to], ADDRS[to], spec)
            .unwrap_or_else(|e| panic!("starting a transfer: {e}"))
    }

    /// Streams `bytes` pseudo-random bytes over TCP from a thread in namespace `from` to a
    /// thread listening on `to_addr` (one of [`ADDRS`]) in the other namespace; returns
    /// (SHA-256 sent, SHA-256 received, duration).
    pub fn transfer_sha256(
        &self,
        bytes: u64,
        from: usize,
        to_addr: &str,
    ) -> Result<([u8; 32], [u8; 32], Duration), String> {
        let to = ADDRS
            .iter()
            .position(|a| *a == to_addr)
            .ok_or_else(|| format!("{to_addr} is not a tunnel address"))?;
        let r = Transfer::start(
            &self.ns[from],
            &self.ns[to],
            to_addr,
            TransferSpec::new(bytes),
        )
        .map_err(|e| e.to_string())?
        .wait()?;
        Ok((r.sent, r.received, r.duration))
    }
}

/// Hex of a digest, for messages.
pub fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

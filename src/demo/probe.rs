//! Measurements the demo makes itself, between namespaces: UDP echo round trips and a TCP
//! bulk transfer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::netns::NetNs;

const ECHO_PORT: u16 = 7777;
const BULK_PORT: u16 = 5201;

/// Round-trip times.
pub struct Rtt {
    /// Round trips measured.
    pub count: usize,
    /// Fastest.
    pub min_us: u64,
    /// Median.
    pub median_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
}

/// A bulk transfer.
pub struct Throughput {
    /// Bytes received.
    pub bytes: u64,
    /// Seconds it took.
    pub seconds: f64,
}

impl Throughput {
    /// In Gbit/s.
    pub fn gbit_per_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.seconds / 1e9
    }
}

/// `count` UDP echoes from namespace 0 to `to` (in namespace 1).
pub fn ping(ns: &[NetNs; 2], to: &str, count: usize) -> io::Result<Rtt> {
    let addr: SocketAddr = format!("{to}:{ECHO_PORT}")
        .parse()
        .map_err(io::Error::other)?;
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let server = s.spawn(|| ns[1].run(|| echo_server(addr, count, ready_tx)));
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(io::Error::other)??;
        let samples = ns[0].run(|| echo_client(addr, count))??;
        server
            .join()
            .map_err(|_| io::Error::other("echo server panicked"))???;
        Ok(summarize(samples))
    })
}

fn echo_server(
    addr: SocketAddr,
    count: usize,
    ready: mpsc::Sender<io::Result<()>>,
) -> io::Result<()> {
    let sock = match UdpSocket::bind(addr) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
    };
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let _ = ready.send(Ok(()));
    let mut buf = [0u8; 64];
    for _ in 0..count {
        let (n, from) = sock.recv_from(&mut buf)?;
        sock.send_to(&buf[..n], from)?;
    }
    Ok(())
}

fn echo_client(addr: SocketAddr, count: usize) -> io::Result<Vec<Duration>> {
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut samples = Vec::with_capacity(count);
    let mut buf = [0u8; 64];
    for i in 0..count as u64 {
        let t = Instant::now();
        sock.send_to(&i.to_le_bytes(), addr)?;
        let n = sock.recv(&mut buf)?;
        if n == 8 && buf[..8] == i.to_le_bytes() {
            samples.push(t.elapsed());
        }
    }
    Ok(samples)
}

fn summarize(mut s: Vec<Duration>) -> Rtt {
    s.sort();
    let at = |q: f64| {
        s.get(((s.len() as f64 - 1.0) * q) as usize)
            .map_or(0, |d| d.as_micros() as u64)
    };
    Rtt {
        count: s.len(),
        min_us: at(0.0),
        median_us: at(0.5),
        p99_us: at(0.99),
    }
}

/// A TCP stream from namespace `from` to `to` (in the other namespace) for `secs`.
pub fn throughput(
    ns: &[NetNs; 2],
    from: usize,
    to: &str,
    secs: Duration,
) -> io::Result<Throughput> {
    let addr: SocketAddr = format!("{to}:{BULK_PORT}")
        .parse()
        .map_err(io::Error::other)?;
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let server = s.spawn(|| ns[1 - from].run(|| sink(addr, ready_tx)));
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(io::Error::other)??;
        ns[from].run(|| source(addr, secs))??;
        server
            .join()
            .map_err(|_| io::Error::other("sink panicked"))??
    })
}

fn sink(addr: SocketAddr, ready: mpsc::Sender<io::Result<()>>) -> io::Result<Throughput> {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
    };
    let _ = ready.send(Ok(()));
    let (mut stream, _) = listener.accept()?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = vec![0u8; 1 << 18];
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        bytes += n as u64;
    }
    let seconds = first.map_or(0.0, |t| t.elapsed().as_secs_f64()).max(1e-9);
    Ok(Throughput { bytes, seconds })
}

fn source(addr: SocketAddr, secs: Duration) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    let buf = vec![0x5au8; 1 << 18];
    let start = Instant::now();
    while start.elapsed() < secs {
        stream.write_all(&buf)?;
    }
    stream.shutdown(std::net::Shutdown::Write)
}

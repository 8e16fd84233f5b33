//! `udp-relay` and `udp-replay`: capture genuine handshake initiations of a running link and
//! send them again later, as an attacker on the Ethernet path can.
//!
//! - `udp-relay --listen ADDR --to ADDR --capture FILE`: forwards every datagram that arrives
//!   on `ADDR` to `--to` (point an end's `ethernet.endpoint` at it), and appends each
//!   INITIATION it forwards (up to `--keep`) to `FILE`, one datagram per line in hex.
//! - `udp-replay --file FILE --to ADDR --from IP`: sends the captured datagrams `--repeat`
//!   times, `--gap-ms` apart per round.
//!
//! Both print one summary line at the end (the relay after `--seconds` or on SIGTERM/SIGINT).

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use fcvpn::link::wire::{BatchHeader, BatchType};

use super::common::{StopFlag, from_hex, to_hex};

/// How long one receive waits, so that the stop flag and the deadline are seen.
const POLL: Duration = Duration::from_millis(20);

/// Arguments of `udp-relay`.
#[derive(Args, Debug)]
pub struct RelayArgs {
    /// Where to receive.
    #[arg(long)]
    listen: SocketAddr,
    /// Where to forward every datagram.
    #[arg(long)]
    to: SocketAddr,
    /// The file the INITIATIONs are appended to (hex, one per line).
    #[arg(long)]
    capture: PathBuf,
    /// Most INITIATIONs captured.
    #[arg(long, default_value_t = 64)]
    keep: usize,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: f64,
}

/// Arguments of `udp-replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A capture file of `udp-relay`.
    #[arg(long)]
    file: PathBuf,
    /// Where to send them.
    #[arg(long)]
    to: SocketAddr,
    /// The local address to send from.
    #[arg(long)]
    from: IpAddr,
    /// How many times the whole capture is sent.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Pause between two rounds, in milliseconds.
    #[arg(long, default_value_t = 10)]
    gap_ms: u64,
}

/// Runs the relay until `--seconds` pass or a signal stops it.
pub fn relay(a: &RelayArgs) -> Result<(), String> {
    let stop = StopFlag::install()?;
    let socket = UdpSocket::bind(a.listen).map_err(|e| format!("binding {}: {e}", a.listen))?;
    socket
        .set_read_timeout(Some(POLL))
        .map_err(|e| e.to_string())?;
    let mut capture = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&a.capture)
        .map_err(|e| format!("{}: {e}", a.capture.display()))?;
    let started = Instant::now();
    let deadline = started + super::secs(a.seconds);
    let (mut forwarded, mut captured, mut send_errors) = (0u64, 0usize, 0u64);
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline && !stop.is_set() {
        let n = match socket.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("receiving on {}: {e}", a.listen)),
        };
        let d = &buf[..n];
        if captured < a.keep && is_initiation(d) {
            writeln!(capture, "{}", to_hex(d)).map_err(|e| e.to_string())?;
            captured += 1;
        }
        // A full buffer loses the datagram, as a network would.
        match socket.send_to(d, a.to) {
            Ok(_) => forwarded += 1,
            Err(_) => send_errors += 1,
        }
    }
    println!(
        "udp-relay forwarded={forwarded} send_errors={send_errors} captured_initiations={captured} seconds={:.3}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Sends the captured datagrams.
pub fn replay(a: &ReplayArgs) -> Result<(), String> {
    let text =
        std::fs::read_to_string(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let datagrams: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| from_hex(l.trim()).map_err(|e| format!("{}: {e}", a.file.display())))
        .collect::<Result<_, _>>()?;
    let socket = UdpSocket::bind(SocketAddr::new(a.from, 0))
        .map_err(|e| format!("binding {}: {e}", a.from))?;
    let (mut sent, mut send_errors) = (0u64, 0u64);
    for round in 0..a.repeat {
        if round > 0 {
            std::thread::sleep(Duration::from_millis(a.gap_ms));
        }
        for d in &datagrams {
            match socket.send_to(d, a.to) {
                Ok(_) => sent += 1,
                Err(_) => send_errors += 1,
            }
        }
    }
    println!(
        "udp-replay datagrams={} rounds={} sent={sent} send_errors={send_errors}",
        datagrams.len(),
        a.repeat
    );
    Ok(())
}

/// Whether `d` parses as an INITIATION batch.
fn is_initiation(d: &[u8]) -> bool {
    BatchHeader::parse(d).is_ok_and(|h| h.batch_type == BatchType::Initiation)
}

//! `udp-flood`: forged datagrams at a fixed rate to an fcvpn Ethernet port, from several
//! source addresses, by someone who holds no keys.
//!
//! - `initiation`: INITIATION batches with random bodies. Given the target's public key
//!   (`--peer-pub`), their mac1 is right (SPEC §8.2: its key is a hash of that public key), so
//!   they pass the cheap filter and reach the handshake budget and the Diffie-Hellman.
//! - `transport`: TRANSPORT batches with a correct header (path, a body length a sealed batch
//!   can have) and a random receiver index, counter and body.
//! - `mixed`: the two in turn.
//!
//! One socket per `--from` address, used in turn. At the end (after `--seconds`, or on
//! SIGTERM/SIGINT) one line sums up what was sent and how many datagrams came back.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};
use blake2::{Blake2s256, Blake2sMac, Digest};
use clap::{Args, ValueEnum};
use fcvpn::crypto::handshake::MAC2_LEN;
use fcvpn::crypto::{INITIATION_LEN, PublicKey, TAG_LEN};
use fcvpn::link::wire::{BatchHeader, BatchType, HEADER_LEN};

use super::common::{Pacer, StopFlag};

/// Length of mac1, the last field of an INITIATION body.
const MAC1_LEN: usize = 16;
/// Largest plaintext of a forged TRANSPORT batch (fits one 1472-byte datagram sealed).
const MAX_FORGED_PLAIN: usize = 1400;
/// Shortest pause between two bursts.
const MIN_SLEEP: Duration = Duration::from_micros(500);

/// What the flood sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// INITIATION batches.
    Initiation,
    /// TRANSPORT batches.
    Transport,
    /// Both in turn.
    Mixed,
}

/// Arguments of `udp-flood`.
#[derive(Args, Debug)]
pub struct FloodArgs {
    /// The fcvpn Ethernet port to flood.
    #[arg(long)]
    target: SocketAddr,
    /// Local source addresses, comma-separated (one socket each).
    #[arg(long, value_delimiter = ',', required = true)]
    from: Vec<IpAddr>,
    /// Datagrams per second in all.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: f64,
    /// What to send.
    #[arg(long, value_enum)]
    kind: Kind,
    /// The target's base64 public key: INITIATIONs then carry a correct mac1.
    #[arg(long)]
    peer_pub: Option<String>,
    /// The path id in the batch headers (1: the Ethernet path).
    #[arg(long, default_value_t = 1)]
    path: u8,
}

#[derive(Debug, Default)]
struct Tally {
    initiations: u64,
    transports: u64,
    send_errors: u64,
    answers: u64,
}

/// Runs the flood until `--seconds` pass or a signal stops it.
pub fn run(a: &FloodArgs) -> Result<(), String> {
    let stop = StopFlag::install()?;
    let mac1_key = match &a.peer_pub {
        Some(b64) => Some(mac1_key(
            &PublicKey::from_base64(b64).map_err(|e| format!("--peer-pub: {e}"))?,
        )),
        None => None,
    };
    let sockets = bind_all(&a.from)?;
    let started = Instant::now();
    let deadline = started + super::secs(a.seconds);
    let mut pacer = Pacer::new(a.rate, started);
    let mut rng = fastrand::Rng::new();
    let mut tally = Tally::default();
    let mut buf = vec![0u8; 2048];
    let mut n = 0usize;
    while Instant::now() < deadline && !stop.is_set() {
        while pacer.allow(Instant::now()) {
            let initiation = match a.kind {
                Kind::Initiation => true,
                Kind::Transport => false,
                Kind::Mixed => n % 2 == 0,
            };
            let len = if initiation {
                tally.initiations += 1;
                forged_initiation(a.path, mac1_key.as_ref(), &mut rng, &mut buf)
            } else {
                tally.transports += 1;
                forged_transport(a.path, &mut rng, &mut buf)
            };
            if sockets[n % sockets.len()]
                .send_to(&buf[..len], a.target)
                .is_err()
            {
                tally.send_errors += 1;
            }
            n += 1;
        }
        tally.answers += drain(&sockets, &mut buf);
        let wait = pacer.wait(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait.max(MIN_SLEEP));
        }
    }
    report(a, &tally, sockets.len(), started.elapsed());
    Ok(())
}

/// One non-blocking socket on an ephemeral port of each address.
fn bind_all(from: &[IpAddr]) -> Result<Vec<UdpSocket>, String> {
    from.iter()
        .map(|ip| {
            let s = UdpSocket::bind(SocketAddr::new(*ip, 0))
                .map_err(|e| format!("binding {ip}: {e}"))?;
            s.set_nonblocking(true)
                .map_err(|e| format!("socket on {ip}: {e}"))?;
            Ok(s)
        })
        .collect()
}

/// Reads (and discards) every datagram waiting on the sockets; returns how many.
fn drain(sockets: &[UdpSocket], buf: &mut [u8]) -> u64 {
    let mut got = 0;
    for s in sockets {
        loop {
            match s.recv_from(buf) {
                Ok(_) => got += 1,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    got
}

/// The mac1 key for messages to `receiver`: BLAKE2s-256(`"mac1----"` ‖ its public key).
fn mac1_key(receiver: &PublicKey) -> [u8; 32] {
    let mut h = Blake2s256::new();
    Digest::update(&mut h, b"mac1----");
    Digest::update(&mut h, receiver.as_bytes());
    h.finalize().into()
}

/// An INITIATION with a random body into `buf`; with `key`, its mac1 is right. Returns the
/// length.
fn forged_initiation(
    path: u8,
    key: Option<&[u8; 32]>,
    rng: &mut fastrand::Rng,
    buf: &mut [u8],
) -> usize {
    let header = BatchHeader {
        batch_type: BatchType::Initiation,
        path,
        receiver: 0,
        body_len: INITIATION_LEN as u32,
        counter: 0,
    };
    let len = HEADER_LEN + INITIATION_LEN;
    buf[..HEADER_LEN].copy_from_slice(&header.to_bytes());
    rng.fill(&mut buf[HEADER_LEN..len]);
    // The body ends in mac1 then mac2 (SPEC §8.2); mac2 stays zero: no session proof, no
    // cookie, so each one must come out of the per-path budget.
    let mac1_at = len - MAC2_LEN - MAC1_LEN;
    buf[len - MAC2_LEN..len].fill(0);
    if let Some(key) = key {
        let mut mac = <Blake2sMac<U16> as KeyInit>::new(key.into());
        Mac::update(&mut mac, &buf[..mac1_at]);
        let tag: [u8; MAC1_LEN] = mac.finalize().into_bytes().into();
        buf[mac1_at..mac1_at + MAC1_LEN].copy_from_slice(&tag);
    }
    len
}

/// A TRANSPORT batch with a random receiver, counter and sealed body into `buf`; returns the
/// length.
fn forged_transport(path: u8, rng: &mut fastrand::Rng, buf: &mut [u8]) -> usize {
    let body_len = rng.usize(0..=MAX_FORGED_PLAIN) + TAG_LEN;
    let header = BatchHeader {
        batch_type: BatchType::Transport,
        path,
        receiver: rng.u32(1..),
        body_len: body_len as u32,
        counter: rng.u64(..),
    };
    let len = HEADER_LEN + body_len;
    buf[..HEADER_LEN].copy_from_slice(&header.to_bytes());
    rng.fill(&mut buf[HEADER_LEN..len]);
    len
}

fn report(a: &FloodArgs, t: &Tally, sources: usize, took: Duration) {
    let s = took.as_secs_f64().max(1e-9);
    let sent = t.initiations + t.transports;
    println!(
        "udp-flood kind={:?} mac1={} sources={sources} sent={sent} initiations={} transports={} \
         send_errors={} answers={} seconds={s:.3} per_s={:.0}",
        a.kind,
        a.peer_pub.is_some(),
        t.initiations,
        t.transports,
        t.send_errors,
        t.answers,
        sent as f64 / s
    );
}

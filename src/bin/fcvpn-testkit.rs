//! `fcvpn-testkit`: small tools for the VM suite (`tests/vm/`), where there is no Rust toolchain
//! and only busybox: a checksummed TCP sender and receiver, a clock, the nexus tag of two keys
//! and a command token. Not part of fcvpn itself.
//!
//! - `send --connect ADDR --bytes N [--seed S]`: connects (retrying until `--connect-timeout`),
//!   sends N pseudo-random bytes generated from the seed, prints
//!   `send bytes=N sha256=HEX seconds=S MBps=R`.
//! - `recv --listen ADDR [--expect-bytes N] [--progress FILE]`: accepts one connection, reads to
//!   end of stream, prints `recv bytes=N sha256=HEX seconds=S MBps=R`; fails when the count
//!   differs from `--expect-bytes`. `--progress` is rewritten with the byte count as data arrives.
//! - `now`: seconds on the monotonic clock, with microseconds.
//! - `nexus-tag --target PUB --initiator PUB`: the nexus tag of the two base64 public keys, as
//!   16 hex digits (what `fcvpn sg-bench --tag` takes). It no longer opens fcvpn's device: a
//!   stranger's copy of it is refused.
//! - `command-token --key FILE --peer PUB [--slot K]`: a valid command token (SPEC §11.2), as
//!   16 hex digits, for the initiator whose private key is in FILE and the target PUB: the
//!   token of counter `(unix_seconds << 20) + K`, which the target accepts once.
//!
//! Attack tools for the root suite `tests/attack.rs` (bounded by `--seconds`; SIGTERM stops
//! them early; each prints a one-line summary of what it sent and what came back):
//! - `fabric-stranger`: a keyless second initiator on the simulated fabric ([`stranger`]);
//! - `udp-flood`: forged INITIATION and TRANSPORT datagrams from several addresses ([`flood`]);
//! - `udp-relay` / `udp-replay`: capture genuine INITIATIONs, send them again ([`replay`]).
//!
//! Every network operation is bounded by `--timeout`; any failure exits non-zero with a message.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use fcvpn::crypto::fabric::{FabricKey, FabricRole};
use fcvpn::crypto::{PrivateKey, PublicKey};

#[path = "fcvpn-testkit/common.rs"]
mod common;
#[path = "fcvpn-testkit/flood.rs"]
mod flood;
#[path = "fcvpn-testkit/replay.rs"]
mod replay;
#[path = "fcvpn-testkit/stranger.rs"]
mod stranger;
use sha2::{Digest, Sha256};

#[derive(Parser)]
#[command(about = "Test tools for the fcvpn VM suite")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send N checksummed pseudo-random bytes over one TCP connection.
    Send {
        /// Where to connect.
        #[arg(long)]
        connect: SocketAddr,
        /// How many bytes.
        #[arg(long)]
        bytes: u64,
        /// Seed of the data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Give up connecting after this many seconds (refused connections are retried).
        #[arg(long, default_value_t = 30.0)]
        connect_timeout: f64,
        /// Give up the whole transfer after this many seconds.
        #[arg(long, default_value_t = 300.0)]
        timeout: f64,
    },
    /// Receive one TCP connection to its end and checksum it.
    Recv {
        /// Where to listen.
        #[arg(long)]
        listen: SocketAddr,
        /// Fail unless exactly this many bytes arrive.
        #[arg(long)]
        expect_bytes: Option<u64>,
        /// A file rewritten with the number of bytes received so far.
        #[arg(long)]
        progress: Option<PathBuf>,
        /// Give up (accepting included) after this many seconds.
        #[arg(long, default_value_t = 300.0)]
        timeout: f64,
    },
    /// Print the monotonic clock in seconds.
    Now,
    /// Print the nexus tag of a target and an initiator public key (16 hex digits).
    NexusTag {
        /// The target's base64 public key.
        #[arg(long)]
        target: String,
        /// The initiator's base64 public key.
        #[arg(long)]
        initiator: String,
    },
    /// Print a command token the target accepts once (16 hex digits).
    #[command(name = "command-token")]
    Token {
        /// The initiator's private key file (base64, as `fcvpn genkey` writes it).
        #[arg(long)]
        key: PathBuf,
        /// The target's base64 public key.
        #[arg(long)]
        peer: String,
        /// The counter's offset from the slot start of the current second.
        #[arg(long, default_value_t = 0)]
        slot: u64,
    },
    /// A keyless initiator on the simulated fabric parking READs or spraying WRITEs.
    FabricStranger(stranger::StrangerArgs),
    /// Forged INITIATION/TRANSPORT datagrams at a fixed rate from several addresses.
    UdpFlood(flood::FloodArgs),
    /// Forward datagrams, capturing the INITIATIONs among them.
    UdpRelay(replay::RelayArgs),
    /// Send captured datagrams again.
    UdpReplay(replay::ReplayArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Send {
            connect,
            bytes,
            seed,
            connect_timeout,
            timeout,
        } => send(connect, bytes, seed, secs(connect_timeout), secs(timeout)),
        Command::Recv {
            listen,
            expect_bytes,
            progress,
            timeout,
        } => recv(listen, expect_bytes, progress.as_deref(), secs(timeout)),
        Command::Now => {
            let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC);
            t.map(|t| println!("{}.{:06}", t.tv_sec(), t.tv_nsec() / 1000))
                .map_err(|e| format!("clock_gettime: {e}"))
        }
        Command::NexusTag { target, initiator } => nexus_tag(&target, &initiator),
        Command::Token { key, peer, slot } => command_token(&key, &peer, slot),
        Command::FabricStranger(a) => stranger::run(&a),
        Command::UdpFlood(a) => flood::run(&a),
        Command::UdpRelay(a) => replay::relay(&a),
        Command::UdpReplay(a) => replay::replay(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fcvpn-testkit: {e}");
            ExitCode::FAILURE
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.001, 86_400.0))
}

const CHUNK: usize = 64 * 1024;

/// The data stream of a seed: deterministic, incompressible.
struct Generator(fastrand::Rng);

impl Generator {
    fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            let v = self.0.u64(..).to_le_bytes();
            word.copy_from_slice(&v[..word.len()]);
        }
    }
}

fn report(what: &str, bytes: u64, digest: Sha256, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    let hex: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!(
        "{what} bytes={bytes} sha256={hex} seconds={seconds:.3} MBps={:.2}",
        bytes as f64 / 1e6 / seconds.max(1e-9)
    );
}

fn send(
    to: SocketAddr,
    bytes: u64,
    seed: u64,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<(), String> {
    let connect_deadline = Instant::now() + connect_timeout;
    let mut stream = loop {
        let left = connect_deadline.saturating_duration_since(Instant::now());
        match TcpStream::connect_timeout(&to, left.max(Duration::from_millis(100))) {
            Ok(s) => break s,
            Err(e) if Instant::now() < connect_deadline => {
                if e.kind() != ErrorKind::ConnectionRefused && e.kind() != ErrorKind::TimedOut {
                    std::thread::sleep(Duration::from_millis(100));
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Err(e) => return Err(format!("connecting to {to}: {e} (for {connect_timeout:?})")),
        }
    };
    let started = Instant::now();
    let deadline = started + timeout;
    let mut generator = Generator(fastrand::Rng::with_seed(seed));
    let mut digest = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(CHUNK as u64) as usize;
        generator.fill(&mut buf[..n]);
        digest.update(&buf[..n]);
        let mut off = 0;
        while off < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "sending to {to}: {sent} of {bytes} bytes after {timeout:?}"
                ));
            }
            stream
                .set_write_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match stream.write(&buf[off..n]) {
                Ok(0) => return Err(format!("sending to {to}: connection closed at {sent}")),
                Ok(k) => {
                    off += k;
                    sent += k as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(format!("sending to {to} at byte {sent}: {e}")),
            }
        }
    }
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    // Wait for the receiver to close: then every byte has arrived.
    let left = deadline.saturating_duration_since(Instant::now());
    stream
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .map_err(|e| e.to_string())?;
    let mut scratch = [0u8; 64];
    loop {
        match stream.read(&mut scratch) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => return Err(format!("waiting for {to} to close: {e}")),
        }
    }
    report("send", sent, digest, started);
    Ok(())
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn write_progress(path: &Path, bytes: u64) {
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, format!("{bytes}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

fn recv(
    at: SocketAddr,
    expect: Option<u64>,
    progress: Option<&Path>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let listener = TcpListener::bind(at).map_err(|e| format!("listening on {at}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listener: {e}"))?;
    if let Some(p) = progress {
        write_progress(p, 0);
    }
    let (mut stream, peer) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {
                if Instant::now() >= deadline {
                    return Err(format!("no connection on {at} within {timeout:?}"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("accepting on {at}: {e}")),
        }
    };
    stream
        .set_nonblocking(false)
        .map_err(|e| format!("stream: {e}"))?;
    let started = Instant::now();
    let mut digest = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    let mut reported = 0u64;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "receiving from {peer}: {got} bytes after {timeout:?}, stream not ended"
            ));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                digest.update(&buf[..n]);
                got += n as u64;
                if let Some(p) = progress
                    && got - reported >= 1 << 20
                {
                    write_progress(p, got);
                    reported = got;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted || is_timeout(&e) => {}
            Err(e) => return Err(format!("receiving from {peer} at byte {got}: {e}")),
        }
    }
    if let Some(p) = progress {
        write_progress(p, got);
    }
    report("recv", got, digest, started);
    match expect {
        Some(n) if n != got => Err(format!("expected {n} bytes, received {got}")),
        _ => Ok(()),
    }
}

fn command_token(key: &Path, peer: &str, slot: u64) -> Result<(), String> {
    let text = std::fs::read_to_string(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let private = PrivateKey::from_base64(&text).map_err(|e| format!("--key: {e}"))?;
    let peer = PublicKey::from_base64(peer).map_err(|e| format!("--peer: {e}"))?;
    let fabric = FabricKey::derive(&private, &peer, FabricRole::Initiator)
        .map_err(|e| format!("--peer: {e}"))?;
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| format!("clock: {e}"))?;
    let start = fcvpn::scsi::token::slot_start(unix.as_secs()).ok_or("clock out of range")?;
    println!("{:016x}", fabric.token(start.saturating_add(slot)));
    Ok(())
}

fn nexus_tag(target: &str, initiator: &str) -> Result<(), String> {
    let t = PublicKey::from_base64(target).map_err(|e| format!("--target: {e}"))?;
    let i = PublicKey::from_base64(initiator).map_err(|e| format!("--initiator: {e}"))?;
    println!(
        "{:016x}",
        fcvpn::scsi::nexus_tag(t.as_bytes(), i.as_bytes())
    );
    Ok(())
}

//! `fabric-stranger`: a second initiator on the simulated fabric that holds no keys.
//!
//! It logs in with any WWPN (WWPNs are settable, so it may copy the genuine initiator's), and
//! sends READ(16)/WRITE(16) commands carrying the pair's nexus tag (public: a hash of the two
//! public keys). Modes:
//! - `park-small`: keeps `--depth` READ(16)s of one block outstanding, to make the target spin
//!   on READs that no batch fits;
//! - `park-full`: the same with READs of `--blocks` blocks, to take the pair's batches;
//! - `write-spray`: keeps `--depth` WRITE(16)s of random genuine-looking TRANSPORT batches
//!   outstanding.
//!
//! Every completion is classified; at the end (after `--seconds`, or on SIGTERM/SIGINT) one
//! line sums up what was sent and answered.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use fcvpn::fabric::{Command, Direction, Message, PortConnection, Role, TransportStatus};
use fcvpn::link::wire::{BatchHeader, BatchType, HEADER_LEN};
use fcvpn::scsi::cdb::{BLOCK_LEN, read16, write16};

use super::common::{Pacer, StopFlag, parse_u64_hex};

/// SAM status GOOD.
const GOOD: u8 = 0x00;
/// SAM status CHECK CONDITION.
const CHECK_CONDITION: u8 = 0x02;
/// The FC path id (the `path` byte of a batch header on FC).
const FC_PATH: u8 = 0;
/// Largest WRITE the spray sends, in blocks.
const SPRAY_MAX_BLOCKS: usize = 16;

/// What the stranger sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// READ(16)s of one block.
    ParkSmall,
    /// READ(16)s of `--blocks` blocks.
    ParkFull,
    /// WRITE(16)s of random batches.
    WriteSpray,
}

/// Arguments of `fabric-stranger`.
#[derive(Args, Debug)]
pub struct StrangerArgs {
    /// The fabric's socket.
    #[arg(long)]
    fabric: PathBuf,
    /// The WWPN to log in with (hex, with or without 0x).
    #[arg(long, value_parser = parse_u64_hex)]
    wwpn: u64,
    /// The nexus tag to put in the CDBs (16 hex digits).
    #[arg(long, value_parser = parse_u64_hex)]
    tag: u64,
    /// What to send.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: f64,
    /// Commands kept outstanding.
    #[arg(long, default_value_t = 8)]
    depth: usize,
    /// Blocks per READ in park-full mode (2048: the default 1 MiB `max_transfer`).
    #[arg(long, default_value_t = 2048)]
    blocks: u32,
    /// Most commands sent per second (0: as fast as answers come).
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

/// How the stranger's commands were answered.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    good: u64,
    idle: u64,
    data: u64,
    data_bytes: u64,
    check: u64,
    other_status: u64,
    transport_errors: u64,
}

impl Tally {
    fn count(&mut self, c: &fcvpn::fabric::Completion) {
        if c.transport != TransportStatus::Delivered {
            self.transport_errors += 1;
            return;
        }
        match c.status {
            GOOD if c.data_in.is_empty() => self.good += 1,
            GOOD => match BatchHeader::parse(&c.data_in) {
                Ok(h) if h.batch_type == BatchType::Idle => self.idle += 1,
                _ => {
                    self.data += 1;
                    self.data_bytes += c.data_in.len() as u64;
                }
            },
            CHECK_CONDITION => self.check += 1,
            _ => self.other_status += 1,
        }
    }
}

/// Runs the stranger until `--seconds` pass or a signal stops it.
pub fn run(a: &StrangerArgs) -> Result<(), String> {
    let stop = StopFlag::install()?;
    let mut conn =
        PortConnection::connect(&a.fabric, Role::Initiator, a.wwpn, Duration::from_secs(5))
            .map_err(|e| format!("logging in to {}: {e}", a.fabric.display()))?;
    let started = Instant::now();
    let deadline = started + super::secs(a.seconds);
    let mut pacer = Pacer::new(a.rate, started);
    let mut outstanding: HashMap<u64, ()> = HashMap::new();
    let mut tally = Tally::default();
    let mut next_task = 1u64;
    let mut rng = fastrand::Rng::new();
    let mut result = Ok(());
    while Instant::now() < deadline && !stop.is_set() {
        while outstanding.len() < a.depth.max(1) && pacer.allow(Instant::now()) {
            let cmd = command(a, next_task, &mut rng);
            if let Err(e) = conn.send(&Message::Command(cmd)) {
                result = Err(format!("sending: {e}"));
                break;
            }
            outstanding.insert(next_task, ());
            next_task += 1;
            tally.sent += 1;
        }
        if result.is_err() {
            break;
        }
        match conn.recv_timeout(Duration::from_millis(2)) {
            Ok(Some(Message::Completion(c))) => {
                if outstanding.remove(&c.task).is_some() {
                    tally.count(&c);
                }
            }
            Ok(_) => {}
            Err(e) => {
                result = Err(format!("receiving: {e}"));
                break;
            }
        }
    }
    report(a, &tally, started.elapsed());
    result
}

/// The next command of the stranger's mode, with task tag `task`.
fn command(a: &StrangerArgs, task: u64, rng: &mut fastrand::Rng) -> Command {
    let (direction, cdb, data_in_len, data_out) = match a.mode {
        Mode::ParkSmall => (
            Direction::Read,
            read16(a.tag, BLOCK_LEN),
            BLOCK_LEN,
            Vec::new(),
        ),
        Mode::ParkFull => {
            let len = a.blocks.max(1) as usize * BLOCK_LEN;
            (Direction::Read, read16(a.tag, len), len, Vec::new())
        }
        Mode::WriteSpray => {
            let batch = random_batch(rng);
            (Direction::Write, write16(a.tag, batch.len()), 0, batch)
        }
    };
    Command {
        task,
        initiator: 0,
        direction,
        cdb: cdb.to_vec(),
        data_in_len: u32::try_from(data_in_len).unwrap_or(u32::MAX),
        data_out,
    }
}

/// A TRANSPORT batch for the FC path with a random receiver, counter and body, padded to
/// whole blocks: what a genuine WRITE looks like to anyone without the keys.
fn random_batch(rng: &mut fastrand::Rng) -> Vec<u8> {
    let blocks = rng.usize(1..=SPRAY_MAX_BLOCKS);
    let mut batch = vec![0u8; blocks * BLOCK_LEN];
    rng.fill(&mut batch[HEADER_LEN..]);
    let header = BatchHeader {
        batch_type: BatchType::Transport,
        path: FC_PATH,
        receiver: rng.u32(1..),
        body_len: u32::try_from(batch.len() - HEADER_LEN - rng.usize(0..BLOCK_LEN / 2))
            .unwrap_or(0),
        counter: rng.u64(..),
    };
    batch[..HEADER_LEN].copy_from_slice(&header.to_bytes());
    batch
}

fn report(a: &StrangerArgs, t: &Tally, took: Duration) {
    let s = took.as_secs_f64().max(1e-9);
    println!(
        "fabric-stranger mode={:?} depth={} sent={} good={} idle={} data={} data_bytes={} \
         check_condition={} other_status={} transport_errors={} seconds={:.3} per_s={:.0}",
        a.mode,
        a.depth,
        t.sent,
        t.good,
        t.idle,
        t.data,
        t.data_bytes,
        t.check,
        t.other_status,
        t.transport_errors,
        s,
        t.sent as f64 / s
    );
}

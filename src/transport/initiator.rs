//! The SCSI initiator side of the Fibre Channel path, written once for every backend.
//!
//! The port keeps `reads_in_flight` READ(16)s parked at the target and up to
//! `writes_in_flight` WRITE(16)s carrying batches. A failed or timed-out command loses at most
//! its batch, which the link's reliability recovers; a run of failures marks the FC path down
//! so traffic fails over, and reads back off so a dead fabric is not hammered.
//!
//! Every data command carries a fresh command token ([`CommandSigner`]). A token the target
//! refuses (CHECK CONDITION, ILLEGAL REQUEST, INVALID FIELD IN CDB: the only invalid field our
//! well-formed commands can have) jumps the signer's counter to the next second's slot start;
//! READs pause briefly after each refusal so that a target that keeps refusing is not spun on.
//! A run of IDLE answers that come back far sooner than the hold time (a target, or an
//! impostor, answering at once instead of parking) also makes READs pause, doubling from
//! [`IDLE_BACKOFF`] to [`IDLE_BACKOFF_MAX`], until a batch arrives.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use super::{
    BackendError, FC_PATH, Reconnect, Transport, TransportCounters, WallClock, block_round,
};
use crate::crypto::fabric::FabricKey;
use crate::link::Link;
use crate::link::wire::{BatchHeader, BatchType};
use crate::scsi::token::Jump;
use crate::scsi::{AdditionalSense, CommandSigner, SenseKey, cdb, parse_sense, status};

/// Data direction of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Data-out: a WRITE.
    Out,
    /// Data-in: a READ.
    In,
}

/// How a command ended, as the backend saw it.
#[derive(Debug)]
pub enum Outcome {
    /// GOOD; `len` bytes of data-in (0 for writes).
    Good {
        /// Data-in bytes transferred.
        len: usize,
    },
    /// A SAM status other than GOOD, with sense if any.
    Status {
        /// SAM status.
        status: u8,
        /// Sense data.
        sense: Vec<u8>,
    },
    /// The command did not complete in the SCSI sense (fabric error, no connection, aborted,
    /// timed out).
    Failed(&'static str),
}

/// A finished command and its buffer, handed back.
#[derive(Debug)]
pub struct Completion {
    /// The tag given at submission.
    pub tag: u64,
    /// The buffer given at submission (data-in written into it for READs).
    pub buffer: Vec<u8>,
    /// The result.
    pub outcome: Outcome,
}

/// Where initiator commands go: the simulated fabric, or SG_IO on `/dev/sgN`.
pub trait InitiatorBackend {
    /// The descriptor to wait on, if connected.
    fn fd(&self) -> Option<BorrowedFd<'_>>;
    /// Whether output is waiting for the descriptor to become writable.
    fn wants_write(&self) -> bool;
    /// Starts a command. For [`Direction::Out`], `buffer[..len]` is the data-out; for
    /// [`Direction::In`], up to `len` bytes are read into `buffer`. On error the buffer comes back.
    fn submit(
        &mut self,
        tag: u64,
        cdb: &[u8],
        dir: Direction,
        buffer: Vec<u8>,
        len: usize,
        timeout: Duration,
    ) -> Result<(), (Vec<u8>, BackendError)>;
    /// Aborts command `tag`; returns its buffer if the backend still held it.
    fn abort(&mut self, tag: u64) -> Result<Option<Vec<u8>>, BackendError>;
    /// The next finished command, or `None`.
    fn next_completion(&mut self) -> Result<Option<Completion>, BackendError>;
    /// Pushes queued output.
    fn flush(&mut self) -> Result<(), BackendError>;
    /// Whether the backend is usable.
    fn is_connected(&self) -> bool;
    /// Tries to get usable again; outstanding commands are lost (their buffers are dropped).
    fn reconnect(&mut self) -> Result<(), BackendError>;
    /// Whether the backend times commands out itself (SG_IO does); if not, the port does.
    fn enforces_timeouts(&self) -> bool;
}

/// Initiator tuning.
#[derive(Debug, Clone)]
pub struct InitiatorSettings {
    /// The pair's fabric key, for the command tokens of our CDBs.
    pub fabric_key: FabricKey,
    /// The target's READ hold time (an IDLE answer much sooner than this was not parked).
    pub read_hold: Duration,
    /// The wall clock until the driver sets it (command tokens need Unix seconds).
    pub wall_clock: WallClock,
    /// READs kept parked at the target.
    pub reads_in_flight: usize,
    /// WRITEs in flight at most.
    pub writes_in_flight: usize,
    /// Bytes per command.
    pub max_transfer: usize,
    /// Command timeout (longer than the target's largest READ hold).
    pub command_timeout: Duration,
    /// Pause between reconnection attempts.
    pub reconnect_every: Duration,
}

/// Failures in a row that mark the FC path down.
const FAILURE_STREAK: u32 = 3;
/// Pause before READs are reissued after a failed one, doubled per failure in a row.
const READ_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between READ attempts while the target does not answer.
const READ_BACKOFF_MAX: Duration = Duration::from_millis(320);
/// IDLE answers in a row, each sooner than a quarter of the hold time, that make READs pause.
pub const QUICK_IDLE_STREAK: u32 = 4;
/// First READ pause after a run of quick IDLE answers, doubled per further quick one.
pub const IDLE_BACKOFF: Duration = Duration::from_millis(1);
/// Longest READ pause after quick IDLE answers or token refusals.
pub const IDLE_BACKOFF_MAX: Duration = Duration::from_millis(64);
/// Shortest interval between two log lines about refused command tokens.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

struct Outstanding {
    dir: Direction,
    issued: Duration,
    deadline: Duration,
}

/// The initiator port.
pub struct InitiatorPort<B> {
    backend: B,
    settings: InitiatorSettings,
    outstanding: HashMap<u64, Outstanding>,
    read_pool: Vec<Vec<u8>>,
    write_pool: Vec<Vec<u8>>,
    next_tag: u64,
    reads_after: Duration,
    streak: u32,
    counters: TransportCounters,
    reconnect: Reconnect,
    signer: CommandSigner,
    wall: WallClock,
    /// Quick IDLE answers in a row.
    quick_idles: u32,
    /// Token refusals since the last GOOD completion.
    refusals: u32,
    /// When the last line about refused tokens was logged.
    refusal_logged: Option<Duration>,
}

impl<B: InitiatorBackend> InitiatorPort<B> {
    /// A port over `backend`.
    pub fn new(backend: B, settings: InitiatorSettings) -> Self {
        let buffers = |n: usize| (0..n).map(|_| vec![0u8; settings.max_transfer]).collect();
        let wall = settings.wall_clock;
        let signer = CommandSigner::new(settings.fabric_key.clone(), wall.seconds(Duration::ZERO));
        Self {
            read_pool: buffers(settings.reads_in_flight),
            write_pool: buffers(settings.writes_in_flight),
            reconnect: Reconnect::new(
                "fc initiator",
                settings.reconnect_every,
                backend.is_connected(),
            ),
            backend,
            settings,
            outstanding: HashMap::new(),
            next_tag: 1,
            reads_after: Duration::ZERO,
            streak: 0,
            counters: TransportCounters::default(),
            signer,
            wall,
            quick_idles: 0,
            refusals: 0,
            refusal_logged: None,
        }
    }

    fn give_back(&mut self, dir: Direction, mut buffer: Vec<u8>) {
        buffer.resize(self.settings.max_transfer, 0);
        match dir {
            Direction::In => self.read_pool.push(buffer),
            Direction::Out => self.write_pool.push(buffer),
        }
    }

    fn on_completion(
        &mut self,
        now: Duration,
        c: Completion,
        link: &mut Link,
        deliver: &mut dyn FnMut(&[u8]),
    ) {
        let Some(o) = self.outstanding.remove(&c.tag) else {
            return; // Finished after we gave up on it.
        };
        tracing::trace!(tag = c.tag, dir = ?o.dir, outcome = ?c.outcome, "fc initiator: completed");
        let mut buffer = c.buffer;
        match c.outcome {
            Outcome::Good { len } => {
                self.streak = 0;
                self.refusals = 0;
                if o.dir == Direction::In {
                    self.counters.batches_in += 1;
                    let len = len.min(buffer.len());
                    self.note_answer(now, o.issued, &buffer[..len]);
                    link.handle_batch(now, FC_PATH, &mut buffer[..len], deliver);
                }
            }
            Outcome::Status { status, sense } => self.on_status(now, status, &sense, o.dir, link),
            Outcome::Failed(why) => {
                self.counters.transport_errors += 1;
                tracing::debug!("fc initiator: command failed: {why}");
                self.on_failure(now, o.dir, link);
            }
        }
        self.give_back(o.dir, buffer);
    }

    /// Backs READs off after a run of IDLE answers that were not parked (see the module docs).
    fn note_answer(&mut self, now: Duration, issued: Duration, data: &[u8]) {
        let idle = BatchHeader::parse(data).is_ok_and(|h| h.batch_type == BatchType::Idle);
        if !idle || now.saturating_sub(issued) >= self.settings.read_hold / 4 {
            self.quick_idles = 0;
            return;
        }
        self.quick_idles = self.quick_idles.saturating_add(1);
        if self.quick_idles >= QUICK_IDLE_STREAK {
            let doublings = (self.quick_idles - QUICK_IDLE_STREAK).min(6);
            let pause = IDLE_BACKOFF
                .saturating_mul(1 << doublings)
                .min(IDLE_BACKOFF_MAX);
            self.reads_after = self.reads_after.max(now + pause);
            self.counters.idle_backoffs += 1;
        }
    }

    fn on_status(&mut self, now: Duration, st: u8, sense: &[u8], dir: Direction, link: &mut Link) {
        if st == status::BUSY || st == status::TASK_SET_FULL {
            self.counters.busy += 1;
            self.reads_after = now + READ_BACKOFF;
            return;
        }
        self.counters.check_conditions += 1;
        let sense = parse_sense(sense);
        if sense.is_some_and(|s| s.key == SenseKey::UNIT_ATTENTION) {
            return;
        }
        let refused = sense.is_some_and(|s| {
            s.key == SenseKey::ILLEGAL_REQUEST
                && s.additional() == AdditionalSense::INVALID_FIELD_IN_CDB
        });
        if !refused || self.on_refused(now) {
            self.on_failure(now, dir, link);
        }
    }

    /// The target refused a token: jump the counter and pause READs. True when this counts as
    /// a failure (the counter can jump no further: clocks or keys disagree).
    fn on_refused(&mut self, now: Duration) -> bool {
        self.counters.token_refusals += 1;
        self.refusals = self.refusals.saturating_add(1);
        let pause = IDLE_BACKOFF
            .saturating_mul(1 << self.refusals.min(7))
            .min(IDLE_BACKOFF_MAX);
        self.reads_after = self.reads_after.max(now + pause);
        let jump = self.signer.on_refused(now, self.wall.seconds(now));
        if jump == Jump::Exhausted
            && self
                .refusal_logged
                .is_none_or(|t| now >= t + REFUSAL_LOG_EVERY)
        {
            tracing::warn!(
                "fc initiator: the target keeps refusing our command tokens ({} so far): check \
                 that both hosts' clocks agree within {} s (NTP) and that the keys match",
                self.counters.token_refusals,
                crate::scsi::token::SKEW
            );
            self.refusal_logged = Some(now);
        }
        jump == Jump::Exhausted
    }

    fn on_failure(&mut self, now: Duration, dir: Direction, link: &mut Link) {
        self.streak += 1;
        if dir == Direction::In {
            let backoff = READ_BACKOFF
                .saturating_mul(1 << self.streak.min(6))
                .min(READ_BACKOFF_MAX);
            self.reads_after = now + backoff;
        }
        if self.streak >= FAILURE_STREAK {
            link.handle_path_error(now, FC_PATH);
        }
    }

    /// Aborts commands past their deadline (when the backend does not time out itself).
    fn expire(&mut self, now: Duration, link: &mut Link) -> Result<(), BackendError> {
        if self.backend.enforces_timeouts() {
            return Ok(());
        }
        let late: Vec<u64> = self
            .outstanding
            .iter()
            .filter(|(_, o)| now >= o.deadline)
            .map(|(t, _)| *t)
            .collect();
        for tag in late {
            let Some(o) = self.outstanding.remove(&tag) else {
                continue;
            };
            self.counters.timeouts += 1;
            let buffer = self.backend.abort(tag)?.unwrap_or_default();
            self.give_back(o.dir, buffer);
            self.on_failure(now, o.dir, link);
        }
        Ok(())
    }

    fn submit(
        &mut self,
        now: Duration,
        cdb: &[u8],
        dir: Direction,
        buffer: Vec<u8>,
        len: usize,
    ) -> Result<(), BackendError> {
        let tag = self.next_tag;
        self.next_tag += 1;
        match self
            .backend
            .submit(tag, cdb, dir, buffer, len, self.timeout(dir))
        {
            Ok(()) => {
                tracing::trace!(tag, ?dir, len, "fc initiator: submitted");
                self.counters.commands += 1;
                let deadline = now + self.timeout(dir);
                let o = Outstanding {
                    dir,
                    issued: now,
                    deadline,
                };
                self.outstanding.insert(tag, o);
                Ok(())
            }
            Err((buffer, e)) => {
                self.give_back(dir, buffer);
                Err(e)
            }
        }
    }

    /// A READ may be parked at the target for up to its hold time (at most 1 s), so it gets
    /// the whole command timeout; a WRITE is completed as soon as the target has it, so a
    /// quarter of that already means it was lost, and its slot is freed four times sooner.
    fn timeout(&self, dir: Direction) -> Duration {
        match dir {
            Direction::In => self.settings.command_timeout,
            Direction::Out => self.settings.command_timeout / 4,
        }
    }

    fn issue_reads(&mut self, now: Duration) -> Result<(), BackendError> {
        if now < self.reads_after {
            return Ok(());
        }
        let len = self.settings.max_transfer;
        while let Some(buffer) = self.read_pool.pop() {
            let read = cdb::read16(self.signer.sign(), len);
            self.submit(now, &read, Direction::In, buffer, len)?;
        }
        Ok(())
    }

    fn issue_writes(&mut self, now: Duration, link: &mut Link) -> Result<(), BackendError> {
        while let Some(mut buffer) = self.write_pool.pop() {
            let Some(n) = link.poll_transmit(now, FC_PATH, &mut buffer) else {
                self.write_pool.push(buffer);
                break;
            };
            let padded = block_round(n).min(buffer.len());
            buffer[n..padded].fill(0);
            let write = cdb::write16(self.signer.sign(), padded);
            self.counters.batches_out += 1;
            self.submit(now, &write, Direction::Out, buffer, padded)?;
        }
        Ok(())
    }

    fn pump(
        &mut self,
        now: Duration,
        link: &mut Link,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<(), BackendError> {
        while let Some(c) = self.backend.next_completion()? {
            self.on_completion(now, c, link, deliver);
        }
        self.expire(now, link)?;
        self.issue_reads(now)?;
        self.issue_writes(now, link)?;
        self.backend.flush()
    }

    fn on_disconnect(&mut self, now: Duration, link: &mut Link, why: &BackendError) {
        self.reconnect.lost(now, &mut self.counters, why);
        let lost: Vec<(u64, Direction)> =
            self.outstanding.drain().map(|(t, o)| (t, o.dir)).collect();
        for (_, dir) in lost {
            self.give_back(dir, Vec::new());
        }
        link.handle_path_error(now, FC_PATH);
    }
}

impl<B: InitiatorBackend> Transport for InitiatorPort<B> {
    fn path(&self) -> u8 {
        FC_PATH
    }

    fn interest(&self) -> Option<(BorrowedFd<'_>, bool)> {
        self.backend.fd().map(|fd| (fd, self.backend.wants_write()))
    }

    fn drive(&mut self, now: Duration, link: &mut Link, deliver: &mut dyn FnMut(&[u8])) {
        if !self.backend.is_connected() {
            let backend = &mut self.backend;
            if !self
                .reconnect
                .attempt(now, &mut self.counters, || backend.reconnect())
            {
                return;
            }
            self.streak = 0;
        }
        if let Err(e) = self.pump(now, link, deliver) {
            self.on_disconnect(now, link, &e);
        }
    }

    fn deadline(&self) -> Option<Duration> {
        if !self.backend.is_connected() {
            return Some(self.reconnect.next());
        }
        let timeouts = (!self.backend.enforces_timeouts())
            .then(|| self.outstanding.values().map(|o| o.deadline).min())
            .flatten();
        let reads = (!self.read_pool.is_empty()).then_some(self.reads_after);
        match (timeouts, reads) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn counters(&self) -> TransportCounters {
        self.counters
    }

    fn set_wall_clock(&mut self, now: Duration, unix: Duration) {
        self.wall.set(now, unix);
    }
}

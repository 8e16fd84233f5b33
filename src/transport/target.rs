//! The SCSI target side of the Fibre Channel path, written once for every backend.
//!
//! Commands from the backend go to the [`VirtualDevice`]. A WRITE(16) of ours hands its batch
//! to the link; a READ(16) of ours is **parked** until the link has a batch for the FC path,
//! then completed with it. A READ parked for the hold time is answered with an IDLE batch (one
//! block, never a zero-length transfer), well inside the initiator's command timeout.
//!
//! Only data commands with a valid command token ([`crate::scsi::token`]) are parked or reach
//! the link, so a stranger on the LUN can neither take nor stall a batch. A refused command
//! costs one table lookup and a CHECK CONDITION; a flood of them is taken in rounds of
//! [`REFUSALS_PER_ROUND`], with the parked READs answered between rounds, so that it cannot
//! crowd genuine commands out of one turn of the loop.

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use super::{
    BackendError, FC_PATH, Reconnect, Transport, TransportCounters, WallClock, block_round,
};
use crate::link::{Link, wire};
use crate::scsi::{Dispatch, VirtualDevice, status};

/// One SCSI command as a backend received it.
#[derive(Debug)]
pub struct TargetCommand {
    /// Backend's identifier, given back on completion.
    pub id: u64,
    /// The CDB.
    pub cdb: Vec<u8>,
    /// Data-out (empty unless a write).
    pub data_out: Vec<u8>,
    /// Expected data-in length (FCP_DL).
    pub data_in_len: usize,
}

/// What a backend reports.
#[derive(Debug)]
pub enum TargetEvent {
    /// A new command.
    Command(TargetCommand),
    /// The initiator aborted command `id`: drop it without completing it.
    Abort(u64),
}

/// Where target commands come from: the simulated fabric, LIO TCMU, SCST.
pub trait TargetBackend {
    /// The descriptor to wait on, if connected.
    fn fd(&self) -> Option<BorrowedFd<'_>>;
    /// Whether output is waiting for the descriptor to become writable.
    fn wants_write(&self) -> bool;
    /// The next event, or `None` if nothing is waiting.
    fn next_event(&mut self) -> Result<Option<TargetEvent>, BackendError>;
    /// Completes command `id` with a SAM status, sense (for CHECK CONDITION) and data-in.
    fn complete(
        &mut self,
        id: u64,
        status: u8,
        sense: &[u8],
        data_in: &[u8],
    ) -> Result<(), BackendError>;
    /// Pushes queued output.
    fn flush(&mut self) -> Result<(), BackendError>;
    /// Whether the backend is usable.
    fn is_connected(&self) -> bool;
    /// Tries to get usable again.
    fn reconnect(&mut self) -> Result<(), BackendError>;
}

/// Target tuning.
#[derive(Debug, Clone)]
pub struct TargetSettings {
    /// Longest a READ stays parked before it is answered with IDLE (at most 1 s).
    pub read_hold: Duration,
    /// Largest batch in one READ answer.
    pub max_transfer: usize,
    /// Pause between reconnection attempts.
    pub reconnect_every: Duration,
    /// The wall clock until the driver sets it (command tokens need Unix seconds).
    pub wall_clock: WallClock,
}

struct Parked {
    id: u64,
    max_len: usize,
    arrived: Duration,
}

/// The target port: a backend, the virtual device and the parked READs.
pub struct TargetPort<B> {
    backend: B,
    device: VirtualDevice,
    settings: TargetSettings,
    parked: VecDeque<Parked>,
    buf: Vec<u8>,
    counters: TransportCounters,
    reconnect: Reconnect,
    wall: WallClock,
    /// Foreign commands at the last log line about them, and when it was written.
    foreign_logged: (u64, Option<Duration>),
}

/// Most READs parked at once; more are answered IDLE at once (the initiator keeps fewer).
const MAX_PARKED: usize = 64;
/// Commands refused with CHECK CONDITION in one round of a pump before the parked READs are
/// answered again.
pub const REFUSALS_PER_ROUND: usize = 64;
/// Rounds in one pump: what is left waits for the next turn of the loop (the descriptor stays
/// readable, so that turn comes at once), after the TUN device and the timers had theirs.
const ROUNDS_PER_PUMP: usize = 4;
/// Shortest interval between two log lines about refused commands.
const FOREIGN_LOG_EVERY: Duration = Duration::from_secs(60);

impl<B: TargetBackend> TargetPort<B> {
    /// A port serving `device` over `backend`.
    pub fn new(backend: B, device: VirtualDevice, settings: TargetSettings) -> Self {
        let reconnect = Reconnect::new(
            "fc target",
            settings.reconnect_every,
            backend.is_connected(),
        );
        let wall = settings.wall_clock;
        Self {
            buf: vec![0u8; settings.max_transfer.max(crate::scsi::BLOCK_LEN)],
            backend,
            device,
            settings,
            parked: VecDeque::new(),
            counters: TransportCounters::default(),
            reconnect,
            wall,
            foreign_logged: (0, None),
        }
    }

    /// The virtual device (for its counters).
    pub fn device(&self) -> &VirtualDevice {
        &self.device
    }

    fn on_command(
        &mut self,
        now: Duration,
        mut cmd: TargetCommand,
        link: &mut Link,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, BackendError> {
        self.counters.commands += 1;
        match self
            .device
            .dispatch(&cmd.cdb, &cmd.data_out, cmd.data_in_len)
        {
            Dispatch::Complete(r) => {
                let refused = r.status == status::CHECK_CONDITION;
                if refused {
                    self.counters.check_conditions += 1;
                }
                self.backend
                    .complete(cmd.id, r.status, &r.sense, &r.data_in)?;
                Ok(refused)
            }
            Dispatch::Send { .. } => {
                tracing::trace!(id = cmd.id, len = cmd.data_out.len(), "fc target: WRITE");
                self.counters.batches_in += 1;
                link.handle_batch(now, FC_PATH, &mut cmd.data_out, deliver);
                self.backend.complete(cmd.id, status::GOOD, &[], &[])?;
                Ok(false)
            }
            Dispatch::Receive { max_len } => {
                if self.parked.len() >= MAX_PARKED {
                    self.answer_idle(cmd.id)?;
                    return Ok(false);
                }
                tracing::trace!(id = cmd.id, max_len, "fc target: READ parked");
                self.parked.push_back(Parked {
                    id: cmd.id,
                    max_len,
                    arrived: now,
                });
                Ok(false)
            }
        }
    }

    /// Completes parked READs with batches while the link has them.
    fn answer_parked(&mut self, now: Duration, link: &mut Link) -> Result<(), BackendError> {
        while let Some(p) = self.parked.front() {
            let max = p.max_len.min(self.buf.len());
            let Some(n) = link.poll_transmit(now, FC_PATH, &mut self.buf[..max]) else {
                break;
            };
            let id = p.id;
            self.parked.pop_front();
            tracing::trace!(id, len = n, "fc target: READ answered");
            let padded = block_round(n).min(max);
            self.buf[n..padded].fill(0);
            self.counters.batches_out += 1;
            self.backend
                .complete(id, status::GOOD, &[], &self.buf[..padded])?;
        }
        Ok(())
    }

    /// Answers READs parked for the hold time with IDLE.
    fn expire_parked(&mut self, now: Duration) -> Result<(), BackendError> {
        while self
            .parked
            .front()
            .is_some_and(|p| now >= p.arrived + self.settings.read_hold)
        {
            if let Some(p) = self.parked.pop_front() {
                self.counters.idle_answers += 1;
                self.answer_idle(p.id)?;
            }
        }
        Ok(())
    }

    fn answer_idle(&mut self, id: u64) -> Result<(), BackendError> {
        let mut block = [0u8; crate::scsi::BLOCK_LEN];
        wire::write_idle(FC_PATH, &mut block);
        self.backend.complete(id, status::GOOD, &[], &block)
    }

    fn pump(
        &mut self,
        now: Duration,
        link: &mut Link,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<(), BackendError> {
        self.device.tick(self.wall.seconds(now));
        for _ in 0..ROUNDS_PER_PUMP {
            let drained = self.take_events(now, link, deliver)?;
            self.answer_parked(now, link)?;
            self.expire_parked(now)?;
            if drained {
                break;
            }
        }
        self.log_foreign(now);
        self.backend.flush()
    }

    /// Takes events until none is waiting (true) or [`REFUSALS_PER_ROUND`] commands were
    /// refused (false).
    fn take_events(
        &mut self,
        now: Duration,
        link: &mut Link,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, BackendError> {
        let mut refused = 0;
        while let Some(event) = self.backend.next_event()? {
            match event {
                TargetEvent::Command(cmd) => {
                    refused += usize::from(self.on_command(now, cmd, link, deliver)?);
                }
                TargetEvent::Abort(id) => self.parked.retain(|p| p.id != id),
            }
            if refused >= REFUSALS_PER_ROUND {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One line per [`FOREIGN_LOG_EVERY`] at most while commands with invalid tokens arrive.
    fn log_foreign(&mut self, now: Duration) {
        let foreign = self.device.counters().foreign_token;
        let (logged, at) = self.foreign_logged;
        if foreign == logged || at.is_some_and(|t| now < t + FOREIGN_LOG_EVERY) {
            return;
        }
        tracing::warn!(
            "fc target: {} data command(s) refused for an invalid command token ({foreign} so \
             far): a stranger on the LUN, a replay, or a peer whose clock is more than {} s off \
             ours (keep both hosts on NTP)",
            foreign - logged,
            crate::scsi::token::SKEW
        );
        self.foreign_logged = (foreign, Some(now));
    }

    fn on_disconnect(&mut self, now: Duration, link: &mut Link, why: &BackendError) {
        self.reconnect.lost(now, &mut self.counters, why);
        self.parked.clear();
        link.handle_path_error(now, FC_PATH);
    }
}

impl<B: TargetBackend> Transport for TargetPort<B> {
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
        }
        if let Err(e) = self.pump(now, link, deliver) {
            self.on_disconnect(now, link, &e);
        }
    }

    fn deadline(&self) -> Option<Duration> {
        if !self.backend.is_connected() {
            return Some(self.reconnect.next());
        }
        self.parked
            .front()
            .map(|p| p.arrived + self.settings.read_hold)
    }

    fn counters(&self) -> TransportCounters {
        TransportCounters {
            foreign_commands: self.device.counters().foreign_token,
            ..self.counters
        }
    }

    fn set_wall_clock(&mut self, now: Duration, unix: Duration) {
        self.wall.set(now, unix);
    }
}

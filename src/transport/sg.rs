//! The SG_IO initiator backend: fcvpn's WRITE(16)s and parked READ(16)s go to the target's
//! `/dev/sgN` through the sg driver's asynchronous interface.
//!
//! [`SgInitiator`] implements [`InitiatorBackend`] over a [`SgFile`]: `write(2)` of an
//! `sg_io_hdr` submits a command, `read(2)` reaps one (EAGAIN: none ready), and the port polls
//! an epoll descriptor that turns readable when a command finishes or the device goes away.
//! The command's tag travels in `usr_ptr`; the buffers stay owned by the [`SgFile`], keyed by
//! tag, until their command is reaped (see [`crate::sys::sg`] for why that keeps the kernel's
//! pointers valid). At most [`SG_MAX_QUEUE`] commands are in the driver at once: a command
//! beyond that (or one the driver refuses with EDOM, EAGAIN or ENOMEM) waits in a short queue
//! here and is submitted by [`InitiatorBackend::flush`] once a reaped command frees a slot.
//! How a finished command maps to an [`Outcome`] is in [`outcome`].
//!
//! # Finding the device
//!
//! The device is searched for ([`sg_discovery::search`]) on a helper thread, because the
//! probing INQUIRYs are synchronous SG_IOs that can block while the kernel handles errors;
//! the event loop (which also drives the Ethernet path) never waits for them. The port calls
//! [`InitiatorBackend::reconnect`] while the device is missing (every 200 ms): each call picks
//! up a finished search and starts the next one. A failed search is logged once per outage.
//! A write or read failing with ENODEV, ENXIO or EBADF, or the driver reporting POLLHUP when
//! nothing is left to read (device removed: after `dev_loss_tmo` on FC), is a disconnect: the
//! file is closed, the buffers of its commands are dropped, and the device is searched for
//! again, since it may come back as another sgN. A device that completes commands GOOD but never
//! lets the link prove the peer is behind it (an impostor with the target's public identity)
//! is dropped by the port's watchdog ([`InitiatorBackend::search_again`]) and probed last by
//! the following searches. An offlined device keeps its node; through
//! the non-blocking file its commands fail one by one (DID_NO_CONNECT), the port marks the
//! path down, and the same file works again once the device is set running.
//!
//! # Timeouts and the kernel's error handling
//!
//! Every READ carries the configured `fc.command_timeout_ms` (default 1.5 s; the
//! configuration refuses 1 s or less) as its sg `timeout`, every WRITE a quarter of it, so the
//! kernel enforces them ([`InitiatorBackend::enforces_timeouts`] is true). The READ timeout is
//! longer than the target's longest READ hold (1 s): a parked READ is always answered, with an
//! IDLE batch at worst, before it expires, and WRITEs complete on arrival, so only a lost
//! command times out. Measured on Debian's 6.1 kernel with tcm_loop and a TCMU backstore (the
//! `tcmu` VM scenario): a timed-out command costs one ABORT TASK, which LIO completes in
//! 7-600 ms under TCG; a 3 s SIGSTOP of the target end and a SIGKILL never escalated to a
//! LUN reset or an offlined device. When one does,
//! the kernel (`scsi_timeout`) first asks the FC transport: while the remote port is blocked
//! the timer is re-armed until the port returns or `fast_io_fail_tmo`/`dev_loss_tmo` fire
//! (then DID_TRANSPORT_FAILFAST, or device removal and ENODEV). Otherwise it aborts that one
//! command through the LLD, and a successful abort completes it with DID_TIME_OUT: a failed
//! command here, whose batch the link resends. Only if the abort fails does the host enter
//! error recovery: all I/O on the whole host stops until every outstanding command has ended,
//! then LUN, target, bus and host resets follow (with settle delays), and at worst the device
//! is offlined (ENXIO: a disconnect here).
//!
//! This design stays out of long error handling: timeouts are not reached in normal operation;
//! sg never retries a command (its retry count is 0), so a timeout costs one abort; the file is
//! opened O_NONBLOCK, so neither `open(2)` nor `write(2)` waits for a host in recovery and
//! `read(2)` never blocks; the blocking INQUIRYs run off the event loop; and the port marks the
//! FC path down after a few failed commands, so traffic fails over to Ethernet while the kernel
//! recovers. No signal interrupts an SG_IO either: fcvpn blocks SIGINT and SIGTERM (read
//! through a signalfd) before it builds the transport, and the search thread inherits that mask.

pub mod bench;
pub mod outcome;

use std::collections::VecDeque;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use nix::libc;

pub use bench::raw_loop;

use super::BackendError;
use super::initiator::{Completion, Direction, InitiatorBackend, Outcome};
use super::sg_discovery::{self, Found, Roots};
use crate::config::SgDevice;
use crate::scsi::{DeviceIdentity, MAX_TRANSFER_LEN};
use crate::sys::sg::{DataDir, SG_MAX_QUEUE, SgFile};

/// How long `fcvpn up` waits for the first search before it starts without the device.
pub const FIRST_SEARCH_WAIT: Duration = Duration::from_secs(3);
/// Smallest per-command limit a device may have (fcvpn's smallest `fc.max_transfer`).
pub const MIN_TRANSFER: usize = 4096;
/// Commands waiting for a free sg slot at most (with [`SG_MAX_QUEUE`] in the driver this
/// covers the largest configuration, 15 READs and 15 WRITEs).
pub const MAX_WAITING: usize = SG_MAX_QUEUE;

/// The device search run on the helper thread; its argument is a node to probe last.
type Searcher = Arc<dyn Fn(Option<&Path>) -> Result<Found, String> + Send + Sync>;

/// A command accepted by [`SgInitiator::submit`] that waits for a free slot in the driver.
struct Waiting {
    tag: u64,
    cdb: Vec<u8>,
    dir: Direction,
    buffer: Vec<u8>,
    len: usize,
    timeout: Duration,
}

/// How to treat an error the driver returned for a submission.
enum Refusal {
    /// Try again later (EDOM: queue full; EAGAIN, EINTR, ENOMEM, EBUSY).
    Transient,
    /// The device is gone or offline (ENODEV, ENXIO, EBADF, or a broken stand-in socket).
    Gone,
    /// This command will not go: it fails alone, with a reason.
    Fatal(&'static str),
}

fn refusal(e: &io::Error) -> Refusal {
    match e.raw_os_error() {
        Some(libc::EDOM | libc::EAGAIN | libc::EINTR | libc::ENOMEM | libc::EBUSY) => {
            Refusal::Transient
        }
        Some(libc::ENODEV | libc::ENXIO | libc::EBADF | libc::EPIPE | libc::ECONNRESET) => {
            Refusal::Gone
        }
        Some(libc::EINVAL) => {
            Refusal::Fatal("refused by the sg driver: EINVAL (more data than the device takes?)")
        }
        Some(libc::EPERM | libc::EACCES) => Refusal::Fatal("refused by the sg driver: EPERM"),
        Some(libc::EMSGSIZE) => Refusal::Fatal("refused by the sg driver: bad CDB length"),
        Some(libc::EIO) => Refusal::Fatal("refused by the sg driver: EIO"),
        _ => Refusal::Fatal("refused by the sg driver"),
    }
}

/// The initiator backend over `/dev/sgN`.
pub struct SgInitiator {
    searcher: Searcher,
    /// The running search, if any.
    searching: Option<Receiver<Result<Found, String>>>,
    /// The open device, while connected.
    file: Option<SgFile>,
    /// The device's node, while connected.
    path: Option<PathBuf>,
    /// The per-command limit of the device last used.
    limit: Option<usize>,
    /// The transfer size the port uses ([`SgInitiator::set_transfer`]).
    transfer: Option<usize>,
    /// Submitted commands waiting for a slot in the driver, in order.
    waiting: VecDeque<Waiting>,
    /// Commands the driver refused, to report as failed.
    refused: VecDeque<Completion>,
    /// Whether the current outage has been logged.
    warned: bool,
    /// Whether a refusal has been logged.
    warned_refusal: bool,
    /// A device dropped as a suspected impostor, probed last by later searches.
    avoid: Option<PathBuf>,
}

impl SgInitiator {
    /// A backend for `device`, accepting only the fcvpn device whose identity is `peer` (the
    /// target's, [`DeviceIdentity::from_target_public`]). The search starts at once on a
    /// helper thread; [`SgInitiator::wait_connected`] waits for it.
    pub fn new(device: SgDevice, peer: DeviceIdentity) -> Self {
        let roots = Roots::default();
        Self::with_searcher(Arc::new(move |avoid: Option<&Path>| {
            sg_discovery::search_avoiding(&device, &peer, &roots, avoid).map_err(|e| e.to_string())
        }))
    }

    /// A backend whose device search is `searcher` (run on a helper thread each time).
    fn with_searcher(searcher: Searcher) -> Self {
        let mut backend = Self {
            searcher,
            searching: None,
            file: None,
            path: None,
            limit: None,
            transfer: None,
            waiting: VecDeque::new(),
            refused: VecDeque::new(),
            warned: false,
            warned_refusal: false,
            avoid: None,
        };
        backend.start_search();
        backend
    }

    /// Waits up to `limit` for the first search; true if the device is now in use. Not
    /// finding it is not an error: the port keeps looking.
    pub fn wait_connected(&mut self, limit: Duration) -> bool {
        if self.file.is_some() {
            return true;
        }
        let Some(rx) = self.searching.take() else {
            return false;
        };
        let result = match rx.recv_timeout(limit) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => {
                tracing::info!("fc initiator: still searching for the device; going on without");
                self.searching = Some(rx);
                return false;
            }
            Err(RecvTimeoutError::Disconnected) => Err("the search stopped".to_owned()),
        };
        match result.and_then(|found| self.adopt(found)) {
            Ok(()) => true,
            Err(why) => {
                self.complain(&why);
                if self.searching.is_none() {
                    self.start_search();
                }
                false
            }
        }
    }

    /// The largest transfer one command can carry on the device (its limit once found; the
    /// protocol's [`MAX_TRANSFER_LEN`] before any device was found).
    pub fn max_transfer(&self) -> usize {
        self.limit.unwrap_or(MAX_TRANSFER_LEN)
    }

    /// Tells the backend the transfer size the port uses: the reserved buffer is sized to it,
    /// and a device found later that cannot take it is refused (with a message saying so).
    pub fn set_transfer(&mut self, len: usize) {
        self.transfer = Some(len);
        if let Some(file) = &self.file {
            let _ = file.set_reserved_size(len);
        }
    }

    /// The device node in use.
    pub fn device(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn start_search(&mut self) {
        let (tx, rx) = mpsc::channel();
        let searcher = Arc::clone(&self.searcher);
        let avoid = self.avoid.clone();
        let spawned = std::thread::Builder::new()
            .name("fcvpn-sg-search".into())
            .spawn(move || {
                // The receiver may be gone (the backend was dropped): the result then drops.
                let _ = tx.send(searcher(avoid.as_deref()));
            });
        match spawned {
            Ok(_) => self.searching = Some(rx),
            Err(e) => self.complain(&format!("cannot start the device search: {e}")),
        }
    }

    /// Takes a found device into use, unless its limit is below what the port sends.
    fn adopt(&mut self, found: Found) -> Result<(), String> {
        let path = found.path.display().to_string();
        let need = self.transfer.unwrap_or(MIN_TRANSFER);
        if found.limit < need {
            return Err(format!(
                "{path} takes at most {} bytes per command but fcvpn sends {need}: set \
                 fc.max_transfer to {} or less and restart",
                found.limit,
                found.limit.max(MIN_TRANSFER)
            ));
        }
        let reserved = found
            .file
            .set_reserved_size(self.transfer.unwrap_or(found.limit))
            .map_or_else(|e| format!("none: {e}"), |n| n.to_string());
        tracing::info!(
            "fc initiator: using {path} (at most {} bytes per command, reserved buffer {reserved})",
            found.limit
        );
        self.warned = false;
        self.limit = Some(found.limit);
        self.path = Some(found.path);
        self.file = Some(found.file);
        Ok(())
    }

    /// Logs a failed search once per outage (later ones at debug level).
    fn complain(&mut self, why: &str) {
        if self.warned {
            tracing::debug!("fc initiator: no device yet: {why}");
        } else {
            tracing::warn!("fc initiator: no device yet: {why}; still looking");
            self.warned = true;
        }
    }

    /// Closes the device; its commands' buffers (and those waiting) are dropped.
    fn drop_device(&mut self) {
        self.file = None;
        self.path = None;
        self.waiting.clear();
        self.refused.clear();
    }

    /// A disconnect error after closing the device.
    fn lost(&mut self, e: &io::Error) -> BackendError {
        let what = self
            .path
            .as_ref()
            .map_or_else(|| "sg device".to_owned(), |p| p.display().to_string());
        self.drop_device();
        BackendError::Disconnected(format!("{what}: {e}"))
    }

    /// Reports command `tag` as failed at the next [`InitiatorBackend::next_completion`].
    fn refuse(&mut self, tag: u64, buffer: Vec<u8>, why: &'static str, e: &io::Error) {
        if !self.warned_refusal {
            tracing::warn!("fc initiator: command refused: {e}");
            self.warned_refusal = true;
        }
        self.refused.push_back(Completion {
            tag,
            buffer,
            outcome: Outcome::Failed(why),
        });
    }

    /// Hands waiting commands to the driver while it has slots.
    fn submit_waiting(&mut self) -> Result<(), BackendError> {
        while let Some(w) = self.waiting.pop_front() {
            let Some(file) = self.file.as_mut() else {
                return Err(BackendError::Disconnected("no sg device".into()));
            };
            if file.in_flight() >= SG_MAX_QUEUE {
                self.waiting.push_front(w);
                break;
            }
            let dir = data_dir(w.dir);
            match file.submit(w.tag, &w.cdb, dir, w.buffer, w.len, w.timeout) {
                Ok(()) => {}
                Err((buffer, e)) => match refusal(&e) {
                    Refusal::Transient => {
                        self.waiting.push_front(Waiting { buffer, ..w });
                        break;
                    }
                    Refusal::Gone => return Err(self.lost(&e)),
                    Refusal::Fatal(why) => self.refuse(w.tag, buffer, why, &e),
                },
            }
        }
        Ok(())
    }
}

fn data_dir(dir: Direction) -> DataDir {
    match dir {
        Direction::Out => DataDir::ToDevice,
        Direction::In => DataDir::FromDevice,
    }
}

impl InitiatorBackend for SgInitiator {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.file.as_ref().map(SgFile::poll_fd)
    }

    /// Always false: waiting commands go out when a reaped command frees a slot, which the
    /// port does in the same pass (a finished command makes the descriptor readable).
    fn wants_write(&self) -> bool {
        false
    }

    fn submit(
        &mut self,
        tag: u64,
        cdb: &[u8],
        dir: Direction,
        buffer: Vec<u8>,
        len: usize,
        timeout: Duration,
    ) -> Result<(), (Vec<u8>, BackendError)> {
        let Some(file) = self.file.as_ref() else {
            return Err((buffer, BackendError::Disconnected("no sg device".into())));
        };
        if file.holds(tag) || self.waiting.iter().any(|w| w.tag == tag) {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "tag already in flight");
            return Err((buffer, e.into()));
        }
        if self.waiting.len() >= MAX_WAITING {
            let e = io::Error::from_raw_os_error(libc::EDOM);
            return Err((buffer, e.into()));
        }
        self.waiting.push_back(Waiting {
            tag,
            cdb: cdb.to_vec(),
            dir,
            buffer,
            len,
            timeout,
        });
        // Commands leave in order. If the device turns out to be gone, this command's buffer
        // went with the others; the port forgets them all and reconnects.
        self.submit_waiting().map_err(|e| (Vec::new(), e))
    }

    /// Removes a command still waiting for a slot. One already in the driver cannot be
    /// aborted from here (sg has no abort call); the kernel's timeout ends it.
    fn abort(&mut self, tag: u64) -> Result<Option<Vec<u8>>, BackendError> {
        let at = self.waiting.iter().position(|w| w.tag == tag);
        Ok(at.and_then(|i| self.waiting.remove(i)).map(|w| w.buffer))
    }

    fn next_completion(&mut self) -> Result<Option<Completion>, BackendError> {
        if let Some(c) = self.refused.pop_front() {
            return Ok(Some(c));
        }
        let Some(file) = self.file.as_mut() else {
            return Err(BackendError::Disconnected("no sg device".into()));
        };
        match file.reap() {
            Ok(Some(r)) => {
                let dir = match r.dir {
                    DataDir::FromDevice => Direction::In,
                    DataDir::ToDevice | DataDir::None => Direction::Out,
                };
                Ok(Some(Completion {
                    tag: r.key,
                    outcome: outcome::outcome(&r.reply, &r.sense, dir),
                    buffer: r.data,
                }))
            }
            Ok(None) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            // ENODEV, ENXIO, or anything else: a reap that failed may have consumed a
            // command we can no longer match, so start over with a fresh file.
            Err(e) => Err(self.lost(&e)),
        }
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        if self.file.is_none() {
            return Err(BackendError::Disconnected("no sg device".into()));
        }
        self.submit_waiting()
    }

    fn is_connected(&self) -> bool {
        self.file.is_some()
    }

    /// Drops what is left of the old device, then takes the result of the running search (if
    /// it has finished) and starts the next one if that failed. Never blocks.
    fn reconnect(&mut self) -> Result<(), BackendError> {
        self.drop_device();
        let result = match self.searching.take() {
            None => {
                self.start_search();
                return Err(BackendError::Disconnected("searching".into()));
            }
            Some(rx) => match rx.try_recv() {
                Ok(result) => result,
                Err(TryRecvError::Empty) => {
                    self.searching = Some(rx);
                    return Err(BackendError::Disconnected("still searching".into()));
                }
                Err(TryRecvError::Disconnected) => Err("the search stopped".to_owned()),
            },
        };
        match result.and_then(|found| self.adopt(found)) {
            Ok(()) => Ok(()),
            Err(why) => {
                self.complain(&why);
                self.start_search();
                Err(BackendError::Disconnected(why))
            }
        }
    }

    fn enforces_timeouts(&self) -> bool {
        true
    }

    /// Drops the device in use and searches again, probing it last (with `device = "auto"`
    /// another candidate is taken if there is one; a configured path is simply reopened).
    fn search_again(&mut self) -> bool {
        let Some(path) = self.path.clone() else {
            return false;
        };
        tracing::warn!(
            "fc initiator: {} answers SCSI commands but never proved the peer behind it; searching again",
            path.display()
        );
        self.avoid = Some(path);
        self.drop_device();
        if self.searching.is_none() {
            self.start_search();
        }
        true
    }
}

#[cfg(test)]
mod tests;

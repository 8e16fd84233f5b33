//! The LIO TCMU target backend: the virtual SCSI device served from userspace through LIO's
//! user backstore, behind `tcm_qla2xxx` on real HBAs or `tcm_loop` for tests.
//!
//! [`TcmuTarget::open`] creates (or takes over) the LIO objects ([`super::lio`]), opens and
//! maps the backstore's UIO device and serves its command [`ring`]. Commands come out of the
//! ring as [`TargetEvent`]s; completions go back in, and one 4-byte write to the UIO device per
//! [`TargetBackend::flush`] tells the kernel about all of them.
//!
//! - **Aborts**: with `tmr_notification = 1`, LIO queues a TMR entry naming the commands an
//!   ABORT TASK, LUN RESET or the like affects. The ring completes each still outstanding
//!   (LIO waits for that before it answers the task management function) and reports
//!   [`TargetEvent::Abort`], so the port forgets it.
//! - **Restart**: LIO objects outlive a SIGKILLed fcvpn, and the initiator keeps its
//!   `/dev/sgN`. A new fcvpn finds the enabled backstore and retakes its ring: block the
//!   device (new commands get BUSY), reset the ring (commands in it complete with BUSY:
//!   retryable), map it, unblock. [`TargetBackend::reconnect`] does the same after a ring
//!   error.
//! - **Clean exit** (drop): block, complete what is outstanding with BUSY, remove the export
//!   (a LUN is only removed once its commands are done), close the UIO device, remove the
//!   backstore: in reverse order of creation, and only what is fcvpn's (see
//!   [`super::lio::LioSetup`]).

#[cfg(test)]
mod fake_kernel;
pub mod opcode;
pub mod ring;
#[cfg(test)]
mod ring_tests;
#[cfg(test)]
mod tests;
pub mod uio;

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use super::BackendError;
use super::lio::{BackstoreState, Configfs, LioError, LioPaths, LioSetup, LioSpec, SystemConfigfs};
use super::target::{TargetBackend, TargetEvent};
use crate::scsi::{Dispatch, VirtualDevice, status};
use crate::sys::tcmu::SharedMemory;
use ring::{Ring, RingError};
use uio::Uio;

/// Why the TCMU backend could not start.
#[derive(Debug, Error)]
pub enum TcmuError {
    /// Configuring LIO failed.
    #[error(transparent)]
    Lio(#[from] LioError),
    /// The backstore's UIO device did not appear.
    #[error("no UIO device named {0} (under /sys/class/uio) after enabling the backstore")]
    NoUio(String),
    /// Another process serves the backstore.
    #[error("{0}: in use by another process (is another fcvpn serving this link?)")]
    UioBusy(String),
    /// Opening or mapping the UIO device failed.
    #[error("{what}: {source}")]
    Uio {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The ring is not usable.
    #[error(transparent)]
    Ring(#[from] RingError),
}

/// How often the LUN scan's commands are looked for while the export is being created.
const EXPORT_POLL: Duration = Duration::from_millis(10);

/// The TCMU target backend.
pub struct TcmuTarget {
    ring: Option<Ring>,
    uio: Option<Uio>,
    lio: Option<LioSetup>,
    /// Set on a ring or UIO error; cleared by a successful [`TargetBackend::reconnect`].
    broken: bool,
    /// Notifications sent to the kernel (one per flush with completions).
    notifications: u64,
}

impl TcmuTarget {
    /// Sets up LIO for `spec` (see the module docs) and serves the ring. While the export is
    /// created, the kernel's scan of the new LUN (INQUIRY, VPD) is answered by `scan`, a copy
    /// of the device the port will serve; data commands arriving that early get BUSY.
    ///
    /// On failure, what this call created is removed again, and nothing else is touched (a
    /// backstore busy with another fcvpn is left alone).
    pub fn open(spec: &LioSpec, paths: &LioPaths, scan: VirtualDevice) -> Result<Self, TcmuError> {
        let fs: Arc<dyn Configfs> = Arc::new(SystemConfigfs);
        super::lio::ensure_configfs(&paths.configfs)?;
        let (mut lio, state) = LioSetup::prepare(fs, spec, paths)?;
        let mut target = Self {
            ring: None,
            uio: None,
            lio: None,
            broken: false,
            notifications: 0,
        };
        let started = target
            .attach(&lio, spec, paths, state)
            .and_then(|()| target.export(&mut lio, scan));
        match started {
            Ok(()) => {
                // From here on, dropping the target is a clean exit that removes fcvpn's objects.
                target.lio = Some(lio);
                Ok(target)
            }
            Err(e) => {
                drop(target);
                for e in lio.abandon() {
                    tracing::warn!("tcmu: undoing a failed start: {e}");
                }
                Err(e)
            }
        }
    }

    /// Opens and maps the UIO device; an existing backstore's ring is retaken first.
    fn attach(
        &mut self,
        lio: &LioSetup,
        spec: &LioSpec,
        paths: &LioPaths,
        state: BackstoreState,
    ) -> Result<(), TcmuError> {
        let name = spec.uio_name();
        let info = uio::find(&paths.uio_class, &name)
            .map_err(|source| TcmuError::Uio {
                what: format!("looking for UIO device {name}"),
                source,
            })?
            .ok_or_else(|| TcmuError::NoUio(name.clone()))?;
        let node = info.node(&paths.dev);
        let uio = Uio::open(&node).map_err(|source| {
            if source.raw_os_error() == Some(nix::libc::EBUSY) {
                TcmuError::UioBusy(node.display().to_string())
            } else {
                TcmuError::Uio {
                    what: format!("opening {}", node.display()),
                    source,
                }
            }
        })?;
        let existing = state == BackstoreState::Existing;
        if existing {
            tracing::info!(
                "tcmu: taking over backstore {} ({})",
                spec.backstore,
                node.display()
            );
            lio.block(true)?;
        }
        let mapped = Self::map_ring(lio, &uio, &node, info.map_size, existing);
        if existing && let Err(e) = lio.block(false) {
            // Left blocked, the device answers BUSY forever: that is a failed start.
            return Err(e.into());
        }
        self.ring = Some(mapped?);
        self.uio = Some(uio);
        Ok(())
    }

    /// Resets the ring of an existing backstore, maps it and checks its mailbox.
    fn map_ring(
        lio: &LioSetup,
        uio: &Uio,
        node: &std::path::Path,
        len: usize,
        reset: bool,
    ) -> Result<Ring, TcmuError> {
        if reset {
            lio.reset_ring()?;
        }
        let mem = SharedMemory::map(uio.as_fd(), len).map_err(|source| TcmuError::Uio {
            what: format!("mapping {} ({len} bytes)", node.display()),
            source,
        })?;
        Ok(Ring::new(mem)?)
    }

    /// Creates the export on a helper thread while this one answers the ring.
    fn export(&mut self, lio: &mut LioSetup, mut scan: VirtualDevice) -> Result<(), TcmuError> {
        let joined = std::thread::scope(|s| {
            let worker = s.spawn(|| lio.export());
            while !worker.is_finished() {
                if let Err(e) = self.serve_scan(&mut scan) {
                    tracing::warn!("tcmu: while exporting the LUN: {e}");
                    std::thread::sleep(EXPORT_POLL);
                }
            }
            worker.join()
        });
        match joined {
            Ok(result) => Ok(result?),
            Err(_) => Err(TcmuError::Uio {
                what: "exporting the LUN".into(),
                source: std::io::Error::other("the configfs thread panicked"),
            }),
        }
    }

    /// Waits briefly for the ring, then answers what is in it with `device`.
    fn serve_scan(&mut self, device: &mut VirtualDevice) -> Result<(), BackendError> {
        if let Some(uio) = &self.uio {
            let fd = uio.as_fd();
            let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
            let timeout = nix::poll::PollTimeout::try_from(EXPORT_POLL)
                .unwrap_or(nix::poll::PollTimeout::ZERO);
            let _ = nix::poll::poll(&mut fds, timeout);
        }
        while let Some(event) = self.next_event()? {
            let TargetEvent::Command(cmd) = event else {
                continue;
            };
            match device.dispatch(&cmd.cdb, &cmd.data_out, cmd.data_in_len) {
                Dispatch::Complete(r) => self.complete(cmd.id, r.status, &r.sense, &r.data_in)?,
                Dispatch::Send { .. } | Dispatch::Receive { .. } => {
                    self.complete(cmd.id, status::BUSY, &[], &[])?
                }
            }
        }
        self.flush()
    }

    /// Notifications sent to the kernel so far.
    pub fn notifications(&self) -> u64 {
        self.notifications
    }

    /// The ring's counters.
    pub fn ring_stats(&self) -> Option<ring::RingStats> {
        self.ring.as_ref().map(Ring::stats)
    }

    fn ring(&mut self) -> Result<&mut Ring, BackendError> {
        match (&mut self.ring, self.broken) {
            (Some(ring), false) => Ok(ring),
            _ => Err(BackendError::Disconnected(
                "the TCMU ring is not usable".into(),
            )),
        }
    }

    /// Marks the ring unusable after `e`.
    fn broke(&mut self, e: impl std::fmt::Display) -> BackendError {
        self.broken = true;
        BackendError::Disconnected(e.to_string())
    }

    /// Blocks the device, completes everything in the ring with BUSY and tells the kernel,
    /// so the LUN can be removed without waiting for us.
    fn quiesce(&mut self) {
        if let Some(lio) = &self.lio
            && let Err(e) = lio.block(true)
        {
            tracing::warn!("tcmu: {e}");
        }
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        let mut busy = 0;
        loop {
            let answered = match ring.next_event() {
                Ok(Some(TargetEvent::Command(cmd))) => {
                    ring.complete(cmd.id, status::BUSY, &[], &[])
                }
                Ok(Some(TargetEvent::Abort(_))) => Ok(()),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            if let Err(e) = answered {
                tracing::warn!("tcmu: {e}");
                break;
            }
        }
        match ring.complete_all(status::BUSY) {
            Ok(n) => busy += n,
            Err(e) => tracing::warn!("tcmu: {e}"),
        }
        if ring.take_notify()
            && let Some(uio) = &self.uio
            && let Err(e) = uio.notify()
        {
            tracing::warn!("tcmu: notifying the kernel: {e}");
        }
        if busy > 0 {
            tracing::info!("tcmu: {busy} parked commands answered BUSY on exit");
        }
    }
}

#[cfg(test)]
impl TcmuTarget {
    /// A backend over `ring` alone: no UIO device, no LIO (notifications are only counted).
    pub(crate) fn over_ring(ring: Ring) -> Self {
        Self {
            ring: Some(ring),
            uio: None,
            lio: None,
            broken: false,
            notifications: 0,
        }
    }
}

impl TargetBackend for TcmuTarget {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        if self.broken {
            return None;
        }
        self.uio.as_ref().map(Uio::as_fd)
    }

    fn wants_write(&self) -> bool {
        false
    }

    /// Reads the ring; when it is empty, drains the UIO event count (so `poll` quiets down)
    /// and looks once more, so a command queued in between is not missed.
    fn next_event(&mut self) -> Result<Option<TargetEvent>, BackendError> {
        let first = self.ring()?.next_event();
        match first {
            Ok(Some(event)) => return Ok(Some(event)),
            Ok(None) => {}
            Err(e) => return Err(self.broke(e)),
        }
        let drained = self.uio.as_ref().map_or(Ok(false), Uio::drain);
        if let Err(e) = drained {
            return Err(self.broke(format!("reading the UIO device: {e}")));
        }
        let again = self.ring()?.next_event();
        again.map_err(|e| self.broke(e))
    }

    fn complete(
        &mut self,
        id: u64,
        status: u8,
        sense: &[u8],
        data_in: &[u8],
    ) -> Result<(), BackendError> {
        let result = self.ring()?.complete(id, status, sense, data_in);
        result.map_err(|e| self.broke(e))
    }

    /// One notification for everything completed since the last flush.
    fn flush(&mut self) -> Result<(), BackendError> {
        if !self.ring()?.take_notify() {
            return Ok(());
        }
        self.notifications += 1;
        let notified = self.uio.as_ref().map_or(Ok(()), Uio::notify);
        notified.map_err(|e| self.broke(format!("notifying the kernel: {e}")))
    }

    fn is_connected(&self) -> bool {
        self.ring.is_some() && !self.broken
    }

    /// Retakes the ring: block the device, reset the ring (LIO completes what it held with
    /// BUSY), start over at its tail, unblock.
    fn reconnect(&mut self) -> Result<(), BackendError> {
        let lost = |e: LioError| BackendError::Disconnected(e.to_string());
        if let Some(lio) = &self.lio {
            lio.block(true).map_err(lost)?;
            lio.reset_ring().map_err(lost)?;
        }
        let restarted = match self.ring.as_mut() {
            Some(ring) => ring.restart(),
            None => {
                return Err(BackendError::Disconnected(
                    "the TCMU ring is not mapped".into(),
                ));
            }
        };
        restarted.map_err(|e| BackendError::Disconnected(e.to_string()))?;
        if let Some(lio) = &self.lio {
            lio.block(false).map_err(lost)?;
        }
        self.broken = false;
        Ok(())
    }
}

impl Drop for TcmuTarget {
    /// A clean exit: see the module docs. Failures are logged; nothing here can panic.
    fn drop(&mut self) {
        if self.lio.is_none() {
            return;
        }
        self.quiesce();
        let Some(mut lio) = self.lio.take() else {
            return;
        };
        for e in lio.remove_export() {
            tracing::warn!("tcmu: removing the export: {e}");
        }
        self.ring = None;
        self.uio = None;
        for e in lio.remove_backstore() {
            tracing::warn!("tcmu: removing the backstore: {e}");
        }
        tracing::info!("tcmu: LIO teardown done");
    }
}

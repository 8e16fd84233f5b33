//! The I/O loop: the only place that reads the clock. One thread owns the link, the TUN/TAP
//! device, the transports and the control socket, and waits on all of them with `poll(2)`.
//!
//! Each turn: read packets from the TUN device into the link (while it accepts them), let
//! every transport move batches, run the link's timers, act on its events (log once, drive
//! the carrier), answer the control socket, then sleep until a descriptor is ready or the
//! next deadline.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::time::TimeSpec;

use crate::control::ControlServer;
use crate::link::{Event, Link, wire};
use crate::status::{LinkStatus, StaticInfo, describe_change, describe_down};
use crate::transport::Transport;
use crate::tun::Tun;

/// Packets read from the TUN device per turn before the transports get to send.
const READ_BUDGET: usize = 512;
/// How long to wait when only transport capacity can make progress.
const IDLE_TICK: Duration = Duration::from_millis(1);

/// Everything the loop drives.
pub struct Driver {
    /// The link.
    pub link: Link,
    /// The packet device.
    pub tun: Box<dyn Tun>,
    /// One transport per path.
    pub transports: Vec<Box<dyn Transport>>,
    /// The control socket.
    pub control: Option<ControlServer>,
    /// Facts for `show` that do not change.
    pub info: StaticInfo,
    /// The link's time zero.
    pub epoch: Instant,
    tun_errors: u64,
}

impl Driver {
    /// A driver whose link counts time from `epoch`.
    pub fn new(
        link: Link,
        tun: Box<dyn Tun>,
        transports: Vec<Box<dyn Transport>>,
        info: StaticInfo,
        epoch: Instant,
    ) -> Self {
        Self {
            link,
            tun,
            transports,
            control: None,
            info,
            epoch,
            tun_errors: 0,
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Runs until `stop` becomes readable (a signalfd) or a fatal error.
    pub fn run(&mut self, stop: BorrowedFd<'_>) -> std::io::Result<()> {
        loop {
            let now = self.now();
            self.set_wall_clock(now);
            self.turn(now);
            if self.wait(stop)? {
                return Ok(());
            }
        }
    }

    /// Reads the wall clock for the transports that need it (the FC command tokens).
    fn set_wall_clock(&mut self, now: Duration) {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        for t in &mut self.transports {
            t.set_wall_clock(now, unix);
        }
    }

    /// One turn of the loop at `now` (also used by tests with a fake clock).
    pub fn turn(&mut self, now: Duration) {
        self.read_tun(now);
        self.drive_transports(now);
        if self.link.poll_timeout().is_some_and(|t| t <= now) {
            self.link.handle_timeout(now);
            self.drive_transports(now);
        }
        self.handle_events();
        self.serve_control(now);
    }

    fn read_tun(&mut self, now: Duration) {
        for _ in 0..READ_BUDGET {
            if !self.link.can_accept(wire::MAX_PACKET_LEN) {
                return;
            }
            let mut buf = self.link.packet_buffer();
            match self.tun.recv(&mut buf, wire::MAX_PACKET_LEN) {
                Ok(Some(_)) => {
                    // Refusals are counted by the link.
                    let _ = self.link.handle_packet_buffer(now, buf);
                }
                Ok(None) => return,
                Err(e) => {
                    self.tun_error("read", &e);
                    return;
                }
            }
        }
    }

    fn drive_transports(&mut self, now: Duration) {
        let Self {
            link,
            tun,
            transports,
            tun_errors,
            ..
        } = self;
        let mut deliver = |p: &[u8]| {
            if let Err(e) = tun.send(p) {
                *tun_errors += 1;
                if tun_errors.is_power_of_two() {
                    tracing::warn!("tun write failed ({tun_errors} so far): {e}");
                }
            }
        };
        for t in transports.iter_mut() {
            t.drive(now, link, &mut deliver);
        }
    }

    fn tun_error(&mut self, what: &str, e: &std::io::Error) {
        self.tun_errors += 1;
        if self.tun_errors.is_power_of_two() {
            tracing::warn!("tun {what} failed ({} so far): {e}", self.tun_errors);
        }
    }

    fn handle_events(&mut self) {
        while let Some(event) = self.link.poll_event() {
            match &event {
                Event::Carrier(up) => {
                    if let Err(e) = self.tun.set_carrier(*up) {
                        tracing::warn!("setting the carrier failed: {e}");
                    }
                    tracing::info!(
                        "carrier {}",
                        if *up {
                            "on: the link can deliver"
                        } else {
                            "off: the link cannot deliver"
                        }
                    );
                }
                Event::HandshakeCompleted { rekey: true, .. } => tracing::debug!("session renewed"),
                Event::HandshakeCompleted { path, .. } => {
                    tracing::info!("handshake completed over {}", self.path_name(*path))
                }
                Event::PeerRestarted => {
                    tracing::info!("the peer restarted; resending what was in flight")
                }
                Event::PathUp { path } => tracing::info!("path {} up", self.path_name(*path)),
                Event::PathDown { path, cause } => {
                    tracing::warn!(
                        "path {} down: {}",
                        self.path_name(*path),
                        describe_down(cause)
                    )
                }
                Event::ActivePathChanged { from, to, cause } => {
                    let change = crate::link::path::PathChange {
                        at: self.now(),
                        from: *from,
                        to: *to,
                        cause: *cause,
                    };
                    tracing::warn!(
                        "traffic moved from {} to {} ({})",
                        from.map_or("none", |p| self.path_name(p)),
                        to.map_or("none", |p| self.path_name(p)),
                        describe_change(&change)
                    )
                }
                Event::PeerClosed => tracing::info!("the peer closed the link"),
            }
        }
    }

    fn path_name(&self, id: u8) -> &'static str {
        crate::status::path_name(id)
    }

    fn serve_control(&mut self, now: Duration) {
        let Some(control) = self.control.as_mut() else {
            return;
        };
        let status = || {
            LinkStatus::collect(
                &self.info,
                &self.link,
                &self.transports,
                self.tun.as_ref(),
                now,
            )
        };
        control.serve(status);
    }

    /// Sleeps until something is ready or a deadline passes; true if `stop` fired.
    fn wait(&mut self, stop: BorrowedFd<'_>) -> std::io::Result<bool> {
        let now = self.now();
        let timeout = self.next_deadline(now).map(|t| t.saturating_sub(now));
        let accepting = self.link.can_accept(wire::MAX_PACKET_LEN);
        let mut fds = vec![PollFd::new(stop, PollFlags::POLLIN)];
        if let (Some(fd), true) = (self.tun.fd(), accepting) {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        for t in &self.transports {
            if let Some((fd, write)) = t.interest() {
                let flags = if write {
                    PollFlags::POLLIN | PollFlags::POLLOUT
                } else {
                    PollFlags::POLLIN
                };
                fds.push(PollFd::new(fd, flags));
            }
        }
        if let Some(c) = &self.control {
            fds.push(PollFd::new(c.fd(), PollFlags::POLLIN));
        }
        let timeout = timeout.map(|t| TimeSpec::from_duration(t.min(Duration::from_secs(60))));
        match ppoll(&mut fds, timeout, None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN)))
    }

    /// The earliest deadline. Link deadlines already due mean work waits for transport
    /// capacity, which a descriptor will announce; they count as one tick away.
    fn next_deadline(&self, now: Duration) -> Option<Duration> {
        let link = self.link.poll_timeout().map(|t| t.max(now + IDLE_TICK));
        let transports = self
            .transports
            .iter()
            .filter_map(|t| t.deadline())
            .map(|t| t.max(now));
        link.into_iter().chain(transports).min()
    }
}

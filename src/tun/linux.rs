//! The Linux TUN/TAP device, through `tun-rs`, kept persistent while fcvpn runs so that a
//! restart (even a crash) leaves the interface, its addresses and the connections over it in
//! place; a clean shutdown removes it.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};

use tun_rs::{DeviceBuilder, Layer, SyncDevice};

use super::Tun;
use crate::sys;

/// What the interface should look like.
#[derive(Debug, Clone)]
pub struct TunSettings {
    /// Interface name.
    pub name: String,
    /// L2 (TAP) rather than L3 (TUN).
    pub tap: bool,
    /// MTU.
    pub mtu: u16,
    /// Addresses (address, prefix length) to add; existing ones are kept.
    pub addresses: Vec<(IpAddr, u8)>,
    /// Whether fcvpn brings the interface up (false leaves the state to a bond in TAP mode).
    pub bring_up: bool,
}

/// An open TUN/TAP interface.
pub struct LinuxTun {
    dev: SyncDevice,
    name: String,
    dropped: u64,
    /// Whether the interface existed (persisted by an earlier fcvpn) when we opened it.
    pub reattached: bool,
}

impl LinuxTun {
    /// Creates the interface, or attaches to the one a previous fcvpn left persistent, then
    /// sets MTU, addresses and state. The device is marked persistent until
    /// [`LinuxTun::remove`].
    pub fn open(s: &TunSettings) -> io::Result<Self> {
        let reattached = std::path::Path::new("/sys/class/net")
            .join(&s.name)
            .exists();
        let layer = if s.tap { Layer::L2 } else { Layer::L3 };
        let builder = DeviceBuilder::new().name(&s.name).layer(layer).mtu(s.mtu);
        // A device left by an earlier fcvpn keeps its state: taking it down would drop the
        // routes through it and, for a bond's slave, leave it down (a bond never brings a
        // slave up again).
        let builder = if reattached {
            builder.inherit_enable_state()
        } else {
            builder.enable(false)
        };
        let dev = builder.build_sync()?;
        dev.persist()?;
        dev.set_nonblocking(true)?;
        let tun = Self {
            dev,
            name: s.name.clone(),
            dropped: 0,
            reattached,
        };
        for &(addr, prefix) in &s.addresses {
            tun.add_address(addr, prefix)?;
        }
        if s.bring_up {
            tun.dev.enabled(true)?;
        }
        Ok(tun)
    }

    fn add_address(&self, addr: IpAddr, prefix: u8) -> io::Result<()> {
        let r = match addr {
            IpAddr::V4(a) => self.dev.add_address_v4(a, prefix),
            IpAddr::V6(a) => self.dev.add_address_v6(a, prefix),
        };
        match r {
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists
                    || e.raw_os_error() == Some(nix::libc::EEXIST) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Tun for LinuxTun {
    fn recv(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<usize>> {
        match sys::io::read_to_spare(self.dev.as_fd(), buf, max) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        match self.dev.send(packet) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.dropped += 1;
                Ok(())
            }
            // The kernel refuses packets while the interface is down: the same as a drop.
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {
                self.dropped += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn set_carrier(&mut self, up: bool) -> io::Result<()> {
        sys::tun::set_carrier(self.dev.as_fd(), up)
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.dev.as_fd())
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Clears persistence: the interface disappears when this process closes it.
    fn remove(&mut self) -> io::Result<()> {
        sys::tun::set_persist(self.dev.as_fd(), false)
    }
}

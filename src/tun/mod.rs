//! The local packet device: a Linux TUN (L3) or TAP (L2) interface, or an in-memory double.

mod linux;
mod memory;

use std::io;
use std::os::fd::BorrowedFd;

pub use linux::{LinuxTun, TunSettings};
pub use memory::MemoryTun;

/// A packet device as the driver uses it. Reads and writes never block.
pub trait Tun {
    /// Reads one packet, appending it to `buf` (whose spare capacity is used, up to `max`
    /// bytes). `Ok(None)` when no packet is waiting.
    fn recv(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<usize>>;
    /// Writes one packet. A full device queue drops it (as a NIC does) and counts it.
    fn send(&mut self, packet: &[u8]) -> io::Result<()>;
    /// Turns the carrier on or off.
    fn set_carrier(&mut self, up: bool) -> io::Result<()>;
    /// The descriptor to wait on for readability, if any.
    fn fd(&self) -> Option<BorrowedFd<'_>>;
    /// Packets dropped on write because the device queue was full.
    fn dropped(&self) -> u64;
    /// Arranges for the device to disappear when it is closed (a clean shutdown).
    fn remove(&mut self) -> io::Result<()>;
}

//! An in-memory [`Tun`] for tests: packets are pushed in and collected out.

use std::collections::VecDeque;
use std::io;
use std::os::fd::BorrowedFd;

use super::Tun;

/// Queues standing in for a TUN device.
#[derive(Debug, Default)]
pub struct MemoryTun {
    /// Packets the "kernel" offers to fcvpn.
    pub inbound: VecDeque<Vec<u8>>,
    /// Packets fcvpn wrote.
    pub outbound: Vec<Vec<u8>>,
    /// The carrier as last set.
    pub carrier: bool,
}

impl Tun for MemoryTun {
    fn recv(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<usize>> {
        let Some(p) = self.inbound.pop_front() else {
            return Ok(None);
        };
        let n = p.len().min(max);
        buf.extend_from_slice(&p[..n]);
        Ok(Some(n))
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.outbound.push(packet.to_vec());
        Ok(())
    }

    fn set_carrier(&mut self, up: bool) -> io::Result<()> {
        self.carrier = up;
        Ok(())
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn dropped(&self) -> u64 {
        0
    }

    fn remove(&mut self) -> io::Result<()> {
        Ok(())
    }
}

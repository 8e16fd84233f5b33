//! The impostor watchdog: a device that answers every command GOOD but never lets the link
//! prove the peer is behind it is searched past after `impostor_after`; one that fails its
//! commands, or a port without the watchdog, is left alone.

use std::collections::VecDeque;

use super::*;
use crate::crypto::{LocalStatic, PrivateKey};
use crate::link::{Entropy, LinkConfig, PathConfig};

/// Answers every command at once, GOOD with no data (as a copy of the device that only
/// returns IDLE would) or failed.
struct Stranger {
    good: bool,
    done: VecDeque<Completion>,
    connected: bool,
    searches: Vec<Duration>,
    now: Duration,
}

impl InitiatorBackend for Stranger {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn wants_write(&self) -> bool {
        false
    }
    fn submit(
        &mut self,
        tag: u64,
        _cdb: &[u8],
        _dir: Direction,
        buffer: Vec<u8>,
        _len: usize,
        _timeout: Duration,
    ) -> Result<(), (Vec<u8>, BackendError)> {
        let outcome = if self.good {
            Outcome::Good { len: 0 }
        } else {
            Outcome::Failed("no connection")
        };
        self.done.push_back(Completion {
            tag,
            buffer,
            outcome,
        });
        Ok(())
    }
    fn abort(&mut self, _tag: u64) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(None)
    }
    fn next_completion(&mut self) -> Result<Option<Completion>, BackendError> {
        Ok(self.done.pop_front())
    }
    fn flush(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
    fn is_connected(&self) -> bool {
        self.connected
    }
    fn reconnect(&mut self) -> Result<(), BackendError> {
        self.connected = true;
        Ok(())
    }
    fn enforces_timeouts(&self) -> bool {
        true
    }
    fn search_again(&mut self) -> bool {
        self.searches.push(self.now);
        self.connected = false;
        self.done.clear();
        true
    }
}

/// A fixed, varying byte stream (constant bytes would never end a rejection sampling).
struct Counter(u64);

impl Entropy for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.0 >> 56) as u8;
        }
    }
}

const MS: Duration = Duration::from_millis(1);

/// Drives a port over a [`Stranger`] for 5 s of virtual time; returns when it searched.
fn run(good: bool, impostor_after: Option<Duration>) -> Vec<Duration> {
    let local = LocalStatic::new(PrivateKey::from_bytes([1; 32]));
    let peer = PrivateKey::from_bytes([2; 32]).public_key();
    let paths = vec![PathConfig::new(FC_PATH, "fc", 0, 1 << 16)];
    let mut link = Link::new(
        LinkConfig::new(local, peer, paths),
        Box::new(Counter(1)),
        Duration::ZERO,
    )
    .expect("link");
    let target = PrivateKey::from_bytes([2; 32]);
    let fabric_key = FabricKey::derive(
        &PrivateKey::from_bytes([1; 32]),
        &target.public_key(),
        crate::crypto::fabric::FabricRole::Initiator,
    )
    .expect("fabric key");
    let settings = InitiatorSettings {
        fabric_key,
        read_hold: 250 * MS,
        wall_clock: WallClock::new(Duration::from_secs(1_800_000_000)),
        reads_in_flight: 2,
        writes_in_flight: 2,
        max_transfer: 1 << 16,
        command_timeout: 1500 * MS,
        reconnect_every: 200 * MS,
        impostor_after,
    };
    let backend = Stranger {
        good,
        done: VecDeque::new(),
        connected: true,
        searches: Vec::new(),
        now: Duration::ZERO,
    };
    let mut port = InitiatorPort::new(backend, settings);
    for step in 0..500u32 {
        let now = step * 10 * MS;
        port.backend.now = now;
        if link.poll_timeout().is_some_and(|t| t <= now) {
            link.handle_timeout(now);
        }
        port.drive(now, &mut link, &mut |_| {});
    }
    port.backend.searches
}

#[test]
fn a_device_that_never_proves_the_peer_is_searched_past() {
    let searches = run(true, Some(2000 * MS));
    // 2 s after the first connection, then 2 s after the reconnection 200 ms later.
    assert_eq!(searches, [2000 * MS, 4200 * MS]);
}

#[test]
fn failing_commands_or_no_watchdog_never_search() {
    assert_eq!(run(false, Some(2000 * MS)), []);
    assert_eq!(run(true, None), []);
}

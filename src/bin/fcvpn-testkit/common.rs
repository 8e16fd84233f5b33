//! What the attack tools share: a stop flag raised by SIGTERM/SIGINT, a rate pacer, and
//! parsing of hex numbers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Raised by SIGTERM or SIGINT, so that a tool stopped early still prints its summary.
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Registers the flag for SIGTERM and SIGINT.
    pub fn install() -> Result<Self, String> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&flag))
                .map_err(|e| format!("installing a signal handler: {e}"))?;
        }
        Ok(Self(flag))
    }

    /// Whether a stop signal arrived.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Lets through at most `rate` events per second on average since its start (0: no limit).
pub struct Pacer {
    rate: u64,
    start: Instant,
    sent: u64,
}

impl Pacer {
    /// A pacer of `rate` per second from `start`.
    pub fn new(rate: u64, start: Instant) -> Self {
        Self {
            rate,
            start,
            sent: 0,
        }
    }

    /// Whether one more event is due at `now`; counts it if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.rate > 0 && self.sent >= self.due(now) {
            return false;
        }
        self.sent += 1;
        true
    }

    /// How long until the next event is due (zero if one is due now).
    pub fn wait(&self, now: Instant) -> Duration {
        if self.rate == 0 || self.sent < self.due(now) {
            return Duration::ZERO;
        }
        let at = Duration::from_secs_f64((self.sent + 1) as f64 / self.rate as f64);
        at.saturating_sub(now - self.start)
    }

    /// Events due by `now`.
    fn due(&self, now: Instant) -> u64 {
        ((now - self.start).as_secs_f64() * self.rate as f64) as u64
    }
}

/// A u64 written in hex, with or without `0x`.
pub fn parse_u64_hex(s: &str) -> Result<u64, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(digits, 16).map_err(|e| format!("{s:?} is not a hex u64: {e}"))
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex string (an even number of hex digits).
pub fn from_hex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("not hex at {i}"))
        })
        .collect()
}

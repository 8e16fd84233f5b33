//! Token buckets that bound handshake work: answers per path, answers to session-proved
//! initiations, answers to cookie-proved initiations, and cookie replies.

use std::time::Duration;

/// A token bucket refilled at `per_second` tokens a second and holding at most one second's
/// worth. Time is passed in; a clock that goes backwards refills nothing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    /// Refill time banked, at most one second.
    banked: Duration,
    /// When `banked` was last brought up to date.
    at: Duration,
}

impl Budget {
    /// A full bucket at `now`.
    pub(super) fn full(now: Duration) -> Self {
        Self {
            banked: Duration::from_secs(1),
            at: now,
        }
    }

    /// Takes one token if there is one; `per_second` of 0 is taken as 1.
    pub(super) fn take(&mut self, now: Duration, per_second: u32) -> bool {
        let cost = Duration::from_secs(1) / per_second.max(1);
        self.banked = (self.banked + now.saturating_sub(self.at)).min(Duration::from_secs(1));
        self.at = self.at.max(now);
        if self.banked < cost {
            return false;
        }
        self.banked -= cost;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_gives_one_second_of_tokens_then_refills_at_the_rate() {
        let mut b = Budget::full(Duration::ZERO);
        let taken = (0..100).filter(|_| b.take(Duration::ZERO, 20)).count();
        assert_eq!(taken, 20);
        assert!(!b.take(Duration::from_millis(49), 20));
        assert!(b.take(Duration::from_millis(50), 20));
        assert!(!b.take(Duration::from_millis(50), 20));
        let later = Duration::from_secs(60);
        let taken = (0..100).filter(|_| b.take(later, 20)).count();
        assert_eq!(taken, 20, "banked time is capped at one second");
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() {
        let mut b = Budget::full(Duration::from_secs(5));
        while b.take(Duration::from_secs(5), 10) {}
        assert!(!b.take(Duration::from_secs(1), 10));
        assert!(!b.take(Duration::from_secs(5), 10));
        assert!(b.take(Duration::from_millis(5100), 10));
    }
}

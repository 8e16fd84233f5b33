//! Round-trip time estimation, as RFC 9002 section 5 describes it.

use std::time::Duration;

/// Timer granularity: the floor of every loss and probe timer (kGranularity).
pub const GRANULARITY: Duration = Duration::from_millis(1);

/// Smoothed RTT, variation and minimum of one path.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    latest: Duration,
    smoothed: Duration,
    var: Duration,
    min: Duration,
    sampled: bool,
}

impl RttEstimator {
    /// An estimator that reports `initial` until the first sample.
    pub fn new(initial: Duration) -> Self {
        Self {
            latest: initial,
            smoothed: initial,
            var: initial / 2,
            min: initial,
            sampled: false,
        }
    }

    /// Takes one sample: `rtt` measured, of which `ack_delay` was spent by the peer holding the
    /// acknowledgement. The delay is only subtracted when that leaves at least the minimum RTT.
    pub fn update(&mut self, rtt: Duration, ack_delay: Duration) {
        self.latest = rtt;
        if !self.sampled {
            self.sampled = true;
            self.min = rtt;
            self.smoothed = rtt;
            self.var = rtt / 2;
            return;
        }
        self.min = self.min.min(rtt);
        let adjusted = if rtt >= self.min + ack_delay {
            rtt - ack_delay
        } else {
            rtt
        };
        let diff = self.smoothed.abs_diff(adjusted);
        self.var = (self.var * 3 + diff) / 4;
        self.smoothed = (self.smoothed * 7 + adjusted) / 8;
    }

    /// Whether any sample was taken.
    pub fn has_sample(&self) -> bool {
        self.sampled
    }

    /// The smoothed RTT.
    pub fn smoothed(&self) -> Duration {
        self.smoothed
    }

    /// The latest sample.
    pub fn latest(&self) -> Duration {
        self.latest
    }

    /// The probe timeout before backoff: smoothed + max(4·var, granularity) + max_ack_delay.
    pub fn pto(&self, max_ack_delay: Duration) -> Duration {
        self.smoothed + (self.var * 4).max(GRANULARITY) + max_ack_delay
    }

    /// How long after a later batch was acknowledged an earlier one counts as lost:
    /// 9/8 · max(smoothed, latest), at least the granularity.
    pub fn loss_delay(&self) -> Duration {
        (self.smoothed.max(self.latest) * 9 / 8).max(GRANULARITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_sample_sets_everything() {
        let mut r = RttEstimator::new(MS * 10);
        assert!(!r.has_sample());
        r.update(MS * 2, Duration::ZERO);
        assert_eq!(r.smoothed(), MS * 2);
        assert_eq!(r.pto(MS), MS * 2 + MS * 4 + MS);
    }

    #[test]
    fn smooths_and_subtracts_ack_delay_only_above_min() {
        let mut r = RttEstimator::new(MS * 10);
        r.update(MS * 8, Duration::ZERO);
        r.update(MS * 16, MS * 8); // 16 - 8 = 8 >= min 8: adjusted to 8
        assert_eq!(r.smoothed(), MS * 8);
        r.update(MS * 9, MS * 8); // 9 < 8 + 8: delay not subtracted
        assert_eq!(r.smoothed(), (MS * 8 * 7 + MS * 9) / 8);
        assert!(r.loss_delay() >= r.smoothed() * 9 / 8);
    }
}

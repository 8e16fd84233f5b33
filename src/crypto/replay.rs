//! The anti-replay window over batch counters (RFC 6479 style, as WireGuard).
//!
//! A ring of 128 64-bit words holds one bit per counter. Moving the highest
//! counter forward clears whole words, never shifts bits. The word holding
//! the highest counter is partly "future", so the usable window is
//! `REPLAY_WINDOW - 64` = 8128 counters behind the highest seen.

/// Bits in the window's ring.
pub const REPLAY_WINDOW: u64 = 8192;

const WORD_BITS: u64 = u64::BITS as u64;

/// Words in the ring.
const WORDS: usize = (REPLAY_WINDOW / WORD_BITS) as usize;

/// How far behind the highest counter a counter may be and still be accepted.
const USABLE: u64 = REPLAY_WINDOW - WORD_BITS;

/// Which counters have been seen, for one receiving key.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest counter marked so far (0 before any: counter 0 is then simply
    /// unmarked, so no separate "empty" flag is needed).
    highest: u64,
    ring: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("highest", &self.highest)
            .finish_non_exhaustive()
    }
}

/// Ring word index and bit mask of `counter`.
fn slot(counter: u64) -> (usize, u64) {
    let word = (counter / WORD_BITS) % WORDS as u64;
    (word as usize, 1 << (counter % WORD_BITS))
}

impl ReplayWindow {
    /// An empty window: every counter is acceptable.
    pub const fn new() -> Self {
        Self {
            highest: 0,
            ring: [0; WORDS],
        }
    }

    /// Whether `counter` would be accepted now: never seen, and either above
    /// the highest or less than 8128 below it. Changes nothing.
    pub fn check(&self, counter: u64) -> bool {
        if counter > self.highest {
            return true;
        }
        if self.highest - counter >= USABLE {
            return false;
        }
        let (word, bit) = slot(counter);
        self.ring[word] & bit == 0
    }

    /// Accepts and records `counter`; `false` (and no change) if it was seen
    /// before or is too old.
    pub fn mark(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if counter > self.highest {
            self.advance(counter);
        }
        let (word, bit) = slot(counter);
        self.ring[word] |= bit;
        true
    }

    /// Moves the highest counter up to `counter`, clearing the words between
    /// (all of them after a jump of a whole ring or more).
    fn advance(&mut self, counter: u64) {
        let current = self.highest / WORD_BITS;
        let target = counter / WORD_BITS;
        let steps = (target - current).min(WORDS as u64);
        for step in 1..=steps {
            self.ring[((current + step) % WORDS as u64) as usize] = 0;
        }
        self.highest = counter;
    }

    /// The highest counter marked so far (0 if none).
    pub fn highest(&self) -> u64 {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `(counter, expected result of mark)` steps on a fresh window.
    fn run(steps: &[(u64, bool)]) {
        let mut window = ReplayWindow::new();
        for (i, &(counter, expected)) in steps.iter().enumerate() {
            assert_eq!(
                window.check(counter),
                expected,
                "check, step {i}: {counter}"
            );
            assert_eq!(window.mark(counter), expected, "mark, step {i}: {counter}");
        }
    }

    #[test]
    fn in_order_and_duplicates() {
        run(&[
            (0, true),
            (0, false),
            (1, true),
            (1, false),
            (2, true),
            (0, false),
        ]);
    }

    #[test]
    fn out_of_order_within_the_window() {
        run(&[
            (5, true),
            (3, true),
            (4, true),
            (0, true),
            (3, false),
            (6, true),
            (1, true),
            (2, true),
        ]);
    }

    #[test]
    fn window_edge_is_8128_behind_the_highest() {
        let top = 10_000;
        run(&[
            (top, true),
            (top - USABLE, false),
            (top - USABLE + 1, true),
            (top - USABLE + 1, false),
            (top - 1, true),
        ]);
        assert_eq!(USABLE, 8128);
    }

    #[test]
    fn too_old_after_a_jump() {
        run(&[
            (1, true),
            (2, true),
            (1 + USABLE, true),
            (1, false),
            (2, false),
            (3, true),
        ]);
    }

    #[test]
    fn a_jump_beyond_the_ring_clears_old_bits() {
        // Counter c and c + 8192 share a ring slot: the jump must clear it.
        run(&[
            (100, true),
            (100 + REPLAY_WINDOW, true),
            (100 + REPLAY_WINDOW - 1, true),
            (100 + 3 * REPLAY_WINDOW, true),
            (100 + 2 * REPLAY_WINDOW + 64, false),
            (100 + 3 * REPLAY_WINDOW - 1, true),
            (100 + 3 * REPLAY_WINDOW - 1, false),
        ]);
    }

    #[test]
    fn advancing_word_by_word_clears_each_reused_word() {
        let mut window = ReplayWindow::new();
        for counter in 0..3 * REPLAY_WINDOW {
            assert!(window.mark(counter), "{counter}");
        }
        for counter in 3 * REPLAY_WINDOW - USABLE..3 * REPLAY_WINDOW {
            assert!(!window.check(counter), "{counter} replayed");
        }
        // Skip ahead by less than a ring: fresh counters in reused words.
        for counter in (3 * REPLAY_WINDOW + 1000..3 * REPLAY_WINDOW + 1100).rev() {
            assert!(window.mark(counter), "{counter}");
        }
        for counter in 3 * REPLAY_WINDOW..3 * REPLAY_WINDOW + 1000 {
            assert!(window.check(counter), "{counter} never seen");
        }
    }

    #[test]
    fn counter_zero_first_and_late() {
        run(&[(0, true), (0, false)]);
        run(&[(7, true), (0, true), (0, false)]);
        run(&[(USABLE, true), (0, false)]);
        run(&[(USABLE - 1, true), (0, true)]);
    }

    #[test]
    fn near_u64_max() {
        run(&[
            (u64::MAX - 1, true),
            (u64::MAX, true),
            (u64::MAX, false),
            (u64::MAX - 1, false),
            (u64::MAX - 2, true),
            (u64::MAX - USABLE, false),
            (u64::MAX - USABLE + 1, true),
            (0, false),
        ]);
    }

    #[test]
    fn check_changes_nothing() {
        let mut window = ReplayWindow::new();
        assert!(window.mark(42));
        let before = window.clone();
        for counter in [0, 41, 42, 43, u64::MAX] {
            let _ = window.check(counter);
        }
        assert_eq!(window, before);
        assert_eq!(window.highest(), 42);
    }
}

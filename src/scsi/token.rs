//! Command tokens: the authentication of every WRITE(16)/READ(16) (SPEC §11.2).
//!
//! The initiator's [`CommandSigner`] numbers its data commands with a 64-bit counter and puts
//! `token(c)` ([`FabricKey::token`]) in CDB bytes 2-9. The target's [`CommandVerifier`] accepts
//! a token only if it is the token of a counter it expects and has not seen: a stranger without
//! the pair's private keys cannot make one, and a copied one is refused once used.
//!
//! The counter is a hybrid clock, so a restart of either end needs no stored state: a new
//! initiator starts at `unix_seconds << 20` (the **slot start** of the current second), then
//! counts up by one per command. It does not re-floor every command at the clock: a counter that
//! jumped at each second would put the last commands of one second 2^20 counters behind the
//! first of the next, and a replay window measured in counters would refuse them when they
//! arrive out of order. When the target refuses a token, the initiator jumps once to the slot
//! start of the next second (at most every [`JUMP_EVERY`], never past two seconds ahead).
//!
//! The verifier keeps a table of precomputed tokens: the **continuation** of the highest
//! accepted counter (`highest+1 ..= highest+AHEAD`) and the first [`SLOT_LEN`] counters of
//! every second within [`SKEW`] of its clock. Checking a command is one table lookup: no MAC is
//! computed for a refused command, and memory is fixed (about 0.7 MiB). A seen-bitmap of
//! [`BACK`] counters below `highest` refuses replays. Sans-IO: the wall clock arrives through
//! [`CommandVerifier::tick`] and the signer's calls.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use crate::crypto::fabric::FabricKey;

/// Counters in one second of the hybrid clock: a slot start is `unix_seconds << SLOT_SHIFT`.
pub const SLOT_SHIFT: u32 = 20;
/// Counters after the highest accepted one whose tokens the verifier holds.
pub const AHEAD: u64 = 1024;
/// Counters at the start of each second whose tokens the verifier holds.
pub const SLOT_LEN: u64 = 64;
/// Seconds either side of the target's clock whose slot starts it accepts: the hosts' wall
/// clocks must agree within this (NTP).
pub const SKEW: u64 = 120;
/// Counters below the highest accepted one still accepted once (out-of-order arrival).
pub const BACK: u64 = 4096;
/// Shortest pause between two jumps of the signer's counter.
pub const JUMP_EVERY: Duration = Duration::from_millis(50);

/// The slot start of second `s`, if it fits in 64 bits.
pub fn slot_start(s: u64) -> Option<u64> {
    s.checked_mul(1 << SLOT_SHIFT)
}

/// The initiator's side: numbers commands and makes their tokens.
#[derive(Clone, Debug)]
pub struct CommandSigner {
    key: FabricKey,
    next: u64,
    last_jump: Option<Duration>,
}

/// What [`CommandSigner::on_refused`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jump {
    /// The counter moved to the slot start of the next second.
    Jumped,
    /// A jump happened less than [`JUMP_EVERY`] ago: commands in flight with older counters are
    /// still coming back refused.
    TooSoon,
    /// The counter is already past where a jump may take it: the target's clock or keys
    /// disagree with ours.
    Exhausted,
}

impl CommandSigner {
    /// A signer whose first command is the slot start of `unix_seconds`.
    pub fn new(key: FabricKey, unix_seconds: u64) -> Self {
        Self {
            key,
            next: slot_start(unix_seconds).unwrap_or(u64::MAX),
            last_jump: None,
        }
    }

    /// The counter the next command takes.
    pub fn next_counter(&self) -> u64 {
        self.next
    }

    /// The token for a new command (every command, retries included, takes a new counter).
    pub fn sign(&mut self) -> u64 {
        let token = self.key.token(self.next);
        self.next = self.next.saturating_add(1);
        token
    }

    /// The target refused a token at `now` (monotonic) and wall-clock second `unix_seconds`:
    /// jump to `max(next, slot_start(unix_seconds + 1))`, at most once per [`JUMP_EVERY`] and
    /// never past `slot_start(unix_seconds + 2)`.
    pub fn on_refused(&mut self, now: Duration, unix_seconds: u64) -> Jump {
        if self.last_jump.is_some_and(|t| now < t + JUMP_EVERY) {
            return Jump::TooSoon;
        }
        let to = slot_start(unix_seconds.saturating_add(1)).unwrap_or(u64::MAX);
        let cap = slot_start(unix_seconds.saturating_add(2)).unwrap_or(u64::MAX);
        let target = self.next.max(to);
        if target >= cap {
            return Jump::Exhausted;
        }
        self.next = target;
        self.last_jump = Some(now);
        Jump::Jumped
    }
}

/// Why the verifier refused a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not the token of any counter expected now (a stranger's, or from a clock beyond SKEW).
    Unknown,
    /// The token of a counter already used, or too far below the highest one.
    Replayed,
}

/// Hashes a token by its own value: tokens in the table are MAC outputs, uniform and unknown
/// to an attacker, who can only query it (cost bounded by the table's load, not by the input).
#[derive(Clone, Copy, Debug, Default)]
struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type TokenMap = HashMap<u64, u64, BuildHasherDefault<TokenHasher>>;

/// The precomputed tokens of one second's slot start.
#[derive(Clone, Debug)]
struct Slot {
    second: u64,
    tokens: Vec<(u64, u64)>,
}

/// The target's side: accepts each genuine token once, refuses everything else at O(1).
#[derive(Clone, Debug)]
pub struct CommandVerifier {
    key: FabricKey,
    /// Highest accepted counter, if any was accepted.
    highest: Option<u64>,
    /// Bit `i` set: counter `highest - i` was accepted (`i < BACK`).
    seen: [u64; (BACK / 64) as usize],
    /// (counter, token) of the continuation, counters ascending.
    continuation: VecDeque<(u64, u64)>,
    continuation_map: TokenMap,
    /// Slot starts of the seconds around the clock, seconds ascending.
    slots: VecDeque<Slot>,
    slot_map: TokenMap,
}

impl CommandVerifier {
    /// A verifier that has accepted nothing yet; [`CommandVerifier::tick`] gives it its clock.
    pub fn new(key: FabricKey) -> Self {
        Self {
            key,
            highest: None,
            seen: [0; (BACK / 64) as usize],
            continuation: VecDeque::new(),
            continuation_map: TokenMap::default(),
            slots: VecDeque::new(),
            slot_map: TokenMap::default(),
        }
    }

    /// The highest accepted counter.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Tokens held in the table (bounded by `AHEAD + BACK + (2 * SKEW + 1) * SLOT_LEN`).
    pub fn table_len(&self) -> usize {
        self.continuation_map.len() + self.slot_map.len()
    }

    /// Moves the slot table to the seconds within [`SKEW`] of `unix_seconds`: about
    /// [`SLOT_LEN`] MACs per new second (all of them after a clock step).
    pub fn tick(&mut self, unix_seconds: u64) {
        let lo = unix_seconds.saturating_sub(SKEW);
        let hi = unix_seconds.saturating_add(SKEW);
        while self.slots.front().is_some_and(|s| s.second < lo) {
            self.drop_slot(true);
        }
        while self.slots.back().is_some_and(|s| s.second > hi) {
            self.drop_slot(false);
        }
        let (first, last) = match (self.slots.front(), self.slots.back()) {
            (Some(f), Some(l)) => (f.second, l.second),
            _ => (hi.saturating_add(1), hi),
        };
        for s in (lo..first.min(hi.saturating_add(1))).rev() {
            let slot = self.make_slot(s);
            self.slots.push_front(slot);
        }
        for s in last.saturating_add(1).max(lo)..=hi {
            let slot = self.make_slot(s);
            self.slots.push_back(slot);
        }
    }

    fn make_slot(&mut self, second: u64) -> Slot {
        let tokens: Vec<(u64, u64)> = slot_start(second)
            .map(|start| {
                (start..start.saturating_add(SLOT_LEN))
                    .map(|c| (c, self.key.token(c)))
                    .collect()
            })
            .unwrap_or_default();
        for &(c, t) in &tokens {
            self.slot_map.insert(t, c);
        }
        Slot { second, tokens }
    }

    fn drop_slot(&mut self, front: bool) {
        let slot = if front {
            self.slots.pop_front()
        } else {
            self.slots.pop_back()
        };
        for (c, t) in slot.map(|s| s.tokens).unwrap_or_default() {
            remove_if(&mut self.slot_map, t, c);
        }
    }

    /// Checks the token of one command: one or two table lookups. An accepted token's counter
    /// is marked seen and may advance the continuation (at most [`AHEAD`] MACs, about one per
    /// command in steady state).
    pub fn verify(&mut self, token: u64) -> Result<u64, Refusal> {
        let c = self
            .continuation_map
            .get(&token)
            .or_else(|| self.slot_map.get(&token))
            .copied()
            .ok_or(Refusal::Unknown)?;
        self.accept(c)?;
        Ok(c)
    }

    fn accept(&mut self, c: u64) -> Result<(), Refusal> {
        let Some(highest) = self.highest else {
            self.advance(c);
            return Ok(());
        };
        if c > highest {
            self.advance(c);
            return Ok(());
        }
        let back = highest - c;
        if back >= BACK || self.is_seen(back) {
            return Err(Refusal::Replayed);
        }
        self.mark_seen(back);
        Ok(())
    }

    fn is_seen(&self, back: u64) -> bool {
        let (word, bit) = seen_index(back);
        self.seen.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn mark_seen(&mut self, back: u64) {
        let (word, bit) = seen_index(back);
        if let Some(w) = self.seen.get_mut(word) {
            *w |= 1 << bit;
        }
    }

    /// `c` is the new highest counter: shift the seen bitmap, drop the continuation that fell
    /// more than [`BACK`] behind, and compute tokens up to `c + AHEAD`.
    fn advance(&mut self, c: u64) {
        let shift = self.highest.map_or(BACK, |h| c - h);
        self.shift_seen(shift);
        self.mark_seen(0);
        self.highest = Some(c);
        let floor = c.saturating_sub(BACK - 1);
        while let Some(&(old, t)) = self.continuation.front() {
            if old >= floor {
                break;
            }
            self.continuation.pop_front();
            remove_if(&mut self.continuation_map, t, old);
        }
        let from = self
            .continuation
            .back()
            .map_or(c, |&(last, _)| last.max(c))
            .saturating_add(1);
        for n in from..=c.saturating_add(AHEAD) {
            let t = self.key.token(n);
            self.continuation.push_back((n, t));
            self.continuation_map.insert(t, n);
        }
    }

    fn shift_seen(&mut self, shift: u64) {
        if shift >= BACK {
            self.seen = [0; (BACK / 64) as usize];
            return;
        }
        let words = (shift / 64) as usize;
        let bits = (shift % 64) as u32;
        let n = self.seen.len();
        for i in (0..n).rev() {
            let hi = i.checked_sub(words).map_or(0, |j| self.seen[j]);
            let lo = i
                .checked_sub(words + 1)
                .filter(|_| bits > 0)
                .map_or(0, |j| self.seen[j] >> (64 - bits));
            self.seen[i] = (hi << bits) | lo;
        }
    }
}

/// Word and bit of `back` in the seen bitmap.
fn seen_index(back: u64) -> (usize, u32) {
    ((back / 64) as usize, (back % 64) as u32)
}

/// Removes `token` from `map` if it still maps to `counter` (a colliding later insert stays).
fn remove_if(map: &mut TokenMap, token: u64, counter: u64) {
    if map.get(&token) == Some(&counter) {
        map.remove(&token);
    }
}

#[cfg(test)]
mod tests;

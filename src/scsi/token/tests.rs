use super::*;
use crate::crypto::PrivateKey;
use crate::crypto::fabric::FabricRole;

/// A second well inside the hybrid clock's range.
const NOW: u64 = 1_700_000_000;

fn keys() -> (FabricKey, FabricKey) {
    let target = PrivateKey::from_bytes([0x22; 32]);
    let initiator = PrivateKey::from_bytes([0x11; 32]);
    let t = FabricKey::derive(&target, &initiator.public_key(), FabricRole::Target).unwrap();
    let i = FabricKey::derive(&initiator, &target.public_key(), FabricRole::Initiator).unwrap();
    (t, i)
}

fn verifier(now: u64) -> CommandVerifier {
    let mut v = CommandVerifier::new(keys().0);
    v.tick(now);
    v
}

fn signer(now: u64) -> CommandSigner {
    CommandSigner::new(keys().1, now)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn in_order_commands_are_accepted_across_many_continuations() {
    let mut v = verifier(NOW);
    let mut s = signer(NOW);
    for i in 0..5 * AHEAD {
        assert_eq!(v.verify(s.sign()), Ok(slot_start(NOW).unwrap() + i));
    }
}

#[test]
fn out_of_order_within_ahead_is_accepted_once() {
    let mut v = verifier(NOW);
    let mut s = signer(NOW);
    let tokens: Vec<u64> = (0..200).map(|_| s.sign()).collect();
    // A fresh verifier knows the slot starts; from the first accepted one on, the continuation.
    assert!(v.verify(tokens[0]).is_ok());
    let order = (1..200).rev().step_by(2).chain((2..200).step_by(2));
    for i in order {
        assert!(v.verify(tokens[i]).is_ok(), "token {i}");
    }
    for &t in &tokens {
        assert_eq!(v.verify(t), Err(Refusal::Replayed));
    }
}

#[test]
fn replay_is_refused() {
    let mut v = verifier(NOW);
    let mut s = signer(NOW);
    let t = s.sign();
    assert!(v.verify(t).is_ok());
    assert_eq!(v.verify(t), Err(Refusal::Replayed));
    assert!(v.verify(s.sign()).is_ok());
    assert_eq!(v.verify(t), Err(Refusal::Replayed));
}

#[test]
fn a_late_command_within_back_is_accepted_and_beyond_it_refused() {
    let mut v = verifier(NOW);
    let mut s = signer(NOW);
    let early = s.sign();
    let late: Vec<u64> = (0..BACK + 10).map(|_| s.sign()).collect();
    // The early one stays unseen while the highest moves on by up to BACK - 1.
    for &t in &late[..(BACK - 2) as usize] {
        assert!(v.verify(t).is_ok());
    }
    assert!(v.verify(early).is_ok());
    let mut v = verifier(NOW);
    let mut s = signer(NOW);
    let early = s.sign();
    for &t in &(0..BACK).map(|_| s.sign()).collect::<Vec<_>>() {
        assert!(v.verify(t).is_ok());
    }
    assert_eq!(v.verify(early), Err(Refusal::Replayed));
}

#[test]
fn tokens_past_the_continuation_are_unknown() {
    let mut v = verifier(NOW);
    let (_, key) = keys();
    let base = slot_start(NOW).unwrap();
    assert!(v.verify(key.token(base)).is_ok());
    assert_eq!(v.verify(key.token(base + AHEAD + 1)), Err(Refusal::Unknown));
    assert!(v.verify(key.token(base + AHEAD)).is_ok());
    assert!(v.verify(key.token(base + 2 * AHEAD)).is_ok());
}

#[test]
fn initiator_restart_at_a_later_second_is_accepted() {
    let mut v = verifier(NOW);
    let mut old = signer(NOW);
    for _ in 0..100 {
        assert!(v.verify(old.sign()).is_ok());
    }
    v.tick(NOW + 3);
    let mut new = signer(NOW + 3);
    for _ in 0..100 {
        assert!(v.verify(new.sign()).is_ok());
    }
}

#[test]
fn initiator_restart_in_the_same_second_is_refused_then_accepted_after_the_jump() {
    let mut v = verifier(NOW);
    let mut old = signer(NOW);
    for _ in 0..10 {
        assert!(v.verify(old.sign()).is_ok());
    }
    let mut new = signer(NOW);
    assert_eq!(v.verify(new.sign()), Err(Refusal::Replayed));
    assert_eq!(new.on_refused(ms(0), NOW), Jump::Jumped);
    assert_eq!(new.next_counter(), slot_start(NOW + 1).unwrap());
    for _ in 0..100 {
        assert!(v.verify(new.sign()).is_ok());
    }
}

#[test]
fn target_restart_accepts_a_slot_start_and_refuses_mid_second_until_the_jump() {
    let mut s = signer(NOW);
    let mut v = verifier(NOW);
    for _ in 0..SLOT_LEN + 10 {
        assert!(v.verify(s.sign()).is_ok());
    }
    // The target restarts with empty state, a few seconds later.
    let mut v = verifier(NOW + 5);
    assert_eq!(v.verify(s.sign()), Err(Refusal::Unknown));
    assert_eq!(s.on_refused(ms(10), NOW + 5), Jump::Jumped);
    for _ in 0..3 * SLOT_LEN {
        assert!(v.verify(s.sign()).is_ok());
    }
    // A fresh initiator's first command of a new second is accepted by a fresh target.
    let mut v = verifier(NOW + 9);
    assert!(v.verify(signer(NOW + 9).sign()).is_ok());
}

#[test]
fn jumps_are_rate_limited_and_bounded() {
    let mut s = signer(NOW);
    assert_eq!(s.on_refused(ms(100), NOW), Jump::Jumped);
    assert_eq!(s.on_refused(ms(120), NOW), Jump::TooSoon);
    // Already at the next second's slot start: the cap (two seconds ahead) is not reached.
    assert_eq!(s.on_refused(ms(150), NOW), Jump::Jumped);
    assert_eq!(s.next_counter(), slot_start(NOW + 1).unwrap());
    for _ in 0..(1u64 << SLOT_SHIFT) {
        s.sign();
    }
    assert_eq!(s.on_refused(ms(200), NOW), Jump::Exhausted);
    assert_eq!(s.next_counter(), slot_start(NOW + 2).unwrap());
}

#[test]
fn skew_bound_holds_both_ways() {
    let mut v = verifier(NOW);
    assert!(v.verify(signer(NOW + SKEW).sign()).is_ok());
    let mut v = verifier(NOW);
    assert!(v.verify(signer(NOW - SKEW).sign()).is_ok());
    let mut v = verifier(NOW);
    assert_eq!(
        v.verify(signer(NOW + SKEW + 1).sign()),
        Err(Refusal::Unknown)
    );
    assert_eq!(
        v.verify(signer(NOW - SKEW - 1).sign()),
        Err(Refusal::Unknown)
    );
    // As the clock moves, so does the window.
    v.tick(NOW + 1);
    assert!(v.verify(signer(NOW + SKEW + 1).sign()).is_ok());
}

#[test]
fn memory_is_bounded_under_steady_use_and_clock_steps() {
    let bound = (AHEAD + BACK + (2 * SKEW + 1) * SLOT_LEN) as usize;
    let mut v = verifier(NOW);
    let mut s = signer(NOW);
    for second in 0..300 {
        v.tick(NOW + second);
        for _ in 0..100 {
            assert!(v.verify(s.sign()).is_ok());
        }
        assert!(v.table_len() <= bound, "{} > {bound}", v.table_len());
    }
    for step in [NOW + 10_000, NOW, NOW + 50, 0, u64::MAX] {
        v.tick(step);
        assert!(v.table_len() <= bound);
    }
    assert_eq!(
        v.slots.len(),
        SKEW as usize + 1,
        "window clipped at u64::MAX"
    );
}

#[test]
fn slot_table_follows_the_clock_exactly() {
    let mut v = verifier(NOW);
    let check = |v: &CommandVerifier, now: u64| {
        let seconds: Vec<u64> = v.slots.iter().map(|s| s.second).collect();
        let want: Vec<u64> = (now - SKEW..=now + SKEW).collect();
        assert_eq!(seconds, want);
        assert_eq!(v.slot_map.len(), want.len() * SLOT_LEN as usize);
    };
    check(&v, NOW);
    for now in [NOW + 1, NOW + 7, NOW + 3, NOW + 400, NOW + 390] {
        v.tick(now);
        check(&v, now);
    }
}

#[test]
fn strangers_random_tokens_are_refused_and_change_nothing() {
    let mut v = verifier(NOW);
    let mut s = signer(NOW);
    assert!(v.verify(s.sign()).is_ok());
    let before = (v.highest(), v.table_len(), v.seen);
    let mut rng = fastrand::Rng::with_seed(9);
    for _ in 0..100_000 {
        assert_eq!(v.verify(rng.u64(..)), Err(Refusal::Unknown));
    }
    assert_eq!((v.highest(), v.table_len(), v.seen), before);
    assert!(v.verify(s.sign()).is_ok());
}

#[test]
fn another_pairs_tokens_are_unknown() {
    let other = PrivateKey::from_bytes([0x33; 32]);
    let target = PrivateKey::from_bytes([0x22; 32]);
    let key = FabricKey::derive(&other, &target.public_key(), FabricRole::Initiator).unwrap();
    let mut v = verifier(NOW);
    let mut s = CommandSigner::new(key, NOW);
    for _ in 0..10 {
        assert_eq!(v.verify(s.sign()), Err(Refusal::Unknown));
    }
}

#[test]
fn seen_bitmap_shifts_like_a_set() {
    let mut v = verifier(NOW);
    let (_, key) = keys();
    let base = slot_start(NOW).unwrap();
    let mut model = std::collections::BTreeSet::new();
    let mut rng = fastrand::Rng::with_seed(3);
    let mut top = base;
    assert_eq!(v.verify(key.token(base)), Ok(base));
    model.insert(base);
    for _ in 0..5000 {
        let c = if rng.bool() {
            top = (top + rng.u64(1..200)).min(base + 40 * AHEAD);
            top
        } else {
            top.saturating_sub(rng.u64(0..BACK + 300)).max(base)
        };
        let highest = v.highest().unwrap();
        let expect_known = c <= highest + AHEAD;
        let fresh = c > highest || (highest - c < BACK && !model.contains(&c));
        let got = v.verify(key.token(c));
        match (expect_known || c < base + SLOT_LEN, fresh) {
            (false, _) => assert_eq!(got, Err(Refusal::Unknown), "{c}"),
            (true, true) if c > highest || highest - c < BACK => {
                assert_eq!(got, Ok(c), "{c}");
                model.insert(c);
            }
            (true, _) => assert!(got.is_err(), "{c}"),
        }
    }
}

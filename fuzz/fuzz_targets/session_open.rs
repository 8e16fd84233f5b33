//! `Session::open` and the replay window against a set model: a batch sealed by the peer opens
//! exactly when the model says its counter is fresh (never seen, below the reject limit, and
//! above or less than 8128 below the highest accepted), with the same plaintext; a tampered
//! batch never opens and changes nothing; the bare `ReplayWindow` agrees with the same model.
//! API: `crypto::session::{Session, SessionKeys, OpenError}`, `crypto::replay::ReplayWindow`.
#![no_main]

use std::collections::BTreeSet;
use std::time::Duration;

use fcvpn::crypto::session::{OpenError, REJECT_AFTER_MESSAGES, Session, sealed_len};
use fcvpn::crypto::{Key, REPLAY_WINDOW, ReplayWindow, SessionKeys};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// How far below the highest counter a fresh one is still accepted.
const USABLE: u64 = REPLAY_WINDOW - 64;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Counter {
    /// The highest accepted plus this.
    Ahead(u16),
    /// The highest accepted minus this.
    Behind(u16),
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
struct Batch {
    counter: Counter,
    len: u16,
    /// Flip bit `flip % (8 * len)` of the sealed body (or the header) when set.
    flip: Option<u32>,
}

#[derive(Default)]
struct Model {
    seen: BTreeSet<u64>,
    highest: u64,
}

impl Model {
    fn resolve(&self, c: Counter) -> u64 {
        match c {
            Counter::Ahead(d) => self.highest.saturating_add(u64::from(d)),
            Counter::Behind(d) => self.highest.saturating_sub(u64::from(d)),
            Counter::Raw(x) => x,
        }
    }

    fn fresh(&self, c: u64) -> bool {
        !self.seen.contains(&c) && (c > self.highest || self.highest - c < USABLE)
    }

    fn accept(&mut self, c: u64) {
        self.seen.insert(c);
        self.highest = self.highest.max(c);
    }
}

fn keys(a: u8, b: u8) -> SessionKeys {
    SessionKeys {
        send: Key::from_bytes([a; 32]),
        recv: Key::from_bytes([b; 32]),
    }
}

fuzz_target!(|batches: Vec<Batch>| {
    let sender = Session::new(keys(1, 2), 7, 9, Duration::ZERO, true);
    let mut receiver = Session::new(keys(2, 1), 9, 7, Duration::ZERO, false);
    let mut window = ReplayWindow::new();
    let mut model = Model::default();
    for b in batches.iter().take(128) {
        let counter = model.resolve(b.counter);
        let plain: Vec<u8> = (0..usize::from(b.len) % 2048).map(|i| i as u8).collect();
        let aad = counter.to_le_bytes();
        let mut buf = vec![0u8; sealed_len(plain.len())];
        buf[..plain.len()].copy_from_slice(&plain);
        sender.seal(counter, &aad, &mut buf, plain.len());
        let mut aad = aad;
        if let Some(flip) = b.flip {
            let bits = 8 * (buf.len() + aad.len()) as u32;
            let bit = (flip % bits) as usize;
            let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
            match buf.get_mut(byte) {
                Some(x) => *x ^= mask,
                None => aad[byte - buf.len()] ^= mask,
            }
        }
        assert_eq!(
            window.check(counter),
            model.fresh(counter),
            "window check {counter:#x}"
        );
        let fresh = counter < REJECT_AFTER_MESSAGES && model.fresh(counter);
        let opened = receiver.open(counter, &aad, &mut buf);
        match (b.flip, fresh) {
            (None, true) => {
                assert_eq!(
                    opened,
                    Ok(plain.len()),
                    "fresh counter {counter:#x} refused"
                );
                assert!(buf[..plain.len()] == plain[..], "plaintext differs");
                model.accept(counter);
            }
            (None, false) => assert_eq!(opened, Err(OpenError::Replayed), "{counter:#x}"),
            (Some(_), true) => assert_eq!(opened, Err(OpenError::Forged), "tampered opened"),
            (Some(_), false) => assert_eq!(opened, Err(OpenError::Replayed)),
        }
        if b.flip.is_none() && fresh {
            assert!(window.mark(counter), "window refused {counter:#x}");
            assert!(!window.check(counter), "window accepts {counter:#x} twice");
        }
        assert_eq!(window.highest(), model.highest);
    }
});

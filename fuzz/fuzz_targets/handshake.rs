//! The handshake consumers with mac1 recomputed, so fuzzed messages pass the cheap filter and
//! reach the Noise code: genuine messages XORed with the fuzzer's mask (and headers it chooses)
//! go to `consume_initiation`, `consume_response` and to `Link::handle_batch`. Oracles: no
//! panic; a message whose body was changed never completes a handshake or draws a response;
//! an unchanged one does.
//! API: `crypto::handshake::{create_initiation, consume_initiation, consume_response}`,
//! `fuzzing::mac1`, `Link::{handle_batch, poll_transmit, handle_timeout, is_established}`.
#![no_main]

use std::time::Duration;

use fcvpn::crypto::handshake::{
    INITIATION_LEN, PAYLOAD_LEN, RESPONSE_LEN, consume_initiation, create_initiation,
};
use fcvpn::fuzzing::mac1;
use fcvpn::link::Link;
use fcvpn::link::wire::{BatchHeader, BatchType, HEADER_LEN};
use fcvpn_fuzz::{SeededEntropy, key, link_config};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const MAC1_LEN: usize = 16;

#[derive(Arbitrary, Debug)]
enum Target {
    CryptoInitiation,
    CryptoResponse,
    LinkInitiation,
    LinkResponse,
}

#[derive(Arbitrary, Debug)]
struct Input {
    target: Target,
    path: u8,
    receiver: Option<u32>,
    counter: u64,
    /// XORed into the genuine message body (mac1 excluded, then recomputed).
    mask: Vec<u8>,
}

/// Applies `mask` to `msg` up to its mac1 (at `msg.len() - tail - MAC1_LEN`; `tail` is the
/// initiation's zero mac2, left alone), recomputes mac1 for `to`; true if changed.
fn mutate(
    msg: &mut [u8],
    tail: usize,
    header: &[u8],
    mask: &[u8],
    to: &fcvpn::crypto::PublicKey,
) -> bool {
    let n = msg.len() - tail - MAC1_LEN;
    let mut changed = false;
    for (b, m) in msg[..n].iter_mut().zip(mask) {
        *b ^= m;
        changed |= *m != 0;
    }
    let mac = mac1(to, header, &msg[..n]);
    msg[n..n + MAC1_LEN].copy_from_slice(&mac);
    changed
}

fn header(ty: BatchType, input: &Input, receiver: u32, len: usize) -> [u8; HEADER_LEN] {
    BatchHeader {
        batch_type: ty,
        path: input.path % 2,
        receiver: input.receiver.unwrap_or(receiver),
        body_len: len as u32,
        counter: input.counter,
    }
    .to_bytes()
}

fn crypto(input: &Input, response: bool) {
    let (initiator, responder) = (key(2), key(1));
    let payload = [3u8; PAYLOAD_LEN];
    let ih = header(BatchType::Initiation, input, 0, INITIATION_LEN);
    let mut init = [0u8; INITIATION_LEN];
    let state = create_initiation(
        &initiator,
        &responder.public,
        [5; 32],
        &payload,
        &ih,
        &mut init,
    );
    if !response {
        let changed = mutate(
            &mut init,
            fcvpn::crypto::handshake::MAC2_LEN,
            &ih,
            &input.mask,
            &responder.public,
        );
        let r = consume_initiation(&responder, &initiator.public, &ih, &init);
        assert_eq!(r.is_ok(), !changed, "initiation accepted: {}", r.is_ok());
        return;
    }
    let r = consume_initiation(&responder, &initiator.public, &ih, &init).expect("genuine");
    let rh = header(BatchType::Response, input, 1, RESPONSE_LEN);
    let mut resp = [0u8; RESPONSE_LEN];
    let _ = r.respond([6; 32], &payload, &rh, &mut resp);
    let changed = mutate(&mut resp, 0, &rh, &input.mask, &initiator.public);
    let done = state.consume_response(&rh, &resp);
    assert_eq!(
        done.is_ok(),
        !changed,
        "response accepted: {}",
        done.is_ok()
    );
}

fn link(side: usize) -> Link {
    let cfg = link_config(side, 1000, 1 << 20);
    Link::new(cfg, Box::new(SeededEntropy(side as u64)), Duration::ZERO).expect("config")
}

/// The first message `from` sends after its timers (or nothing) ran.
fn next_message(from: &mut Link, now: Duration, timers: bool) -> Vec<u8> {
    if timers {
        from.handle_timeout(now);
    }
    let mut buf = vec![0u8; 2048];
    let n = from
        .poll_transmit(now, 0, &mut buf)
        .expect("a handshake message");
    buf.truncate(n);
    buf
}

/// Rewrites the header of a genuine batch as the input says, mutates the body, recomputes
/// mac1 for `to`; returns the batch and whether the body changed.
fn rewrite(
    mut batch: Vec<u8>,
    ty: BatchType,
    input: &Input,
    to: &fcvpn::crypto::PublicKey,
) -> (Vec<u8>, bool, u8) {
    let h = BatchHeader::parse(&batch).expect("genuine header");
    let head = header(ty, input, h.receiver, h.body_len as usize);
    batch[..HEADER_LEN].copy_from_slice(&head);
    let (head, body) = batch.split_at_mut(HEADER_LEN);
    let tail = match ty {
        BatchType::Initiation => fcvpn::crypto::handshake::MAC2_LEN,
        _ => 0,
    };
    let changed = mutate(body, tail, head, &input.mask, to);
    (batch, changed, input.path % 2)
}

fn link_level(input: &Input, response: bool) {
    let now = Duration::from_millis(5);
    let (mut a, mut b) = (link(0), link(1));
    let init = next_message(&mut b, now, true);
    if !response {
        let (mut batch, changed, path) =
            rewrite(init, BatchType::Initiation, input, &key(1).public);
        a.handle_batch(now, path, &mut batch, &mut |_| {});
        let answered = a.poll_transmit(now, path, &mut [0u8; 2048]).is_some();
        assert!(!(changed && answered), "a changed initiation was answered");
        return;
    }
    let mut init = init;
    a.handle_batch(now, 0, &mut init, &mut |_| {});
    let resp = next_message(&mut a, now, false);
    let (mut batch, changed, path) = rewrite(resp, BatchType::Response, input, &key(2).public);
    b.handle_batch(now, path, &mut batch, &mut |_| {});
    assert!(
        !(changed && b.is_established()),
        "a changed response completed the handshake"
    );
}

fuzz_target!(|input: Input| {
    match input.target {
        Target::CryptoInitiation => crypto(&input, false),
        Target::CryptoResponse => crypto(&input, true),
        Target::LinkInitiation => link_level(&input, false),
        Target::LinkResponse => link_level(&input, true),
    }
});

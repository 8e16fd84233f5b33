//! Level 3 of the testing ladder: the implementation against `proto/vectors`, byte for byte.
//!
//! Every value is recomputed from fixed keys, ephemerals and a fixed frame list and compared
//! with the committed files. `FCVPN_BLESS=1 cargo test --test vectors` rewrites the files after
//! an intended protocol change (review the diff: it is a wire-format change).

use std::collections::BTreeMap;
use std::time::Duration;

use fcvpn::crypto::cookie::{COOKIE_REPLY_LEN, CookieMaker, open_cookie_reply};
use fcvpn::crypto::fabric::{FabricKey, FabricRole};
use fcvpn::crypto::handshake::{
    INITIATION_LEN, LocalStatic, PAYLOAD_LEN, RESPONSE_LEN, consume_initiation, create_initiation,
    initiation_mac1, initiation_mac2, initiation_mac2_covered, set_initiation_mac2,
};
use fcvpn::crypto::{PrivateKey, PublicKey, Session};
use fcvpn::link::wire::{AckRange, BatchHeader, BatchType, FLAG_LZ4, FrameWriter, HEADER_LEN};
use fcvpn::scsi::token::slot_start;
use fcvpn::scsi::{DeviceIdentity, cdb, inquiry, nexus_tag, vpd};

type Vectors = BTreeMap<&'static str, Vec<(&'static str, String)>>;

fn party(byte: u8) -> LocalStatic {
    LocalStatic::new(PrivateKey::from_bytes([byte; 32]))
}

/// The handshake payload of SPEC §8.2, laid out by hand.
fn hello(sender_index: u32, timestamp: u64, instance: u64, send_base: u64) -> [u8; PAYLOAD_LEN] {
    let mut b = [0u8; PAYLOAD_LEN];
    b[0..4].copy_from_slice(&sender_index.to_le_bytes());
    b[8..16].copy_from_slice(&timestamp.to_le_bytes());
    b[16..24].copy_from_slice(&instance.to_le_bytes());
    b[24..32].copy_from_slice(&send_base.to_le_bytes());
    b
}

fn header(batch_type: BatchType, receiver: u32, body_len: usize, counter: u64) -> [u8; HEADER_LEN] {
    BatchHeader {
        batch_type,
        path: 0,
        receiver,
        body_len: body_len as u32,
        counter,
    }
    .to_bytes()
}

fn compute() -> Vectors {
    let mut v = Vectors::new();
    let (initiator, responder) = (party(0x11), party(0x22));
    let init_hello = hello(
        0x0102_0304,
        1_700_000_000_123_456_789,
        0xaaaa_bbbb_cccc_dddd,
        0xffff_fff0,
    );
    let resp_hello = hello(0x0a0b_0c0d, 0, 0x1111_2222_3333_4444, 0);
    let init_header = header(BatchType::Initiation, 0, INITIATION_LEN, 0);
    let resp_header = header(BatchType::Response, 0x0102_0304, RESPONSE_LEN, 0);

    let mut init = [0u8; INITIATION_LEN];
    let pending = create_initiation(
        &initiator,
        &responder.public,
        [0xe1; 32],
        &init_hello,
        &init_header,
        &mut init,
    );
    let answered =
        consume_initiation(&responder, &initiator.public, &init_header, &init).expect("genuine");
    assert_eq!(answered.payload(), &init_hello);
    let mut resp = [0u8; RESPONSE_LEN];
    let responder_keys = answered.respond([0xe2; 32], &resp_hello, &resp_header, &mut resp);
    let (initiator_keys, payload) = pending
        .consume_response(&resp_header, &resp)
        .expect("genuine");
    assert_eq!(payload, resp_hello);

    v.entry("handshake.txt").or_default().extend([
        ("initiator_static_private_seed", hex::encode([0x11u8; 32])),
        (
            "initiator_static_public",
            hex::encode(initiator.public.as_bytes()),
        ),
        ("responder_static_private_seed", hex::encode([0x22u8; 32])),
        (
            "responder_static_public",
            hex::encode(responder.public.as_bytes()),
        ),
        ("initiator_ephemeral_private", hex::encode([0xe1u8; 32])),
        ("responder_ephemeral_private", hex::encode([0xe2u8; 32])),
        ("initiation_payload", hex::encode(init_hello)),
        ("response_payload", hex::encode(resp_hello)),
        (
            "initiation_batch",
            hex::encode([init_header.as_slice(), &init].concat()),
        ),
        (
            "response_batch",
            hex::encode([resp_header.as_slice(), &resp].concat()),
        ),
    ]);

    // mac2: the proof of this session in a later initiation, and a cookie of a UDP source.
    let proof = initiator_keys.proof_key(true);
    assert_eq!(*proof, *responder_keys.proof_key(false));
    let mut proved = init;
    set_initiation_mac2(&proof[..], &init_header, &mut proved);
    let source = source_bytes([10, 0, 0, 1], 5000);
    let maker = CookieMaker::new(&responder.public, [0x33; 32], Duration::ZERO);
    let cookie = maker.cookie(&source);
    let cookie_header = header(BatchType::Cookie, 0, COOKIE_REPLY_LEN, 0);
    let mut reply = [0u8; COOKIE_REPLY_LEN];
    maker.reply(&source, &initiation_mac1(&init), [0x44; 24], &mut reply);
    assert_eq!(
        open_cookie_reply(&responder.public, &initiation_mac1(&init), &reply),
        Some(cookie)
    );
    let mut with_cookie = init;
    set_initiation_mac2(&cookie, &init_header, &mut with_cookie);
    assert!(maker.mac2_valid(
        &source,
        &initiation_mac2_covered(&init_header, &with_cookie),
        initiation_mac2(&with_cookie)
    ));
    v.entry("handshake.txt").or_default().extend([
        ("session_proof_key", hex::encode(&proof[..])),
        (
            "initiation_batch_session_proved",
            hex::encode([init_header.as_slice(), &proved].concat()),
        ),
        ("cookie_secret", hex::encode([0x33u8; 32])),
        ("cookie_source", hex::encode(source)),
        ("cookie", hex::encode(cookie)),
        ("cookie_nonce", hex::encode([0x44u8; 24])),
        (
            "cookie_batch",
            hex::encode([cookie_header.as_slice(), &reply].concat()),
        ),
        (
            "initiation_batch_with_cookie",
            hex::encode([init_header.as_slice(), &with_cookie].concat()),
        ),
    ]);

    // A transport batch from the initiator with several frames, under counter 5.
    let mut sender = Session::new(
        initiator_keys,
        0x0102_0304,
        0x0a0b_0c0d,
        Duration::ZERO,
        true,
    );
    let mut receiver = Session::new(
        responder_keys,
        0x0a0b_0c0d,
        0x0102_0304,
        Duration::ZERO,
        false,
    );
    let mut plain = vec![0u8; 512];
    let mut w = FrameWriter::new(&mut plain);
    let compressible = b"fcvpn fcvpn fcvpn fcvpn fcvpn fcvpn fcvpn fcvpn".to_vec();
    let mut lz4 = (compressible.len() as u32).to_le_bytes().to_vec();
    lz4.extend(lz4_block(&compressible));
    let ranges = [
        AckRange {
            start: 0x20,
            len: 3,
        },
        AckRange {
            start: 0x1c,
            len: 1,
        },
    ];
    assert!(w.put_ack(0x19, 250, &ranges));
    assert!(w.put_data(0xffff_fff0, 0, b"\x45\x00\x00\x1c first packet"));
    assert!(w.put_data(0xffff_fff1, FLAG_LZ4, &lz4));
    assert!(w.put_fragment(0xffff_fff2, 0, 9000, 4096, &[0x5a; 16]));
    assert!(w.put_probe(7, false));
    assert!(w.put_skip(0xffff_ffee));
    let plain_len = w.len();
    let mut ack_only = vec![0u8; 64];
    let mut aw = FrameWriter::new(&mut ack_only);
    assert!(aw.put_ack(0x19, 250, &ranges));
    let ack_len = aw.len();
    ack_only.truncate(ack_len);

    let counter = 5;
    let batch_header = header(
        BatchType::Transport,
        0x0a0b_0c0d,
        fcvpn::crypto::session::sealed_len(plain_len),
        counter,
    );
    let mut body = plain[..plain_len].to_vec();
    body.resize(fcvpn::crypto::session::sealed_len(plain_len), 0);
    let n = sender.seal(counter, &batch_header, &mut body, plain_len);
    let batch = [batch_header.as_slice(), &body[..n]].concat();
    let mut opened = body[..n].to_vec();
    let m = receiver
        .open(counter, &batch_header, &mut opened)
        .expect("opens");
    assert_eq!(&opened[..m], &plain[..plain_len]);
    let _ = sender.next_counter();

    v.entry("batch.txt").or_default().extend([
        ("session_initiator_index", "01020304".to_string()),
        ("session_responder_index", "0a0b0c0d".to_string()),
        ("counter", format!("{counter}")),
        ("frames_plaintext", hex::encode(&plain[..plain_len])),
        ("sealed_batch", hex::encode(&batch)),
    ]);
    v.entry("ack.txt")
        .or_default()
        .extend([("ack_frame", hex::encode(&ack_only))]);

    // The SCSI side: command tokens (SPEC §11.2), a WRITE(16)/READ(16) pair of 1 MiB, identity
    // pages. The nexus tag is no longer on the wire; it stays as the public value a stranger
    // would try.
    let tag = nexus_tag(responder.public.as_bytes(), initiator.public.as_bytes());
    let fabric =
        FabricKey::derive(&responder.private, &initiator.public, FabricRole::Target).unwrap();
    let c0 = slot_start(1_700_000_000).unwrap();
    let k_fab = fabric_key_by_hand(0x22, &initiator.public, &responder.public);
    for c in [0, c0, c0 + 1, u64::MAX] {
        assert_eq!(fabric.token(c), token_by_hand(&k_fab, c), "counter {c}");
    }
    let identity = DeviceIdentity::from_target_public(responder.public.as_bytes());
    v.entry("cdb.txt").or_default().extend([
        (
            "target_static_public",
            hex::encode(responder.public.as_bytes()),
        ),
        (
            "initiator_static_public",
            hex::encode(initiator.public.as_bytes()),
        ),
        ("nexus_tag", format!("{tag:016x}")),
        ("fabric_key", hex::encode(k_fab)),
        ("command_counter_0", format!("{c0:016x}")),
        ("token_counter_0", format!("{:016x}", fabric.token(c0))),
        ("token_counter_1", format!("{:016x}", fabric.token(c0 + 1))),
        (
            "token_counter_0x40",
            format!("{:016x}", fabric.token(c0 + 0x40)),
        ),
        (
            "token_counter_max",
            format!("{:016x}", fabric.token(u64::MAX)),
        ),
        (
            "write16_1MiB_counter_0",
            hex::encode(cdb::write16(fabric.token(c0), 1 << 20)),
        ),
        (
            "read16_1MiB_counter_1",
            hex::encode(cdb::read16(fabric.token(c0 + 1), 1 << 20)),
        ),
        // A parked READ with nothing to send is answered with this, zero-padded to 512 bytes.
        ("idle_batch", hex::encode(&idle_block()[..HEADER_LEN])),
        (
            "inquiry_standard",
            hex::encode(inquiry::standard_inquiry_data()),
        ),
        (
            "vpd_00",
            hex::encode(vpd::vpd_page(&identity, 0x00).unwrap()),
        ),
        (
            "vpd_80",
            hex::encode(vpd::vpd_page(&identity, 0x80).unwrap()),
        ),
        (
            "vpd_83",
            hex::encode(vpd::vpd_page(&identity, 0x83).unwrap()),
        ),
    ]);
    v
}

/// K_fab of SPEC §11.2 from the raw definition: BLAKE2s-256("fcvpn fabric key v1" ‖
/// X25519(target private, initiator public) ‖ target public ‖ initiator public).
fn fabric_key_by_hand(target_byte: u8, initiator: &PublicKey, target: &PublicKey) -> [u8; 32] {
    use blake2::Digest;
    let secret = x25519_dalek::StaticSecret::from([target_byte; 32]);
    let dh = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*initiator.as_bytes()));
    let mut h = blake2::Blake2s256::new();
    h.update(b"fcvpn fabric key v1");
    h.update(dh.as_bytes());
    h.update(target.as_bytes());
    h.update(initiator.as_bytes());
    h.finalize().into()
}

/// token(c) of SPEC §11.2: the first 8 bytes, big-endian, of keyed BLAKE2s-256(K_fab,
/// "cmd" ‖ c as u64 LE).
fn token_by_hand(k_fab: &[u8; 32], c: u64) -> u64 {
    use blake2::digest::{KeyInit, Mac};
    let mut mac = <blake2::Blake2sMac256 as KeyInit>::new(k_fab.into());
    Mac::update(&mut mac, b"cmd");
    Mac::update(&mut mac, &c.to_le_bytes());
    let out: [u8; 32] = mac.finalize().into_bytes().into();
    u64::from_be_bytes(out[..8].try_into().unwrap())
}

/// A UDP source as the link's cookies see it (SPEC §8.7): IPv4-mapped IPv6 address, port.
fn source_bytes(ip: [u8; 4], port: u16) -> [u8; 18] {
    let mut b = [0u8; 18];
    b[10..12].copy_from_slice(&[0xff, 0xff]);
    b[12..16].copy_from_slice(&ip);
    b[16..].copy_from_slice(&port.to_be_bytes());
    b
}

/// An IDLE batch padded to one 512-byte block, as a parked READ is answered with.
fn idle_block() -> Vec<u8> {
    let mut b = vec![0u8; fcvpn::scsi::BLOCK_LEN];
    fcvpn::link::wire::write_idle(0, &mut b).unwrap();
    b
}

fn lz4_block(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; lz4_flex::block::get_maximum_output_size(data.len())];
    let n = lz4_flex::block::compress_into(data, &mut out).unwrap();
    out.truncate(n);
    out
}

fn render(lines: &[(&str, String)]) -> String {
    let mut s = String::from(
        "# fcvpn protocol vectors (proto/SPEC.md); hex unless noted. Generated by tests/vectors.rs.\n",
    );
    for (k, v) in lines {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

#[test]
fn implementation_matches_proto_vectors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/vectors");
    let bless = std::env::var_os("FCVPN_BLESS").is_some();
    for (file, lines) in compute() {
        let path = dir.join(file);
        let want = render(&lines);
        if bless {
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        let have =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (h, w) in have.lines().zip(want.lines()) {
            assert_eq!(h, w, "{file} differs");
        }
        assert_eq!(have, want, "{file} differs");
    }
}

#[test]
fn public_keys_in_vectors_are_the_x25519_of_the_seeds() {
    let k = PrivateKey::from_bytes([0x11; 32]);
    let p: PublicKey = k.public_key();
    assert_eq!(PublicKey::from_base64(&p.to_base64()).unwrap(), p);
}

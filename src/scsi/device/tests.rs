//! Behaviour tests of the virtual device, and its no-panic sweep over arbitrary CDBs.

use super::*;
use crate::crypto::PrivateKey;
use crate::crypto::fabric::{FabricKey, FabricRole};
use crate::scsi::cdb::{inquiry, read16, report_luns, request_sense, test_unit_ready, write16};
use crate::scsi::status;
use crate::scsi::token::slot_start;

/// A token no verifier of the test pair accepts.
const TAG: u64 = 0x0123_4567_89ab_cdef;
const MIB: usize = 1024 * 1024;
/// The device's wall clock (Unix seconds).
const NOW: u64 = 1_700_000_000;

/// The test pair's fabric key, as the target computes it.
fn key() -> FabricKey {
    let target = PrivateKey::from_bytes([0x22; 32]);
    let initiator = PrivateKey::from_bytes([0x11; 32]).public_key();
    FabricKey::derive(&target, &initiator, FabricRole::Target).unwrap()
}

fn device() -> VirtualDevice {
    let identity = DeviceIdentity::from_target_public(&core::array::from_fn(|i| i as u8));
    let mut verifier = CommandVerifier::new(key());
    verifier.tick(NOW);
    VirtualDevice::new(identity, verifier)
}

/// The valid tokens of counters `slot_start(NOW) + 0 .. n`, each usable once.
fn tokens(n: u64) -> Vec<u64> {
    let key = key();
    let base = slot_start(NOW).unwrap();
    (0..n).map(|i| key.token(base + i)).collect()
}

fn good(data: &[u8]) -> Dispatch<'static> {
    Dispatch::Complete(Response::data_in(data.to_vec()))
}

fn invalid_field(byte: u16) -> Dispatch<'static> {
    Dispatch::Complete(Response::check_condition(&Sense::invalid_field_in_cdb(
        byte,
    )))
}

#[test]
fn test_unit_ready_is_good() {
    assert_eq!(device().dispatch(&test_unit_ready(), &[], 0), good(&[]));
}

#[test]
fn standard_inquiry_is_truncated_to_allocation_and_buffer() {
    let mut dev = device();
    let full = standard_inquiry_data();
    assert_eq!(dev.dispatch(&inquiry(false, 0, 255), &[], 255), good(&full));
    assert_eq!(
        dev.dispatch(&inquiry(false, 0, 5), &[], 255),
        good(&full[..5])
    );
    assert_eq!(
        dev.dispatch(&inquiry(false, 0, 255), &[], 8),
        good(&full[..8])
    );
    assert_eq!(dev.dispatch(&inquiry(false, 0, 0), &[], 255), good(&[]));
}

#[test]
fn vpd_pages_are_served_and_truncated() {
    let mut dev = device();
    let serial = [&[0x03, 0x80, 0x00, 0x10][..], b"16C0B1C5C92EFACE"].concat();
    assert_eq!(
        dev.dispatch(&inquiry(true, 0x80, 255), &[], 255),
        good(&serial)
    );
    let pages = [0x03, 0x00, 0x00, 0x03, 0x00, 0x80, 0x83];
    assert_eq!(
        dev.dispatch(&inquiry(true, 0x00, 255), &[], 255),
        good(&pages)
    );
    let id = crate::scsi::vpd::device_identification(dev.identity());
    assert_eq!(
        dev.dispatch(&inquiry(true, 0x83, 4), &[], 255),
        good(&id[..4])
    );
    assert_eq!(dev.dispatch(&inquiry(true, 0x83, 255), &[], 255), good(&id));
}

#[test]
fn unsupported_vpd_page_points_at_byte_2() {
    let mut dev = device();
    assert_eq!(
        dev.dispatch(&inquiry(true, 0xB0, 255), &[], 255),
        invalid_field(2)
    );
    assert_eq!(
        dev.dispatch(&inquiry(false, 0x80, 255), &[], 255),
        invalid_field(2)
    );
    assert_eq!(dev.counters().invalid_cdb, 2);
}

#[test]
fn request_sense_reports_no_sense_in_either_format() {
    let mut dev = device();
    let fixed = [0x70, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        dev.dispatch(&request_sense(false, 252), &[], 252),
        good(&fixed)
    );
    assert_eq!(
        dev.dispatch(&request_sense(false, 8), &[], 252),
        good(&fixed[..8])
    );
    let descriptor = [0x72, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        dev.dispatch(&request_sense(true, 252), &[], 252),
        good(&descriptor)
    );
    assert_eq!(
        dev.dispatch(&request_sense(true, 252), &[], 2),
        good(&descriptor[..2])
    );
}

#[test]
fn report_luns_lists_lun_0() {
    let mut dev = device();
    let luns = [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(dev.dispatch(&report_luns(0, 4096), &[], 4096), good(&luns));
    assert_eq!(
        dev.dispatch(&report_luns(2, 16), &[], 12),
        good(&luns[..12])
    );
    assert_eq!(
        dev.dispatch(&report_luns(0, 15), &[], 4096),
        invalid_field(6)
    );
}

#[test]
fn our_write16_sends_its_payload() {
    let mut dev = device();
    let payload = vec![0xA5; MIB];
    let token = tokens(1)[0];
    let dispatch = dev.dispatch(&write16(token, MIB), &payload, 0);
    assert_eq!(dispatch, Dispatch::Send { payload: &payload });
    assert_eq!(dev.counters().sends, 1);
    // The same token again is a replay.
    assert_eq!(
        dev.dispatch(&write16(token, MIB), &payload, 0),
        invalid_field(2)
    );
    assert_eq!(dev.counters().foreign_token, 1);
}

#[test]
fn our_read16_is_parked_for_its_length() {
    let mut dev = device();
    let t = tokens(2);
    assert_eq!(
        dev.dispatch(&read16(t[0], MIB), &[], MIB),
        Dispatch::Receive { max_len: MIB }
    );
    let short = dev.dispatch(&read16(t[1], 1000), &[], MIB);
    assert_eq!(short, Dispatch::Receive { max_len: 1024 });
    assert_eq!(dev.counters().receives, 2);
}

#[test]
fn foreign_tokens_are_refused_and_counted() {
    let mut dev = device();
    let payload = [0u8; 512];
    let nexus_tag = crate::scsi::nexus_tag(&[1; 32], &[2; 32]);
    assert_eq!(
        dev.dispatch(&write16(nexus_tag, 512), &payload, 0),
        invalid_field(2)
    );
    assert_eq!(dev.dispatch(&read16(0, 512), &[], 512), invalid_field(2));
    assert_eq!(dev.dispatch(&read16(!TAG, 0), &[], 0), invalid_field(2));
    let counters = dev.counters();
    assert_eq!(
        (counters.foreign_token, counters.sends, counters.receives),
        (3, 0, 0)
    );
}

#[test]
fn mismatched_lengths_point_at_byte_10() {
    let mut dev = device();
    let payload = [0u8; 1024];
    assert_eq!(
        dev.dispatch(&write16(TAG, 512), &payload, 0),
        invalid_field(10)
    );
    assert_eq!(
        dev.dispatch(&write16(TAG, 2048), &payload, 0),
        invalid_field(10)
    );
    assert_eq!(
        dev.dispatch(&write16(TAG, 0), &payload, 0),
        invalid_field(10)
    );
    assert_eq!(
        dev.dispatch(&read16(TAG, 1024), &[], 1023),
        invalid_field(10)
    );
    assert_eq!(dev.counters().bad_length, 4);
}

#[test]
fn zero_block_transfers_complete_good_with_nothing() {
    let mut dev = device();
    let t = tokens(2);
    assert_eq!(dev.dispatch(&write16(t[0], 0), &[], 0), good(&[]));
    assert_eq!(dev.dispatch(&read16(t[1], 0), &[], 4096), good(&[]));
    let counters = dev.counters();
    assert_eq!((counters.sends, counters.receives), (0, 0));
}

#[test]
fn bad_cdbs_get_check_condition_with_sense() {
    let mut dev = device();
    let opcode = Dispatch::Complete(Response::check_condition(
        &Sense::invalid_command_operation_code(),
    ));
    assert_eq!(
        dev.dispatch(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], &[], 512),
        opcode
    );
    let mut fua = write16(TAG, 512);
    fua[1] = 0x08;
    assert_eq!(dev.dispatch(&fua, &[0; 512], 0), invalid_field(1));
    assert_eq!(dev.dispatch(&[], &[], 0), invalid_field(0));
    assert_eq!(
        dev.dispatch(&read16(TAG, 512)[..10], &[], 512),
        invalid_field(0)
    );
    let expected = DeviceCounters {
        commands: 4,
        unknown_opcode: 1,
        invalid_cdb: 3,
        ..DeviceCounters::default()
    };
    assert_eq!(dev.counters(), &expected);
}

/// Checks the invariants every dispatch keeps, whatever the input.
fn check_invariants(dispatch: &Dispatch<'_>, data_out: &[u8], data_in_len: usize) {
    match dispatch {
        Dispatch::Complete(response) => {
            let checked = response.status == status::CHECK_CONDITION;
            assert!(checked || response.status == status::GOOD);
            assert_eq!(response.sense.len(), if checked { 18 } else { 0 });
            assert!(response.data_in.len() <= data_in_len);
        }
        Dispatch::Send { payload } => {
            assert_eq!(payload.len(), data_out.len());
            assert!(!payload.is_empty() && payload.len() % BLOCK_LEN_USIZE == 0);
        }
        Dispatch::Receive { max_len } => {
            assert!(*max_len > 0 && *max_len <= data_in_len && *max_len <= MAX_TRANSFER_LEN);
        }
    }
}

const BLOCK_LEN_USIZE: usize = crate::scsi::cdb::BLOCK_LEN;
const MAX_TRANSFER_LEN: usize = crate::scsi::cdb::MAX_TRANSFER_LEN;

/// xorshift64: a tiny deterministic generator for the sweeps.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> usize {
        (self.next() % bound) as usize
    }
}

#[test]
fn every_opcode_and_length_dispatches_without_panic() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let data_out = vec![0x5A; 4096];
    let mut dev = device();
    let mut count = 0;
    for opcode in 0..=255u8 {
        for len in 0..=16usize {
            for fill in 0..4 {
                let mut cdb: Vec<u8> = (0..len)
                    .map(|_| match fill {
                        0 => 0x00,
                        1 => 0xFF,
                        _ => rng.next() as u8,
                    })
                    .collect();
                if let Some(first) = cdb.first_mut() {
                    *first = opcode;
                }
                let out = &data_out[..rng.below(4097)];
                let in_len = rng.below(4097);
                check_invariants(&dev.dispatch(&cdb, out, in_len), out, in_len);
                count += 1;
            }
        }
    }
    assert_eq!(dev.counters().commands, count);
}

/// A pseudo-random CDB, biased towards our opcodes, valid tokens and plausible lengths so that every
/// branch of the device is reached.
fn random_cdb(rng: &mut XorShift, tokens: &[u64]) -> Vec<u8> {
    let len = rng.below(33);
    let mut cdb: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    let opcodes = [0x00, 0x03, 0x12, 0x88, 0x8A, 0xA0];
    if let Some(first) = cdb.first_mut() {
        if rng.below(4) != 0 {
            *first = opcodes[rng.below(opcodes.len() as u64)];
        }
    }
    if len >= 16 && rng.below(2) == 0 {
        let (byte1, group) = (rng.below(8) == 0, rng.below(8) == 0);
        cdb[1] = if byte1 { cdb[1] } else { 0 };
        cdb[14] = if group { cdb[14] } else { 0 };
        let token = match rng.below(8) {
            0 => rng.next(),
            _ => tokens[rng.below(tokens.len() as u64)],
        };
        cdb[2..10].copy_from_slice(&token.to_be_bytes());
        let blocks = rng.below(40) as u32;
        cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
    }
    cdb
}

#[test]
fn hundred_thousand_pseudo_random_cdbs_dispatch_without_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let data_out = vec![0xC3; 20 * 512];
    let mut dev = device();
    let tokens = tokens(20_000);
    for _ in 0..100_000 {
        let cdb = random_cdb(&mut rng, &tokens);
        let out_len = match rng.below(3) {
            0 => rng.below(40) * 512,
            1 => rng.below(data_out.len() as u64 + 1),
            _ => 0,
        };
        let out = &data_out[..out_len.min(data_out.len())];
        let in_len = rng.below(2 * 20 * 512);
        check_invariants(&dev.dispatch(&cdb, out, in_len), out, in_len);
    }
    let c = dev.counters();
    assert_eq!(c.commands, 100_000);
    for (name, value) in [
        ("sends", c.sends),
        ("receives", c.receives),
        ("foreign_token", c.foreign_token),
        ("bad_length", c.bad_length),
        ("unknown_opcode", c.unknown_opcode),
        ("invalid_cdb", c.invalid_cdb),
    ] {
        assert!(value > 0, "{name} never reached");
    }
}

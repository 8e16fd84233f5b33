//! Exact-byte tests of sense encoding and of the sense parser.

use super::*;

#[test]
fn fixed_invalid_field_in_cdb_points_at_the_byte() {
    let expected = [
        0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0x00, 0, 0xC0, 0x00, 0x0A,
    ];
    assert_eq!(Sense::invalid_field_in_cdb(10).to_fixed(), expected);
}

#[test]
fn fixed_invalid_opcode_points_at_byte_zero() {
    let expected = [
        0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0x00, 0, 0xC0, 0x00, 0x00,
    ];
    assert_eq!(Sense::invalid_command_operation_code().to_fixed(), expected);
}

#[test]
fn fixed_without_field_pointer_leaves_sks_clear() {
    let sense = Sense::new(SenseKey::UNIT_ATTENTION, AdditionalSense::I_T_NEXUS_LOSS);
    let expected = [
        0x70, 0, 0x06, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x29, 0x07, 0, 0, 0, 0,
    ];
    assert_eq!(sense.to_fixed(), expected);
}

#[test]
fn field_pointer_is_only_encoded_for_illegal_request() {
    let mut sense = Sense::new(SenseKey::NOT_READY, AdditionalSense::LOGICAL_UNIT_NOT_READY);
    sense.field_pointer = Some(3);
    assert_eq!(sense.to_fixed()[15..], [0, 0, 0]);
    assert_eq!(sense.to_descriptor().len(), 8);
}

#[test]
fn descriptor_with_field_pointer_adds_sks_descriptor() {
    let expected = [
        0x72, 0x05, 0x24, 0x00, 0, 0, 0, 8, 0x02, 0x06, 0, 0, 0xC0, 0x01, 0x02, 0,
    ];
    assert_eq!(
        Sense::invalid_field_in_cdb(0x0102).to_descriptor(),
        expected
    );
}

#[test]
fn descriptor_no_sense_is_header_only() {
    let expected = [0x72, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(Sense::no_sense().to_descriptor(), expected);
}

#[test]
fn to_bytes_picks_format_and_truncates() {
    let sense = Sense::invalid_field_in_cdb(2);
    assert_eq!(sense.to_bytes(false, 255), sense.to_fixed().to_vec());
    assert_eq!(sense.to_bytes(true, 255), sense.to_descriptor());
    assert_eq!(sense.to_bytes(false, 3), vec![0x70, 0, 0x05]);
    assert!(sense.to_bytes(true, 0).is_empty());
}

#[test]
fn parses_what_it_emits_in_both_formats() {
    let sense = Sense::new(
        SenseKey::NOT_READY,
        AdditionalSense::LOGICAL_UNIT_BECOMING_READY,
    );
    let info = SenseInfo {
        key: SenseKey::NOT_READY,
        asc: 0x04,
        ascq: 0x01,
    };
    assert_eq!(parse_sense(&sense.to_fixed()), Some(info));
    assert_eq!(parse_sense(&sense.to_descriptor()), Some(info));
    assert_eq!(
        info.additional(),
        AdditionalSense::LOGICAL_UNIT_BECOMING_READY
    );
}

#[test]
fn parses_deferred_and_valid_bit_variants() {
    let mut fixed =
        Sense::new(SenseKey::UNIT_ATTENTION, AdditionalSense::POWER_ON_OR_RESET).to_fixed();
    fixed[0] = 0x80 | RESPONSE_CODE_FIXED_DEFERRED;
    let info = parse_sense(&fixed).map(|i| (i.key, i.asc, i.ascq));
    assert_eq!(info, Some((SenseKey::UNIT_ATTENTION, 0x29, 0x00)));
    let descriptor = [0x73, 0x0B, 0x47, 0x03];
    let info = parse_sense(&descriptor).map(|i| (i.key, i.asc, i.ascq));
    assert_eq!(info, Some((SenseKey::ABORTED_COMMAND, 0x47, 0x03)));
}

#[test]
fn asc_outside_the_additional_length_reads_as_zero() {
    let mut fixed = Sense::invalid_field_in_cdb(1).to_fixed();
    fixed[7] = 4; // claims 12 bytes: ASC at 12 is outside
    let info = parse_sense(&fixed).map(|i| (i.key, i.asc, i.ascq));
    assert_eq!(info, Some((SenseKey::ILLEGAL_REQUEST, 0, 0)));
    let info = parse_sense(&[0x70, 0, 0x02]).map(|i| (i.key, i.asc, i.ascq));
    assert_eq!(info, Some((SenseKey::NOT_READY, 0, 0)));
}

#[test]
fn rejects_unknown_or_keyless_data() {
    assert_eq!(parse_sense(&[]), None);
    assert_eq!(parse_sense(&[0x70, 0]), None);
    assert_eq!(parse_sense(&[0x72]), None);
    assert_eq!(parse_sense(&[0x7F; 18]), None);
    assert_eq!(parse_sense(&[0x00; 18]), None);
}

#[test]
fn parse_never_panics_on_short_garbage() {
    for first in 0..=255u8 {
        for len in 0..=20 {
            let bytes: Vec<u8> = (0..len).map(|i| first.wrapping_mul(31) ^ i).collect();
            let mut bytes = bytes;
            if let Some(b) = bytes.first_mut() {
                *b = first;
            }
            let _ = parse_sense(&bytes);
        }
    }
}

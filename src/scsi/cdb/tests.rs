//! Table and round-trip tests for the CDB codec.

use super::*;
use crate::scsi::sense::{AdditionalSense, SenseKey};

const TAG: u64 = 0x0123_4567_89ab_cdef;
const MIB: usize = 1024 * 1024;

#[test]
fn write16_read16_pair_exact_bytes() {
    let write = [
        0x8A, 0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x00, 0x00, 0x08, 0x00, 0x00,
        0x00,
    ];
    let read = [
        0x88, 0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x00, 0x00, 0x08, 0x00, 0x00,
        0x00,
    ];
    assert_eq!(write16(TAG, MIB), write);
    assert_eq!(read16(TAG, MIB), read);
    let blocks = 2048;
    assert_eq!(parse(&write), Ok(Cdb::Write16 { token: TAG, blocks }));
    assert_eq!(parse(&read), Ok(Cdb::Read16 { token: TAG, blocks }));
}

#[test]
fn six_byte_builders_exact_bytes() {
    assert_eq!(test_unit_ready(), [0x00, 0, 0, 0, 0, 0]);
    assert_eq!(request_sense(true, 252), [0x03, 0x01, 0, 0, 252, 0]);
    assert_eq!(inquiry(false, 0, 36), [0x12, 0, 0, 0, 36, 0]);
    assert_eq!(
        inquiry(true, 0x83, 0x0102),
        [0x12, 0x01, 0x83, 0x01, 0x02, 0]
    );
    let luns = [0xA0, 0, 0x02, 0, 0, 0, 0x00, 0x00, 0x10, 0x00, 0, 0];
    assert_eq!(report_luns(2, 4096), luns);
}

#[test]
fn lengths_round_up_to_whole_blocks() {
    assert_eq!(blocks_for(0), 0);
    assert_eq!(blocks_for(1), 1);
    assert_eq!(blocks_for(512), 1);
    assert_eq!(blocks_for(513), 2);
    assert_eq!(blocks_for(MAX_TRANSFER_LEN), 32768);
    #[cfg(target_pointer_width = "64")]
    assert_eq!(blocks_for(usize::MAX), u32::MAX);
    assert_eq!(&write16(7, 1000)[10..14], &[0, 0, 0, 2]);
    assert_eq!(transfer_len(u32::MAX), 0x1FF_FFFF_FE00);
}

#[test]
fn builders_round_trip_through_parse() {
    assert_eq!(parse(&test_unit_ready()), Ok(Cdb::TestUnitReady));
    for desc in [false, true] {
        for alloc_len in [0, 18, 255] {
            let cdb = Cdb::RequestSense { desc, alloc_len };
            assert_eq!(parse(&request_sense(desc, alloc_len)), Ok(cdb));
        }
    }
    for (evpd, page) in [
        (false, 0),
        (true, 0x00),
        (true, 0x80),
        (true, 0x83),
        (true, 0xFF),
    ] {
        for alloc_len in [0, 36, 0xFFFF] {
            let cdb = Cdb::Inquiry {
                evpd,
                page,
                alloc_len,
            };
            assert_eq!(parse(&inquiry(evpd, page, alloc_len)), Ok(cdb));
        }
    }
    for (select, alloc_len) in [(0, 16), (2, 0x0102_0304), (0xFF, u32::MAX)] {
        let cdb = Cdb::ReportLuns { select, alloc_len };
        assert_eq!(parse(&report_luns(select, alloc_len)), Ok(cdb));
    }
    for tag in [0, 1, TAG, u64::MAX] {
        for len in [0, 512, MIB, MAX_TRANSFER_LEN] {
            let blocks = blocks_for(len);
            assert_eq!(
                parse(&write16(tag, len)),
                Ok(Cdb::Write16 { token: tag, blocks })
            );
            assert_eq!(
                parse(&read16(tag, len)),
                Ok(Cdb::Read16 { token: tag, blocks })
            );
        }
    }
}

#[test]
fn trailing_bytes_past_the_cdb_length_are_ignored() {
    let mut long = test_unit_ready().to_vec();
    long.extend_from_slice(&[0xFF; 10]);
    assert_eq!(parse(&long), Ok(Cdb::TestUnitReady));
}

fn invalid_field(opcode: u8, byte: u16) -> Result<Cdb, CdbError> {
    Err(CdbError::InvalidField { opcode, byte })
}

#[test]
fn rw16_refuses_nonzero_flags_group_and_oversized_transfers() {
    let mut cdb = write16(TAG, 512);
    cdb[1] = 0x08; // FUA
    assert_eq!(parse(&cdb), invalid_field(0x8A, 1));
    let mut cdb = read16(TAG, 512);
    cdb[14] = 0x01;
    assert_eq!(parse(&cdb), invalid_field(0x88, 14));
    let cdb = read16(TAG, MAX_TRANSFER_LEN + 1);
    assert_eq!(parse(&cdb), invalid_field(0x88, 10));
    let cdb = write16(TAG, usize::MAX);
    assert_eq!(parse(&cdb), invalid_field(0x8A, 10));
}

#[test]
fn inquiry_page_without_evpd_points_at_byte_2() {
    assert_eq!(parse(&inquiry(false, 0x80, 255)), invalid_field(0x12, 2));
}

#[test]
fn report_luns_short_allocation_points_at_byte_6() {
    assert_eq!(parse(&report_luns(0, 15)), invalid_field(0xA0, 6));
}

#[test]
fn short_and_empty_cdbs_are_refused() {
    assert_eq!(parse(&[]), Err(CdbError::Empty));
    let short = CdbError::TooShort {
        opcode: 0x8A,
        len: 15,
        needed: 16,
    };
    assert_eq!(parse(&write16(TAG, 512)[..15]), Err(short));
    let short = CdbError::TooShort {
        opcode: 0xA0,
        len: 6,
        needed: 12,
    };
    assert_eq!(parse(&report_luns(0, 16)[..6]), Err(short));
    assert!(matches!(
        parse(&[0x12]),
        Err(CdbError::TooShort { needed: 6, .. })
    ));
}

#[test]
fn unknown_opcodes_are_refused() {
    let implemented = [0x00, 0x03, 0x12, 0x88, 0x8A, 0xA0];
    for opcode in 0..=255u8 {
        let mut cdb = [0u8; 16];
        cdb[0] = opcode;
        cdb[10..14].copy_from_slice(&1u32.to_be_bytes());
        cdb[8] = 1; // a non-zero REPORT LUNS allocation length
        let parsed = parse(&cdb);
        if implemented.contains(&opcode) {
            assert!(parsed.is_ok(), "opcode {opcode:#04x}: {parsed:?}");
        } else {
            assert_eq!(parsed, Err(CdbError::UnsupportedOpcode { opcode }));
        }
    }
}

#[test]
fn errors_carry_their_sense() {
    let sense = CdbError::UnsupportedOpcode { opcode: 0x28 }.sense();
    assert_eq!(sense.key, SenseKey::ILLEGAL_REQUEST);
    assert_eq!(
        sense.additional,
        AdditionalSense::INVALID_COMMAND_OPERATION_CODE
    );
    assert_eq!(sense.field_pointer, Some(0));
    let sense = CdbError::InvalidField {
        opcode: 0x8A,
        byte: 14,
    }
    .sense();
    assert_eq!(sense.additional, AdditionalSense::INVALID_FIELD_IN_CDB);
    assert_eq!(sense.field_pointer, Some(14));
    let too_short = CdbError::TooShort {
        opcode: 0x12,
        len: 3,
        needed: 6,
    };
    assert_eq!(too_short.sense().field_pointer, Some(0));
    assert_eq!(
        CdbError::Empty.sense().additional,
        AdditionalSense::INVALID_FIELD_IN_CDB
    );
}

#[test]
fn parse_never_panics_on_any_opcode_and_length() {
    for opcode in 0..=255u8 {
        for len in 0..=20usize {
            for fill in [0x00, 0x01, 0x7F, 0xFF] {
                let mut cdb = vec![fill; len];
                if let Some(first) = cdb.first_mut() {
                    *first = opcode;
                }
                let _ = parse(&cdb);
            }
        }
    }
}

//! CDB builders for the initiator: the exact inverse of [`super::parse`] for valid commands.
//!
//! Builders write fixed-size arrays at constant offsets, so they cannot fail or panic.

use super::{
    BLOCK_LEN, CDB6_LEN, CDB12_LEN, CDB16_LEN, INQUIRY_ALLOC_LEN, INQUIRY_EVPD, INQUIRY_PAGE,
    OPCODE, REPORT_LUNS_ALLOC_LEN, REPORT_LUNS_SELECT, REQUEST_SENSE_ALLOC_LEN, REQUEST_SENSE_DESC,
    RW16_TOKEN, RW16_TRANSFER_LEN, opcode,
};

/// A 6-byte CDB holding `opcode`, every other byte zero.
fn cdb6(opcode: u8) -> [u8; CDB6_LEN] {
    let mut cdb = [0u8; CDB6_LEN];
    cdb[OPCODE] = opcode;
    cdb
}

/// TEST UNIT READY.
pub fn test_unit_ready() -> [u8; CDB6_LEN] {
    cdb6(opcode::TEST_UNIT_READY)
}

/// REQUEST SENSE for `alloc_len` bytes, descriptor format when `desc`.
pub fn request_sense(desc: bool, alloc_len: u8) -> [u8; CDB6_LEN] {
    let mut cdb = cdb6(opcode::REQUEST_SENSE);
    cdb[REQUEST_SENSE_DESC] = u8::from(desc);
    cdb[REQUEST_SENSE_ALLOC_LEN] = alloc_len;
    cdb
}

/// INQUIRY for standard data (`evpd` false, `page` 0) or VPD page `page`, `alloc_len` bytes.
///
/// A non-zero `page` without `evpd` builds a CDB the device refuses, as SPC requires.
pub fn inquiry(evpd: bool, page: u8, alloc_len: u16) -> [u8; CDB6_LEN] {
    let mut cdb = cdb6(opcode::INQUIRY);
    cdb[INQUIRY_EVPD] = u8::from(evpd);
    cdb[INQUIRY_PAGE] = page;
    let [hi, lo] = alloc_len.to_be_bytes();
    cdb[INQUIRY_ALLOC_LEN] = hi;
    cdb[INQUIRY_ALLOC_LEN + 1] = lo;
    cdb
}

/// REPORT LUNS with SELECT REPORT `select` for `alloc_len` bytes.
pub fn report_luns(select: u8, alloc_len: u32) -> [u8; CDB12_LEN] {
    let mut cdb = [0u8; CDB12_LEN];
    cdb[OPCODE] = opcode::REPORT_LUNS;
    cdb[REPORT_LUNS_SELECT] = select;
    cdb[REPORT_LUNS_ALLOC_LEN..REPORT_LUNS_ALLOC_LEN + 4].copy_from_slice(&alloc_len.to_be_bytes());
    cdb
}

/// WRITE(16) of `len_bytes` bytes (rounded up to whole blocks) carrying command token `token`.
///
/// Callers keep `len_bytes` ≤ [`MAX_TRANSFER_LEN`](super::MAX_TRANSFER_LEN); a longer length is still encoded (the block
/// count saturates at `u32::MAX`) and the device refuses it.
pub fn write16(token: u64, len_bytes: usize) -> [u8; CDB16_LEN] {
    rw16(opcode::WRITE_16, token, len_bytes)
}

/// READ(16) of up to `len_bytes` bytes (rounded up to whole blocks) carrying command token `token`.
///
/// The same length contract as [`write16`] applies.
pub fn read16(token: u64, len_bytes: usize) -> [u8; CDB16_LEN] {
    rw16(opcode::READ_16, token, len_bytes)
}

/// Whole blocks needed for `len_bytes` bytes, saturating at `u32::MAX`.
pub fn blocks_for(len_bytes: usize) -> u32 {
    u32::try_from(len_bytes.div_ceil(BLOCK_LEN)).unwrap_or(u32::MAX)
}

fn rw16(opcode: u8, token: u64, len_bytes: usize) -> [u8; CDB16_LEN] {
    let mut cdb = [0u8; CDB16_LEN];
    cdb[OPCODE] = opcode;
    cdb[RW16_TOKEN..RW16_TOKEN + 8].copy_from_slice(&token.to_be_bytes());
    cdb[RW16_TRANSFER_LEN..RW16_TRANSFER_LEN + 4]
        .copy_from_slice(&blocks_for(len_bytes).to_be_bytes());
    cdb
}

//! The CDB codec: parses the commands the fcvpn device implements into [`Cdb`], and builds them
//! for the initiator.
//!
//! Parsing checks a CDB's length against its operation code once, then reads fields at named
//! offsets from that checked view. Bytes past the opcode's CDB length are ignored. Every failure
//! is a [`CdbError`] that knows the sense data to answer with; nothing here panics on any input.
//!
//! WRITE(16)/READ(16) carry the fcvpn command token where a block device has its LBA (see
//! [`crate::scsi::token`]) and the transfer length in [`BLOCK_LEN`]-byte blocks.

use crate::scsi::sense::Sense;
use crate::scsi::wire::{be16_at, be32_at, be64_at, u8_at};

/// Bytes per block in the transfer length of WRITE(16)/READ(16).
pub const BLOCK_LEN: usize = 512;
/// Largest data transfer of one WRITE(16)/READ(16), in bytes; longer ones are refused.
pub const MAX_TRANSFER_LEN: usize = 16 * 1024 * 1024;

/// Operation codes of the commands the fcvpn device implements.
pub mod opcode {
    /// TEST UNIT READY (6-byte CDB, no data).
    pub const TEST_UNIT_READY: u8 = 0x00;
    /// REQUEST SENSE (6-byte CDB, data in).
    pub const REQUEST_SENSE: u8 = 0x03;
    /// INQUIRY (6-byte CDB, data in).
    pub const INQUIRY: u8 = 0x12;
    /// READ(16): one batch from target to initiator (16-byte CDB, data in).
    pub const READ_16: u8 = 0x88;
    /// WRITE(16): one batch from initiator to target (16-byte CDB, data out).
    pub const WRITE_16: u8 = 0x8A;
    /// REPORT LUNS (12-byte CDB, data in).
    pub const REPORT_LUNS: u8 = 0xA0;
}

/// Length of a 6-byte CDB (TEST UNIT READY, REQUEST SENSE, INQUIRY).
pub const CDB6_LEN: usize = 6;
/// Length of the REPORT LUNS CDB.
pub const CDB12_LEN: usize = 12;
/// Length of a WRITE(16)/READ(16) CDB.
pub const CDB16_LEN: usize = 16;

/// Byte 0 of every CDB: OPERATION CODE.
const OPCODE: usize = 0;
/// REQUEST SENSE byte 1: bit 0 is DESC.
const REQUEST_SENSE_DESC: usize = 1;
/// REQUEST SENSE byte 4: ALLOCATION LENGTH.
const REQUEST_SENSE_ALLOC_LEN: usize = 4;
/// INQUIRY byte 1: bit 0 is EVPD.
const INQUIRY_EVPD: usize = 1;
/// INQUIRY byte 2: PAGE CODE.
pub(crate) const INQUIRY_PAGE: usize = 2;
/// INQUIRY bytes 3-4: ALLOCATION LENGTH (be16).
const INQUIRY_ALLOC_LEN: usize = 3;
/// REPORT LUNS byte 2: SELECT REPORT.
const REPORT_LUNS_SELECT: usize = 2;
/// REPORT LUNS bytes 6-9: ALLOCATION LENGTH (be32).
const REPORT_LUNS_ALLOC_LEN: usize = 6;
/// Smallest REPORT LUNS allocation length SPC allows.
pub const REPORT_LUNS_MIN_ALLOC_LEN: u32 = 16;
/// READ/WRITE(16) byte 1: DPO, FUA and protection bits; fcvpn requires 0.
const RW16_FLAGS: usize = 1;
/// READ/WRITE(16) bytes 2-9: the command token (an LBA on a block device), be64.
pub(crate) const RW16_TOKEN: usize = 2;
/// READ/WRITE(16) bytes 10-13: TRANSFER LENGTH in blocks, be32.
pub(crate) const RW16_TRANSFER_LEN: usize = 10;
/// READ/WRITE(16) byte 14: GROUP NUMBER; fcvpn requires 0.
const RW16_GROUP: usize = 14;
/// Bit 0 of a flags byte (DESC, EVPD).
const BIT0: u8 = 0x01;

/// A parsed CDB of a command the fcvpn device implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cdb {
    /// TEST UNIT READY.
    TestUnitReady,
    /// REQUEST SENSE: `desc` asks for descriptor-format sense.
    RequestSense {
        /// DESC bit: descriptor (true) or fixed (false) format.
        desc: bool,
        /// ALLOCATION LENGTH in bytes.
        alloc_len: u8,
    },
    /// INQUIRY: standard data (`evpd` false, `page` 0) or a VPD page.
    Inquiry {
        /// EVPD bit: return the VPD page `page`.
        evpd: bool,
        /// PAGE CODE (0 when `evpd` is false).
        page: u8,
        /// ALLOCATION LENGTH in bytes.
        alloc_len: u16,
    },
    /// REPORT LUNS.
    ReportLuns {
        /// SELECT REPORT.
        select: u8,
        /// ALLOCATION LENGTH in bytes (at least [`REPORT_LUNS_MIN_ALLOC_LEN`]).
        alloc_len: u32,
    },
    /// WRITE(16): one sealed batch from initiator to target.
    Write16 {
        /// The command token (LBA field).
        token: u64,
        /// TRANSFER LENGTH in [`BLOCK_LEN`]-byte blocks, at most [`MAX_TRANSFER_LEN`] bytes.
        blocks: u32,
    },
    /// READ(16): one batch from target to initiator, parked until data is there.
    Read16 {
        /// The command token (LBA field).
        token: u64,
        /// TRANSFER LENGTH in [`BLOCK_LEN`]-byte blocks, at most [`MAX_TRANSFER_LEN`] bytes.
        blocks: u32,
    },
}

/// Why a CDB was refused; [`CdbError::sense`] gives the CHECK CONDITION sense to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CdbError {
    /// The CDB has no bytes at all. Answered as INVALID FIELD IN CDB at byte 0.
    #[error("empty CDB")]
    Empty,
    /// The operation code is not one fcvpn implements. Answered as INVALID COMMAND OPERATION
    /// CODE at byte 0.
    #[error("unsupported operation code {opcode:#04x}")]
    UnsupportedOpcode {
        /// The operation code received.
        opcode: u8,
    },
    /// The CDB is shorter than its operation code requires. Answered as INVALID FIELD IN CDB at
    /// byte 0, the opcode that fixes the length.
    #[error("CDB for opcode {opcode:#04x} has {len} bytes, needs {needed}")]
    TooShort {
        /// The operation code received.
        opcode: u8,
        /// Bytes received.
        len: usize,
        /// Bytes the operation code requires.
        needed: usize,
    },
    /// A field holds a value fcvpn does not accept. Answered as INVALID FIELD IN CDB at `byte`.
    #[error("invalid field in CDB byte {byte} of opcode {opcode:#04x}")]
    InvalidField {
        /// The operation code received.
        opcode: u8,
        /// The first CDB byte of the offending field.
        byte: u16,
    },
}

impl CdbError {
    /// The sense data to report with CHECK CONDITION for this error.
    pub const fn sense(&self) -> Sense {
        match *self {
            Self::UnsupportedOpcode { .. } => Sense::invalid_command_operation_code(),
            Self::Empty | Self::TooShort { .. } => Sense::invalid_field_in_cdb(OPCODE as u16),
            Self::InvalidField { byte, .. } => Sense::invalid_field_in_cdb(byte),
        }
    }
}

/// A CDB whose length has been checked against its operation code.
///
/// Field readers take offsets below the checked length, so their `unwrap_or(0)` fallback is
/// never reached; it exists only so that no path can panic.
struct CheckedCdb<'a> {
    bytes: &'a [u8],
    opcode: u8,
}

impl<'a> CheckedCdb<'a> {
    /// Checks that `bytes` holds at least `needed` bytes for `opcode`.
    fn new_checked(bytes: &'a [u8], opcode: u8, needed: usize) -> Result<Self, CdbError> {
        if bytes.len() < needed {
            return Err(CdbError::TooShort {
                opcode,
                len: bytes.len(),
                needed,
            });
        }
        Ok(Self { bytes, opcode })
    }

    fn byte(&self, offset: usize) -> u8 {
        u8_at(self.bytes, offset).unwrap_or(0)
    }

    fn bit0(&self, offset: usize) -> bool {
        self.byte(offset) & BIT0 != 0
    }

    fn be16(&self, offset: usize) -> u16 {
        be16_at(self.bytes, offset).unwrap_or(0)
    }

    fn be32(&self, offset: usize) -> u32 {
        be32_at(self.bytes, offset).unwrap_or(0)
    }

    fn be64(&self, offset: usize) -> u64 {
        be64_at(self.bytes, offset).unwrap_or(0)
    }

    /// An [`CdbError::InvalidField`] at `byte` of this CDB.
    fn invalid_field(&self, byte: usize) -> CdbError {
        CdbError::InvalidField {
            opcode: self.opcode,
            byte: u16::try_from(byte).unwrap_or(u16::MAX),
        }
    }

    /// Fails at `byte` unless that byte is zero.
    fn require_zero(&self, byte: usize) -> Result<(), CdbError> {
        match self.byte(byte) {
            0 => Ok(()),
            _ => Err(self.invalid_field(byte)),
        }
    }
}

/// Parses `cdb` into a [`Cdb`], or the error whose sense the device answers with.
///
/// Never panics, for any length (including 0) and any contents.
pub fn parse(cdb: &[u8]) -> Result<Cdb, CdbError> {
    let opcode = u8_at(cdb, OPCODE).ok_or(CdbError::Empty)?;
    let needed = cdb_len(opcode).ok_or(CdbError::UnsupportedOpcode { opcode })?;
    let cdb = CheckedCdb::new_checked(cdb, opcode, needed)?;
    match opcode {
        opcode::TEST_UNIT_READY => Ok(Cdb::TestUnitReady),
        opcode::REQUEST_SENSE => Ok(parse_request_sense(&cdb)),
        opcode::INQUIRY => parse_inquiry(&cdb),
        opcode::REPORT_LUNS => parse_report_luns(&cdb),
        opcode::WRITE_16 | opcode::READ_16 => parse_rw16(&cdb),
        _ => Err(CdbError::UnsupportedOpcode { opcode }),
    }
}

/// The CDB length of each implemented operation code; `None` for all others.
fn cdb_len(opcode: u8) -> Option<usize> {
    match opcode {
        opcode::TEST_UNIT_READY | opcode::REQUEST_SENSE | opcode::INQUIRY => Some(CDB6_LEN),
        opcode::REPORT_LUNS => Some(CDB12_LEN),
        opcode::WRITE_16 | opcode::READ_16 => Some(CDB16_LEN),
        _ => None,
    }
}

/// REQUEST SENSE: every value of its fields is acceptable.
fn parse_request_sense(cdb: &CheckedCdb<'_>) -> Cdb {
    Cdb::RequestSense {
        desc: cdb.bit0(REQUEST_SENSE_DESC),
        alloc_len: cdb.byte(REQUEST_SENSE_ALLOC_LEN),
    }
}

/// INQUIRY; a page code without EVPD is INVALID FIELD IN CDB at byte 2.
fn parse_inquiry(cdb: &CheckedCdb<'_>) -> Result<Cdb, CdbError> {
    let evpd = cdb.bit0(INQUIRY_EVPD);
    let page = cdb.byte(INQUIRY_PAGE);
    if !evpd && page != 0 {
        return Err(cdb.invalid_field(INQUIRY_PAGE));
    }
    Ok(Cdb::Inquiry {
        evpd,
        page,
        alloc_len: cdb.be16(INQUIRY_ALLOC_LEN),
    })
}

/// REPORT LUNS; an allocation length below 16 is INVALID FIELD IN CDB at byte 6.
fn parse_report_luns(cdb: &CheckedCdb<'_>) -> Result<Cdb, CdbError> {
    let alloc_len = cdb.be32(REPORT_LUNS_ALLOC_LEN);
    if alloc_len < REPORT_LUNS_MIN_ALLOC_LEN {
        return Err(cdb.invalid_field(REPORT_LUNS_ALLOC_LEN));
    }
    Ok(Cdb::ReportLuns {
        select: cdb.byte(REPORT_LUNS_SELECT),
        alloc_len,
    })
}

/// WRITE(16)/READ(16): byte 1 and byte 14 must be 0, and the transfer at most
/// [`MAX_TRANSFER_LEN`] bytes (else INVALID FIELD IN CDB at byte 10).
fn parse_rw16(cdb: &CheckedCdb<'_>) -> Result<Cdb, CdbError> {
    cdb.require_zero(RW16_FLAGS)?;
    let blocks = cdb.be32(RW16_TRANSFER_LEN);
    if transfer_len(blocks) > MAX_TRANSFER_LEN as u64 {
        return Err(cdb.invalid_field(RW16_TRANSFER_LEN));
    }
    cdb.require_zero(RW16_GROUP)?;
    let token = cdb.be64(RW16_TOKEN);
    Ok(match cdb.opcode {
        opcode::WRITE_16 => Cdb::Write16 { token, blocks },
        _ => Cdb::Read16 { token, blocks },
    })
}

/// Bytes in a transfer of `blocks` blocks (no overflow: at most 2^41).
pub fn transfer_len(blocks: u32) -> u64 {
    u64::from(blocks) * BLOCK_LEN as u64
}

mod build;
pub use build::{
    blocks_for, inquiry, read16, report_luns, request_sense, test_unit_ready, write16,
};

#[cfg(test)]
mod tests;

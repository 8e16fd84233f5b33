//! Sense data: the codes fcvpn reports, their fixed (70h) and descriptor (72h) encodings, and a
//! parser for either format that the initiator uses on CHECK CONDITION.
//!
//! Layouts follow SPC-4 §4.5 (see `scsi-primer.md` §2). The parser never panics: it accepts any
//! byte slice and returns `None` when the bytes are not sense data it understands.

use crate::scsi::wire::{truncated, u8_at};

/// Response code for current errors in fixed format (byte 0, VALID bit clear).
pub const RESPONSE_CODE_FIXED_CURRENT: u8 = 0x70;
/// Response code for deferred errors in fixed format.
pub const RESPONSE_CODE_FIXED_DEFERRED: u8 = 0x71;
/// Response code for current errors in descriptor format.
pub const RESPONSE_CODE_DESCRIPTOR_CURRENT: u8 = 0x72;
/// Response code for deferred errors in descriptor format.
pub const RESPONSE_CODE_DESCRIPTOR_DEFERRED: u8 = 0x73;
/// Length of the fixed-format sense data fcvpn emits (ADDITIONAL SENSE LENGTH = 10).
pub const FIXED_LEN: usize = 18;

/// Mask of the RESPONSE CODE in byte 0 (bit 7 is VALID).
const RESPONSE_CODE_MASK: u8 = 0x7F;
/// Mask of the SENSE KEY nibble.
const SENSE_KEY_MASK: u8 = 0x0F;
/// Fixed format: byte holding the sense key.
const FIXED_SENSE_KEY: usize = 2;
/// Both formats: ADDITIONAL SENSE LENGTH (total length = 8 + this byte).
const ADDITIONAL_LENGTH: usize = 7;
/// Both formats: bytes before the additional sense bytes.
const HEADER_LEN: usize = 8;
/// Fixed format: ADDITIONAL SENSE CODE.
const FIXED_ASC: usize = 12;
/// Fixed format: ADDITIONAL SENSE CODE QUALIFIER.
const FIXED_ASCQ: usize = 13;
/// Fixed format: first of the three SENSE KEY SPECIFIC bytes.
const FIXED_SKS: usize = 15;
/// Descriptor format: byte holding the sense key.
const DESCRIPTOR_SENSE_KEY: usize = 1;
/// Descriptor format: ADDITIONAL SENSE CODE.
const DESCRIPTOR_ASC: usize = 2;
/// Descriptor format: ADDITIONAL SENSE CODE QUALIFIER.
const DESCRIPTOR_ASCQ: usize = 3;
/// Sense key specific sense data descriptor: DESCRIPTOR TYPE.
const SKS_DESCRIPTOR_TYPE: u8 = 0x02;
/// Sense key specific sense data descriptor: ADDITIONAL LENGTH.
const SKS_DESCRIPTOR_ADDITIONAL_LEN: u8 = 0x06;
/// Sense key specific sense data descriptor: total length.
const SKS_DESCRIPTOR_LEN: usize = 8;
/// SKSV: the sense-key-specific bytes are valid.
const SKSV: u8 = 0x80;
/// C/D: the field pointer points into the CDB (not the parameter list).
const COMMAND_DATA: u8 = 0x40;

/// A SENSE KEY (4 bits): the broad class of a CHECK CONDITION.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SenseKey(pub u8);

impl SenseKey {
    /// No error to report (REQUEST SENSE with nothing pending).
    pub const NO_SENSE: Self = Self(0x0);
    /// The logical unit cannot be accessed now (tunnel down, peer not running).
    pub const NOT_READY: Self = Self(0x2);
    /// The CDB or its parameters are invalid.
    pub const ILLEGAL_REQUEST: Self = Self(0x5);
    /// Something changed (reset, nexus loss); reported once, then cleared.
    pub const UNIT_ATTENTION: Self = Self(0x6);
    /// The device server aborted the command; the initiator may retry.
    pub const ABORTED_COMMAND: Self = Self(0xB);
}

/// An ADDITIONAL SENSE CODE and its QUALIFIER (ASC/ASCQ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdditionalSense {
    /// ADDITIONAL SENSE CODE.
    pub asc: u8,
    /// ADDITIONAL SENSE CODE QUALIFIER.
    pub ascq: u8,
}

impl AdditionalSense {
    /// 00/00 NO ADDITIONAL SENSE INFORMATION.
    pub const NO_ADDITIONAL_SENSE_INFORMATION: Self = Self::new(0x00, 0x00);
    /// 04/00 LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE.
    pub const LOGICAL_UNIT_NOT_READY: Self = Self::new(0x04, 0x00);
    /// 04/01 LOGICAL UNIT IS IN PROCESS OF BECOMING READY.
    pub const LOGICAL_UNIT_BECOMING_READY: Self = Self::new(0x04, 0x01);
    /// 1A/00 PARAMETER LIST LENGTH ERROR.
    pub const PARAMETER_LIST_LENGTH_ERROR: Self = Self::new(0x1A, 0x00);
    /// 20/00 INVALID COMMAND OPERATION CODE.
    pub const INVALID_COMMAND_OPERATION_CODE: Self = Self::new(0x20, 0x00);
    /// 24/00 INVALID FIELD IN CDB.
    pub const INVALID_FIELD_IN_CDB: Self = Self::new(0x24, 0x00);
    /// 29/00 POWER ON, RESET, OR BUS DEVICE RESET OCCURRED.
    pub const POWER_ON_OR_RESET: Self = Self::new(0x29, 0x00);
    /// 29/07 I_T NEXUS LOSS OCCURRED.
    pub const I_T_NEXUS_LOSS: Self = Self::new(0x29, 0x07);

    /// The pair `asc`/`ascq`.
    pub const fn new(asc: u8, ascq: u8) -> Self {
        Self { asc, ascq }
    }
}

/// Sense data to report with CHECK CONDITION (or REQUEST SENSE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sense {
    /// The sense key.
    pub key: SenseKey,
    /// The ASC/ASCQ pair.
    pub additional: AdditionalSense,
    /// For ILLEGAL REQUEST: the CDB byte in error (encoded with SKSV=1, C/D=1). Ignored for other
    /// keys, whose sense-key-specific bytes mean something else.
    pub field_pointer: Option<u16>,
}

impl Sense {
    /// Sense with `key` and `additional` and no field pointer.
    pub const fn new(key: SenseKey, additional: AdditionalSense) -> Self {
        Self {
            key,
            additional,
            field_pointer: None,
        }
    }

    /// NO SENSE, 00/00: what REQUEST SENSE returns when nothing is pending.
    pub const fn no_sense() -> Self {
        Self::new(
            SenseKey::NO_SENSE,
            AdditionalSense::NO_ADDITIONAL_SENSE_INFORMATION,
        )
    }

    /// ILLEGAL REQUEST, 20/00 INVALID COMMAND OPERATION CODE, field pointer 0 (the opcode).
    pub const fn invalid_command_operation_code() -> Self {
        Self::illegal_request(AdditionalSense::INVALID_COMMAND_OPERATION_CODE, 0)
    }

    /// ILLEGAL REQUEST, 24/00 INVALID FIELD IN CDB, pointing at CDB byte `byte`.
    pub const fn invalid_field_in_cdb(byte: u16) -> Self {
        Self::illegal_request(AdditionalSense::INVALID_FIELD_IN_CDB, byte)
    }

    /// ILLEGAL REQUEST with `additional`, pointing at CDB byte `byte`.
    pub const fn illegal_request(additional: AdditionalSense, byte: u16) -> Self {
        Self {
            key: SenseKey::ILLEGAL_REQUEST,
            additional,
            field_pointer: Some(byte),
        }
    }

    /// The three SENSE KEY SPECIFIC bytes: a CDB field pointer for ILLEGAL REQUEST, else zeros.
    fn sense_key_specific(&self) -> Option<[u8; 3]> {
        match self.field_pointer {
            Some(byte) if self.key == SenseKey::ILLEGAL_REQUEST => {
                let [hi, lo] = byte.to_be_bytes();
                Some([SKSV | COMMAND_DATA, hi, lo])
            }
            _ => None,
        }
    }

    /// Fixed-format sense data (response code 70h, 18 bytes, ADDITIONAL SENSE LENGTH 10).
    pub fn to_fixed(&self) -> [u8; FIXED_LEN] {
        let mut out = [0u8; FIXED_LEN];
        out[0] = RESPONSE_CODE_FIXED_CURRENT;
        out[FIXED_SENSE_KEY] = self.key.0 & SENSE_KEY_MASK;
        out[ADDITIONAL_LENGTH] = (FIXED_LEN - HEADER_LEN) as u8;
        out[FIXED_ASC] = self.additional.asc;
        out[FIXED_ASCQ] = self.additional.ascq;
        if let Some(sks) = self.sense_key_specific() {
            out[FIXED_SKS..].copy_from_slice(&sks);
        }
        out
    }

    /// Descriptor-format sense data (response code 72h): the 8-byte header, plus a sense key
    /// specific descriptor (type 02h, length 06h) when there is a field pointer.
    pub fn to_descriptor(&self) -> Vec<u8> {
        let mut out = vec![
            RESPONSE_CODE_DESCRIPTOR_CURRENT,
            self.key.0 & SENSE_KEY_MASK,
            self.additional.asc,
            self.additional.ascq,
            0,
            0,
            0,
            0,
        ];
        if let Some([flags, hi, lo]) = self.sense_key_specific() {
            let descriptor: [u8; SKS_DESCRIPTOR_LEN] = [
                SKS_DESCRIPTOR_TYPE,
                SKS_DESCRIPTOR_ADDITIONAL_LEN,
                0,
                0,
                flags,
                hi,
                lo,
                0,
            ];
            out.extend_from_slice(&descriptor);
        }
        let additional_len = out.len() - HEADER_LEN;
        out[ADDITIONAL_LENGTH] = additional_len as u8;
        out
    }

    /// Encoded in descriptor format when `descriptor`, else fixed; cut to `alloc_len` bytes.
    pub fn to_bytes(&self, descriptor: bool, alloc_len: usize) -> Vec<u8> {
        let bytes = if descriptor {
            self.to_descriptor()
        } else {
            self.to_fixed().to_vec()
        };
        truncated(bytes, alloc_len)
    }
}

/// The decoded essentials of received sense data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SenseInfo {
    /// The sense key.
    pub key: SenseKey,
    /// ADDITIONAL SENSE CODE (0 when the data is too short to hold it).
    pub asc: u8,
    /// ADDITIONAL SENSE CODE QUALIFIER (0 when the data is too short to hold it).
    pub ascq: u8,
}

impl SenseInfo {
    /// The ASC/ASCQ pair.
    pub const fn additional(&self) -> AdditionalSense {
        AdditionalSense::new(self.asc, self.ascq)
    }
}

/// Decodes fixed (70h/71h) or descriptor (72h/73h) sense data, current or deferred.
///
/// Returns `None` for an unknown response code or when the sense key itself is missing. ASC and
/// ASCQ are read only inside both the buffer and the ADDITIONAL SENSE LENGTH; absent, they are 0.
/// Never panics, whatever `bytes` holds.
pub fn parse_sense(bytes: &[u8]) -> Option<SenseInfo> {
    let (key_at, asc_at, ascq_at) = match u8_at(bytes, 0)? & RESPONSE_CODE_MASK {
        RESPONSE_CODE_FIXED_CURRENT | RESPONSE_CODE_FIXED_DEFERRED => {
            (FIXED_SENSE_KEY, FIXED_ASC, FIXED_ASCQ)
        }
        RESPONSE_CODE_DESCRIPTOR_CURRENT | RESPONSE_CODE_DESCRIPTOR_DEFERRED => {
            (DESCRIPTOR_SENSE_KEY, DESCRIPTOR_ASC, DESCRIPTOR_ASCQ)
        }
        _ => return None,
    };
    let valid = match u8_at(bytes, ADDITIONAL_LENGTH) {
        Some(n) => bytes.len().min(HEADER_LEN + usize::from(n)),
        None => bytes.len(),
    };
    let within = bytes.get(..valid).unwrap_or(bytes);
    Some(SenseInfo {
        key: SenseKey(u8_at(bytes, key_at)? & SENSE_KEY_MASK),
        asc: u8_at(within, asc_at).unwrap_or(0),
        ascq: u8_at(within, ascq_at).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests;

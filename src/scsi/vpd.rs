//! Vital product data pages (INQUIRY with EVPD=1): the pages fcvpn's device returns (00h, 80h,
//! 83h) and checked views to read a VPD page and its designation descriptors.
//!
//! Layouts per SPC-4 §7.8 (see `scsi-primer.md` §1). Every page starts with a 4-byte header:
//! peripheral byte, page code, page length (be16, bytes after the header).

use crate::scsi::identity::DeviceIdentity;
use crate::scsi::inquiry::{InquiryDataError, PERIPHERAL_BYTE};
use crate::scsi::wire::{array_at, be16_at, u8_at};

/// VPD page 00h: SUPPORTED VPD PAGES.
pub const SUPPORTED_VPD_PAGES: u8 = 0x00;
/// VPD page 80h: UNIT SERIAL NUMBER.
pub const UNIT_SERIAL_NUMBER: u8 = 0x80;
/// VPD page 83h: DEVICE IDENTIFICATION.
pub const DEVICE_IDENTIFICATION: u8 = 0x83;
/// The pages fcvpn supports, in ascending order (the payload of page 00h).
pub const SUPPORTED_PAGES: [u8; 3] = [
    SUPPORTED_VPD_PAGES,
    UNIT_SERIAL_NUMBER,
    DEVICE_IDENTIFICATION,
];

/// CODE SET 1: the designator is binary.
pub const CODE_SET_BINARY: u8 = 0x1;
/// CODE SET 2: the designator is ASCII.
pub const CODE_SET_ASCII: u8 = 0x2;
/// ASSOCIATION 0: the designator names the logical unit.
pub const ASSOCIATION_LOGICAL_UNIT: u8 = 0x0;
/// DESIGNATOR TYPE 1: T10 vendor ID based (vendor ID then vendor-specific ASCII).
pub const DESIGNATOR_TYPE_T10_VENDOR_ID: u8 = 0x1;
/// DESIGNATOR TYPE 3: NAA.
pub const DESIGNATOR_TYPE_NAA: u8 = 0x3;

/// Page header byte 1: PAGE CODE.
const PAGE_CODE: usize = 1;
/// Page header bytes 2-3: PAGE LENGTH (be16).
const PAGE_LENGTH: usize = 2;
/// Length of the page header.
const PAGE_HEADER_LEN: usize = 4;
/// Descriptor byte 0: PROTOCOL IDENTIFIER (bits 7-4) and CODE SET (bits 3-0).
const DESC_CODE_SET: usize = 0;
/// Descriptor byte 1: PIV (bit 7), ASSOCIATION (bits 5-4) and DESIGNATOR TYPE (bits 3-0).
const DESC_TYPE: usize = 1;
/// Descriptor byte 3: DESIGNATOR LENGTH.
const DESC_LENGTH: usize = 3;
/// Length of a designation descriptor header.
const DESC_HEADER_LEN: usize = 4;
/// PIV bit of descriptor byte 1.
const PIV: u8 = 0x80;
/// Low nibble mask (CODE SET, DESIGNATOR TYPE).
const LOW_NIBBLE: u8 = 0x0F;
/// ASSOCIATION mask after shifting byte 1 right by 4.
const ASSOCIATION_MASK: u8 = 0x03;

/// The VPD page `page` of the device named by `identity`, or `None` when it is not supported.
/// The result is complete; the caller truncates it to the allocation length.
pub fn vpd_page(identity: &DeviceIdentity, page: u8) -> Option<Vec<u8>> {
    match page {
        SUPPORTED_VPD_PAGES => Some(supported_vpd_pages()),
        UNIT_SERIAL_NUMBER => Some(unit_serial_number(identity)),
        DEVICE_IDENTIFICATION => Some(device_identification(identity)),
        _ => None,
    }
}

/// VPD page 00h: the page codes 00h, 80h, 83h.
pub fn supported_vpd_pages() -> Vec<u8> {
    page(SUPPORTED_VPD_PAGES, &SUPPORTED_PAGES)
}

/// VPD page 80h: the 16-character serial number of `identity`.
pub fn unit_serial_number(identity: &DeviceIdentity) -> Vec<u8> {
    page(UNIT_SERIAL_NUMBER, identity.serial())
}

/// VPD page 83h: a T10 vendor ID designator, then an NAA designator, both for the logical unit.
pub fn device_identification(identity: &DeviceIdentity) -> Vec<u8> {
    let mut payload = designation(
        CODE_SET_ASCII,
        DESIGNATOR_TYPE_T10_VENDOR_ID,
        identity.t10_designator(),
    );
    payload.extend(designation(
        CODE_SET_BINARY,
        DESIGNATOR_TYPE_NAA,
        identity.naa(),
    ));
    page(DEVICE_IDENTIFICATION, &payload)
}

/// A page: header (peripheral byte, `code`, be16 length) then `payload` (at most 65535 bytes).
fn page(code: u8, payload: &[u8]) -> Vec<u8> {
    let length = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut out = vec![PERIPHERAL_BYTE, code];
    out.extend_from_slice(&length.to_be_bytes());
    out.extend(payload.iter().take(usize::from(length)));
    out
}

/// A logical-unit designation descriptor (protocol 0, PIV 0) of at most 255 designator bytes.
fn designation(code_set: u8, designator_type: u8, designator: &[u8]) -> Vec<u8> {
    let length = u8::try_from(designator.len()).unwrap_or(u8::MAX);
    let association = ASSOCIATION_LOGICAL_UNIT << 4;
    let mut out = vec![code_set, association | designator_type, 0, length];
    out.extend(designator.iter().take(usize::from(length)));
    out
}

/// A VPD page from any device, checked to have a header and the expected page code.
///
/// The payload is the part of the page that is present: bounded by both PAGE LENGTH and the
/// buffer, so data cut short by an allocation length still reads as far as it goes.
#[derive(Clone, Copy, Debug)]
pub struct VpdPage<'a> {
    payload: &'a [u8],
}

impl<'a> VpdPage<'a> {
    /// Checks that `bytes` has a VPD header whose page code is `expected_page`.
    pub fn new_checked(bytes: &'a [u8], expected_page: u8) -> Result<Self, InquiryDataError> {
        let (Some(found), Some(length)) = (u8_at(bytes, PAGE_CODE), be16_at(bytes, PAGE_LENGTH))
        else {
            return Err(InquiryDataError::Truncated {
                len: bytes.len(),
                needed: PAGE_HEADER_LEN,
            });
        };
        if found != expected_page {
            return Err(InquiryDataError::WrongPage {
                expected: expected_page,
                found,
            });
        }
        let rest = bytes.get(PAGE_HEADER_LEN..).unwrap_or_default();
        let payload = rest.get(..usize::from(length)).unwrap_or(rest);
        Ok(Self { payload })
    }

    /// The page bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The designation descriptors of a page 83h, in order, up to the first truncated one.
    pub fn designations(&self) -> Designations<'a> {
        Designations { rest: self.payload }
    }
}

/// One designation descriptor of VPD page 83h.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Designation<'a> {
    /// CODE SET (1 binary, 2 ASCII, 3 UTF-8).
    pub code_set: u8,
    /// PIV: whether the protocol identifier is valid.
    pub piv: bool,
    /// ASSOCIATION (0 logical unit, 1 target port, 2 target device).
    pub association: u8,
    /// DESIGNATOR TYPE (1 T10 vendor ID, 3 NAA, ...).
    pub designator_type: u8,
    /// The DESIGNATOR bytes.
    pub designator: &'a [u8],
}

/// Iterator over designation descriptors; stops at the end or at a truncated descriptor.
#[derive(Clone, Debug)]
pub struct Designations<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Designations<'a> {
    type Item = Designation<'a>;

    fn next(&mut self) -> Option<Designation<'a>> {
        let parsed = parse_designation(self.rest);
        self.rest = parsed.map_or(&[], |(_, rest)| rest);
        parsed.map(|(designation, _)| designation)
    }
}

/// The first designation descriptor in `bytes` and what follows it, if it is complete.
fn parse_designation(bytes: &[u8]) -> Option<(Designation<'_>, &[u8])> {
    let header: [u8; DESC_HEADER_LEN] = array_at(bytes, 0)?;
    let (code_set, kind) = (header[DESC_CODE_SET], header[DESC_TYPE]);
    let (designator, rest) = bytes
        .get(DESC_HEADER_LEN..)?
        .split_at_checked(usize::from(header[DESC_LENGTH]))?;
    let designation = Designation {
        code_set: code_set & LOW_NIBBLE,
        piv: kind & PIV != 0,
        association: (kind >> 4) & ASSOCIATION_MASK,
        designator_type: kind & LOW_NIBBLE,
        designator,
    };
    Some((designation, rest))
}

#[cfg(test)]
mod tests;

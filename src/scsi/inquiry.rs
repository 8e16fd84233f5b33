//! Standard INQUIRY data (EVPD=0): the 36 bytes fcvpn's device returns, and a checked view the
//! initiator uses to recognise it.
//!
//! Layout per SPC-4 §6.6.2 (see `scsi-primer.md` §1). The device is a processor (PDT 03h), a type
//! no Linux upper-level driver binds, so the initiator host sees only `/dev/sgN`.

use crate::scsi::wire::{array_at, u8_at};

/// Length of the standard INQUIRY data fcvpn returns (the SPC minimum).
pub const STANDARD_INQUIRY_LEN: usize = 36;
/// PERIPHERAL DEVICE TYPE 03h: processor device.
pub const PERIPHERAL_DEVICE_TYPE_PROCESSOR: u8 = 0x03;
/// PERIPHERAL QUALIFIER 000b: the logical unit is connected.
pub const PERIPHERAL_QUALIFIER_CONNECTED: u8 = 0x00;
/// VERSION 06h: the device claims SPC-4.
pub const VERSION_SPC4: u8 = 0x06;
/// RESPONSE DATA FORMAT 2, the only one SPC defines.
pub const RESPONSE_DATA_FORMAT: u8 = 0x02;
/// T10 VENDOR IDENTIFICATION (8 ASCII bytes, space padded).
pub const VENDOR_ID: [u8; 8] = *b"FCVPN   ";
/// PRODUCT IDENTIFICATION (16 ASCII bytes, space padded).
pub const PRODUCT_ID: [u8; 16] = *b"IP LINK         ";
/// PRODUCT REVISION LEVEL (4 ASCII bytes).
pub const PRODUCT_REVISION: [u8; 4] = *b"0001";

/// Byte 0: PERIPHERAL QUALIFIER (bits 7-5) and PERIPHERAL DEVICE TYPE (bits 4-0).
pub(crate) const PERIPHERAL: usize = 0;
/// Byte 2: VERSION.
const VERSION: usize = 2;
/// Byte 3: RESPONSE DATA FORMAT (bits 3-0).
const RESPONSE_FORMAT: usize = 3;
/// Byte 4: ADDITIONAL LENGTH (total length − 5).
const ADDITIONAL_LENGTH: usize = 4;
/// Byte 7: flags; bit 1 is CmdQue.
const FLAGS7: usize = 7;
/// CmdQue: the logical unit supports command queuing (else Linux treats it as untagged).
const CMDQUE: u8 = 0x02;
/// Bytes 8-15: T10 VENDOR IDENTIFICATION.
const VENDOR: usize = 8;
/// Bytes 16-31: PRODUCT IDENTIFICATION.
const PRODUCT: usize = 16;
/// Bytes 32-35: PRODUCT REVISION LEVEL.
const REVISION: usize = 32;
/// Bytes before ADDITIONAL LENGTH counts.
const HEADER_LEN: usize = 5;
/// PERIPHERAL DEVICE TYPE bits of byte 0.
const DEVICE_TYPE_MASK: u8 = 0x1F;
/// Shift of PERIPHERAL QUALIFIER in byte 0.
const QUALIFIER_SHIFT: u32 = 5;

/// Byte 0 of INQUIRY data and of every VPD page: qualifier 0, processor.
pub const PERIPHERAL_BYTE: u8 =
    (PERIPHERAL_QUALIFIER_CONNECTED << QUALIFIER_SHIFT) | PERIPHERAL_DEVICE_TYPE_PROCESSOR;

/// Why INQUIRY data (standard or VPD) could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum InquiryDataError {
    /// The data is shorter than its fixed part.
    #[error("INQUIRY data has {len} bytes, needs at least {needed}")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes the fixed part needs.
        needed: usize,
    },
    /// A VPD page other than the one asked for came back.
    #[error("VPD page {found:#04x} returned where {expected:#04x} was asked for")]
    WrongPage {
        /// The page code requested.
        expected: u8,
        /// The page code in the data.
        found: u8,
    },
}

/// The standard INQUIRY data of the fcvpn device (36 bytes, before allocation-length truncation).
pub fn standard_inquiry_data() -> [u8; STANDARD_INQUIRY_LEN] {
    let mut data = [0u8; STANDARD_INQUIRY_LEN];
    data[PERIPHERAL] = PERIPHERAL_BYTE;
    data[VERSION] = VERSION_SPC4;
    data[RESPONSE_FORMAT] = RESPONSE_DATA_FORMAT;
    data[ADDITIONAL_LENGTH] = (STANDARD_INQUIRY_LEN - HEADER_LEN) as u8;
    data[FLAGS7] = CMDQUE;
    data[VENDOR..PRODUCT].copy_from_slice(&VENDOR_ID);
    data[PRODUCT..REVISION].copy_from_slice(&PRODUCT_ID);
    data[REVISION..].copy_from_slice(&PRODUCT_REVISION);
    data
}

/// Standard INQUIRY data from any device, checked to hold the 36-byte fixed part.
///
/// After [`StandardInquiry::new_checked`] succeeds, no accessor can fail or panic.
#[derive(Clone, Copy, Debug)]
pub struct StandardInquiry<'a> {
    bytes: &'a [u8],
}

impl<'a> StandardInquiry<'a> {
    /// Wraps `bytes` if they hold at least [`STANDARD_INQUIRY_LEN`] bytes.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, InquiryDataError> {
        if bytes.len() < STANDARD_INQUIRY_LEN {
            return Err(InquiryDataError::Truncated {
                len: bytes.len(),
                needed: STANDARD_INQUIRY_LEN,
            });
        }
        Ok(Self { bytes })
    }

    /// PERIPHERAL QUALIFIER (3 bits).
    pub fn peripheral_qualifier(&self) -> u8 {
        self.peripheral() >> QUALIFIER_SHIFT
    }

    /// PERIPHERAL DEVICE TYPE (5 bits).
    pub fn peripheral_device_type(&self) -> u8 {
        self.peripheral() & DEVICE_TYPE_MASK
    }

    /// T10 VENDOR IDENTIFICATION.
    pub fn vendor_id(&self) -> [u8; 8] {
        array_at(self.bytes, VENDOR).unwrap_or_default()
    }

    /// PRODUCT IDENTIFICATION.
    pub fn product_id(&self) -> [u8; 16] {
        array_at(self.bytes, PRODUCT).unwrap_or_default()
    }

    /// PRODUCT REVISION LEVEL.
    pub fn product_revision(&self) -> [u8; 4] {
        array_at(self.bytes, REVISION).unwrap_or_default()
    }

    fn peripheral(&self) -> u8 {
        u8_at(self.bytes, PERIPHERAL).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_data_exact_bytes() {
        let mut expected = vec![0x03, 0x00, 0x06, 0x02, 31, 0x00, 0x00, 0x02];
        expected.extend_from_slice(b"FCVPN   IP LINK         0001");
        assert_eq!(standard_inquiry_data().to_vec(), expected);
    }

    #[test]
    fn view_reads_back_the_fields() {
        let data = standard_inquiry_data();
        let view = StandardInquiry::new_checked(&data).map(|v| {
            (
                v.peripheral_qualifier(),
                v.peripheral_device_type(),
                v.vendor_id(),
                v.product_id(),
                v.product_revision(),
            )
        });
        let fields = (0, 0x03, VENDOR_ID, PRODUCT_ID, PRODUCT_REVISION);
        assert_eq!(view, Ok(fields));
    }

    #[test]
    fn view_reads_qualifier_and_type_of_other_devices() {
        let mut data = [0u8; 36];
        data[0] = 0x7F; // qualifier 011b, type 1Fh: no logical unit
        let view = StandardInquiry::new_checked(&data);
        let fields = view.map(|v| (v.peripheral_qualifier(), v.peripheral_device_type()));
        assert_eq!(fields, Ok((3, 0x1F)));
    }

    #[test]
    fn view_refuses_short_data() {
        let data = standard_inquiry_data();
        let short = InquiryDataError::Truncated {
            len: 35,
            needed: 36,
        };
        assert_eq!(StandardInquiry::new_checked(&data[..35]).err(), Some(short));
        assert!(StandardInquiry::new_checked(&[]).is_err());
    }
}

//! Names derived from the static public keys: the device identity the target reports in INQUIRY
//! and VPD pages, the pair's nexus tag, and the initiator's check that a SCSI device is the fcvpn
//! target it expects.
//!
//! Both derivations are domain-separated BLAKE2s-256 hashes of public keys: identifiers, not
//! authentication. The nexus tag is no longer on the wire (data commands carry command tokens,
//! [`crate::scsi::token`]); it remains as the public value a stranger would copy, for tests.

use blake2::{Blake2s256, Digest};

use crate::scsi::inquiry::{PERIPHERAL_DEVICE_TYPE_PROCESSOR, StandardInquiry, VENDOR_ID};
use crate::scsi::vpd::{
    ASSOCIATION_LOGICAL_UNIT, CODE_SET_ASCII, DESIGNATOR_TYPE_T10_VENDOR_ID, DEVICE_IDENTIFICATION,
    VpdPage,
};

/// Domain separator of the nexus tag hash.
const NEXUS_TAG_DOMAIN: &[u8] = b"fcvpn nexus tag v1";
/// Domain separator of the device fingerprint hash.
const DEVICE_ID_DOMAIN: &[u8] = b"fcvpn device id v1";
/// Length of the unit serial number (VPD 80h): hex of 8 fingerprint bytes.
pub const SERIAL_LEN: usize = 16;
/// Length of the T10 vendor ID designator: vendor ID, then hex of 16 fingerprint bytes.
pub const T10_DESIGNATOR_LEN: usize = VENDOR_ID.len() + 32;
/// Length of the NAA designator (NAA 3, locally assigned).
pub const NAA_LEN: usize = 8;
/// NAA 3 (locally assigned) in the top nibble of the NAA designator's first byte.
const NAA_LOCALLY_ASSIGNED: u8 = 0x30;
/// Upper-case hexadecimal digits.
const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// The nexus tag of the pair (target, initiator): the first 8 bytes, big-endian, of
/// BLAKE2s-256(`"fcvpn nexus tag v1"` ‖ `target_public` ‖ `initiator_public`).
pub fn nexus_tag(target_public: &[u8; 32], initiator_public: &[u8; 32]) -> u64 {
    let digest = hash(&[NEXUS_TAG_DOMAIN, target_public, initiator_public]);
    u64::from_be_bytes(prefix(&digest))
}

/// The identity of the fcvpn virtual device, derived from the target's static public key.
///
/// fingerprint = BLAKE2s-256(`"fcvpn device id v1"` ‖ target public key); the serial number and
/// designators are fixed encodings of its first bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeviceIdentity {
    fingerprint: [u8; 32],
    serial: [u8; SERIAL_LEN],
    t10_designator: [u8; T10_DESIGNATOR_LEN],
    naa: [u8; NAA_LEN],
}

impl DeviceIdentity {
    /// The identity of the device served by the holder of `target_public`.
    pub fn from_target_public(target_public: &[u8; 32]) -> Self {
        let fingerprint = hash(&[DEVICE_ID_DOMAIN, target_public]);
        let mut t10_designator = [0u8; T10_DESIGNATOR_LEN];
        let (vendor, hex) = t10_designator.split_at_mut(VENDOR_ID.len());
        vendor.copy_from_slice(&VENDOR_ID);
        upper_hex(&prefix::<16>(&fingerprint), hex);
        let mut serial = [0u8; SERIAL_LEN];
        upper_hex(&prefix::<8>(&fingerprint), &mut serial);
        let mut naa: [u8; NAA_LEN] = prefix(&fingerprint);
        naa[0] = NAA_LOCALLY_ASSIGNED | (fingerprint[0] & 0x0F);
        Self {
            fingerprint,
            serial,
            t10_designator,
            naa,
        }
    }

    /// The BLAKE2s-256 fingerprint everything else is cut from.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// The unit serial number (VPD 80h): 16 upper-case hex ASCII characters.
    pub fn serial(&self) -> &[u8; SERIAL_LEN] {
        &self.serial
    }

    /// The serial number as text.
    pub fn serial_str(&self) -> &str {
        core::str::from_utf8(&self.serial).unwrap_or_default()
    }

    /// The T10 vendor ID designator (VPD 83h): `FCVPN   ` then 32 upper-case hex characters.
    pub fn t10_designator(&self) -> &[u8; T10_DESIGNATOR_LEN] {
        &self.t10_designator
    }

    /// The NAA designator (VPD 83h): NAA 3 (locally assigned), 8 bytes.
    pub fn naa(&self) -> &[u8; NAA_LEN] {
        &self.naa
    }
}

/// Whether a device's standard INQUIRY data and VPD page 83h show it is the fcvpn device
/// `expected`: a connected processor (qualifier 0, PDT 03h) with vendor `FCVPN`, listing
/// `expected`'s T10 vendor ID designator for its logical unit.
///
/// Any malformed, truncated or foreign input gives `false`; this never panics.
pub fn matches_inquiry(std_inquiry: &[u8], vpd83: &[u8], expected: &DeviceIdentity) -> bool {
    let Ok(standard) = StandardInquiry::new_checked(std_inquiry) else {
        return false;
    };
    let is_ours = standard.peripheral_qualifier() == 0
        && standard.peripheral_device_type() == PERIPHERAL_DEVICE_TYPE_PROCESSOR
        && standard.vendor_id() == VENDOR_ID;
    let Ok(page) = VpdPage::new_checked(vpd83, DEVICE_IDENTIFICATION) else {
        return false;
    };
    is_ours
        && page.designations().any(|d| {
            d.code_set == CODE_SET_ASCII
                && d.association == ASSOCIATION_LOGICAL_UNIT
                && d.designator_type == DESIGNATOR_TYPE_T10_VENDOR_ID
                && d.designator == expected.t10_designator()
        })
}

/// BLAKE2s-256 of the concatenation of `parts`.
fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Blake2s256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The first `N` bytes of a digest (`N` ≤ 32; larger `N` gives zeros).
fn prefix<const N: usize>(digest: &[u8; 32]) -> [u8; N] {
    digest.first_chunk::<N>().copied().unwrap_or([0; N])
}

/// Writes `bytes` as upper-case hex into `out`, two characters per byte, as far as both go.
fn upper_hex(bytes: &[u8], out: &mut [u8]) {
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        if let [high, low] = pair {
            *high = HEX_DIGITS[usize::from(byte >> 4)];
            *low = HEX_DIGITS[usize::from(byte & 0x0F)];
        }
    }
}

#[cfg(test)]
mod tests;

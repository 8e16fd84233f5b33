//! Exact-value tests of the key-derived names, and the initiator's device match.

use super::*;
use crate::scsi::inquiry::standard_inquiry_data;
use crate::scsi::vpd::device_identification;

/// Test target key: bytes 0, 1, ..., 31.
fn target_public() -> [u8; 32] {
    core::array::from_fn(|i| i as u8)
}

/// Test initiator key: bytes 32, 33, ..., 63.
fn initiator_public() -> [u8; 32] {
    core::array::from_fn(|i| (i + 32) as u8)
}

#[test]
fn nexus_tag_vector() {
    let tag = nexus_tag(&target_public(), &initiator_public());
    assert_eq!(tag, 0x8de9_9df2_971b_01e9);
}

#[test]
fn nexus_tag_depends_on_the_order_of_keys() {
    let tag = nexus_tag(&initiator_public(), &target_public());
    assert_eq!(tag, 0xc26a_001a_771b_b02b);
}

#[test]
fn identity_vector() {
    let identity = DeviceIdentity::from_target_public(&target_public());
    assert_eq!(identity.fingerprint()[..4], [0x16, 0xc0, 0xb1, 0xc5]);
    assert_eq!(identity.fingerprint()[28..], [0x17, 0x52, 0xde, 0xdf]);
    assert_eq!(identity.serial(), b"16C0B1C5C92EFACE");
    assert_eq!(identity.serial_str(), "16C0B1C5C92EFACE");
    assert_eq!(
        identity.t10_designator(),
        b"FCVPN   16C0B1C5C92EFACE093DEDC552052C27"
    );
    let naa = [0x36, 0xc0, 0xb1, 0xc5, 0xc9, 0x2e, 0xfa, 0xce];
    assert_eq!(identity.naa(), &naa);
}

#[test]
fn naa_keeps_the_low_nibble_under_naa_3() {
    let identity = DeviceIdentity::from_target_public(&[0; 32]);
    // fingerprint[0] is 45h: NAA byte 0 becomes 35h.
    assert_eq!(identity.fingerprint()[0], 0x45);
    assert_eq!(identity.naa()[0], 0x35);
    assert_eq!(identity.naa()[1..], identity.fingerprint()[1..8]);
}

fn our_device() -> (DeviceIdentity, [u8; 36], Vec<u8>) {
    let identity = DeviceIdentity::from_target_public(&target_public());
    let vpd83 = device_identification(&identity);
    (identity, standard_inquiry_data(), vpd83)
}

#[test]
fn matches_our_own_device() {
    let (identity, standard, vpd83) = our_device();
    assert!(matches_inquiry(&standard, &vpd83, &identity));
}

#[test]
fn rejects_another_targets_device() {
    let (_, standard, vpd83) = our_device();
    let other = DeviceIdentity::from_target_public(&initiator_public());
    assert!(!matches_inquiry(&standard, &vpd83, &other));
}

#[test]
fn rejects_wrong_type_qualifier_or_vendor() {
    let (identity, standard, vpd83) = our_device();
    for (byte, value) in [(0, 0x00), (0, 0x23), (0, 0x06), (8, b'X')] {
        let mut changed = standard;
        changed[byte] = value;
        assert!(
            !matches_inquiry(&changed, &vpd83, &identity),
            "{byte}={value}"
        );
    }
}

#[test]
fn rejects_designator_with_other_association_or_code_set() {
    let (identity, standard, vpd83) = our_device();
    for (byte, value) in [(4, 0x01), (5, 0x11), (5, 0x02)] {
        let mut changed = vpd83.clone();
        changed[byte] = value;
        assert!(
            !matches_inquiry(&standard, &changed, &identity),
            "{byte}={value}"
        );
    }
}

#[test]
fn finds_the_designator_after_other_descriptors() {
    let (identity, standard, vpd83) = our_device();
    let mut page = vec![0x03, 0x83, 0x00, 0x00];
    page.extend_from_slice(&[0x01, 0x03, 0x00, 0x08, 0x60, 1, 2, 3, 4, 5, 6, 7]);
    page.extend_from_slice(&vpd83[4..]);
    page[3] = (page.len() - 4) as u8;
    assert!(matches_inquiry(&standard, &page, &identity));
}

#[test]
fn rejects_truncated_or_garbage_input() {
    let (identity, standard, vpd83) = our_device();
    assert!(!matches_inquiry(&standard[..35], &vpd83, &identity));
    for len in 0..vpd83.len() - 12 {
        assert!(
            !matches_inquiry(&standard, &vpd83[..len], &identity),
            "{len}"
        );
    }
    let mut wrong_page = vpd83.clone();
    wrong_page[1] = 0x80;
    assert!(!matches_inquiry(&standard, &wrong_page, &identity));
    let mut short_length = vpd83.clone();
    short_length[3] = 43; // the T10 descriptor no longer fits in the page
    assert!(!matches_inquiry(&standard, &short_length, &identity));
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..2000 {
        let garbage: Vec<u8> = (0..(state % 80) as usize)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert!(!matches_inquiry(&garbage, &garbage, &identity));
        assert!(!matches_inquiry(&standard, &garbage, &identity));
    }
}

//! Exact-byte tests of the VPD pages and of the designation descriptor reader.

use super::*;

/// The identity of the test target key 0, 1, ..., 31.
fn identity() -> DeviceIdentity {
    DeviceIdentity::from_target_public(&core::array::from_fn(|i| i as u8))
}

#[test]
fn supported_pages_exact_bytes() {
    assert_eq!(
        supported_vpd_pages(),
        [0x03, 0x00, 0x00, 0x03, 0x00, 0x80, 0x83]
    );
}

#[test]
fn unit_serial_number_exact_bytes() {
    let mut expected = vec![0x03, 0x80, 0x00, 0x10];
    expected.extend_from_slice(b"16C0B1C5C92EFACE");
    assert_eq!(unit_serial_number(&identity()), expected);
}

#[test]
fn device_identification_exact_bytes() {
    let mut expected = vec![0x03, 0x83, 0x00, 56, 0x02, 0x01, 0x00, 40];
    expected.extend_from_slice(b"FCVPN   16C0B1C5C92EFACE093DEDC552052C27");
    expected.extend_from_slice(&[0x01, 0x03, 0x00, 0x08]);
    expected.extend_from_slice(&[0x36, 0xc0, 0xb1, 0xc5, 0xc9, 0x2e, 0xfa, 0xce]);
    assert_eq!(device_identification(&identity()), expected);
}

#[test]
fn vpd_page_selects_supported_pages_only() {
    let id = identity();
    assert_eq!(vpd_page(&id, 0x00), Some(supported_vpd_pages()));
    assert_eq!(vpd_page(&id, 0x80), Some(unit_serial_number(&id)));
    assert_eq!(vpd_page(&id, 0x83), Some(device_identification(&id)));
    for page in (0x01..=0xFF).filter(|p| ![0x80, 0x83].contains(p)) {
        assert_eq!(vpd_page(&id, page), None, "{page:#04x}");
    }
}

#[test]
fn designations_read_back_both_descriptors() {
    let id = identity();
    let data = device_identification(&id);
    let page = VpdPage::new_checked(&data, DEVICE_IDENTIFICATION);
    let found: Vec<Designation<'_>> = page.map(|p| p.designations().collect()).unwrap_or_default();
    let t10 = Designation {
        code_set: CODE_SET_ASCII,
        piv: false,
        association: ASSOCIATION_LOGICAL_UNIT,
        designator_type: DESIGNATOR_TYPE_T10_VENDOR_ID,
        designator: id.t10_designator(),
    };
    let naa = Designation {
        code_set: CODE_SET_BINARY,
        piv: false,
        association: ASSOCIATION_LOGICAL_UNIT,
        designator_type: DESIGNATOR_TYPE_NAA,
        designator: id.naa(),
    };
    assert_eq!(found, [t10, naa]);
}

#[test]
fn designations_decode_piv_and_association() {
    let data = [0x03, 0x83, 0x00, 0x06, 0x91, 0xA3, 0x00, 0x02, 0xAB, 0xCD];
    let page = VpdPage::new_checked(&data, DEVICE_IDENTIFICATION);
    let first = page.ok().and_then(|p| p.designations().next());
    let expected = Designation {
        code_set: 1,
        piv: true,
        association: 2,
        designator_type: 3,
        designator: &[0xAB, 0xCD],
    };
    assert_eq!(first, Some(expected));
}

#[test]
fn designations_stop_at_a_truncated_descriptor() {
    let data = device_identification(&identity());
    for cut in 0..data.len() {
        let count = VpdPage::new_checked(&data[..cut], DEVICE_IDENTIFICATION)
            .map(|p| p.designations().count())
            .unwrap_or(0);
        let expected = match cut {
            0..48 => 0,
            48..60 => 1,
            _ => 2,
        };
        assert_eq!(count, expected, "cut at {cut}");
    }
}

#[test]
fn page_length_bounds_the_payload() {
    let data = [0x03, 0x80, 0x00, 0x02, b'A', b'B', b'C'];
    let page = VpdPage::new_checked(&data, UNIT_SERIAL_NUMBER);
    assert_eq!(page.map(|p| p.payload()), Ok(&b"AB"[..]));
}

#[test]
fn new_checked_refuses_short_header_and_wrong_page() {
    let short = InquiryDataError::Truncated { len: 3, needed: 4 };
    let header = [0x03, 0x83, 0x00];
    assert_eq!(VpdPage::new_checked(&header, 0x83).err(), Some(short));
    let wrong = InquiryDataError::WrongPage {
        expected: 0x83,
        found: 0x80,
    };
    assert_eq!(
        VpdPage::new_checked(&[3, 0x80, 0, 0], 0x83).err(),
        Some(wrong)
    );
}

//! Sense and INQUIRY/VPD parsing as the initiator does it on answers from the fabric (anyone
//! zoned to the LUN can answer): no panic on any bytes; sense the device builds parses back to
//! its key, ASC and ASCQ in both formats and at any allocation length that holds them.
//! API: `scsi::sense::{Sense, parse_sense}`, `scsi::inquiry::StandardInquiry`,
//! `scsi::vpd::VpdPage`, `scsi::identity::{DeviceIdentity, matches_inquiry}`.
#![no_main]

use fcvpn::scsi::identity::{DeviceIdentity, matches_inquiry};
use fcvpn::scsi::inquiry::StandardInquiry;
use fcvpn::scsi::sense::{AdditionalSense, Sense, SenseKey, parse_sense};
use fcvpn::scsi::vpd::VpdPage;
use libfuzzer_sys::fuzz_target;

fn parse_answers(data: &[u8]) {
    let _ = parse_sense(data);
    if let Ok(s) = StandardInquiry::new_checked(data) {
        let _ = (
            s.peripheral_qualifier(),
            s.peripheral_device_type(),
            s.vendor_id(),
        );
        let _ = (s.product_id(), s.product_revision());
    }
    let page = data.get(1).copied().unwrap_or(0);
    if let Ok(p) = VpdPage::new_checked(data, page) {
        assert!(p.payload().len() <= data.len());
        for d in p.designations().take(1024) {
            assert!(d.designator.len() <= data.len());
        }
    }
    let cut = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let identity = DeviceIdentity::from_target_public(&[7; 32]);
    let _ = matches_inquiry(&data[..cut], &data[cut..], &identity);
}

fn sense_round_trip(data: &[u8]) {
    let [k, asc, ascq, hi, lo, alloc, ..] = *data else {
        return;
    };
    let mut sense = Sense::new(SenseKey(k & 0x0f), AdditionalSense::new(asc, ascq));
    if hi & 0x80 != 0 {
        sense = Sense::illegal_request(
            AdditionalSense::new(asc, ascq),
            u16::from_be_bytes([hi, lo]),
        );
    }
    for descriptor in [false, true] {
        let full = sense.to_bytes(descriptor, 252);
        let info = parse_sense(&full).expect("our own sense parses");
        assert_eq!((info.key, info.asc, info.ascq), (sense.key, asc, ascq));
        let cut = sense.to_bytes(descriptor, usize::from(alloc));
        assert!(cut.len() <= usize::from(alloc));
        assert!(full.starts_with(&cut), "truncated sense is not a prefix");
        if let Some(i) = parse_sense(&cut) {
            assert_eq!(i.key, sense.key);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    parse_answers(data);
    sense_round_trip(data);
});

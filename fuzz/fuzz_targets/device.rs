//! `VirtualDevice::dispatch` and the CDB parser on any CDB, data-out and data-in size: never a
//! panic; data-in never exceeds the data-in buffer; a CHECK CONDITION carries sense that
//! parses; READ/WRITE(16) are taken only with our nexus tag and a length that fits the
//! buffers; counters only grow.
//! API: `scsi::device::{VirtualDevice, Dispatch}`, `scsi::cdb::parse`, `scsi::sense::parse_sense`.
#![no_main]

use fcvpn::scsi::cdb::{Cdb, parse, transfer_len};
use fcvpn::scsi::device::{Dispatch, VirtualDevice};
use fcvpn::scsi::identity::DeviceIdentity;
use fcvpn::scsi::sense::parse_sense;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const TAG: u64 = 0x0123_4567_89ab_cdef;

#[derive(Arbitrary, Debug)]
struct Command {
    cdb: Vec<u8>,
    /// Put our tag into the LBA field (bytes 2-9) of a 16-byte CDB.
    our_tag: bool,
    data_out: u16,
    data_in: u16,
}

fuzz_target!(|cmds: Vec<Command>| {
    let mut dev = VirtualDevice::new(DeviceIdentity::from_target_public(&[9; 32]), TAG);
    for c in cmds.iter().take(32) {
        let mut cdb = c.cdb.clone();
        cdb.truncate(260);
        if c.our_tag && cdb.len() >= 10 {
            cdb[2..10].copy_from_slice(&TAG.to_be_bytes());
        }
        let data_out = vec![0x5au8; usize::from(c.data_out) * 8];
        let data_in_len = usize::from(c.data_in) * 8;
        let before = *dev.counters();
        let parsed = parse(&cdb);
        match dev.dispatch(&cdb, &data_out, data_in_len) {
            Dispatch::Complete(r) => {
                assert!(
                    r.data_in.len() <= data_in_len,
                    "data-in overflows the buffer"
                );
                if r.status == 0x02 {
                    assert!(
                        parse_sense(&r.sense).is_some(),
                        "CHECK CONDITION without sense"
                    );
                }
            }
            Dispatch::Send { payload } => {
                let Ok(Cdb::Write16 { tag, blocks }) = parsed else {
                    panic!("Send for {parsed:?}")
                };
                assert_eq!(tag, TAG, "a WRITE with a foreign tag reached the link");
                assert!(payload.len() as u64 <= transfer_len(blocks));
                assert!(payload.len() <= data_out.len());
            }
            Dispatch::Receive { max_len } => {
                let Ok(Cdb::Read16 { tag, blocks }) = parsed else {
                    panic!("Receive for {parsed:?}")
                };
                assert_eq!(tag, TAG, "a READ with a foreign tag was parked");
                assert!(max_len <= data_in_len && max_len as u64 <= transfer_len(blocks));
            }
        }
        assert!(dev.counters().commands > before.commands || before.commands == u64::MAX);
    }
});

//! `VirtualDevice::dispatch` and the CDB parser on any CDB, data-out and data-in size: never a
//! panic; data-in never exceeds the data-in buffer; a CHECK CONDITION carries sense that
//! parses; READ/WRITE(16) are taken only with a command token we signed (never with a forged
//! or replayed one) and a length that fits the buffers; counters only grow.
//! API: `scsi::device::{VirtualDevice, Dispatch}`, `scsi::cdb::parse`, `scsi::sense::parse_sense`.
#![no_main]

use fcvpn::crypto::PrivateKey;
use fcvpn::crypto::fabric::{FabricKey, FabricRole};
use fcvpn::scsi::cdb::{Cdb, parse, transfer_len};
use fcvpn::scsi::device::{Dispatch, VirtualDevice};
use fcvpn::scsi::identity::DeviceIdentity;
use fcvpn::scsi::sense::parse_sense;
use fcvpn::scsi::token::{CommandSigner, CommandVerifier};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::sync::OnceLock;

/// Wall-clock second both ends start at.
const NOW_UNIX: u64 = 1_700_000_000;

/// The pair's fabric key, derived once (one X25519 operation).
fn fabric_key() -> FabricKey {
    static KEY: OnceLock<FabricKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let target = PrivateKey::from_bytes([0x22; 32]);
        let initiator = PrivateKey::from_bytes([0x11; 32]).public_key();
        FabricKey::derive(&target, &initiator, FabricRole::Target).expect("not low order")
    })
    .clone()
}

#[derive(Arbitrary, Debug)]
struct Command {
    cdb: Vec<u8>,
    /// Put a freshly signed token into the LBA field (bytes 2-9) of a 16-byte CDB.
    ours: bool,
    data_out: u16,
    data_in: u16,
}

fuzz_target!(|cmds: Vec<Command>| {
    let mut verifier = CommandVerifier::new(fabric_key());
    verifier.tick(NOW_UNIX);
    let mut signer = CommandSigner::new(fabric_key(), NOW_UNIX);
    let mut dev = VirtualDevice::new(DeviceIdentity::from_target_public(&[9; 32]), verifier);
    let mut signed = HashSet::new();
    let mut used = HashSet::new();
    for c in cmds.iter().take(32) {
        let mut cdb = c.cdb.clone();
        cdb.truncate(260);
        if c.ours && cdb.len() >= 10 {
            let token = signer.sign();
            signed.insert(token);
            cdb[2..10].copy_from_slice(&token.to_be_bytes());
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
                let Ok(Cdb::Write16 { token, blocks }) = parsed else {
                    panic!("Send for {parsed:?}")
                };
                assert!(
                    signed.contains(&token),
                    "a WRITE with a forged token reached the link"
                );
                assert!(
                    used.insert(token),
                    "a replayed WRITE token reached the link"
                );
                assert!(payload.len() as u64 <= transfer_len(blocks));
                assert!(payload.len() <= data_out.len());
            }
            Dispatch::Receive { max_len } => {
                let Ok(Cdb::Read16 { token, blocks }) = parsed else {
                    panic!("Receive for {parsed:?}")
                };
                assert!(
                    signed.contains(&token),
                    "a READ with a forged token was parked"
                );
                assert!(used.insert(token), "a replayed READ token was parked");
                assert!(max_len <= data_in_len && max_len as u64 <= transfer_len(blocks));
            }
        }
        assert!(dev.counters().commands > before.commands || before.commands == u64::MAX);
    }
});

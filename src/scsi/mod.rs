//! SCSI command codec and the identity of the fcvpn virtual device.
#![forbid(unsafe_code)]

pub mod cdb;
pub mod sense;
pub mod status;
mod wire;

pub use cdb::{BLOCK_LEN, Cdb, CdbError, MAX_TRANSFER_LEN};
pub use sense::{AdditionalSense, Sense, SenseInfo, SenseKey, parse_sense};

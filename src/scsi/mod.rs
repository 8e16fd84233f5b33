//! SCSI command codec and the identity of the fcvpn virtual device.
#![forbid(unsafe_code)]

pub mod cdb;
pub mod identity;
pub mod inquiry;
pub mod sense;
pub mod status;
pub mod vpd;
mod wire;

pub use cdb::{BLOCK_LEN, Cdb, CdbError, MAX_TRANSFER_LEN};
pub use identity::{DeviceIdentity, matches_inquiry, nexus_tag};
pub use inquiry::InquiryDataError;
pub use sense::{AdditionalSense, Sense, SenseInfo, SenseKey, parse_sense};

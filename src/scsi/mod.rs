//! SCSI command codec and the identity of the fcvpn virtual device.
#![forbid(unsafe_code)]

pub mod sense;
pub mod status;
mod wire;

pub use sense::{AdditionalSense, Sense, SenseInfo, SenseKey, parse_sense};

//! SCSI command codec and the identity of the fcvpn virtual device.
//!
//! fcvpn carries sealed batches in SCSI data: the initiator WRITE(16)s one batch per command and
//! keeps READ(16)s parked at the target, which completes each with one batch. The target shows a
//! processor device (PDT 03h) that no Linux upper-level driver binds, identified by VPD pages
//! derived from its static public key. Everything here is sans-IO and never panics on input:
//!
//! - [`cdb`]: parse and build the CDBs the device implements;
//! - [`sense`]: sense keys, ASC/ASCQ codes, fixed and descriptor sense data, [`parse_sense`];
//! - [`status`]: SAM status codes;
//! - [`identity`]: [`DeviceIdentity`], [`nexus_tag`] and the initiator's [`matches_inquiry`];
//! - [`inquiry`] and [`vpd`]: the INQUIRY data and VPD pages, emitted and read back;
//! - [`token`]: the command tokens of WRITE(16)/READ(16), [`CommandSigner`] and
//!   [`CommandVerifier`];
//! - [`device`]: [`VirtualDevice`], which every target backend drives;
//! - [`response`]: [`Response`], the completion a backend returns.
#![forbid(unsafe_code)]

pub mod cdb;
pub mod device;
pub mod identity;
pub mod inquiry;
pub mod response;
pub mod sense;
pub mod status;
pub mod token;
pub mod vpd;
mod wire;

pub use cdb::{BLOCK_LEN, Cdb, CdbError, MAX_TRANSFER_LEN};
pub use device::{DeviceCounters, Dispatch, VirtualDevice};
pub use identity::{DeviceIdentity, matches_inquiry, nexus_tag};
pub use inquiry::InquiryDataError;
pub use response::Response;
pub use sense::{AdditionalSense, Sense, SenseInfo, SenseKey, parse_sense};
pub use token::{CommandSigner, CommandVerifier};

//! fcvpn: an authenticated, encrypted, reliable IP link carried in SCSI commands over Fibre Channel.
//!
//! The crate is layered as `../proto/SPEC.md` describes:
//! - [`crypto`]: keys, the Noise IK handshake and the batch AEAD (sans-IO, no unsafe);
//! - [`link`]: frames, batches, reliability and paths (sans-IO, no unsafe);
//! - [`scsi`]: the CDB codec and the identity of the virtual SCSI device.

pub mod config;
pub mod control;
pub mod crypto;
pub mod daemon;
pub mod demo;
pub mod driver;
pub mod fabric;
#[doc(hidden)]
pub mod fuzzing;
pub mod link;
pub mod scsi;
pub mod status;
pub mod sys;
pub mod transport;
pub mod tun;

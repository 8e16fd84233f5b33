//! fcvpn: an authenticated, encrypted, reliable IP link carried in SCSI commands over Fibre Channel.
//!
//! The crate is layered as `../proto/SPEC.md` describes:
//! - [`crypto`]: keys, the Noise IK handshake and the batch AEAD (sans-IO, no unsafe);
//! - [`link`]: frames, batches, reliability and paths (sans-IO, no unsafe);
//! - [`scsi`]: the CDB codec and the identity of the virtual SCSI device.

pub mod config;
pub mod crypto;
pub mod link;
pub mod scsi;

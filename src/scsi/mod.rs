//! SCSI command codec and the identity of the fcvpn virtual device.
#![forbid(unsafe_code)]

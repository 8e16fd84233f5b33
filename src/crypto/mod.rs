//! Keys, the Noise IK handshake and the per-batch AEAD.
//!
//! Sans-IO: nothing here reads a clock, an entropy source or a file. Time
//! arrives as a [`core::time::Duration`] on the caller's monotonic clock and
//! randomness (ephemeral keys) as bytes. Secrets are wiped on drop and print
//! as `<redacted>`.
//!
//! - [`keys`]: X25519 key pairs, symmetric keys, base64, fingerprints;
//! - [`handshake`]: `Noise_IK_25519_ChaChaPoly_BLAKE2s` with mac1 and mac2, giving [`SessionKeys`];
//! - [`cookie`]: cookies for a datagram path under load (mac2 bound to the source address);
//! - [`session`]: sealing and opening batch bodies, counters, rekey limits;
//! - [`replay`]: the 8192-bit anti-replay window;
//! - [`fabric`]: the fabric key behind the command tokens of the SCSI data commands.
#![forbid(unsafe_code)]

mod cipher;
pub mod cookie;
pub mod fabric;
pub mod handshake;
mod ik;
mod kdf;
pub mod keys;
pub(crate) mod mac;
pub mod noise;
mod record;
pub mod replay;
pub mod session;

pub use handshake::{
    HandshakeError, INITIATION_LEN, InitiatorHandshake, LocalStatic, PAYLOAD_LEN, RESPONSE_LEN,
    ResponderHandshake, SessionKeys, consume_initiation, create_initiation,
};
pub use keys::{KEY_LEN, Key, KeyError, PrivateKey, PublicKey, fingerprint};
pub use noise::PROLOGUE;
pub use replay::{REPLAY_WINDOW, ReplayWindow};
pub use session::{
    OpenError, RECORD_LEN, REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES, Session, SessionError,
    TAG_LEN, plain_len, sealed_len,
};

//! Keys, the Noise IK handshake and the per-batch AEAD.
#![forbid(unsafe_code)]

mod cipher;
pub mod handshake;
mod ik;
mod kdf;
pub mod keys;
mod mac;
pub mod noise;
pub mod replay;

pub use handshake::{
    HandshakeError, INITIATION_LEN, InitiatorHandshake, LocalStatic, PAYLOAD_LEN, RESPONSE_LEN,
    ResponderHandshake, SessionKeys, consume_initiation, create_initiation,
};
pub use keys::{KEY_LEN, Key, KeyError, PrivateKey, PublicKey, fingerprint};
pub use noise::PROLOGUE;
pub use replay::{REPLAY_WINDOW, ReplayWindow};

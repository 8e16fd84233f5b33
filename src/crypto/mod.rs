//! Keys, the Noise IK handshake and the per-batch AEAD.
#![forbid(unsafe_code)]

mod cipher;
mod kdf;
pub mod keys;
mod mac;
pub mod noise;

pub use keys::{KEY_LEN, Key, KeyError, PrivateKey, PublicKey, fingerprint};
pub use noise::PROLOGUE;

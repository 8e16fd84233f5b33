//! Keys, the Noise IK handshake and the per-batch AEAD.
#![forbid(unsafe_code)]

pub mod keys;
pub use keys::{KEY_LEN, Key, KeyError, PrivateKey, PublicKey, fingerprint};

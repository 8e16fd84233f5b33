//! Keys, the Noise IK handshake and the per-batch AEAD.
#![forbid(unsafe_code)]

//! What the fuzz targets in `fuzz/` need beyond the public API (not part of the supported API).
//!
//! Kept to the few items a harness cannot build itself: mac1 (so a fuzzed handshake message
//! passes the cheap filter and reaches the Noise code) and sealing arbitrary frames under a
//! link's session ([`crate::link::Link::seal_frames_for_fuzzing`]).

use crate::crypto::PublicKey;
use crate::crypto::mac::Mac1Key;

/// mac1 over `header` ‖ `body` for a message to the holder of `receiver`, as the handshake
/// computes it.
pub fn mac1(receiver: &PublicKey, header: &[u8], body: &[u8]) -> [u8; 16] {
    Mac1Key::for_receiver(receiver).compute(header, body)
}

pub use crate::link::fuzzing::pair_for_fuzzing;

//! Hooks for the fuzz targets in `fuzz/` (not part of the supported API).

use super::Link;
use super::wire::{BatchHeader, BatchType, HEADER_LEN};
use crate::crypto::session::sealed_len;

impl Link {
    /// Seals `plain` (frames, unchecked) as a TRANSPORT batch for path `path_id` under the
    /// current session, with the next counter, exactly as [`Link::poll_transmit`] would seal
    /// frames it wrote. `None` without a current session or with its counters spent. For fuzz
    /// harnesses that play the peer with arbitrary frames.
    #[doc(hidden)]
    pub fn seal_frames_for_fuzzing(&mut self, path_id: u8, plain: &[u8]) -> Option<Vec<u8>> {
        let session = self.sessions.current.as_mut()?;
        let counter = session.next_counter().ok()?;
        let body_len = sealed_len(plain.len());
        let header = BatchHeader {
            batch_type: BatchType::Transport,
            path: path_id,
            receiver: session.remote_index(),
            body_len: u32::try_from(body_len).ok()?,
            counter,
        };
        let mut batch = vec![0u8; HEADER_LEN + body_len];
        let (head, body) = batch.split_at_mut(HEADER_LEN);
        head.copy_from_slice(&header.to_bytes());
        body[..plain.len()].copy_from_slice(plain);
        session.seal(counter, head, body, plain.len());
        Some(batch)
    }
}

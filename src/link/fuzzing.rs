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

/// Two links (from `configs`, both at `now`) that share a session as if they had completed a
/// handshake on path index 0, without the Diffie-Hellman work: each knows the other's
/// instance and send base, and both sessions are current. The session keys are fixed, so this
/// is for fuzz harnesses only (the handshake has its own target).
#[doc(hidden)]
pub fn pair_for_fuzzing(
    configs: [super::LinkConfig; 2],
    entropy: [Box<dyn super::Entropy + Send>; 2],
    now: std::time::Duration,
) -> Result<[Link; 2], super::LinkConfigError> {
    let [ca, cb] = configs;
    let [ea, eb] = entropy;
    let mut links = [Link::new(ca, ea, now)?, Link::new(cb, eb, now)?];
    let hello = [0, 1].map(|s| (links[s].cfg.instance, links[s].send.base()));
    for (side, link) in links.iter_mut().enumerate() {
        let key = |b: u8| crate::crypto::Key::from_bytes([b; 32]);
        let keys = crate::crypto::SessionKeys {
            send: key(0xa0 + side as u8),
            recv: key(0xa1 - side as u8),
        };
        let index = 0x100 + side as u32;
        let session = crate::crypto::Session::new(keys, index, 0x101 - side as u32, now, side == 1);
        let (instance, base) = hello[1 - side];
        link.sessions.peer_instance = Some(instance);
        link.recv.reset(base);
        link.sessions.current = Some(session);
        link.sessions.retry_at = None;
        link.path_up(now, 0);
        link.update_active(now);
    }
    Ok(links)
}

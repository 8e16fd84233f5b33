//! What the link tells its driver, drained with [`crate::link::Link::poll_event`].

use super::path::{ChangeCause, DownCause};

/// Something the driver may act on (log once, set the TUN carrier, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A handshake completed: a new session is in use. `rekey` is false for the first session
    /// with this peer instance.
    HandshakeCompleted {
        /// The path the handshake went over.
        path: u8,
        /// Whether a session with the same peer instance existed before.
        rekey: bool,
    },
    /// The peer came back with fresh state (it restarted); frames in flight are resent.
    PeerRestarted,
    /// A path proved a round trip after being unknown or down.
    PathUp {
        /// Path id.
        path: u8,
    },
    /// A path went down.
    PathDown {
        /// Path id.
        path: u8,
        /// Why.
        cause: DownCause,
    },
    /// Traffic moved to another path (or to none).
    ActivePathChanged {
        /// Previous active path id.
        from: Option<u8>,
        /// New active path id.
        to: Option<u8>,
        /// Why.
        cause: ChangeCause,
    },
    /// Whether the link can deliver packets changed: drive the TUN/TAP carrier with it.
    Carrier(bool),
    /// The peer closed the link.
    PeerClosed,
}

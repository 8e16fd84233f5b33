//! Link parameters: the limits and timers of `proto/SPEC.md`, with their defaults.

use std::time::Duration;

use crate::crypto::{LocalStatic, PublicKey};

/// Most frames a sender may hold between its oldest unacknowledged frame and its newest; also
/// the receiver's reorder window. Far below 2^31, as sequence expansion requires.
pub const WINDOW_FRAMES: u64 = 32_768;

/// Most paths one link may have.
pub const MAX_PATHS: usize = 8;

/// Who drives compression of packets before they are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Packets are sent as they are (the default: see VORACLE in SECURITY.md).
    #[default]
    Off,
    /// Each packet is LZ4-compressed on its own, and sent compressed only when that shrinks it.
    Lz4,
}

/// Whether sealed TRANSPORT batches are padded so their size tells less about the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// Batches are as long as what they carry (the default).
    #[default]
    Off,
    /// Each batch is padded (with PADDING, inside the sealed plaintext) to the smallest bucket
    /// that holds it: a power of two from [`MIN_PADDING_BUCKET`] bytes, or the path's
    /// `max_batch` when no power of two below it does (`proto/SPEC.md` §3).
    Bucket,
}

/// The smallest padding bucket, in bytes of the whole batch (header included).
pub const MIN_PADDING_BUCKET: usize = 512;

/// One path the link may use (FC, Ethernet backup, ...).
#[derive(Debug, Clone)]
pub struct PathConfig {
    /// Path id carried in every batch header; the same on both ends.
    pub id: u8,
    /// Name shown by `fcvpn show` ("fc", "ethernet").
    pub name: String,
    /// Lower is preferred: the active path is the preferred one that is up.
    pub preference: u8,
    /// Largest batch (header included) the path's transport carries.
    pub max_batch: usize,
    /// How often a probe is sent on the path.
    pub probe_interval: Duration,
    /// How long without any proof of a round trip before the path is declared down.
    pub dead_after: Duration,
    /// Most payload bytes in flight on the path. A path with its own flow control (SCSI:
    /// a fixed number of commands) needs none; a datagram path needs one below what the
    /// socket buffers and the network hold, or bursts overflow them.
    pub max_in_flight: usize,
    /// A datagram path: the address the peer's datagrams come from, in the encoding
    /// [`crate::link::Link::handle_datagram`] is given. COOKIE replies go to the peer (the
    /// transport sends to the peer's endpoint), so when this is set they answer only
    /// initiations from it: strangers elsewhere can neither trigger nor spend them.
    pub peer_source: Option<Vec<u8>>,
}

impl PathConfig {
    /// A path with the default probe cadence (50 ms probes, down after 200 ms of silence).
    pub fn new(id: u8, name: &str, preference: u8, max_batch: usize) -> Self {
        Self {
            id,
            name: name.to_owned(),
            preference,
            max_batch,
            probe_interval: Duration::from_millis(50),
            dead_after: Duration::from_millis(200),
            max_in_flight: usize::MAX,
            peer_source: None,
        }
    }
}

/// Everything a [`crate::link::Link`] is built from. Randomness and wall-clock time are inputs:
/// `instance` and `epoch_unix_ns` come from the driver.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Our static key pair.
    pub local: LocalStatic,
    /// The peer's pinned static public key.
    pub peer: PublicKey,
    /// A random identifier of this process's link state; a change tells the peer we restarted.
    pub instance: u64,
    /// Wall-clock time (ns since the Unix epoch) at the link's time zero; handshake
    /// initiations carry `epoch_unix_ns + now` so that replayed ones can be refused.
    pub epoch_unix_ns: u64,
    /// The paths, at least one.
    pub paths: Vec<PathConfig>,
    /// Per-packet compression.
    pub compression: Compression,
    /// Padding of TRANSPORT batches to size buckets.
    pub padding: Padding,
    /// A frame not acknowledged this long after it was accepted is dropped and skipped.
    pub max_frame_age: Duration,
    /// Most accepted, unacknowledged frames held (at most [`WINDOW_FRAMES`]).
    pub send_buffer_frames: usize,
    /// Most bytes of accepted, unacknowledged frames held.
    pub send_buffer_bytes: usize,
    /// Most bytes of out-of-order frames the receiver holds.
    pub hold_bytes: usize,
    /// Longest the receiver waits before it sends an acknowledgement on its own.
    pub max_ack_delay: Duration,
    /// RTT assumed before the first sample.
    pub initial_rtt: Duration,
    /// Longest probe timeout, however many times it backed off.
    pub max_pto: Duration,
    /// A path that went down must stay up this long before traffic moves back to it.
    pub fail_back_after: Duration,
    /// Handshake initiation retry interval (plus up to 1/8 random jitter).
    pub handshake_retry: Duration,
    /// The session's initiator starts a new handshake after this long.
    pub rekey_after: Duration,
    /// A session is never used after this long.
    pub reject_after: Duration,
    /// Most handshake initiations answered per second, per path.
    pub handshakes_per_second: u32,
    /// After a start, initiations stamped earlier than the start minus this are refused (a
    /// restarted process has no memory of the timestamps it accepted before). Peers' wall
    /// clocks must agree within it.
    pub max_clock_skew: Duration,
    /// First sequence number this link sends (tests start near 2^32 to cross the wrap).
    pub initial_seq: u64,
}

impl LinkConfig {
    /// A configuration with the defaults of `proto/SPEC.md` and the given keys and paths.
    pub fn new(local: LocalStatic, peer: PublicKey, paths: Vec<PathConfig>) -> Self {
        Self {
            local,
            peer,
            instance: 0,
            epoch_unix_ns: 0,
            paths,
            compression: Compression::Off,
            padding: Padding::Off,
            max_frame_age: Duration::from_secs(3),
            send_buffer_frames: WINDOW_FRAMES as usize,
            send_buffer_bytes: 32 << 20,
            hold_bytes: 32 << 20,
            max_ack_delay: Duration::from_millis(1),
            initial_rtt: Duration::from_millis(10),
            max_pto: Duration::from_millis(200),
            fail_back_after: Duration::from_secs(1),
            handshake_retry: Duration::from_millis(500),
            rekey_after: Duration::from_secs(120),
            reject_after: Duration::from_secs(180),
            handshakes_per_second: 20,
            max_clock_skew: Duration::from_secs(30),
            initial_seq: 0,
        }
    }
}

/// A source of random bytes, passed in so that the link itself stays deterministic.
pub trait Entropy {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

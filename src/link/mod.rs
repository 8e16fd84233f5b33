//! The sans-IO link state machine.
//!
//! A [`Link`] turns packets into sealed batches and batches back into packets, for one peer,
//! over one or more paths. It owns no socket, device, thread or clock: every call takes `now`
//! (a [`Duration`] since an epoch the driver picks), randomness comes through the
//! [`Entropy`] given at construction, and everything it wants done comes out of `poll_*` calls.
//!
//! The driver's loop, in order:
//! 1. feed inputs: [`Link::handle_packet`] for each packet read from the TUN device,
//!    [`Link::handle_batch`] for each batch a transport received (packets for the TUN device come
//!    out of its `deliver` callback), [`Link::handle_path_error`] for transport failures, and
//!    [`Link::handle_timeout`] once the deadline from [`Link::poll_timeout`] has passed;
//! 2. for every path whose transport can carry a batch now, call [`Link::poll_transmit`] until it
//!    returns `None`;
//! 3. drain [`Link::poll_event`];
//! 4. sleep until input arrives or [`Link::poll_timeout`].
#![forbid(unsafe_code)]

mod budget;
pub mod config;
mod desync;
pub mod event;
pub(crate) mod fuzzing;
mod handshake;
pub mod path;
mod receive;
pub mod recv;
pub mod rtt;
pub mod sent;
pub mod seq;
pub mod stats;
mod timers;
mod transmit;
pub mod wire;

use std::collections::VecDeque;
use std::time::Duration;

use thiserror::Error;

pub use config::{
    Compression, Entropy, LinkConfig, MAX_PATHS, MIN_PADDING_BUCKET, Padding, PathConfig,
};
pub use event::Event;
pub use stats::{LinkStats, PathStats, RejectCounters};

use crate::crypto::Session;
use crate::crypto::cookie::CookieMaker;
use crate::crypto::handshake::{InitiatorHandshake, PeerStatics};
use path::Path;
use recv::RecvBuffer;
use sent::SendBuffer;

/// Smallest `max_batch` a path may have: room for a header, a tag and a useful fragment.
pub const MIN_PATH_BATCH: usize = 256;
/// Most events kept undrained; older ones are dropped first.
const MAX_EVENTS: usize = 256;

/// A configuration the link cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkConfigError {
    /// No paths, or more than [`MAX_PATHS`].
    #[error("a link needs between 1 and {MAX_PATHS} paths")]
    PathCount,
    /// Two paths share an id.
    #[error("path id {0} is used twice")]
    DuplicatePath(u8),
    /// A path's batch size is outside `MIN_PATH_BATCH..=MAX_BATCH_LEN`.
    #[error("path {0}: max_batch must be between {MIN_PATH_BATCH} and {max}", max = wire::MAX_BATCH_LEN)]
    BatchSize(u8),
    /// The send buffer limits are zero or beyond the window.
    #[error("send buffer must hold between 1 and {} frames", config::WINDOW_FRAMES)]
    SendBuffer,
    /// The first sequence number is at or beyond [`seq::MAX_SEQ`] less the window.
    #[error("initial sequence number too large")]
    InitialSeq,
}

/// Why a packet from the TUN device was not accepted. Each is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PacketDropped {
    /// The send buffer is full: the link is not keeping up, the packet is dropped and TCP above
    /// backs off.
    #[error("send buffer full")]
    Full,
    /// The packet is larger than [`wire::MAX_PACKET_LEN`].
    #[error("packet too large")]
    TooLarge,
}

/// An initiation we sent and await the response to.
struct Pending {
    handshake: InitiatorHandshake,
    local_index: u32,
    attempts: u32,
    /// The initiation's mac1: a COOKIE answering it is bound to it.
    mac1: [u8; 16],
}

/// A cookie a responder under load sent us, for the initiations we send on one path.
#[derive(Clone, Copy)]
struct ReceivedCookie {
    cookie: [u8; crate::crypto::cookie::COOKIE_LEN],
    at: Duration,
    path: usize,
}

/// Session keys in use, in rotation.
#[derive(Default)]
struct Sessions {
    /// Used for sending and receiving.
    current: Option<Session>,
    /// The one before: still opens batches sealed before the switch.
    previous: Option<Session>,
    /// Responder side: answered but not yet confirmed by a batch from the initiator.
    next: Option<Session>,
    /// The initiator's payload of `next`: its instance and send base are applied only once
    /// `next` is confirmed, so an initiation that is never confirmed (a replay) changes no
    /// receive state.
    next_hello: Option<handshake::Hello>,
    /// Initiator side: our handshake in progress.
    pending: Option<Pending>,
    /// Largest initiation timestamp authenticated from the peer (answered or not).
    peer_timestamp: u64,
    /// Initiation timestamps below this are refused: this process's start (wall clock)
    /// minus [`config::LinkConfig::max_clock_skew`].
    timestamp_floor: u64,
    /// The peer's instance from its last handshake.
    peer_instance: Option<u64>,
    /// When the next initiation may be sent (retry timer).
    retry_at: Option<Duration>,
    /// The latest cookie from the peer, if any.
    cookie: Option<ReceivedCookie>,
}

/// One peer's link over all its paths. See the module documentation for the calling order.
pub struct Link {
    cfg: LinkConfig,
    /// The static-static DH and mac1 keys of the pair, computed once.
    statics: PeerStatics,
    entropy: Box<dyn Entropy + Send>,
    sessions: Sessions,
    send: SendBuffer,
    recv: RecvBuffer,
    paths: Vec<Path>,
    active: Option<usize>,
    /// Whether a path was ever active (the first choice is not a change).
    was_active: bool,
    /// Changes of the active path after the first choice.
    path_changes: u64,
    /// The latest of them.
    last_path_change: Option<path::PathChange>,
    /// Handshake messages waiting for their path's transport.
    hs_out: Vec<Option<Vec<u8>>>,
    /// CLOSE owed on each path.
    close_out: Vec<bool>,
    /// Initiations answered per path (a flood on one path cannot spend another's).
    hs_budget: Vec<budget::Budget>,
    /// Initiations answered whose mac2 proves the current session (strangers cannot spend it).
    proved_budget: budget::Budget,
    /// Initiations answered whose mac2 carries a cookie of their source address.
    cookie_budget: budget::Budget,
    /// COOKIE replies sent.
    cookie_replies: budget::Budget,
    /// Makes and checks the cookies of datagram sources.
    cookie_maker: CookieMaker,
    /// COOKIE replies waiting for their path's transport (after handshake messages).
    cookie_out: Vec<Option<Vec<u8>>>,
    next_pn: u64,
    /// Data frames in the last batch built.
    last_data_frames: usize,
    /// Highest cumulative point the peer acknowledged.
    peer_cum: u64,
    /// When a SKIP last left (None: due now if one is needed).
    skip_sent: Option<Duration>,
    /// Until when a desync does not start another resynchronising handshake.
    resync_after: Option<Duration>,
    carrier: bool,
    events: VecDeque<Event>,
    rejected: RejectCounters,
    oversize_packets: u64,
    handshakes: u64,
    handshake_collisions: u64,
    idle_batches: u64,
    scratch_ranges: Vec<wire::AckRange>,
    scratch_expanded: Vec<(u64, u64)>,
}

impl Link {
    /// A link that will start its first handshake at the first [`Link::handle_timeout`] or
    /// [`Link::poll_transmit`] call at or after `now`.
    pub fn new(
        cfg: LinkConfig,
        entropy: Box<dyn Entropy + Send>,
        now: Duration,
    ) -> Result<Self, LinkConfigError> {
        validate(&cfg)?;
        let paths: Vec<Path> = cfg
            .paths
            .iter()
            .map(|p| Path::new(p.clone(), cfg.initial_rtt, now))
            .collect();
        let n = paths.len();
        let mut entropy = entropy;
        let mut secret = [0u8; 32];
        entropy.fill(&mut secret);
        Ok(Self {
            proved_budget: budget::Budget::full(now),
            cookie_budget: budget::Budget::full(now),
            cookie_replies: budget::Budget::full(now),
            cookie_maker: CookieMaker::new(&cfg.local.public, secret, now),
            cookie_out: vec![None; n],
            statics: PeerStatics::new(&cfg.local, &cfg.peer),
            send: SendBuffer::new(
                cfg.initial_seq,
                cfg.send_buffer_frames,
                cfg.send_buffer_bytes,
            ),
            recv: RecvBuffer::new(0, cfg.hold_bytes),
            peer_cum: cfg.initial_seq,
            sessions: Sessions {
                retry_at: Some(now),
                timestamp_floor: cfg
                    .epoch_unix_ns
                    .saturating_add(now.as_nanos() as u64)
                    .saturating_sub(cfg.max_clock_skew.as_nanos() as u64),
                ..Sessions::default()
            },
            entropy,
            paths,
            active: None,
            was_active: false,
            path_changes: 0,
            last_path_change: None,
            hs_out: vec![None; n],
            close_out: vec![false; n],
            hs_budget: vec![budget::Budget::full(now); n],
            next_pn: 0,
            last_data_frames: 0,
            skip_sent: None,
            resync_after: None,
            carrier: false,
            events: VecDeque::new(),
            rejected: RejectCounters::default(),
            oversize_packets: 0,
            handshakes: 0,
            handshake_collisions: 0,
            idle_batches: 0,
            scratch_ranges: Vec::new(),
            scratch_expanded: Vec::new(),
            cfg,
        })
    }

    /// Takes one packet read from the TUN device at `now`. On `Ok` the packet is *accepted*: it
    /// will be delivered to the peer exactly once and in order, unless it ages past the maximum
    /// frame age first (then it is counted as expired and skipped).
    pub fn handle_packet(&mut self, now: Duration, packet: &[u8]) -> Result<(), PacketDropped> {
        let mut buf = self.send.take_buffer();
        buf.extend_from_slice(packet);
        self.handle_packet_buffer(now, buf)
    }

    /// An empty buffer (with capacity from earlier packets) to read the next packet into, for
    /// [`Link::handle_packet_buffer`]: the packet is then stored without another copy.
    pub fn packet_buffer(&mut self) -> Vec<u8> {
        self.send.take_buffer()
    }

    /// [`Link::handle_packet`] for a packet already in a buffer the link may keep.
    pub fn handle_packet_buffer(
        &mut self,
        now: Duration,
        packet: Vec<u8>,
    ) -> Result<(), PacketDropped> {
        if packet.len() > wire::MAX_PACKET_LEN {
            self.oversize_packets += 1;
            return Err(PacketDropped::TooLarge);
        }
        let (payload, flags) = match self.cfg.compression {
            Compression::Off => (packet, 0),
            Compression::Lz4 => {
                let mut out = self.send.take_buffer();
                match compress(&packet, &mut out) {
                    0 => (packet, 0),
                    flags => (out, flags),
                }
            }
        };
        self.send
            .accept(now, payload, flags)
            .map(drop)
            .map_err(|_| PacketDropped::Full)
    }

    /// Whether a packet of `len` bytes would be accepted now (lets the driver stop reading the
    /// TUN device instead of dropping).
    pub fn can_accept(&self, len: usize) -> bool {
        len <= wire::MAX_PACKET_LEN && !self.send.is_full(len)
    }

    /// A transport on path `path_id` failed (SCSI error, socket error): the path goes down now
    /// and its frames in flight move to another path.
    pub fn handle_path_error(&mut self, now: Duration, path_id: u8) {
        if let Some(i) = self.path_index(path_id) {
            self.path_down(now, i, path::DownCause::TransportError);
            self.update_active(now);
        }
    }

    /// Asks the link to close: a CLOSE frame goes out on every path at the next
    /// [`Link::poll_transmit`] for it.
    pub fn close(&mut self) {
        self.close_out.iter_mut().for_each(|c| *c = true);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether a session is established (the link can carry packets once a path is up).
    pub fn is_established(&self) -> bool {
        self.sessions.current.is_some()
    }

    /// The active path's id.
    pub fn active_path(&self) -> Option<u8> {
        self.active.map(|i| self.paths[i].config.id)
    }

    /// When path `id` last had an authenticated proof of a round trip (a probe reply, or an
    /// acknowledgement of frames sent on it); `None` before the first or for an unknown path.
    /// Transports use it to tell a working device from one that only answers SCSI.
    pub fn path_last_proof(&self, id: u8) -> Option<Duration> {
        self.path_index(id).and_then(|i| self.paths[i].last_proof)
    }

    /// How many times the active path changed, not counting the link's first choice of one:
    /// failovers, fail-backs, losing every path and regaining one.
    pub fn path_changes(&self) -> u64 {
        self.path_changes
    }

    /// The latest change counted by [`Link::path_changes`].
    pub fn last_path_change(&self) -> Option<path::PathChange> {
        self.last_path_change
    }

    /// Time since the current session was established.
    pub fn handshake_age(&self, now: Duration) -> Option<Duration> {
        self.sessions
            .current
            .as_ref()
            .map(|s| now.saturating_sub(s.created()))
    }

    /// A snapshot of the counters and path figures.
    pub fn stats(&self, now: Duration) -> LinkStats {
        LinkStats {
            send: self.send.counters(),
            recv: self.recv.counters(),
            rejected: self.rejected,
            oversize_packets: self.oversize_packets,
            handshakes: self.handshakes,
            handshake_collisions: self.handshake_collisions,
            idle_batches: self.idle_batches,
            send_buffer_frames: self.send.len(),
            send_buffer_bytes: self.send.bytes(),
            hold_bytes: self.recv.hold_bytes(),
            active_path: self.active_path(),
            path_changes: self.path_changes,
            last_path_change: self.last_path_change,
            paths: self.paths.iter().map(|p| path_stats(p, now)).collect(),
        }
    }

    fn path_index(&self, id: u8) -> Option<usize> {
        self.paths.iter().position(|p| p.config.id == id)
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn path_down(&mut self, now: Duration, i: usize, cause: path::DownCause) {
        if !self.paths[i].set_down(cause) {
            return;
        }
        let moved = self.send.requeue_path(i as u8, now);
        self.paths[i].counters.retransmits += moved;
        self.push_event(Event::PathDown {
            path: self.paths[i].config.id,
            cause,
        });
    }

    fn path_up(&mut self, now: Duration, i: usize) {
        if self.paths[i].on_proof(now) {
            self.push_event(Event::PathUp {
                path: self.paths[i].config.id,
            });
        }
    }

    /// Re-selects the active path; moves frames in flight off a path that stops being active;
    /// reports the change and the carrier.
    fn update_active(&mut self, now: Duration) {
        let chosen = path::select_active(&self.paths, self.active, now, self.cfg.fail_back_after);
        if chosen != self.active {
            let from = self.active_path();
            let cause = self.change_cause(chosen);
            if let Some(old) = self.active {
                let moved = self.send.requeue_path(old as u8, now);
                self.paths[old].counters.retransmits += moved;
            }
            self.active = chosen;
            let to = self.active_path();
            if self.was_active {
                self.path_changes += 1;
                self.last_path_change = Some(path::PathChange {
                    at: now,
                    from,
                    to,
                    cause,
                });
            }
            self.was_active |= chosen.is_some();
            self.push_event(Event::ActivePathChanged { from, to, cause });
        }
        let carrier = self.active.is_some() && self.sessions.current.is_some();
        if carrier != self.carrier {
            self.carrier = carrier;
            self.push_event(Event::Carrier(carrier));
        }
    }

    /// Why the active path is about to change to path index `chosen`.
    fn change_cause(&self, chosen: Option<usize>) -> path::ChangeCause {
        use path::{ChangeCause, PathState};
        let Some(old) = self.active else {
            return ChangeCause::Up;
        };
        let old = &self.paths[old];
        match (old.state, old.down_cause, chosen) {
            (PathState::Down, Some(cause), _) => ChangeCause::Down(cause),
            (_, _, Some(new)) if self.paths[new].counters.downs == 0 => ChangeCause::Preferred,
            _ => ChangeCause::FailBack(self.cfg.fail_back_after),
        }
    }
}

// Every path index has its own replay window in a session.
const _: () = assert!(MAX_PATHS <= crate::crypto::session::REPLAY_LANES);

fn validate(cfg: &LinkConfig) -> Result<(), LinkConfigError> {
    if cfg.paths.is_empty() || cfg.paths.len() > MAX_PATHS {
        return Err(LinkConfigError::PathCount);
    }
    for (i, p) in cfg.paths.iter().enumerate() {
        if cfg.paths[..i].iter().any(|q| q.id == p.id) {
            return Err(LinkConfigError::DuplicatePath(p.id));
        }
        if !(MIN_PATH_BATCH..=wire::MAX_BATCH_LEN).contains(&p.max_batch) {
            return Err(LinkConfigError::BatchSize(p.id));
        }
    }
    if cfg.initial_seq >= seq::MAX_SEQ - config::WINDOW_FRAMES {
        return Err(LinkConfigError::InitialSeq);
    }
    let frames = cfg.send_buffer_frames as u64;
    if frames == 0 || frames > config::WINDOW_FRAMES || cfg.send_buffer_bytes == 0 {
        return Err(LinkConfigError::SendBuffer);
    }
    Ok(())
}

fn path_stats(p: &Path, now: Duration) -> PathStats {
    PathStats {
        id: p.config.id,
        name: p.config.name.clone(),
        state: p.state,
        rtt_us: p.rtt.smoothed().as_micros() as u64,
        loss: p.loss(now),
        counters: p.counters,
    }
}

/// LZ4-compresses `packet` into `buf` as (u32 length, block); returns [`wire::FLAG_LZ4`] if
/// that is smaller than the packet, else 0 (and `buf`'s content is then unspecified).
fn compress(packet: &[u8], buf: &mut Vec<u8>) -> u8 {
    let bound = lz4_flex::block::get_maximum_output_size(packet.len());
    buf.clear();
    buf.resize(4 + bound, 0);
    buf[..4].copy_from_slice(&(packet.len() as u32).to_le_bytes());
    match lz4_flex::block::compress_into(packet, &mut buf[4..]) {
        Ok(n) if 4 + n < packet.len() => {
            buf.truncate(4 + n);
            wire::FLAG_LZ4
        }
        _ => 0,
    }
}

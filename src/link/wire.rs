//! The fcvpn wire format: the batch header and the frames inside a sealed batch.
//!
//! Every layout here is specified in `proto/SPEC.md` (sections "Batch header" and "Frames");
//! the constants are the offsets and sizes it gives. fcvpn's own integers are little-endian.
//! Parsing is done once, into borrowed views: after [`BatchHeader::parse`] or
//! [`FrameReader::next_frame`] has returned `Ok`, no accessor can panic.

use thiserror::Error;

/// First two bytes of every batch: ASCII "FV".
pub const MAGIC: [u8; 2] = *b"FV";
/// The protocol version this implementation speaks.
pub const VERSION: u8 = 2;
/// Size of the cleartext batch header, which is also the AEAD associated data.
pub const HEADER_LEN: usize = 24;
/// Largest batch (header and body) any path may carry: the 24-bit SCSI byte-count ceiling.
pub const MAX_BATCH_LEN: usize = 16 * 1024 * 1024;
/// Largest IP or Ethernet packet a DATA or FRAGMENT frame may carry (64 KiB GSO packet plus a
/// virtio-net header, rounded up).
pub const MAX_PACKET_LEN: usize = 65_536 + 64;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 2;
const OFF_TYPE: usize = 3;
const OFF_PATH: usize = 4;
const OFF_FLAGS: usize = 5;
const OFF_RESERVED: usize = 6;
const OFF_RECEIVER: usize = 8;
const OFF_BODY_LEN: usize = 12;
const OFF_COUNTER: usize = 16;

/// What a batch carries; byte 3 of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BatchType {
    /// Noise IK first message (body: `crypto::handshake::INITIATION_LEN` bytes).
    Initiation = 1,
    /// Noise IK second message (body: `crypto::handshake::RESPONSE_LEN` bytes).
    Response = 2,
    /// Frames sealed under a session (body: ciphertext then one tag per record).
    Transport = 3,
    /// Nothing to say: the answer to a parked SCSI READ that has no data. Body length 0.
    Idle = 4,
    /// A responder under load answers an initiation with a cookie instead of a response
    /// (body: `crypto::cookie::COOKIE_REPLY_LEN` bytes).
    Cookie = 5,
}

impl BatchType {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Initiation),
            2 => Some(Self::Response),
            3 => Some(Self::Transport),
            4 => Some(Self::Idle),
            5 => Some(Self::Cookie),
            _ => None,
        }
    }
}

/// Why a batch or frame could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    /// Fewer bytes than the header, or than the header's body length.
    #[error("truncated")]
    Truncated,
    /// The magic, version, type or a reserved field is not what this version sends.
    #[error("bad header")]
    BadHeader,
    /// The body length exceeds [`MAX_BATCH_LEN`].
    #[error("too large")]
    TooLarge,
    /// An unknown frame type or a frame field out of range.
    #[error("malformed frame")]
    BadFrame,
}

/// The 24-byte cleartext header that starts every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// What the body holds.
    pub batch_type: BatchType,
    /// The path the sender put the batch on (authenticated for transport batches).
    pub path: u8,
    /// The receiver's session index (0 in an initiation).
    pub receiver: u32,
    /// Body length in bytes (the header excluded).
    pub body_len: u32,
    /// Per-session batch counter: the AEAD nonce of a transport batch; 0 otherwise.
    pub counter: u64,
}

impl BatchHeader {
    /// Parses the header of `batch` and checks that the body it announces is present.
    /// Bytes after `HEADER_LEN + body_len` (SCSI block padding) are ignored.
    pub fn parse(batch: &[u8]) -> Result<Self, WireError> {
        let h: &[u8; HEADER_LEN] = batch
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(WireError::Truncated)?;
        if h[OFF_MAGIC..OFF_MAGIC + 2] != MAGIC
            || h[OFF_VERSION] != VERSION
            || h[OFF_FLAGS] != 0
            || h[OFF_RESERVED..OFF_RESERVED + 2] != [0, 0]
        {
            return Err(WireError::BadHeader);
        }
        let batch_type = BatchType::from_u8(h[OFF_TYPE]).ok_or(WireError::BadHeader)?;
        let body_len = le32(h, OFF_BODY_LEN);
        if body_len as usize > MAX_BATCH_LEN - HEADER_LEN {
            return Err(WireError::TooLarge);
        }
        if batch.len() - HEADER_LEN < body_len as usize {
            return Err(WireError::Truncated);
        }
        let (receiver, counter) = (le32(h, OFF_RECEIVER), le64(h, OFF_COUNTER));
        if batch_type == BatchType::Idle && (body_len, receiver, counter) != (0, 0, 0) {
            // IDLE is unauthenticated and says nothing: any body or index is unread input.
            return Err(WireError::BadHeader);
        }
        Ok(Self {
            batch_type,
            path: h[OFF_PATH],
            receiver,
            body_len,
            counter,
        })
    }

    /// The header's exact bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[OFF_MAGIC..OFF_MAGIC + 2].copy_from_slice(&MAGIC);
        h[OFF_VERSION] = VERSION;
        h[OFF_TYPE] = self.batch_type as u8;
        h[OFF_PATH] = self.path;
        h[OFF_RECEIVER..OFF_RECEIVER + 4].copy_from_slice(&self.receiver.to_le_bytes());
        h[OFF_BODY_LEN..OFF_BODY_LEN + 4].copy_from_slice(&self.body_len.to_le_bytes());
        h[OFF_COUNTER..OFF_COUNTER + 8].copy_from_slice(&self.counter.to_le_bytes());
        h
    }

    /// Total batch length: header plus body.
    pub fn batch_len(&self) -> usize {
        HEADER_LEN + self.body_len as usize
    }
}

/// Writes an IDLE batch for `path` into `buf` and returns its length ([`HEADER_LEN`]).
/// Returns `None` if `buf` is shorter than a header.
pub fn write_idle(path: u8, buf: &mut [u8]) -> Option<usize> {
    let header = BatchHeader {
        batch_type: BatchType::Idle,
        path,
        receiver: 0,
        body_len: 0,
        counter: 0,
    };
    buf.get_mut(..HEADER_LEN)?
        .copy_from_slice(&header.to_bytes());
    Some(HEADER_LEN)
}

/// Frame type codes (first byte of every frame).
pub mod frame_type {
    /// The rest of the plaintext is padding.
    pub const PADDING: u8 = 0x00;
    /// A whole packet.
    pub const DATA: u8 = 0x01;
    /// Part of a packet.
    pub const FRAGMENT: u8 = 0x02;
    /// Acknowledgement: cumulative point and ranges.
    pub const ACK: u8 = 0x03;
    /// Path probe or its reply.
    pub const PROBE: u8 = 0x04;
    /// Forward point: the sender will never send a sequence number below it.
    pub const SKIP: u8 = 0x05;
    /// The sender is shutting the link down.
    pub const CLOSE: u8 = 0x06;
}

/// DATA and FRAGMENT flag: the packet (whole, after reassembly) is an LZ4 block preceded by its
/// uncompressed length (u32).
pub const FLAG_LZ4: u8 = 0x01;
/// PROBE flag: this probe is the reply to the peer's probe with the same id.
pub const FLAG_REPLY: u8 = 0x01;

/// DATA header: type, flags, reserved u16, seq u32, len u32.
pub const DATA_HEADER_LEN: usize = 12;
/// FRAGMENT header: type, flags, reserved u16, seq u32, total u32, offset u32, len u32.
pub const FRAGMENT_HEADER_LEN: usize = 20;
/// ACK header: type, reserved u8, range count u16, cum u32, ack delay (µs) u32.
pub const ACK_HEADER_LEN: usize = 12;
/// One ACK range: start u32, len u32.
pub const ACK_RANGE_LEN: usize = 8;
/// Most ranges one ACK frame may list.
pub const MAX_ACK_RANGES: usize = 64;
/// PROBE: type, flags, reserved u16, id u32.
pub const PROBE_LEN: usize = 8;
/// SKIP: type, reserved u8, reserved u16, forward point u32.
pub const SKIP_LEN: usize = 8;
/// CLOSE: type, reason u8, reserved u16.
pub const CLOSE_LEN: usize = 4;

/// An acknowledged range of wire sequence numbers: `start .. start + len` (wrapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRange {
    /// First sequence number in the range (wire form).
    pub start: u32,
    /// Number of sequence numbers in the range (at least 1).
    pub len: u32,
}

/// A parsed frame, borrowing from the opened batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole packet with wire sequence number `seq`.
    Data {
        /// Wire sequence number.
        seq: u32,
        /// [`FLAG_LZ4`] or 0.
        flags: u8,
        /// The packet bytes as sent (compressed when flagged).
        payload: &'a [u8],
    },
    /// Bytes `offset .. offset + chunk.len()` of the packet `seq`, whose sent form is `total`
    /// bytes long.
    Fragment {
        /// Wire sequence number of the whole packet.
        seq: u32,
        /// [`FLAG_LZ4`] or 0, for the whole packet.
        flags: u8,
        /// Length of the whole packet as sent.
        total: u32,
        /// Offset of this chunk.
        offset: u32,
        /// The chunk.
        chunk: &'a [u8],
    },
    /// Everything below `cum` and every listed range was received.
    Ack {
        /// Cumulative point: the next sequence number the receiver expects.
        cum: u32,
        /// Time the receiver held the acknowledgement, in microseconds.
        delay_us: u32,
        /// The ranges' raw bytes; iterate with [`ack_ranges`].
        ranges: &'a [u8],
    },
    /// A probe (or reply) on the batch's path.
    Probe {
        /// Probe identifier chosen by the prober.
        id: u32,
        /// Whether this is a reply.
        reply: bool,
    },
    /// The sender will never send a sequence number below `forward`.
    Skip {
        /// The new forward point.
        forward: u32,
    },
    /// The sender is closing the link.
    Close {
        /// Why: see [`close_reason`].
        reason: u8,
    },
}

/// CLOSE reasons.
pub mod close_reason {
    /// A clean shutdown of the peer's daemon.
    pub const SHUTDOWN: u8 = 0;
    /// The sender's protocol state for this peer was reset.
    pub const RESET: u8 = 1;
}

/// Iterates the ranges of an ACK frame (as parsed by [`FrameReader`], so always whole).
pub fn ack_ranges(raw: &[u8]) -> impl Iterator<Item = AckRange> + '_ {
    raw.chunks_exact(ACK_RANGE_LEN).map(|r| AckRange {
        start: u32::from_le_bytes([r[0], r[1], r[2], r[3]]),
        len: u32::from_le_bytes([r[4], r[5], r[6], r[7]]),
    })
}

/// Walks the frames of an opened transport batch.
pub struct FrameReader<'a> {
    rest: &'a [u8],
}

impl<'a> FrameReader<'a> {
    /// Starts reading `plaintext`.
    pub fn new(plaintext: &'a [u8]) -> Self {
        Self { rest: plaintext }
    }

    /// The next frame, `Ok(None)` at the end (or at padding), or an error for a malformed frame,
    /// after which the rest of the batch must be discarded.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'a>>, WireError> {
        let Some(&ty) = self.rest.first() else {
            return Ok(None);
        };
        let (frame, used) = match ty {
            frame_type::PADDING => return Ok(None),
            frame_type::DATA => parse_data(self.rest)?,
            frame_type::FRAGMENT => parse_fragment(self.rest)?,
            frame_type::ACK => parse_ack(self.rest)?,
            frame_type::PROBE => parse_probe(self.rest)?,
            frame_type::SKIP => {
                let b = fixed::<SKIP_LEN>(self.rest)?;
                reserved_zero(&b[1..4])?;
                let forward = le32(b, 4);
                (Frame::Skip { forward }, SKIP_LEN)
            }
            frame_type::CLOSE => {
                let b = fixed::<CLOSE_LEN>(self.rest)?;
                reserved_zero(&b[2..4])?;
                (Frame::Close { reason: b[1] }, CLOSE_LEN)
            }
            _ => return Err(WireError::BadFrame),
        };
        self.rest = &self.rest[used..];
        Ok(Some(frame))
    }
}

/// Reserved bytes of a frame must be 0 (SPEC §3), else the frame is malformed.
fn reserved_zero(b: &[u8]) -> Result<(), WireError> {
    match b.iter().all(|&x| x == 0) {
        true => Ok(()),
        false => Err(WireError::BadFrame),
    }
}

fn fixed<const N: usize>(b: &[u8]) -> Result<&[u8; N], WireError> {
    b.get(..N)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::Truncated)
}

fn parse_data(b: &[u8]) -> Result<(Frame<'_>, usize), WireError> {
    let h = fixed::<DATA_HEADER_LEN>(b)?;
    let len = le32(h, 8) as usize;
    if len > MAX_PACKET_LEN || h[2..4] != [0, 0] || h[1] & !FLAG_LZ4 != 0 {
        return Err(WireError::BadFrame);
    }
    let payload = b
        .get(DATA_HEADER_LEN..DATA_HEADER_LEN + len)
        .ok_or(WireError::Truncated)?;
    let frame = Frame::Data {
        seq: le32(h, 4),
        flags: h[1],
        payload,
    };
    Ok((frame, DATA_HEADER_LEN + len))
}

fn parse_fragment(b: &[u8]) -> Result<(Frame<'_>, usize), WireError> {
    let h = fixed::<FRAGMENT_HEADER_LEN>(b)?;
    let (total, offset, len) = (le32(h, 8), le32(h, 12), le32(h, 16));
    let in_range = (total as usize) <= MAX_PACKET_LEN
        && len > 0
        && u64::from(offset) + u64::from(len) <= u64::from(total);
    if !in_range || h[2..4] != [0, 0] || h[1] & !FLAG_LZ4 != 0 {
        return Err(WireError::BadFrame);
    }
    let chunk = b
        .get(FRAGMENT_HEADER_LEN..FRAGMENT_HEADER_LEN + len as usize)
        .ok_or(WireError::Truncated)?;
    let frame = Frame::Fragment {
        seq: le32(h, 4),
        flags: h[1],
        total,
        offset,
        chunk,
    };
    Ok((frame, FRAGMENT_HEADER_LEN + len as usize))
}

fn parse_ack(b: &[u8]) -> Result<(Frame<'_>, usize), WireError> {
    let h = fixed::<ACK_HEADER_LEN>(b)?;
    let count = u16::from_le_bytes([h[2], h[3]]) as usize;
    if count > MAX_ACK_RANGES || h[1] != 0 {
        return Err(WireError::BadFrame);
    }
    let used = ACK_HEADER_LEN + count * ACK_RANGE_LEN;
    let ranges = b.get(ACK_HEADER_LEN..used).ok_or(WireError::Truncated)?;
    if ack_ranges(ranges).any(|r| r.len == 0) {
        return Err(WireError::BadFrame);
    }
    let frame = Frame::Ack {
        cum: le32(h, 4),
        delay_us: le32(h, 8),
        ranges,
    };
    Ok((frame, used))
}

fn parse_probe(b: &[u8]) -> Result<(Frame<'_>, usize), WireError> {
    let h = fixed::<PROBE_LEN>(b)?;
    if h[1] & !FLAG_REPLY != 0 || h[2..4] != [0, 0] {
        return Err(WireError::BadFrame);
    }
    let frame = Frame::Probe {
        id: le32(h, 4),
        reply: h[1] & FLAG_REPLY != 0,
    };
    Ok((frame, PROBE_LEN))
}

/// Appends frames to a plaintext buffer of fixed capacity.
///
/// Every `put_*` either writes the whole frame and returns `true`, or writes nothing and returns
/// `false` when the frame does not fit.
pub struct FrameWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> FrameWriter<'a> {
    /// Writes into `buf`; its length is the capacity.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes still free.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    fn reserve(&mut self, n: usize) -> Option<&mut [u8]> {
        let start = self.len;
        let out = self.buf.get_mut(start..start + n)?;
        self.len += n;
        Some(out)
    }

    /// A DATA frame carrying `payload` whole.
    pub fn put_data(&mut self, seq: u32, flags: u8, payload: &[u8]) -> bool {
        let Some(out) = self.reserve(DATA_HEADER_LEN + payload.len()) else {
            return false;
        };
        out[..4].copy_from_slice(&[frame_type::DATA, flags, 0, 0]);
        out[4..8].copy_from_slice(&seq.to_le_bytes());
        out[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        out[DATA_HEADER_LEN..].copy_from_slice(payload);
        true
    }

    /// A FRAGMENT frame carrying `chunk`, which starts at `offset` in a packet of `total` bytes.
    pub fn put_fragment(
        &mut self,
        seq: u32,
        flags: u8,
        total: u32,
        offset: u32,
        chunk: &[u8],
    ) -> bool {
        let Some(out) = self.reserve(FRAGMENT_HEADER_LEN + chunk.len()) else {
            return false;
        };
        out[..4].copy_from_slice(&[frame_type::FRAGMENT, flags, 0, 0]);
        out[4..8].copy_from_slice(&seq.to_le_bytes());
        out[8..12].copy_from_slice(&total.to_le_bytes());
        out[12..16].copy_from_slice(&offset.to_le_bytes());
        out[16..20].copy_from_slice(&(chunk.len() as u32).to_le_bytes());
        out[FRAGMENT_HEADER_LEN..].copy_from_slice(chunk);
        true
    }

    /// An ACK frame; `ranges` are written in the order given (at most [`MAX_ACK_RANGES`]).
    pub fn put_ack(&mut self, cum: u32, delay_us: u32, ranges: &[AckRange]) -> bool {
        let ranges = &ranges[..ranges.len().min(MAX_ACK_RANGES)];
        let Some(out) = self.reserve(ACK_HEADER_LEN + ranges.len() * ACK_RANGE_LEN) else {
            return false;
        };
        out[..2].copy_from_slice(&[frame_type::ACK, 0]);
        out[2..4].copy_from_slice(&(ranges.len() as u16).to_le_bytes());
        out[4..8].copy_from_slice(&cum.to_le_bytes());
        out[8..12].copy_from_slice(&delay_us.to_le_bytes());
        for (slot, r) in out[ACK_HEADER_LEN..]
            .chunks_exact_mut(ACK_RANGE_LEN)
            .zip(ranges)
        {
            slot[..4].copy_from_slice(&r.start.to_le_bytes());
            slot[4..].copy_from_slice(&r.len.to_le_bytes());
        }
        true
    }

    /// A PROBE frame (or a reply).
    pub fn put_probe(&mut self, id: u32, reply: bool) -> bool {
        let Some(out) = self.reserve(PROBE_LEN) else {
            return false;
        };
        out[..4].copy_from_slice(&[frame_type::PROBE, u8::from(reply), 0, 0]);
        out[4..].copy_from_slice(&id.to_le_bytes());
        true
    }

    /// A SKIP frame.
    pub fn put_skip(&mut self, forward: u32) -> bool {
        let Some(out) = self.reserve(SKIP_LEN) else {
            return false;
        };
        out[..4].copy_from_slice(&[frame_type::SKIP, 0, 0, 0]);
        out[4..].copy_from_slice(&forward.to_le_bytes());
        true
    }

    /// A CLOSE frame.
    pub fn put_close(&mut self, reason: u8) -> bool {
        let Some(out) = self.reserve(CLOSE_LEN) else {
            return false;
        };
        out.copy_from_slice(&[frame_type::CLOSE, reason, 0, 0]);
        true
    }
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> BatchHeader {
        BatchHeader {
            batch_type: BatchType::Transport,
            path: 1,
            receiver: 0xdead_beef,
            body_len: 3,
            counter: 0x0102_0304_0506_0708,
        }
    }

    #[test]
    fn header_round_trip_and_exact_bytes() {
        let mut batch = header().to_bytes().to_vec();
        assert_eq!(
            hex(&batch),
            "4656020301000000efbeadde030000000807060504030201"
        );
        batch.extend_from_slice(&[9, 9, 9, 0, 0]);
        assert_eq!(BatchHeader::parse(&batch), Ok(header()));
    }

    #[test]
    fn header_rejects_damage() {
        let good = [header().to_bytes().as_slice(), &[1, 2, 3]].concat();
        for (i, expect) in [
            (0, WireError::BadHeader),
            (2, WireError::BadHeader),
            (5, WireError::BadHeader),
        ] {
            let mut b = good.clone();
            b[i] ^= 0x40;
            assert_eq!(BatchHeader::parse(&b), Err(expect), "byte {i}");
        }
        let mut b = good.clone();
        b[OFF_TYPE] = 9;
        assert_eq!(BatchHeader::parse(&b), Err(WireError::BadHeader));
        assert_eq!(
            BatchHeader::parse(&good[..good.len() - 1]),
            Err(WireError::Truncated)
        );
        assert_eq!(BatchHeader::parse(&good[..10]), Err(WireError::Truncated));
        let mut b = good.clone();
        b[OFF_BODY_LEN + 3] = 0xff;
        assert_eq!(BatchHeader::parse(&b), Err(WireError::TooLarge));
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = [0u8; 256];
        let mut w = FrameWriter::new(&mut buf);
        let ranges = [
            AckRange { start: 10, len: 2 },
            AckRange { start: 5, len: 1 },
        ];
        assert!(w.put_data(7, FLAG_LZ4, b"hello"));
        assert!(w.put_fragment(8, 0, 100, 40, b"abc"));
        assert!(w.put_ack(u32::MAX, 250, &ranges));
        assert!(w.put_probe(42, true));
        assert!(w.put_skip(3));
        assert!(w.put_close(close_reason::SHUTDOWN));
        let n = w.len();
        let mut r = FrameReader::new(&buf[..n]);
        assert_eq!(
            r.next_frame(),
            Ok(Some(Frame::Data {
                seq: 7,
                flags: FLAG_LZ4,
                payload: b"hello"
            }))
        );
        let frag = Frame::Fragment {
            seq: 8,
            flags: 0,
            total: 100,
            offset: 40,
            chunk: b"abc",
        };
        assert_eq!(r.next_frame(), Ok(Some(frag)));
        let Ok(Some(Frame::Ack {
            cum,
            delay_us,
            ranges: raw,
        })) = r.next_frame()
        else {
            panic!("ack expected");
        };
        assert_eq!((cum, delay_us), (u32::MAX, 250));
        assert_eq!(ack_ranges(raw).collect::<Vec<_>>(), ranges);
        assert_eq!(
            r.next_frame(),
            Ok(Some(Frame::Probe {
                id: 42,
                reply: true
            }))
        );
        assert_eq!(r.next_frame(), Ok(Some(Frame::Skip { forward: 3 })));
        assert_eq!(r.next_frame(), Ok(Some(Frame::Close { reason: 0 })));
        assert_eq!(r.next_frame(), Ok(None));
    }

    #[test]
    fn writer_refuses_what_does_not_fit() {
        let mut buf = [0u8; 16];
        let mut w = FrameWriter::new(&mut buf);
        assert!(!w.put_data(1, 0, &[0; 5]));
        assert!(w.is_empty());
        assert!(w.put_data(1, 0, &[0; 4]));
        assert_eq!(w.remaining(), 0);
    }

    #[test]
    fn reader_rejects_malformed_frames() {
        let cases: &[&[u8]] = &[
            &[frame_type::DATA, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1],
            &[frame_type::DATA, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
            &[
                frame_type::FRAGMENT,
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                4,
                0,
                0,
                0,
                3,
                0,
                0,
                0,
                2,
                0,
                0,
                0,
                1,
                2,
            ],
            &[frame_type::ACK, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[
                frame_type::ACK,
                0,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            ],
            &[frame_type::PROBE, 2, 0, 0, 0, 0, 0, 0],
            &[0x77],
            &[frame_type::SKIP, 0],
        ];
        for (i, c) in cases.iter().enumerate() {
            assert!(FrameReader::new(c).next_frame().is_err(), "case {i}");
        }
    }

    #[test]
    fn skip_and_close_reserved_bytes_must_be_zero() {
        for at in 1..4 {
            let mut skip = [frame_type::SKIP, 0, 0, 0, 7, 0, 0, 0];
            assert!(FrameReader::new(&skip).next_frame().is_ok());
            skip[at] = 1;
            let got = FrameReader::new(&skip).next_frame();
            assert_eq!(got, Err(WireError::BadFrame), "skip byte {at}");
        }
        for at in 2..4 {
            let mut close = [frame_type::CLOSE, close_reason::RESET, 0, 0];
            assert!(FrameReader::new(&close).next_frame().is_ok());
            close[at] = 0x80;
            let got = FrameReader::new(&close).next_frame();
            assert_eq!(got, Err(WireError::BadFrame), "close byte {at}");
        }
    }

    #[test]
    fn idle_with_a_body_is_a_bad_header() {
        let mut b = [0u8; HEADER_LEN + 4];
        assert_eq!(write_idle(0, &mut b), Some(HEADER_LEN));
        assert!(BatchHeader::parse(&b).is_ok());
        for off in [OFF_BODY_LEN, OFF_RECEIVER, OFF_COUNTER + 7] {
            let mut bad = b;
            bad[off] = 4;
            assert_eq!(BatchHeader::parse(&bad), Err(WireError::BadHeader), "{off}");
        }
    }

    #[test]
    fn padding_ends_the_frames() {
        let buf = [frame_type::PADDING, 0x77, 0x77];
        assert_eq!(FrameReader::new(&buf).next_frame(), Ok(None));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}

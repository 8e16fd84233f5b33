//! The wire format between ports and the simulated fabric: message types, [`encode`] and [`decode`].
//!
//! Every message is one frame: `len` (u32 LE, the number of bytes after this field, at least 1
//! and at most [`MAX_FRAME_LEN`]) ‖ `type` (u8) ‖ the fields of that type, little-endian. A frame
//! holds exactly its fields: a field that runs past the end of the frame, a byte left over after
//! the last field, an unknown type or an out-of-range value is a [`ProtoError`]. The layouts are
//! listed in the documentation of the parent module.
//!
//! [`decode`] never panics, whatever the bytes: it is run on random input in the tests.

use std::fmt;

use thiserror::Error;

/// Bytes taken by the length field in front of every frame.
pub const LEN_FIELD: usize = 4;
/// The largest value of the length field (17 MiB): a 16 MiB transfer and its headers fit.
pub const MAX_FRAME_LEN: u32 = 17 * 1024 * 1024;
/// The longest CDB a COMMAND carries.
pub const MAX_CDB_LEN: usize = 32;
/// The longest sense data a COMPLETION carries.
pub const MAX_SENSE_LEN: usize = 96;

/// Message type: a port logs in (port → fabric).
pub const TYPE_LOGIN: u8 = 1;
/// Message type: the fabric answers a LOGIN (fabric → port).
pub const TYPE_LOGIN_ACK: u8 = 2;
/// Message type: a SCSI command (initiator → fabric → target).
pub const TYPE_COMMAND: u8 = 3;
/// Message type: the completion of a command (target → fabric → initiator).
pub const TYPE_COMPLETION: u8 = 4;
/// Message type: abort a task (initiator → fabric → target).
pub const TYPE_ABORT: u8 = 5;

/// Fixed bytes of a LOGIN frame after the length field: type, role, wwpn.
const LOGIN_LEN: usize = 1 + 1 + 8;
/// Fixed bytes of a LOGIN_ACK frame after the length field: type, status.
const LOGIN_ACK_LEN: usize = 1 + 1;
/// Fixed bytes of a COMMAND frame after the length field, without the CDB and data-out bytes:
/// type, task, initiator, direction, cdb_len, data_in_len, data_out_len.
const COMMAND_FIXED_LEN: usize = 1 + 8 + 8 + 1 + 1 + 4 + 4;
/// Fixed bytes of a COMPLETION frame after the length field, without the sense and data-in bytes:
/// type, task, initiator, transport, status, sense_len, data_in_len.
const COMPLETION_FIXED_LEN: usize = 1 + 8 + 8 + 1 + 1 + 1 + 4;
/// Fixed bytes of an ABORT frame after the length field: type, task, initiator.
const ABORT_LEN: usize = 1 + 8 + 8;

/// What a port is on the fabric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Starts commands (wire value 1).
    Initiator,
    /// Serves commands (wire value 2); at most one is logged in at a time.
    Target,
}

impl Role {
    fn to_wire(self) -> u8 {
        match self {
            Role::Initiator => 1,
            Role::Target => 2,
        }
    }

    fn from_wire(v: u8) -> Result<Self, ProtoError> {
        match v {
            1 => Ok(Role::Initiator),
            2 => Ok(Role::Target),
            other => Err(ProtoError::InvalidRole(other)),
        }
    }
}

/// The fabric's answer to a LOGIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoginStatus {
    /// Logged in (wire value 0).
    Ok,
    /// Refused: another target port is logged in (wire value 1). The fabric closes the connection.
    TargetInUse,
}

impl LoginStatus {
    fn to_wire(self) -> u8 {
        match self {
            LoginStatus::Ok => 0,
            LoginStatus::TargetInUse => 1,
        }
    }

    fn from_wire(v: u8) -> Result<Self, ProtoError> {
        match v {
            0 => Ok(LoginStatus::Ok),
            1 => Ok(LoginStatus::TargetInUse),
            other => Err(ProtoError::InvalidLoginStatus(other)),
        }
    }
}

/// The data direction of a command, as FCP_CMND's RDDATA/WRDATA bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// No data (wire value 0): `data_in_len` is 0 and there are no data-out bytes.
    None,
    /// Data-out, a write (wire value 1): `data_in_len` is 0.
    Write,
    /// Data-in, a read (wire value 2): there are no data-out bytes.
    Read,
}

impl Direction {
    fn to_wire(self) -> u8 {
        match self {
            Direction::None => 0,
            Direction::Write => 1,
            Direction::Read => 2,
        }
    }

    fn from_wire(v: u8) -> Result<Self, ProtoError> {
        match v {
            0 => Ok(Direction::None),
            1 => Ok(Direction::Write),
            2 => Ok(Direction::Read),
            other => Err(ProtoError::InvalidDirection(other)),
        }
    }
}

/// How the transport delivered a command, as the host byte of a Linux SCSI result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportStatus {
    /// The target answered (wire value 0): look at the SAM status, sense and data.
    Delivered,
    /// The transport failed the command (wire value 1), like `DID_ERROR`: no data.
    Error,
    /// No target port could be reached (wire value 2), like `DID_NO_CONNECT`: no data.
    NoConnection,
    /// The command was aborted (wire value 3), like `DID_ABORT`: no data.
    Aborted,
}

impl TransportStatus {
    fn to_wire(self) -> u8 {
        match self {
            TransportStatus::Delivered => 0,
            TransportStatus::Error => 1,
            TransportStatus::NoConnection => 2,
            TransportStatus::Aborted => 3,
        }
    }

    fn from_wire(v: u8) -> Result<Self, ProtoError> {
        match v {
            0 => Ok(TransportStatus::Delivered),
            1 => Ok(TransportStatus::Error),
            2 => Ok(TransportStatus::NoConnection),
            3 => Ok(TransportStatus::Aborted),
            other => Err(ProtoError::InvalidTransport(other)),
        }
    }
}

/// A SCSI command (message type 3).
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// The task tag. An initiator picks it, unique among its outstanding commands; the target
    /// sees the fabric's exchange identifier instead and MUST treat it as opaque and echo it.
    pub task: u64,
    /// The initiator's WWPN. Initiators send 0; the fabric fills it in from the login.
    pub initiator: u64,
    /// The data direction; [`encode`] and [`decode`] check that the lengths agree with it.
    pub direction: Direction,
    /// The CDB, at most [`MAX_CDB_LEN`] bytes.
    pub cdb: Vec<u8>,
    /// The number of data-in bytes the initiator expects at most (FCP_DL of a read).
    pub data_in_len: u32,
    /// The data-out bytes of a write.
    pub data_out: Vec<u8>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("task", &self.task)
            .field("initiator", &format_args!("{:#018x}", self.initiator))
            .field("direction", &self.direction)
            .field("cdb", &format_args!("{:02x?}", self.cdb))
            .field("data_in_len", &self.data_in_len)
            .field("data_out_len", &self.data_out.len())
            .finish()
    }
}

/// The completion of a command (message type 4).
#[derive(Clone, PartialEq, Eq)]
pub struct Completion {
    /// The task tag of the command, as the receiver knows it.
    pub task: u64,
    /// The initiator's WWPN, as in the command.
    pub initiator: u64,
    /// Whether the target answered; when it did not, `status`, `sense` and `data_in` mean nothing.
    pub transport: TransportStatus,
    /// The SAM status byte (see [`crate::scsi::status`]).
    pub status: u8,
    /// Sense data, at most [`MAX_SENSE_LEN`] bytes.
    pub sense: Vec<u8>,
    /// The data-in bytes; the residual is the command's `data_in_len` minus their length.
    pub data_in: Vec<u8>,
}

impl Completion {
    /// A completion that carries only a transport failure: status 0, no sense, no data.
    pub fn transport_failure(task: u64, initiator: u64, transport: TransportStatus) -> Self {
        Completion {
            task,
            initiator,
            transport,
            status: 0,
            sense: Vec::new(),
            data_in: Vec::new(),
        }
    }

    /// The residual count for a command that expected `expected` bytes: the bytes not transferred
    /// (negative on an overrun, which the fabric never delivers).
    pub fn resid(&self, expected: u32) -> i64 {
        i64::from(expected) - self.data_in.len() as i64
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("task", &self.task)
            .field("initiator", &format_args!("{:#018x}", self.initiator))
            .field("transport", &self.transport)
            .field("status", &format_args!("{:#04x}", self.status))
            .field("sense", &format_args!("{:02x?}", self.sense))
            .field("data_in_len", &self.data_in.len())
            .finish()
    }
}

/// One message between a port and the fabric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Port → fabric, the first message on a connection (type 1).
    Login {
        /// Initiator or target.
        role: Role,
        /// The port's world wide port name.
        wwpn: u64,
    },
    /// Fabric → port, the answer to LOGIN (type 2).
    LoginAck {
        /// Whether the login was accepted.
        status: LoginStatus,
    },
    /// Initiator → fabric → target (type 3).
    Command(Command),
    /// Target → fabric → initiator (type 4).
    Completion(Completion),
    /// Initiator → fabric → target (type 5): drop the task if it is still held; never answered.
    Abort {
        /// The task tag, as the receiver knows it.
        task: u64,
        /// The initiator's WWPN (initiators send 0; the fabric fills it in).
        initiator: u64,
    },
}

impl Message {
    /// The message's type byte.
    pub fn type_code(&self) -> u8 {
        match self {
            Message::Login { .. } => TYPE_LOGIN,
            Message::LoginAck { .. } => TYPE_LOGIN_ACK,
            Message::Command(_) => TYPE_COMMAND,
            Message::Completion(_) => TYPE_COMPLETION,
            Message::Abort { .. } => TYPE_ABORT,
        }
    }

    /// The value of the length field of this message's frame (type byte included), unchecked.
    fn body_len(&self) -> usize {
        match self {
            Message::Login { .. } => LOGIN_LEN,
            Message::LoginAck { .. } => LOGIN_ACK_LEN,
            Message::Command(c) => COMMAND_FIXED_LEN + c.cdb.len() + c.data_out.len(),
            Message::Completion(c) => COMPLETION_FIXED_LEN + c.sense.len() + c.data_in.len(),
            Message::Abort { .. } => ABORT_LEN,
        }
    }

    /// The number of bytes [`encode`] appends for this message, the length field included.
    pub fn encoded_len(&self) -> usize {
        LEN_FIELD + self.body_len()
    }

    /// Checks every limit [`encode`] and [`decode`] enforce.
    pub fn validate(&self) -> Result<(), ProtoError> {
        match self {
            Message::Command(c) => {
                if c.cdb.len() > MAX_CDB_LEN {
                    return Err(ProtoError::CdbTooLong(c.cdb.len()));
                }
                check_direction(c.direction, c.data_in_len, c.data_out.len())?;
            }
            Message::Completion(c) => {
                if c.sense.len() > MAX_SENSE_LEN {
                    return Err(ProtoError::SenseTooLong(c.sense.len()));
                }
            }
            Message::Login { .. } | Message::LoginAck { .. } | Message::Abort { .. } => {}
        }
        let len = self.body_len();
        if len > MAX_FRAME_LEN as usize {
            return Err(ProtoError::FrameTooLarge(len));
        }
        Ok(())
    }
}

fn check_direction(
    direction: Direction,
    data_in_len: u32,
    data_out_len: usize,
) -> Result<(), ProtoError> {
    let ok = match direction {
        Direction::None => data_in_len == 0 && data_out_len == 0,
        Direction::Write => data_in_len == 0,
        Direction::Read => data_out_len == 0,
    };
    if ok {
        Ok(())
    } else {
        Err(ProtoError::DirectionMismatch {
            direction,
            data_in_len,
            data_out_len,
        })
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProtoError {
    /// The length field is 0: a frame holds at least its type byte.
    #[error("empty frame (length field 0)")]
    EmptyFrame,
    /// The frame is longer than [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the maximum of {MAX_FRAME_LEN}")]
    FrameTooLarge(usize),
    /// The type byte names no message.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A field runs past the end of the frame.
    #[error("message type {0} is truncated")]
    Truncated(u8),
    /// Bytes are left in the frame after the last field.
    #[error("message type {ty} has {extra} trailing bytes")]
    TrailingBytes {
        /// The message type.
        ty: u8,
        /// The number of bytes left over.
        extra: usize,
    },
    /// The role byte of a LOGIN is neither 1 nor 2.
    #[error("invalid role {0}")]
    InvalidRole(u8),
    /// The status byte of a LOGIN_ACK is unknown.
    #[error("invalid login status {0}")]
    InvalidLoginStatus(u8),
    /// The direction byte of a COMMAND is unknown.
    #[error("invalid data direction {0}")]
    InvalidDirection(u8),
    /// The transport byte of a COMPLETION is unknown.
    #[error("invalid transport status {0}")]
    InvalidTransport(u8),
    /// The CDB is longer than [`MAX_CDB_LEN`].
    #[error("CDB of {0} bytes exceeds the maximum of {MAX_CDB_LEN}")]
    CdbTooLong(usize),
    /// The sense data is longer than [`MAX_SENSE_LEN`].
    #[error("sense data of {0} bytes exceeds the maximum of {MAX_SENSE_LEN}")]
    SenseTooLong(usize),
    /// A command's data lengths disagree with its direction.
    #[error(
        "data direction {direction:?} with data_in_len {data_in_len} and {data_out_len} data-out bytes"
    )]
    DirectionMismatch {
        /// The command's direction.
        direction: Direction,
        /// The expected data-in length.
        data_in_len: u32,
        /// The number of data-out bytes.
        data_out_len: usize,
    },
}

/// Appends the frame of `msg` to `out`. On error (a limit of [`Message::validate`]) nothing is
/// appended.
pub fn encode(msg: &Message, out: &mut Vec<u8>) -> Result<(), ProtoError> {
    msg.validate()?;
    let body_len = msg.body_len();
    out.reserve(LEN_FIELD + body_len);
    // validate() bounded body_len by MAX_FRAME_LEN, so it fits in a u32.
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.push(msg.type_code());
    match msg {
        Message::Login { role, wwpn } => {
            out.push(role.to_wire());
            out.extend_from_slice(&wwpn.to_le_bytes());
        }
        Message::LoginAck { status } => out.push(status.to_wire()),
        Message::Command(c) => {
            out.extend_from_slice(&c.task.to_le_bytes());
            out.extend_from_slice(&c.initiator.to_le_bytes());
            out.push(c.direction.to_wire());
            out.push(c.cdb.len() as u8);
            out.extend_from_slice(&c.cdb);
            out.extend_from_slice(&c.data_in_len.to_le_bytes());
            out.extend_from_slice(&(c.data_out.len() as u32).to_le_bytes());
            out.extend_from_slice(&c.data_out);
        }
        Message::Completion(c) => {
            out.extend_from_slice(&c.task.to_le_bytes());
            out.extend_from_slice(&c.initiator.to_le_bytes());
            out.push(c.transport.to_wire());
            out.push(c.status);
            out.push(c.sense.len() as u8);
            out.extend_from_slice(&c.sense);
            out.extend_from_slice(&(c.data_in.len() as u32).to_le_bytes());
            out.extend_from_slice(&c.data_in);
        }
        Message::Abort { task, initiator } => {
            out.extend_from_slice(&task.to_le_bytes());
            out.extend_from_slice(&initiator.to_le_bytes());
        }
    }
    Ok(())
}

/// Encodes `msg` into a new vector (see [`encode`]).
pub fn encode_to_vec(msg: &Message) -> Result<Vec<u8>, ProtoError> {
    let mut out = Vec::with_capacity(msg.encoded_len());
    encode(msg, &mut out)?;
    Ok(out)
}

/// The total length (length field included) of the frame that starts `buf`, once its length field
/// is there: `Ok(None)` when fewer than [`LEN_FIELD`] bytes are available. Errors on a length field
/// of 0 or above [`MAX_FRAME_LEN`], so a reader can refuse a frame before buffering it.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ProtoError> {
    let Some(field) = buf.get(..LEN_FIELD) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
    if len == 0 {
        return Err(ProtoError::EmptyFrame);
    }
    if len > MAX_FRAME_LEN {
        return Err(ProtoError::FrameTooLarge(len as usize));
    }
    Ok(Some(LEN_FIELD + len as usize))
}

/// Decodes the frame at the start of `buf`: `Ok(Some((message, consumed)))` with the number of
/// bytes the frame took, `Ok(None)` when `buf` does not yet hold the whole frame (read more and
/// call again), or an error when the frame is malformed (the stream cannot be resynchronised).
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, ProtoError> {
    let Some(total) = frame_len(buf)? else {
        return Ok(None);
    };
    let Some(frame) = buf.get(LEN_FIELD..total) else {
        return Ok(None);
    };
    let msg = decode_body(frame)?;
    Ok(Some((msg, total)))
}

/// Decodes one frame without its length field: the type byte and the fields, exactly.
fn decode_body(frame: &[u8]) -> Result<Message, ProtoError> {
    let Some((&ty, fields)) = frame.split_first() else {
        return Err(ProtoError::EmptyFrame);
    };
    let mut r = Reader { rest: fields, ty };
    let msg = match ty {
        TYPE_LOGIN => {
            let role = Role::from_wire(r.u8()?)?;
            let wwpn = r.u64()?;
            Message::Login { role, wwpn }
        }
        TYPE_LOGIN_ACK => Message::LoginAck {
            status: LoginStatus::from_wire(r.u8()?)?,
        },
        TYPE_COMMAND => {
            let task = r.u64()?;
            let initiator = r.u64()?;
            let direction = Direction::from_wire(r.u8()?)?;
            let cdb_len = usize::from(r.u8()?);
            if cdb_len > MAX_CDB_LEN {
                return Err(ProtoError::CdbTooLong(cdb_len));
            }
            let cdb = r.bytes(cdb_len)?.to_vec();
            let data_in_len = r.u32()?;
            let data_out_len = r.u32()? as usize;
            check_direction(direction, data_in_len, data_out_len)?;
            let data_out = r.bytes(data_out_len)?.to_vec();
            Message::Command(Command {
                task,
                initiator,
                direction,
                cdb,
                data_in_len,
                data_out,
            })
        }
        TYPE_COMPLETION => {
            let task = r.u64()?;
            let initiator = r.u64()?;
            let transport = TransportStatus::from_wire(r.u8()?)?;
            let status = r.u8()?;
            let sense_len = usize::from(r.u8()?);
            if sense_len > MAX_SENSE_LEN {
                return Err(ProtoError::SenseTooLong(sense_len));
            }
            let sense = r.bytes(sense_len)?.to_vec();
            let data_in_len = r.u32()? as usize;
            let data_in = r.bytes(data_in_len)?.to_vec();
            Message::Completion(Completion {
                task,
                initiator,
                transport,
                status,
                sense,
                data_in,
            })
        }
        TYPE_ABORT => {
            let task = r.u64()?;
            let initiator = r.u64()?;
            Message::Abort { task, initiator }
        }
        other => return Err(ProtoError::UnknownType(other)),
    };
    if !r.rest.is_empty() {
        return Err(ProtoError::TrailingBytes {
            ty,
            extra: r.rest.len(),
        });
    }
    Ok(msg)
}

/// Reads little-endian fields off the front of a frame; running past its end is
/// [`ProtoError::Truncated`].
struct Reader<'a> {
    rest: &'a [u8],
    ty: u8,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if n > self.rest.len() {
            return Err(ProtoError::Truncated(self.ty));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, ProtoError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ProtoError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        vec![
            Message::Login {
                role: Role::Initiator,
                wwpn: 0x2100_0024_ff00_0001,
            },
            Message::Login {
                role: Role::Target,
                wwpn: u64::MAX,
            },
            Message::LoginAck {
                status: LoginStatus::Ok,
            },
            Message::LoginAck {
                status: LoginStatus::TargetInUse,
            },
            Message::Command(Command {
                task: 7,
                initiator: 0,
                direction: Direction::Write,
                cdb: vec![0x8a, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1, 0, 0],
                data_in_len: 0,
                data_out: vec![0xa5; 512],
            }),
            Message::Command(Command {
                task: u64::MAX,
                initiator: 42,
                direction: Direction::Read,
                cdb: vec![0x88; MAX_CDB_LEN],
                data_in_len: 1 << 20,
                data_out: Vec::new(),
            }),
            Message::Command(Command {
                task: 0,
                initiator: 1,
                direction: Direction::None,
                cdb: Vec::new(),
                data_in_len: 0,
                data_out: Vec::new(),
            }),
            Message::Completion(Completion {
                task: 9,
                initiator: 3,
                transport: TransportStatus::Delivered,
                status: 0x02,
                sense: vec![0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0],
                data_in: vec![1, 2, 3],
            }),
            Message::Completion(Completion {
                task: 10,
                initiator: 3,
                transport: TransportStatus::Aborted,
                status: 0,
                sense: vec![0xff; MAX_SENSE_LEN],
                data_in: Vec::new(),
            }),
            Message::Completion(Completion::transport_failure(
                11,
                4,
                TransportStatus::NoConnection,
            )),
            Message::Completion(Completion::transport_failure(12, 4, TransportStatus::Error)),
            Message::Abort {
                task: 5,
                initiator: 6,
            },
        ]
    }

    #[test]
    fn round_trips() {
        for msg in samples() {
            let bytes = encode_to_vec(&msg).unwrap();
            assert_eq!(bytes.len(), msg.encoded_len());
            assert_eq!(decode(&bytes).unwrap(), Some((msg.clone(), bytes.len())));
            // Every strict prefix needs more bytes.
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]).unwrap(), None, "{msg:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn decodes_back_to_back_frames() {
        let mut stream = Vec::new();
        for msg in samples() {
            encode(&msg, &mut stream).unwrap();
        }
        let mut at = 0;
        let mut out = Vec::new();
        while let Some((msg, used)) = decode(&stream[at..]).unwrap() {
            out.push(msg);
            at += used;
        }
        assert_eq!(at, stream.len());
        assert_eq!(out, samples());
    }

    #[test]
    fn exact_bytes() {
        let login = encode_to_vec(&Message::Login {
            role: Role::Target,
            wwpn: 0x0102_0304_0506_0708,
        })
        .unwrap();
        assert_eq!(login, [10, 0, 0, 0, 1, 2, 8, 7, 6, 5, 4, 3, 2, 1]);
        let ack = encode_to_vec(&Message::LoginAck {
            status: LoginStatus::TargetInUse,
        })
        .unwrap();
        assert_eq!(ack, [2, 0, 0, 0, 2, 1]);
        let cmd = encode_to_vec(&Message::Command(Command {
            task: 1,
            initiator: 2,
            direction: Direction::Write,
            cdb: vec![0xaa, 0xbb],
            data_in_len: 0,
            data_out: vec![0xcc],
        }))
        .unwrap();
        #[rustfmt::skip]
        let want = [
            30, 0, 0, 0, 3,
            1, 0, 0, 0, 0, 0, 0, 0,
            2, 0, 0, 0, 0, 0, 0, 0,
            1, 2, 0xaa, 0xbb,
            0, 0, 0, 0,
            1, 0, 0, 0, 0xcc,
        ];
        assert_eq!(cmd, want);
        let cpl = encode_to_vec(&Message::Completion(Completion {
            task: 1,
            initiator: 2,
            transport: TransportStatus::Delivered,
            status: 0x02,
            sense: vec![0x70],
            data_in: vec![0xdd, 0xee],
        }))
        .unwrap();
        #[rustfmt::skip]
        let want = [
            27, 0, 0, 0, 4,
            1, 0, 0, 0, 0, 0, 0, 0,
            2, 0, 0, 0, 0, 0, 0, 0,
            0, 2, 1, 0x70,
            2, 0, 0, 0, 0xdd, 0xee,
        ];
        assert_eq!(cpl, want);
        let abort = encode_to_vec(&Message::Abort {
            task: 1,
            initiator: 2,
        })
        .unwrap();
        assert_eq!(
            abort,
            [
                17, 0, 0, 0, 5, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn rejects_malformed_frames() {
        let cases: &[(&[u8], ProtoError)] = &[
            (&[0, 0, 0, 0], ProtoError::EmptyFrame),
            (&[1, 0, 0x10, 1], ProtoError::FrameTooLarge(0x0110_0001)),
            (&[1, 0, 0, 0, 6], ProtoError::UnknownType(6)),
            (&[1, 0, 0, 0, 0], ProtoError::UnknownType(0)),
            (&[2, 0, 0, 0, 1, 1], ProtoError::Truncated(1)),
            (
                &[10, 0, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0],
                ProtoError::InvalidRole(3),
            ),
            (&[2, 0, 0, 0, 2, 2], ProtoError::InvalidLoginStatus(2)),
            (
                &[3, 0, 0, 0, 2, 0, 9],
                ProtoError::TrailingBytes { ty: 2, extra: 1 },
            ),
        ];
        for (bytes, err) in cases {
            assert_eq!(decode(bytes).as_ref(), Err(err), "{bytes:?}");
        }
    }

    #[test]
    fn rejects_bad_fields_in_commands_and_completions() {
        let good = encode_to_vec(&Message::Command(Command {
            task: 1,
            initiator: 0,
            direction: Direction::Read,
            cdb: vec![0x88; 16],
            data_in_len: 4096,
            data_out: Vec::new(),
        }))
        .unwrap();
        // Offsets: 4 length, 1 type, 8 task, 8 initiator, then direction at 21, cdb_len at 22.
        let mut bad = good.clone();
        bad[21] = 3;
        assert_eq!(decode(&bad), Err(ProtoError::InvalidDirection(3)));
        let mut bad = good.clone();
        bad[21] = 1; // a write that expects data-in
        assert!(matches!(
            decode(&bad),
            Err(ProtoError::DirectionMismatch { .. })
        ));
        let mut bad = good.clone();
        bad[22] = 33;
        assert_eq!(decode(&bad), Err(ProtoError::CdbTooLong(33)));
        let mut bad = good.clone();
        bad[22] = 17; // the CDB swallows a byte of data_in_len: data_out_len runs past the end
        assert_eq!(decode(&bad), Err(ProtoError::Truncated(TYPE_COMMAND)));

        let good = encode_to_vec(&Message::Completion(Completion::transport_failure(
            1,
            2,
            TransportStatus::Error,
        )))
        .unwrap();
        let mut bad = good.clone();
        bad[21] = 4;
        assert_eq!(decode(&bad), Err(ProtoError::InvalidTransport(4)));
        let mut bad = good.clone();
        bad[23] = 97;
        assert_eq!(decode(&bad), Err(ProtoError::SenseTooLong(97)));
        let mut bad = good;
        bad[24] = 1; // data_in_len 1 with no byte
        assert_eq!(decode(&bad), Err(ProtoError::Truncated(TYPE_COMPLETION)));
    }

    #[test]
    fn encode_enforces_limits() {
        let mut out = vec![0xee];
        let long_cdb = Message::Command(Command {
            task: 1,
            initiator: 0,
            direction: Direction::None,
            cdb: vec![0; 33],
            data_in_len: 0,
            data_out: Vec::new(),
        });
        assert_eq!(encode(&long_cdb, &mut out), Err(ProtoError::CdbTooLong(33)));
        let mismatch = Message::Command(Command {
            task: 1,
            initiator: 0,
            direction: Direction::Read,
            cdb: vec![0x88],
            data_in_len: 512,
            data_out: vec![0; 512],
        });
        assert!(matches!(
            encode(&mismatch, &mut out),
            Err(ProtoError::DirectionMismatch { .. })
        ));
        let long_sense = Message::Completion(Completion {
            task: 1,
            initiator: 0,
            transport: TransportStatus::Delivered,
            status: 2,
            sense: vec![0; 97],
            data_in: Vec::new(),
        });
        assert_eq!(
            encode(&long_sense, &mut out),
            Err(ProtoError::SenseTooLong(97))
        );
        let huge = Message::Completion(Completion {
            task: 1,
            initiator: 0,
            transport: TransportStatus::Delivered,
            status: 0,
            sense: Vec::new(),
            data_in: vec![0; MAX_FRAME_LEN as usize],
        });
        assert!(matches!(
            encode(&huge, &mut out),
            Err(ProtoError::FrameTooLarge(_))
        ));
        assert_eq!(out, [0xee], "nothing appended on error");

        // The largest frame passes.
        let largest = Message::Completion(Completion {
            task: 1,
            initiator: 0,
            transport: TransportStatus::Delivered,
            status: 0,
            sense: Vec::new(),
            data_in: vec![0; MAX_FRAME_LEN as usize - COMPLETION_FIXED_LEN],
        });
        let bytes = encode_to_vec(&largest).unwrap();
        assert_eq!(
            frame_len(&bytes),
            Ok(Some(LEN_FIELD + MAX_FRAME_LEN as usize))
        );
        assert_eq!(decode(&bytes).unwrap().unwrap().1, bytes.len());
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(0x5eed_fab1);
        let valid: Vec<Vec<u8>> = samples()
            .iter()
            .map(|m| encode_to_vec(m).unwrap())
            .collect();
        for round in 0..20_000 {
            let mut buf = if round % 2 == 0 {
                // Pure noise, with a small plausible length field half the time.
                let mut b: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
                if b.len() >= 5 && rng.bool() {
                    let len = rng.u32(0..b.len() as u32);
                    b[..4].copy_from_slice(&len.to_le_bytes());
                    b[4] = rng.u8(0..8);
                }
                b
            } else {
                // A valid frame with a few bytes flipped, cut or extended.
                let mut b = valid[rng.usize(..valid.len())].clone();
                for _ in 0..rng.usize(1..4) {
                    let i = rng.usize(..b.len());
                    b[i] = rng.u8(..);
                }
                if rng.bool() {
                    b.truncate(rng.usize(..=b.len()));
                } else {
                    b.extend((0..rng.usize(0..8)).map(|_| rng.u8(..)));
                }
                b
            };
            if let Ok(Some((msg, used))) = decode(&buf) {
                assert!(used <= buf.len());
                // Whatever decodes re-encodes to the same bytes.
                assert_eq!(encode_to_vec(&msg).unwrap(), buf[..used]);
            }
            buf.clear();
        }
    }
}

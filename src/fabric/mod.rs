//! The simulated Fibre Channel fabric: `fcvpn fabric --socket PATH` plays the FC switch.
//!
//! Real FC HBAs are rarely at hand in tests, so ports log in to this fabric over a Unix stream
//! socket (a file, so the two ends may live in different network namespaces). An initiator's SCSI
//! commands reach the one target port, its completions come back, and the fabric can drop, fail
//! and delay them. This documentation is the specification of the protocol.
//!
//! - [`run`] is the fabric ([`server`]); [`PortConnection`] is a port's end ([`client`]);
//! - [`proto`] is the codec; [`FaultModel`] decides the faults.
//!
//! # Frames
//!
//! Every message is one frame: `len` (u32 LE: the number of bytes after this field, 1 to
//! [`MAX_FRAME_LEN`] = 17 MiB) ‖ `type` (u8) ‖ the fields of the type, little-endian, exactly (no
//! byte before or after them). A length out of range, an unknown type, a field value out of range
//! or a frame whose fields do not fill it exactly is malformed: the fabric closes that connection
//! and counts it ([`FabricStats::protocol_errors`]).
//!
//! | type | name | direction | fields after the type byte |
//! |---|---|---|---|
//! | 1 | LOGIN | port → fabric | role u8 (1 initiator, 2 target) ‖ wwpn u64 |
//! | 2 | LOGIN_ACK | fabric → port | status u8 (0 ok, 1 a target is already logged in) |
//! | 3 | COMMAND | initiator → fabric → target | task u64 ‖ initiator u64 ‖ direction u8 ‖ cdb_len u8 ‖ cdb ‖ data_in_len u32 ‖ data_out_len u32 ‖ data_out |
//! | 4 | COMPLETION | target → fabric → initiator | task u64 ‖ initiator u64 ‖ transport u8 ‖ status u8 ‖ sense_len u8 ‖ sense ‖ data_in_len u32 ‖ data_in |
//! | 5 | ABORT | initiator → fabric → target | task u64 ‖ initiator u64 |
//!
//! Type 6 (LOGOUT) is reserved and unused: closing the connection is the logout.
//!
//! - COMMAND: `direction` is 0 (none: `data_in_len` = 0 and no data-out), 1 (data-out, a write:
//!   `data_in_len` = 0) or 2 (data-in, a read: no data-out); `cdb_len` ≤ [`MAX_CDB_LEN`] (32);
//!   `data_in_len` is the most data-in bytes the initiator accepts (FCP_DL). An initiator sends
//!   `initiator` = 0 and a `task` tag unique among its outstanding commands.
//! - COMPLETION: `transport` is 0 (delivered: `status` is the SAM status, `sense` the sense data),
//!   1 (transport error, like `DID_ERROR`), 2 (no connection, like `DID_NO_CONNECT`) or 3
//!   (aborted, like `DID_ABORT`); with 1-3 there is no data. `sense_len` ≤ [`MAX_SENSE_LEN`] (96).
//!   The residual is the command's `data_in_len` minus the data-in length.
//! - ABORT: the target drops the task if it still holds it (a parked READ) and never completes it.
//!   Nothing is sent back. A completion the target sent before the abort reached it may still
//!   arrive: an initiator ignores completions for tasks it no longer has.
//!
//! # Sessions
//!
//! A port connects and sends LOGIN; it sends nothing else before the LOGIN_ACK. Any number of
//! initiators may be logged in (their WWPNs need not differ), and one target: a second target gets
//! LOGIN_ACK status 1 and its connection is closed. A logged-in initiator sends only COMMAND and
//! ABORT, the target only COMPLETION; any other message, a second LOGIN, or a COMMAND whose task
//! tag is already outstanding from that initiator is a protocol error and closes the connection.
//!
//! # Routing
//!
//! - COMMAND: forwarded to the target with `initiator` set to the sender's WWPN and `task`
//!   replaced by the fabric's **exchange identifier**, as an FC exchange gets an OX_ID: unique
//!   for the life of the fabric process, opaque to the target, which echoes it in the COMPLETION
//!   and names it in an ABORT it receives. If no target is logged in, the fabric answers at once
//!   with COMPLETION transport = 2.
//! - COMPLETION: matched by its `task` (the exchange identifier) to the command, and forwarded to
//!   that initiator's connection with the initiator's own `task` restored. A completion that
//!   matches no outstanding command (aborted, failed, its initiator gone) is discarded and
//!   counted ([`FabricStats::stray`]). A completion with more data than the command's
//!   `data_in_len` (an overrun) becomes transport = 1.
//! - ABORT: translated to the exchange identifier and forwarded to the target, if the task is
//!   outstanding; otherwise the target holds nothing for it and the abort is not forwarded.
//! - When the target disconnects, every command forwarded to it and not completed is answered to
//!   its initiator with transport = 2 (no connection).
//! - When an initiator disconnects, its outstanding commands are aborted at the target (an ABORT
//!   each, as a logout implicitly aborts an FC initiator's exchanges), so that the target frees
//!   their parked READs at once instead of spending batches on them; completions for them are
//!   discarded. Its exchange identifiers are never reused, so a restarted initiator may reuse its
//!   task tags immediately.
//!
//! # Faults
//!
//! Decided per message by the seeded [`FaultModel`] (one draw per COMMAND that would be forwarded
//! and one per COMPLETION that matches a command, from two independent streams):
//! - `drop`: the COMMAND or COMPLETION silently vanishes; the initiator's own timeout notices.
//! - `error`: a COMMAND is answered at once with COMPLETION transport = 1 instead of being
//!   forwarded; a COMPLETION becomes transport = 1 (status, sense and data dropped).
//! - `delay`: every forwarded COMMAND, COMPLETION and ABORT is held this long before it is
//!   written, in one first-in first-out queue, so the order of the messages between any two
//!   ports is kept (an ABORT never overtakes its COMMAND). The fabric's own answers (no target,
//!   `error` on a command, target lost) are written at once, as an HBA answers locally.
//!
//! # Limits and liveness
//!
//! Every socket is non-blocking in one `poll` loop. A port with more than
//! [`server::MAX_WRITE_BUFFER`] (64 MiB) waiting to be written to it is not reading and is
//! disconnected. At most [`server::MAX_CONNECTIONS`] connections, [`server::MAX_EXCHANGES`]
//! outstanding commands (more are answered transport = 1) and [`server::MAX_QUEUE_BYTES`] in the
//! delay queue (more are discarded) exist at once. SIGSTOP and SIGCONT of the fabric are a pause.
//! Killed and restarted, the new fabric removes the stale socket file and the ports reconnect
//! (they see [`FabricError::Closed`] and call [`PortConnection::connect`] again, which waits for
//! the socket). Two fabrics started at the same instant on one stale socket file may race; do not.
#![forbid(unsafe_code)]

pub mod client;
pub mod faults;
pub mod options;
pub mod proto;
pub mod server;
pub mod stats;
mod stream;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

use thiserror::Error;

pub use client::{PortConnection, Role};
pub use faults::{Fault, FaultModel};
pub use options::FabricOptions;
pub use proto::{
    Command, Completion, Direction, LoginStatus, MAX_CDB_LEN, MAX_FRAME_LEN, MAX_SENSE_LEN,
    Message, ProtoError, TransportStatus,
};
pub use server::run;
pub use stats::FabricStats;

/// Errors of the fabric and of a port's connection to it.
#[derive(Debug, Error)]
pub enum FabricError {
    /// [`FabricOptions::validate`] refused the options.
    #[error("invalid fabric options: {0}")]
    InvalidOptions(String),
    /// A live fabric already listens on the socket.
    #[error("a fabric is already listening on {}", .0.display())]
    AlreadyRunning(PathBuf),
    /// The socket path names a file that is not a socket; the fabric does not remove it.
    #[error("{} exists and is not a socket", .0.display())]
    NotASocket(PathBuf),
    /// Setting up the listening socket failed.
    #[error("fabric socket {}: {source}", path.display())]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// A port could not connect to the fabric before its timeout.
    #[error("cannot connect to the fabric at {}: {source}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The last error.
        #[source]
        source: io::Error,
    },
    /// The fabric refused the login.
    #[error("the fabric refused the login: {0:?}")]
    LoginRefused(LoginStatus),
    /// No LOGIN_ACK in time.
    #[error("timed out waiting for the fabric")]
    Timeout,
    /// The fabric sent a message of this type where it may not.
    #[error("unexpected message type {0} from the fabric")]
    Unexpected(u8),
    /// The connection is closed (the peer is gone).
    #[error("connection to the fabric closed")]
    Closed,
    /// Too many bytes already wait to be written: the peer is not reading.
    #[error("{queued} bytes already wait to be written to the fabric")]
    Congested {
        /// The bytes waiting.
        queued: usize,
    },
    /// A malformed frame.
    #[error("malformed frame: {0}")]
    Proto(#[from] ProtoError),
    /// Another I/O error.
    #[error("fabric I/O: {0}")]
    Io(#[from] io::Error),
}

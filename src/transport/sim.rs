//! Backends over the simulated fabric (`fcvpn fabric`): the target and initiator ports log in
//! over its Unix socket, and commands and completions travel as its messages.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::Duration;

use super::BackendError;
use super::initiator::{Completion, Direction, InitiatorBackend, Outcome};
use super::target::{TargetBackend, TargetCommand, TargetEvent};
use crate::fabric::{self, Message, PortConnection, Role};

/// How long one login attempt may block the event loop; a fabric that is down, restarting or
/// paused is simply retried at the port's reconnection interval.
const LOGIN_TIMEOUT: Duration = Duration::from_millis(20);

fn lost(e: impl std::fmt::Display) -> BackendError {
    BackendError::Disconnected(e.to_string())
}

/// A port's connection to the fabric, re-established on demand.
struct Port {
    socket: PathBuf,
    role: Role,
    wwpn: u64,
    conn: Option<PortConnection>,
}

impl Port {
    fn connect(&mut self) -> Result<(), BackendError> {
        let conn = PortConnection::connect(&self.socket, self.role, self.wwpn, LOGIN_TIMEOUT)
            .map_err(lost)?;
        self.conn = Some(conn);
        Ok(())
    }

    fn conn(&mut self) -> Result<&mut PortConnection, BackendError> {
        self.conn.as_mut().ok_or_else(|| lost("not connected"))
    }

    /// Runs `f` on the connection; an error drops the connection.
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut PortConnection) -> Result<T, fabric::FabricError>,
    ) -> Result<T, BackendError> {
        let r = f(self.conn()?);
        r.map_err(|e| {
            self.conn = None;
            lost(e)
        })
    }
}

/// The target port's backend on the simulated fabric.
pub struct SimTarget {
    port: Port,
    /// Our id for a command -> (fabric task, initiator wwpn).
    tasks: HashMap<u64, (u64, u64)>,
    next_id: u64,
}

impl SimTarget {
    /// A target port `wwpn` on the fabric at `socket`; it logs in when first driven (and again
    /// whenever the fabric comes back).
    pub fn new(socket: PathBuf, wwpn: u64) -> Self {
        let port = Port {
            socket,
            role: Role::Target,
            wwpn,
            conn: None,
        };
        Self {
            port,
            tasks: HashMap::new(),
            next_id: 1,
        }
    }
}

impl TargetBackend for SimTarget {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.port.conn.as_ref().map(|c| c.fd())
    }

    fn wants_write(&self) -> bool {
        self.port.conn.as_ref().is_some_and(|c| c.wants_write())
    }

    fn next_event(&mut self) -> Result<Option<TargetEvent>, BackendError> {
        loop {
            let Some(msg) = self.port.with(|c| c.recv())? else {
                return Ok(None);
            };
            match msg {
                Message::Command(cmd) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.tasks.insert(id, (cmd.task, cmd.initiator));
                    return Ok(Some(TargetEvent::Command(TargetCommand {
                        id,
                        cdb: cmd.cdb,
                        data_out: cmd.data_out,
                        data_in_len: cmd.data_in_len as usize,
                    })));
                }
                Message::Abort { task, initiator } => {
                    let found = self
                        .tasks
                        .iter()
                        .find(|(_, v)| **v == (task, initiator))
                        .map(|(k, _)| *k);
                    if let Some(id) = found {
                        self.tasks.remove(&id);
                        return Ok(Some(TargetEvent::Abort(id)));
                    }
                }
                _ => {}
            }
        }
    }

    fn complete(
        &mut self,
        id: u64,
        status: u8,
        sense: &[u8],
        data_in: &[u8],
    ) -> Result<(), BackendError> {
        let Some((task, initiator)) = self.tasks.remove(&id) else {
            return Ok(());
        };
        let msg = Message::Completion(fabric::Completion {
            task,
            initiator,
            transport: fabric::TransportStatus::Delivered,
            status,
            sense: sense.to_vec(),
            data_in: data_in.to_vec(),
        });
        self.port.with(|c| c.send(&msg))
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        self.port.with(|c| c.flush())
    }

    fn is_connected(&self) -> bool {
        self.port.conn.is_some()
    }

    fn reconnect(&mut self) -> Result<(), BackendError> {
        self.tasks.clear();
        self.port.connect()
    }
}

/// The initiator port's backend on the simulated fabric.
pub struct SimInitiator {
    port: Port,
    /// Buffers of commands in flight, by tag.
    buffers: HashMap<u64, Vec<u8>>,
}

impl SimInitiator {
    /// An initiator port `wwpn` on the fabric at `socket`; it logs in when first driven (and
    /// again whenever the fabric comes back).
    pub fn new(socket: PathBuf, wwpn: u64) -> Self {
        let port = Port {
            socket,
            role: Role::Initiator,
            wwpn,
            conn: None,
        };
        Self {
            port,
            buffers: HashMap::new(),
        }
    }
}

impl InitiatorBackend for SimInitiator {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.port.conn.as_ref().map(|c| c.fd())
    }

    fn wants_write(&self) -> bool {
        self.port.conn.as_ref().is_some_and(|c| c.wants_write())
    }

    fn submit(
        &mut self,
        tag: u64,
        cdb: &[u8],
        dir: Direction,
        buffer: Vec<u8>,
        len: usize,
        _timeout: Duration,
    ) -> Result<(), (Vec<u8>, BackendError)> {
        let (direction, data_out, data_in_len) = match dir {
            Direction::Out => (fabric::Direction::Write, buffer[..len].to_vec(), 0),
            Direction::In => (fabric::Direction::Read, Vec::new(), len as u32),
        };
        let msg = Message::Command(fabric::Command {
            task: tag,
            initiator: 0,
            direction,
            cdb: cdb.to_vec(),
            data_in_len,
            data_out,
        });
        match self.port.with(|c| c.send(&msg)) {
            Ok(()) => {
                self.buffers.insert(tag, buffer);
                Ok(())
            }
            Err(e) => Err((buffer, e)),
        }
    }

    fn abort(&mut self, tag: u64) -> Result<Option<Vec<u8>>, BackendError> {
        let buffer = self.buffers.remove(&tag);
        self.port.with(|c| {
            c.send(&Message::Abort {
                task: tag,
                initiator: 0,
            })
        })?;
        Ok(buffer)
    }

    fn next_completion(&mut self) -> Result<Option<Completion>, BackendError> {
        loop {
            let Some(msg) = self.port.with(|c| c.recv())? else {
                return Ok(None);
            };
            let Message::Completion(c) = msg else {
                continue;
            };
            let Some(mut buffer) = self.buffers.remove(&c.task) else {
                continue;
            };
            let outcome = match c.transport {
                fabric::TransportStatus::Delivered if c.status == crate::scsi::status::GOOD => {
                    let n = c.data_in.len().min(buffer.len());
                    buffer[..n].copy_from_slice(&c.data_in[..n]);
                    Outcome::Good { len: n }
                }
                fabric::TransportStatus::Delivered => Outcome::Status {
                    status: c.status,
                    sense: c.sense,
                },
                fabric::TransportStatus::Error => Outcome::Failed("fabric error"),
                fabric::TransportStatus::NoConnection => {
                    Outcome::Failed("no connection to the target")
                }
                fabric::TransportStatus::Aborted => Outcome::Failed("aborted"),
            };
            return Ok(Some(Completion {
                tag: c.task,
                buffer,
                outcome,
            }));
        }
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        self.port.with(|c| c.flush())
    }

    fn is_connected(&self) -> bool {
        self.port.conn.is_some()
    }

    fn reconnect(&mut self) -> Result<(), BackendError> {
        self.buffers.clear();
        self.port.connect()
    }

    fn enforces_timeouts(&self) -> bool {
        false
    }
}

//! The fabric process: a single-threaded `poll` loop over the listening socket and every port.
//!
//! Each round: poll (at most [`TICK`], less when a delayed message falls due); read once from every
//! readable port and handle the frames that are complete; release the delayed messages that are
//! due; flush every port with bytes waiting; close the ports marked for closing; accept new
//! connections. Existing connections are handled before new ones are accepted, so the end of a
//! killed port is seen before its restarted successor logs in.
//!
//! Commands are tracked as *exchanges*: the fabric gives every forwarded COMMAND an exchange
//! identifier (a counter, never reused in one run), which the target sees as the task tag, and
//! maps the target's COMPLETION back to the initiator's connection and tag. A restarted initiator
//! may thus reuse its tags at once: a late completion for its predecessor's command matches no
//! exchange and is discarded, never mistaken for an answer to the new command.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tracing::{debug, info, warn};

use super::FabricError;
use super::faults::{Fault, FaultModel};
use super::options::FabricOptions;
use super::proto::{Command, Completion, LoginStatus, Message, Role, TransportStatus};
use super::stats::FabricStats;
use super::stream::{FramedStream, connect_nonblocking};

/// The longest the loop sleeps before it looks at the stop flag again.
pub const TICK: Duration = Duration::from_millis(100);
/// A port with more bytes than this waiting to be written to it is not reading: it is disconnected.
pub const MAX_WRITE_BUFFER: usize = 64 * 1024 * 1024;
/// The most connections open at once (logged in or not); more are closed as soon as accepted.
pub const MAX_CONNECTIONS: usize = 256;
/// The most commands outstanding at the target at once; more are failed with a transport error.
pub const MAX_EXCHANGES: usize = 65_536;
/// The most bytes held in the delay queue; more messages are discarded.
pub const MAX_QUEUE_BYTES: usize = 256 * 1024 * 1024;
/// A connection that has not logged in this long after it was accepted is closed.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Permissions of the socket file: the owner and its group may connect.
const SOCKET_MODE: u32 = 0o660;

/// Runs the fabric until `stop` is set, then removes its socket file and returns what it counted.
///
/// Binds `opts.socket` first: a stale socket file (nobody listening) is removed; a live fabric on
/// it is [`FabricError::AlreadyRunning`]; a file that is not a socket is left alone and is
/// [`FabricError::NotASocket`]. The socket file gets mode 0660. `stop` is checked at least every
/// [`TICK`]. Errors after binding are only those of `poll` itself; a failing port is disconnected
/// and counted, never fatal.
pub fn run(opts: FabricOptions, stop: &AtomicBool) -> Result<FabricStats, FabricError> {
    opts.validate()?;
    let (listener, identity) = bind(&opts.socket)?;
    info!(
        socket = %opts.socket.display(),
        drop = opts.drop,
        error = opts.error,
        delay_ms = opts.delay.as_secs_f64() * 1e3,
        seed = opts.seed,
        "fabric listening"
    );
    let mut fabric = Fabric::new(listener, &opts);
    let result = fabric.serve(stop);
    fabric.shutdown();
    remove_if_ours(&opts.socket, identity);
    info!(stats = ?fabric.stats, "fabric stopped");
    result.map(|()| fabric.stats)
}

/// The device and inode of the socket file this fabric created.
type FileIdentity = (u64, u64);

fn socket_error(path: &Path, source: io::Error) -> FabricError {
    FabricError::Socket {
        path: path.to_path_buf(),
        source,
    }
}

/// Binds the listening socket at `path`, clearing a stale socket file first.
fn bind(path: &Path) -> Result<(UnixListener, FileIdentity), FabricError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(FabricError::NotASocket(path.to_path_buf()));
        }
        Ok(_) => match connect_nonblocking(path) {
            // Connected, or the backlog is full: someone listens (perhaps a stopped process).
            Ok(_) => return Err(FabricError::AlreadyRunning(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => match fs::remove_file(path) {
                Ok(()) => info!(socket = %path.display(), "removed stale socket file"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(socket_error(path, e)),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(socket_error(path, e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(socket_error(path, e)),
    }
    let listener = UnixListener::bind(path).map_err(|e| socket_error(path, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| socket_error(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|e| socket_error(path, e))?;
    let meta = fs::symlink_metadata(path).map_err(|e| socket_error(path, e))?;
    Ok((listener, (meta.dev(), meta.ino())))
}

/// Removes the socket file if it is still the one this fabric created (not a successor's).
fn remove_if_ours(path: &Path, identity: FileIdentity) {
    match fs::symlink_metadata(path) {
        Ok(meta) if (meta.dev(), meta.ino()) == identity => {
            if let Err(e) = fs::remove_file(path) {
                warn!(socket = %path.display(), error = %e, "could not remove socket file");
            }
        }
        _ => {}
    }
}

/// A WWPN printed as FC tools do: eight colon-separated bytes.
struct Wwpn(u64);

impl fmt::Display for Wwpn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.to_be_bytes();
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

type ConnId = u64;

/// Where a connection stands.
#[derive(Debug)]
enum PortState {
    /// Accepted; its first message must be LOGIN.
    Pending,
    /// A logged-in initiator and its outstanding commands: its task tag → exchange identifier.
    Initiator { wwpn: u64, tasks: HashMap<u64, u64> },
    /// The logged-in target.
    Target { wwpn: u64 },
    /// A second target: its refusal is flushed, then the connection is closed.
    Refused,
}

/// Why a connection is being closed.
#[derive(Debug)]
enum CloseReason {
    /// The port closed it (a logout) or it broke.
    Gone,
    /// A malformed frame or a message the port may not send.
    Protocol(String),
    /// Its write buffer passed [`MAX_WRITE_BUFFER`].
    NotReading,
    /// A refused login.
    Refused,
    /// An unexpected I/O error.
    Io(io::Error),
    /// The fabric is stopping.
    Shutdown,
    /// No LOGIN within [`LOGIN_TIMEOUT`].
    LoginTimeout,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Gone => f.write_str("closed by the port"),
            CloseReason::Protocol(e) => write!(f, "protocol error: {e}"),
            CloseReason::NotReading => {
                write!(f, "not reading (over {MAX_WRITE_BUFFER} bytes waiting)")
            }
            CloseReason::Refused => f.write_str("login refused"),
            CloseReason::Io(e) => write!(f, "I/O error: {e}"),
            CloseReason::Shutdown => f.write_str("the fabric is stopping"),
            CloseReason::LoginTimeout => write!(f, "no login within {LOGIN_TIMEOUT:?}"),
        }
    }
}

struct Conn {
    stream: FramedStream,
    state: PortState,
    accepted: Instant,
    /// Set when the connection is to be closed at the end of the round; it is then ignored.
    closing: Option<CloseReason>,
}

/// A command forwarded to the target and not yet completed, aborted or answered.
struct Exchange {
    initiator_conn: ConnId,
    initiator_wwpn: u64,
    task: u64,
    data_in_len: u32,
    target_conn: ConnId,
}

/// A message held by the delay.
struct Delayed {
    due: Instant,
    dest: ConnId,
    frame: Vec<u8>,
}

struct Fabric {
    listener: UnixListener,
    /// Ordered by id, that is by age: iteration (and so the fault draws) follows accept order.
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    target: Option<ConnId>,
    exchanges: HashMap<u64, Exchange>,
    next_xid: u64,
    delayed: VecDeque<Delayed>,
    delayed_bytes: usize,
    delay: Duration,
    faults: FaultModel,
    /// The time of the current round, taken after `poll` returns.
    now: Instant,
    stats: FabricStats,
}

impl Fabric {
    fn new(listener: UnixListener, opts: &FabricOptions) -> Self {
        Fabric {
            listener,
            conns: BTreeMap::new(),
            next_conn: 0,
            target: None,
            exchanges: HashMap::new(),
            next_xid: 0,
            delayed: VecDeque::new(),
            delayed_bytes: 0,
            delay: opts.delay,
            faults: FaultModel::new(opts.drop, opts.error, opts.seed),
            now: Instant::now(),
            stats: FabricStats::default(),
        }
    }

    fn serve(&mut self, stop: &AtomicBool) -> Result<(), FabricError> {
        let mut ids: Vec<ConnId> = Vec::new();
        let mut ready: Vec<(ConnId, PollFlags)> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let sleep = self
                .delayed
                .front()
                .map_or(TICK, |d| d.due.saturating_duration_since(now).min(TICK));
            // Round up to whole milliseconds so that a message due in 0.3 ms does not spin.
            let timeout = PollTimeout::from(sleep.as_micros().div_ceil(1000) as u16);
            let accept;
            {
                ids.clear();
                let mut fds = Vec::with_capacity(1 + self.conns.len());
                fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
                for (&id, conn) in &self.conns {
                    let mut events = PollFlags::POLLIN;
                    if conn.stream.wants_write() {
                        events |= PollFlags::POLLOUT;
                    }
                    ids.push(id);
                    fds.push(PollFd::new(conn.stream.fd(), events));
                }
                match poll(&mut fds, timeout) {
                    Ok(_) => {}
                    // A signal, such as the SIGCONT that ends a pause.
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(FabricError::Io(e.into())),
                }
                accept = fds[0].any().unwrap_or(true);
                ready.clear();
                for (&id, fd) in ids.iter().zip(&fds[1..]) {
                    let revents = fd.revents().unwrap_or(PollFlags::POLLERR);
                    if !revents.is_empty() {
                        ready.push((id, revents));
                    }
                }
            }
            self.now = Instant::now();
            for &(id, revents) in &ready {
                if revents.contains(PollFlags::POLLOUT) {
                    self.flush(id);
                }
                if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                    self.read(id);
                }
            }
            self.release_due();
            self.flush_all();
            self.reap();
            if accept {
                self.accept();
            }
        }
        Ok(())
    }

    fn live(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(&id).filter(|c| c.closing.is_none())
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.conns.len() >= MAX_CONNECTIONS {
                        self.stats.refused += 1;
                        warn!(
                            limit = MAX_CONNECTIONS,
                            "too many connections; refusing one"
                        );
                        continue;
                    }
                    match FramedStream::new(stream) {
                        Ok(stream) => {
                            let id = self.next_conn;
                            self.next_conn += 1;
                            self.conns.insert(
                                id,
                                Conn {
                                    stream,
                                    state: PortState::Pending,
                                    accepted: self.now,
                                    closing: None,
                                },
                            );
                        }
                        Err(e) => warn!(error = %e, "could not set up an accepted connection"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Such as EMFILE: try again next round.
                    warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    /// Reads once from `id` and handles every complete frame.
    fn read(&mut self, id: ConnId) {
        let Some(conn) = self.live(id) else { return };
        if matches!(conn.state, PortState::Refused) {
            return;
        }
        match conn.stream.fill() {
            Ok(_) => {}
            Err(FabricError::Proto(e)) => {
                return self.close(id, CloseReason::Protocol(e.to_string()));
            }
            Err(FabricError::Io(e)) => return self.close(id, CloseReason::Io(e)),
            Err(_) => return self.close(id, CloseReason::Gone),
        }
        loop {
            let Some(conn) = self.live(id) else { return };
            if matches!(conn.state, PortState::Refused) {
                return;
            }
            match conn.stream.next_buffered() {
                Ok(Some(msg)) => self.handle(id, msg),
                Ok(None) => return,
                Err(e) => return self.close(id, CloseReason::Protocol(e.to_string())),
            }
        }
    }

    fn flush(&mut self, id: ConnId) {
        let Some(conn) = self.live(id) else { return };
        match conn.stream.flush() {
            Ok(()) => {}
            Err(FabricError::Io(e)) => self.close(id, CloseReason::Io(e)),
            Err(_) => self.close(id, CloseReason::Gone),
        }
    }

    /// Flushes every port with bytes waiting, closes refused ports once their answer is out, and
    /// closes connections that did not log in within [`LOGIN_TIMEOUT`].
    fn flush_all(&mut self) {
        let now = self.now;
        let pending: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.closing.is_none()
                    && (c.stream.wants_write()
                        || !matches!(
                            c.state,
                            PortState::Initiator { .. } | PortState::Target { .. }
                        ))
            })
            .map(|(&id, _)| id)
            .collect();
        for id in pending {
            self.flush(id);
            match self.live(id) {
                Some(Conn {
                    state: PortState::Refused,
                    ..
                }) => self.close(id, CloseReason::Refused),
                Some(Conn {
                    state: PortState::Pending,
                    accepted,
                    ..
                }) if now.saturating_duration_since(*accepted) >= LOGIN_TIMEOUT => {
                    self.close(id, CloseReason::LoginTimeout)
                }
                _ => {}
            }
        }
    }

    /// Handles one message from port `id`.
    fn handle(&mut self, id: ConnId, msg: Message) {
        let Some(conn) = self.live(id) else { return };
        match (&conn.state, msg) {
            (PortState::Pending, Message::Login { role, wwpn }) => self.login(id, role, wwpn),
            (PortState::Initiator { wwpn, .. }, Message::Command(cmd)) => {
                let wwpn = *wwpn;
                self.command(id, wwpn, cmd)
            }
            (PortState::Initiator { wwpn, .. }, Message::Abort { task, .. }) => {
                let wwpn = *wwpn;
                self.abort(id, wwpn, task)
            }
            (PortState::Target { .. }, Message::Completion(cpl)) => self.completion(id, cpl),
            (state, msg) => {
                let why = format!(
                    "message type {} not allowed in state {state:?}",
                    msg.type_code()
                );
                self.close(id, CloseReason::Protocol(why))
            }
        }
    }

    fn login(&mut self, id: ConnId, role: Role, wwpn: u64) {
        let state = match role {
            Role::Target if self.target.is_some() => {
                self.stats.rejected_logins += 1;
                warn!(wwpn = %Wwpn(wwpn), "a target is already logged in; refusing a second one");
                PortState::Refused
            }
            Role::Target => {
                self.target = Some(id);
                PortState::Target { wwpn }
            }
            Role::Initiator => PortState::Initiator {
                wwpn,
                tasks: HashMap::new(),
            },
        };
        let status = if matches!(state, PortState::Refused) {
            LoginStatus::TargetInUse
        } else {
            self.stats.logins += 1;
            info!(wwpn = %Wwpn(wwpn), ?role, "port logged in");
            LoginStatus::Ok
        };
        if let Some(conn) = self.live(id) {
            conn.state = state;
        }
        self.send(id, &Message::LoginAck { status });
    }

    fn command(&mut self, id: ConnId, wwpn: u64, cmd: Command) {
        self.stats.commands += 1;
        let task = cmd.task;
        let Some(conn) = self.live(id) else { return };
        let PortState::Initiator { tasks, .. } = &conn.state else {
            return;
        };
        if tasks.contains_key(&task) {
            let why = format!("task tag {task} is already outstanding");
            return self.close(id, CloseReason::Protocol(why));
        }
        let Some(target) = self.target else {
            self.stats.no_target += 1;
            return self.answer(id, task, wwpn, TransportStatus::NoConnection);
        };
        if self.exchanges.len() >= MAX_EXCHANGES {
            self.stats.overloaded += 1;
            return self.answer(id, task, wwpn, TransportStatus::Error);
        }
        match self.faults.command() {
            Fault::Drop => {
                self.stats.dropped += 1;
                return;
            }
            Fault::Error => {
                self.stats.errored += 1;
                return self.answer(id, task, wwpn, TransportStatus::Error);
            }
            Fault::Pass => {}
        }
        let xid = self.next_xid;
        self.next_xid += 1;
        // Recorded before forwarding: if forwarding finds the target gone, closing it answers this
        // command with the others it held.
        self.exchanges.insert(
            xid,
            Exchange {
                initiator_conn: id,
                initiator_wwpn: wwpn,
                task,
                data_in_len: cmd.data_in_len,
                target_conn: target,
            },
        );
        self.set_task(id, task, Some(xid));
        let forwarded = Message::Command(Command {
            task: xid,
            initiator: wwpn,
            ..cmd
        });
        if !self.forward(target, &forwarded) {
            self.exchanges.remove(&xid);
            self.set_task(id, task, None);
            self.answer(id, task, wwpn, TransportStatus::Error);
        }
    }

    /// Records (or with `None` forgets) the exchange of an initiator's task.
    fn set_task(&mut self, id: ConnId, task: u64, xid: Option<u64>) {
        if let Some(Conn {
            state: PortState::Initiator { tasks, .. },
            ..
        }) = self.live(id)
        {
            match xid {
                Some(xid) => tasks.insert(task, xid),
                None => tasks.remove(&task),
            };
        }
    }

    fn abort(&mut self, id: ConnId, wwpn: u64, task: u64) {
        self.stats.aborts += 1;
        let Some(Conn {
            state: PortState::Initiator { tasks, .. },
            ..
        }) = self.live(id)
        else {
            return;
        };
        // Nothing outstanding (completed, dropped or failed already): the target holds nothing.
        let Some(xid) = tasks.remove(&task) else {
            return;
        };
        if let Some(ex) = self.exchanges.remove(&xid) {
            self.forward(
                ex.target_conn,
                &Message::Abort {
                    task: xid,
                    initiator: wwpn,
                },
            );
        }
    }

    fn completion(&mut self, id: ConnId, cpl: Completion) {
        self.stats.completions += 1;
        let Some(ex) = self.exchanges.remove(&cpl.task) else {
            self.stats.stray += 1;
            return;
        };
        if ex.target_conn != id {
            // Not reachable (a lost target's exchanges are settled when it closes); kept safe.
            self.exchanges.insert(cpl.task, ex);
            self.stats.stray += 1;
            return;
        }
        self.set_task(ex.initiator_conn, ex.task, None);
        let fault = self.faults.completion();
        let overrun = cpl.data_in.len() > ex.data_in_len as usize;
        let out = match fault {
            Fault::Drop => {
                self.stats.dropped += 1;
                return;
            }
            Fault::Error => {
                self.stats.errored += 1;
                Completion::transport_failure(ex.task, ex.initiator_wwpn, TransportStatus::Error)
            }
            Fault::Pass if overrun => {
                self.stats.overruns += 1;
                Completion::transport_failure(ex.task, ex.initiator_wwpn, TransportStatus::Error)
            }
            Fault::Pass => Completion {
                task: ex.task,
                initiator: ex.initiator_wwpn,
                ..cpl
            },
        };
        self.forward(ex.initiator_conn, &Message::Completion(out));
    }

    /// Answers an initiator's command at once with a transport failure.
    fn answer(&mut self, id: ConnId, task: u64, wwpn: u64, transport: TransportStatus) {
        let cpl = Completion::transport_failure(task, wwpn, transport);
        self.send(id, &Message::Completion(cpl));
    }

    /// Sends `msg` to `dest` after the delay. False when it was discarded (delay queue full).
    fn forward(&mut self, dest: ConnId, msg: &Message) -> bool {
        if self.delay.is_zero() {
            self.send(dest, msg);
            return true;
        }
        let frame = match super::proto::encode_to_vec(msg) {
            Ok(frame) => frame,
            Err(e) => {
                // Unreachable: the message was decoded under the same limits.
                warn!(error = %e, "could not re-encode a message");
                return false;
            }
        };
        if self.delayed_bytes + frame.len() > MAX_QUEUE_BYTES {
            self.stats.overloaded += 1;
            return false;
        }
        self.delayed_bytes += frame.len();
        self.delayed.push_back(Delayed {
            due: self.now + self.delay,
            dest,
            frame,
        });
        true
    }

    fn release_due(&mut self) {
        let now = Instant::now();
        while self.delayed.front().is_some_and(|d| d.due <= now) {
            let Some(d) = self.delayed.pop_front() else {
                break;
            };
            self.delayed_bytes -= d.frame.len();
            if let Some(conn) = self.live(d.dest) {
                conn.stream.queue_frame(d.frame);
                self.check_buffer(d.dest);
            }
        }
    }

    /// Queues `msg` for `dest` now (written by the next flush).
    fn send(&mut self, dest: ConnId, msg: &Message) {
        let Some(conn) = self.live(dest) else { return };
        if let Err(e) = conn.stream.queue_message(msg) {
            // Unreachable: messages built here or decoded under the same limits.
            warn!(error = %e, "could not encode a message");
            return;
        }
        self.check_buffer(dest);
    }

    fn check_buffer(&mut self, id: ConnId) {
        if self
            .live(id)
            .is_some_and(|c| c.stream.queued_bytes() > MAX_WRITE_BUFFER)
        {
            self.close(id, CloseReason::NotReading);
        }
    }

    /// Marks `id` for closing and settles what it leaves behind: the commands a target held are
    /// answered with "no connection"; those of an initiator are aborted at the target.
    fn close(&mut self, id: ConnId, reason: CloseReason) {
        let Some(conn) = self.live(id) else { return };
        let state = std::mem::replace(&mut conn.state, PortState::Pending);
        match &reason {
            CloseReason::Protocol(e) => {
                self.stats.protocol_errors += 1;
                warn!(error = %e, "protocol error; closing the connection");
            }
            CloseReason::NotReading => {
                self.stats.slow_ports += 1;
                warn!(
                    limit = MAX_WRITE_BUFFER,
                    "port is not reading; disconnecting it"
                );
            }
            CloseReason::LoginTimeout => self.stats.login_timeouts += 1,
            CloseReason::Gone
            | CloseReason::Refused
            | CloseReason::Io(_)
            | CloseReason::Shutdown => {}
        }
        let (role, wwpn) = match &state {
            PortState::Initiator { wwpn, .. } => (Some(Role::Initiator), *wwpn),
            PortState::Target { wwpn } => (Some(Role::Target), *wwpn),
            PortState::Pending | PortState::Refused => (None, 0),
        };
        if let Some(role) = role {
            self.stats.disconnects += 1;
            info!(wwpn = %Wwpn(wwpn), ?role, reason = %reason, "port disconnected");
        } else {
            debug!(reason = %reason, "connection closed before login");
        }
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.closing = Some(reason);
        }
        match state {
            PortState::Target { .. } => {
                if self.target == Some(id) {
                    self.target = None;
                }
                let held: Vec<u64> = self
                    .exchanges
                    .iter()
                    .filter(|(_, ex)| ex.target_conn == id)
                    .map(|(&xid, _)| xid)
                    .collect();
                let answered = held.len();
                for xid in held {
                    let Some(ex) = self.exchanges.remove(&xid) else {
                        continue;
                    };
                    self.set_task(ex.initiator_conn, ex.task, None);
                    self.stats.target_lost += 1;
                    self.answer(
                        ex.initiator_conn,
                        ex.task,
                        ex.initiator_wwpn,
                        TransportStatus::NoConnection,
                    );
                }
                if answered > 0 {
                    info!(
                        answered,
                        "target lost; its outstanding commands answered with no connection"
                    );
                }
            }
            PortState::Initiator { wwpn, tasks } => {
                for (_, xid) in tasks {
                    let Some(ex) = self.exchanges.remove(&xid) else {
                        continue;
                    };
                    if self.live(ex.target_conn).is_none() {
                        continue;
                    }
                    self.stats.implicit_aborts += 1;
                    let abort = Message::Abort {
                        task: xid,
                        initiator: wwpn,
                    };
                    self.forward(ex.target_conn, &abort);
                }
            }
            PortState::Pending | PortState::Refused => {}
        }
    }

    /// Closes every connection: the ports see the fabric go away.
    fn shutdown(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, CloseReason::Shutdown);
        }
        self.conns.clear();
    }

    /// Drops the connections marked for closing.
    fn reap(&mut self) {
        self.conns.retain(|_, c| c.closing.is_none());
    }
}

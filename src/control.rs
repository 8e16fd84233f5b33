//! The control socket, `/run/fcvpn/NAME.sock`: `fcvpn show` connects, sends `status`, and reads
//! one JSON object ([`LinkStatus`]). It reports state; it changes nothing.
//!
//! The socket is served from the forwarding loop without ever blocking it: the listener and
//! every client are non-blocking, at most [`MAX_CLIENTS`] are served at once (more are closed
//! at accept), a request is at most [`MAX_REQUEST`] bytes, and a client that has not sent its
//! request and read its answer within [`CLIENT_TIMEOUT`] is dropped. The socket is created
//! under umask 077, so it is never accessible to others, not even between bind and chmod.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::stat::{Mode, umask};

use crate::status::LinkStatus;

/// Where control sockets live.
pub const RUN_DIR: &str = "/run/fcvpn";
/// The request line.
const REQUEST: &str = "status";
/// How long a client may take to send its request and read the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_millis(200);
/// Clients served at once; one more is accepted and closed at once.
pub const MAX_CLIENTS: usize = 8;
/// Longest request line, newline included.
pub const MAX_REQUEST: usize = 64;

/// The path of link `name`'s control socket.
pub fn socket_path(name: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{name}.sock"))
}

/// One connected client: what it sent so far, then what is left to send it.
struct Client {
    stream: UnixStream,
    /// Dropped when this passes (the loop's clock).
    deadline: Duration,
    request: Vec<u8>,
    /// The answer and how much of it was written, once the request is complete.
    answer: Option<(Vec<u8>, usize)>,
}

/// What a turn did with a client.
enum Step {
    /// Waiting for more bytes or for room to write.
    Pending,
    /// Answered: close it.
    Done,
    /// A bad request or an I/O error: close it unanswered.
    Failed,
}

/// The listening side, owned by `fcvpn up`. The socket file is removed on drop.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
    /// Clients closed without an answer: too many at once, too slow, or a bad request.
    refused: u64,
}

impl ControlServer {
    /// Binds `path` (root-only, created under umask 077). A live socket there means another
    /// fcvpn runs this link: an error. A stale one (from a crash) is replaced.
    pub fn bind(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use: is this link already up?", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        // The umask is process-wide: setup binds before any other thread runs.
        let old = umask(Mode::from_bits_truncate(0o077));
        let listener = UnixListener::bind(path);
        umask(old);
        let listener = listener?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            clients: Vec::new(),
            refused: 0,
        })
    }

    /// The descriptors to wait on, with whether each waits to write (else to read).
    pub fn interest(&self) -> Vec<(BorrowedFd<'_>, bool)> {
        let clients = self
            .clients
            .iter()
            .map(|c| (c.stream.as_fd(), c.answer.is_some()));
        std::iter::once((self.listener.as_fd(), false))
            .chain(clients)
            .collect()
    }

    /// When the oldest client times out, if any is connected.
    pub fn deadline(&self) -> Option<Duration> {
        self.clients.iter().map(|c| c.deadline).min()
    }

    /// Clients being served.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Clients closed without a (complete) answer so far: too many, too slow, or a bad request.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Accepts waiting clients, moves each as far as it goes without blocking, and drops
    /// those past their deadline. `status` is computed at most once per call, and only when a
    /// complete request is waiting for it.
    pub fn serve<T: serde::Serialize>(&mut self, now: Duration, status: impl FnOnce() -> T) {
        self.accept(now);
        let mut status = Some(status);
        let mut json: Option<Vec<u8>> = None;
        let mut body = || -> Vec<u8> {
            json.get_or_insert_with(|| {
                let s = status.take().map(|f| f());
                let mut text = serde_json::to_vec(&s).unwrap_or_else(|_| b"null".to_vec());
                text.push(b'\n');
                text
            })
            .clone()
        };
        let mut refused = 0;
        self.clients.retain_mut(|c| {
            match c.step(&mut body) {
                Step::Done => return false,
                Step::Pending if now < c.deadline => return true,
                Step::Pending | Step::Failed => {}
            }
            refused += 1;
            false
        });
        self.refused += refused;
    }

    fn accept(&mut self, now: Duration) {
        while let Ok((stream, _)) = self.listener.accept() {
            if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                self.refused += 1;
                continue;
            }
            self.clients.push(Client {
                stream,
                deadline: now + CLIENT_TIMEOUT,
                request: Vec::with_capacity(MAX_REQUEST),
                answer: None,
            });
        }
    }
}

impl Client {
    /// Reads what the client sent, then writes what it can of the answer.
    fn step(&mut self, body: &mut impl FnMut() -> Vec<u8>) -> Step {
        if self.answer.is_none() {
            match self.read_request() {
                Ok(true) => self.answer = Some((body(), 0)),
                Ok(false) => return Step::Pending,
                Err(_) => return Step::Failed,
            }
        }
        let Some((answer, written)) = self.answer.as_mut() else {
            return Step::Pending;
        };
        while *written < answer.len() {
            match (&self.stream).write(&answer[*written..]) {
                Ok(0) => return Step::Failed,
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Pending,
                Err(_) => return Step::Failed,
            }
        }
        Step::Done
    }

    /// True once a whole `status` line is in; an error for anything else.
    fn read_request(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; MAX_REQUEST];
        loop {
            let room = MAX_REQUEST - self.request.len();
            match (&self.stream).read(&mut buf[..room]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.request.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
            if let Some(end) = self.request.iter().position(|&b| b == b'\n') {
                let line = core::str::from_utf8(&self.request[..end]).unwrap_or("");
                return if line.trim() == REQUEST {
                    Ok(true)
                } else {
                    Err(io::ErrorKind::InvalidInput.into())
                };
            }
            if self.request.len() >= MAX_REQUEST {
                return Err(io::ErrorKind::InvalidInput.into());
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Asks the link behind `path` for its status.
pub fn query(path: &Path) -> io::Result<LinkStatus> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("{REQUEST}\n").as_bytes())?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    serde_json::from_str(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Every control socket under [`RUN_DIR`], sorted by name.
pub fn all_sockets() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(RUN_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Binds one test's server at a time: the umask that `bind` sets is process-wide, and
    /// tests run on parallel threads (the daemon binds before it starts any thread).
    fn server(test: &str) -> (ControlServer, PathBuf) {
        static BIND: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = BIND
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = std::env::temp_dir().join(format!("fcvpn-control-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("t.sock");
        (ControlServer::bind(&path).expect("bind"), path)
    }

    fn ask(path: &Path) -> UnixStream {
        let mut s = UnixStream::connect(path).expect("connect");
        s.write_all(b"status\n").expect("send");
        s
    }

    fn answer_of(mut s: UnixStream) -> String {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read");
        text
    }

    #[test]
    fn a_silent_client_never_holds_up_the_loop_nor_other_clients() {
        let (mut control, path) = server("silent");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "socket mode {mode:o}");
        let silent = UnixStream::connect(&path).unwrap();
        let asker = ask(&path);
        let mut computed = 0;
        // Every call returns with the silent client still waiting: a turn of the loop is
        // never spent waiting on it, and the other client is answered in the same turn.
        for turn in 0..100u64 {
            control.serve(Duration::from_micros(turn), || {
                computed += 1;
                42
            });
        }
        assert_eq!(answer_of(asker), "42\n");
        assert_eq!(computed, 1, "status computed once, for the one request");
        assert_eq!((control.clients(), control.refused()), (1, 0));
        assert_eq!(control.deadline(), Some(CLIENT_TIMEOUT));
        control.serve(CLIENT_TIMEOUT, || 0);
        assert_eq!((control.clients(), control.refused()), (0, 1));
        drop(silent);
    }

    #[test]
    fn clients_and_requests_are_bounded() {
        let (mut control, path) = server("bounded");
        let idle: Vec<UnixStream> = (0..MAX_CLIENTS + 2)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        control.serve(Duration::ZERO, || 0);
        assert_eq!((control.clients(), control.refused()), (MAX_CLIENTS, 2));
        drop(idle);
        control.serve(Duration::ZERO, || 0);
        assert_eq!(control.clients(), 0, "closed clients are dropped");
        let mut long = UnixStream::connect(&path).unwrap();
        long.write_all(&[b'x'; MAX_REQUEST + 10]).unwrap();
        let mut wrong = UnixStream::connect(&path).unwrap();
        wrong.write_all(b"reset\n").unwrap();
        control.serve(Duration::ZERO, || 1);
        assert_eq!(control.clients(), 0);
        assert_eq!(control.refused(), MAX_CLIENTS as u64 + 2 + 2);
        let (a, b) = (ask(&path), ask(&path));
        control.serve(Duration::ZERO, || "up");
        assert_eq!(
            (answer_of(a), answer_of(b)),
            ("\"up\"\n".into(), "\"up\"\n".into())
        );
    }
}

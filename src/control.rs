//! The control socket, `/run/fcvpn/NAME.sock`: `fcvpn show` connects, sends `status`, and reads
//! one JSON object ([`LinkStatus`]). It reports state; it changes nothing.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::status::LinkStatus;

/// Where control sockets live.
pub const RUN_DIR: &str = "/run/fcvpn";
/// The request line.
const REQUEST: &str = "status";
/// How long a client may take to send its request.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(200);

/// The path of link `name`'s control socket.
pub fn socket_path(name: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{name}.sock"))
}

/// The listening side, owned by `fcvpn up`. The socket file is removed on drop.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Binds `path` (root-only). A live socket there means another fcvpn runs this link: an
    /// error. A stale one (from a crash) is replaced.
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
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
        })
    }

    /// The descriptor to wait on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Answers every waiting client with the status `status` computes (once per call).
    pub fn serve(&mut self, status: impl FnOnce() -> LinkStatus) {
        let mut status = Some(status);
        let mut json: Option<String> = None;
        while let Ok((stream, _)) = self.listener.accept() {
            let body = json.get_or_insert_with(|| {
                let s = status.take().map(|f| f());
                serde_json::to_string(&s).unwrap_or_else(|_| "null".to_owned())
            });
            if let Err(e) = answer(stream, body) {
                tracing::debug!("control client: {e}");
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn answer(stream: UnixStream, body: &str) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&stream).take(64).read_line(&mut line)?;
    if line.trim() != REQUEST {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "unknown request",
        ));
    }
    let mut w = &stream;
    w.write_all(body.as_bytes())?;
    w.write_all(b"\n")
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

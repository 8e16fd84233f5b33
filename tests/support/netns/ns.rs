//! Named network namespaces (`ip netns add`), entered by threads of the test process
//! (`setns(2)` on one thread) or by commands (`ip netns exec`, which also mounts the
//! namespace's own `/sys`).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use nix::sched::{CloneFlags, setns};

use super::NS_PREFIX;

/// A named network namespace, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `fcvt-PID-N-TAG` with its loopback up.
    pub fn new(tag: &str) -> io::Result<Self> {
        let name = format!(
            "{NS_PREFIX}{}-{}-{tag}",
            std::process::id(),
            super::unique()
        );
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Moves the calling thread into the namespace (for a thread of its own only).
    pub fn enter(&self) -> io::Result<()> {
        let f = File::open(self.path())?;
        setns(f.as_fd(), CloneFlags::CLONE_NEWNET)?;
        Ok(())
    }

    /// Runs `f` on a new thread inside the namespace, and waits for it.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| -> io::Result<T> {
                self.enter()?;
                Ok(f())
            })
            .join()
            .map_err(|_| io::Error::other("thread in the namespace panicked"))?
        })
    }

    /// Starts `f` on a new thread inside the namespace.
    pub fn thread<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> JoinHandle<io::Result<T>> {
        let path = self.path();
        std::thread::Builder::new()
            .name(what.to_owned())
            .spawn(move || {
                let ns = File::open(path)?;
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
                f()
            })
            .expect("spawning a thread")
    }

    /// Starts `cmd` from a thread inside the namespace: the child inherits the namespace (and
    /// keeps the host's `/sys`). Unlike [`Netns::exec`] this honours `CommandExt::uid`.
    pub fn spawn(&self, mut cmd: Command) -> io::Result<Child> {
        self.run(move || cmd.spawn())?
    }

    /// `ip netns exec NAME program args...` (ip execs the program: the child's pid is the
    /// program's).
    pub fn exec<I, S>(&self, program: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Whether `/sys/class/net/IFNAME` exists as seen from inside the namespace.
    pub fn has_link(&self, ifname: &str) -> bool {
        let path = format!("/sys/class/net/{ifname}");
        let mut cmd = self.exec("test", ["-e", path.as_str()]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        match super::process::output_timeout(cmd, std::time::Duration::from_secs(10)) {
            Ok(out) => out.status.success(),
            Err(e) => panic!("checking {path} in {}: {e}", self.name),
        }
    }

    /// Whether a TCP socket listens on `port` inside the namespace.
    pub fn listening(&self, port: u16) -> bool {
        let want = format!(":{port:04X} ");
        self.run(|| {
            let table = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap_or_default();
            // Columns: sl local_address rem_address st ...; state 0A is LISTEN.
            table.lines().skip(1).any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && format!("{} ", cols[1]).ends_with(&want) && cols[3] == "0A"
            })
        })
        .unwrap_or(false)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("netns: deleting namespace {}: {e}", self.name);
        }
    }
}

/// Runs `ip ARGS`, failing with its standard error.
pub fn ip(args: &[&str]) -> io::Result<()> {
    let mut cmd = Command::new("ip");
    cmd.args(args).stdin(Stdio::null());
    let out = super::process::output_timeout(cmd, std::time::Duration::from_secs(10))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Deletes the namespaces an earlier run of this suite left behind (its process is gone).
pub fn delete_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("netns: deleting stale namespace {name}");
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

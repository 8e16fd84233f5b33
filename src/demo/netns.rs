//! Network namespaces without iproute2: a thread unshares its network namespace and keeps a
//! descriptor of it; the namespace lives as long as that descriptor or a process inside it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command};

use nix::sched::{CloneFlags, setns, unshare};

/// An anonymous network namespace.
pub struct NetNs {
    fd: OwnedFd,
}

impl NetNs {
    /// A fresh namespace (with only a loopback device, down).
    pub fn new() -> io::Result<Self> {
        let fd = std::thread::spawn(|| -> io::Result<OwnedFd> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            Ok(File::open("/proc/thread-self/ns/net")?.into())
        })
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"))??;
        Ok(Self { fd })
    }

    /// Runs `f` on a thread that has entered the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| -> io::Result<T> {
                setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET)?;
                Ok(f())
            })
            .join()
            .map_err(|_| io::Error::other("namespace thread panicked"))?
        })
    }

    /// Starts `cmd` inside the namespace (a child inherits its parent thread's namespace).
    pub fn spawn(&self, mut cmd: Command) -> io::Result<Child> {
        self.run(move || cmd.spawn())?
    }
}

//! A UDP relay inside a namespace that forwards every datagram to one address and keeps a copy
//! of the first few: genuine datagrams an attacker on the wire could capture and replay.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Netns;

/// A running relay; stopped on drop.
pub struct Relay {
    captured: Arc<Mutex<Vec<Vec<u8>>>>,
    forwarded: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Relay {
    /// Listens on `listen` in `ns`, forwards each datagram to `to`, and keeps copies of the
    /// first `keep`.
    pub fn start(ns: &Netns, listen: SocketAddr, to: SocketAddr, keep: usize) -> io::Result<Self> {
        let captured = Arc::new(Mutex::new(Vec::new()));
        let forwarded = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let socket = ns.run(move || UdpSocket::bind(listen))??;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let thread = {
            let (captured, forwarded, stop) = (
                Arc::clone(&captured),
                Arc::clone(&forwarded),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || -> io::Result<()> {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let n = match socket.recv_from(&mut buf) {
                        Ok((n, _)) => n,
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) =>
                        {
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    if let Ok(mut c) = captured.lock() {
                        if c.len() < keep {
                            c.push(buf[..n].to_vec());
                        }
                    }
                    // A full buffer loses the datagram, as a network would.
                    let _ = socket.send_to(&buf[..n], to);
                    forwarded.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        };
        Ok(Self {
            captured,
            forwarded,
            stop,
            thread: Some(thread),
        })
    }

    /// Copies of the first datagrams relayed.
    pub fn captured(&self) -> Vec<Vec<u8>> {
        self.captured.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Datagrams forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

//! `fcvpn demo`: two network namespaces joined by a simulated FC fabric, one fcvpn end in
//! each, then a handshake, a ping and a throughput run measured by fcvpn itself. It needs root
//! and nothing but the fcvpn binary, and leaves nothing behind.

pub mod netns;
mod probe;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::control;
use crate::crypto::PrivateKey;
use crate::fabric::FabricOptions;
use netns::NetNs;

/// What stopped the demo.
#[derive(Debug, Error)]
pub enum DemoError {
    /// Not root.
    #[error("the demo needs root: it creates network namespaces and interfaces")]
    NotRoot,
    /// A step failed.
    #[error("{0}")]
    Step(String),
}

fn step<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |e| DemoError::Step(format!("{what}: {e}"))
}

/// The two ends.
const NAMES: [&str; 2] = ["fcdemo-a", "fcdemo-b"];
const ADDRS: [&str; 2] = ["10.77.0.1", "10.77.0.2"];

/// Everything the demo created, removed on drop.
struct Setup {
    dir: PathBuf,
    ns: [NetNs; 2],
    children: Vec<Child>,
    fabric_stop: Arc<AtomicBool>,
    fabric: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        self.fabric_stop.store(true, Ordering::Relaxed);
        if let Some(f) = self.fabric.take() {
            let _ = f.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the demo and prints what it measured.
pub fn run() -> Result<(), DemoError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DemoError::NotRoot);
    }
    println!("fcvpn demo: two network namespaces joined by a simulated Fibre Channel fabric");
    let mut setup = prepare()?;
    let started = Instant::now();
    start_ends(&mut setup)?;
    let handshake = wait_for_carrier(&setup, Duration::from_secs(15))?;
    println!(
        "  handshake: link up {:.1} ms after start",
        handshake.as_secs_f64() * 1e3
    );
    let rtt = probe::ping(&setup.ns, ADDRS[1], 200).map_err(step("ping"))?;
    println!(
        "  ping (UDP echo over the tunnel, {} round trips): min {} us, median {} us, p99 {} us",
        rtt.count, rtt.min_us, rtt.median_us, rtt.p99_us
    );
    for (from, to) in [(0, 1), (1, 0)] {
        let t = probe::throughput(&setup.ns, from, ADDRS[to], Duration::from_secs(3))
            .map_err(step("throughput"))?;
        println!(
            "  TCP {} -> {}: {:.2} Gbit/s ({} MiB in {:.1} s)",
            NAMES[from],
            NAMES[to],
            t.gbit_per_s(),
            t.bytes >> 20,
            t.seconds
        );
    }
    for name in NAMES {
        let s = control::query(&control::socket_path(name)).map_err(step("show"))?;
        let fc = s.paths.first();
        println!(
            "  {name}: {} packets sent, {} resent, {} rejected batches, fc rtt {} us",
            s.packets.accepted,
            s.packets.retransmitted,
            s.rejected_batches,
            fc.map_or(0, |p| p.rtt_us)
        );
    }
    println!(
        "  total {:.1} s; everything is removed on exit",
        started.elapsed().as_secs_f64()
    );
    drop(setup);
    Ok(())
}

/// Keys, configs, namespaces and the fabric.
fn prepare() -> Result<Setup, DemoError> {
    let dir = std::env::temp_dir().join(format!("fcvpn-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(step("temporary directory"))?;
    let keys: Vec<PrivateKey> = (0..2).map(|_| random_key()).collect::<Result<_, _>>()?;
    let socket = dir.join("fabric.sock");
    for i in 0..2 {
        write_config(&dir, i, &keys[i], &keys[1 - i], &socket)?;
    }
    let ns = [
        NetNs::new().map_err(step("network namespace"))?,
        NetNs::new().map_err(step("network namespace"))?,
    ];
    let fabric_stop = Arc::new(AtomicBool::new(false));
    let opts = FabricOptions {
        socket: socket.clone(),
        drop: 0.0,
        error: 0.0,
        delay: Duration::ZERO,
        seed: 0,
    };
    let stop = Arc::clone(&fabric_stop);
    let fabric = std::thread::spawn(move || {
        if let Err(e) = crate::fabric::run(opts, &stop) {
            eprintln!("fcvpn demo: fabric: {e}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Setup {
        dir,
        ns,
        children: Vec::new(),
        fabric_stop,
        fabric: Some(fabric),
    })
}

fn random_key() -> Result<PrivateKey, DemoError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(step("randomness"))?;
    Ok(PrivateKey::from_bytes(seed))
}

fn write_config(
    dir: &Path,
    i: usize,
    local: &PrivateKey,
    peer: &PrivateKey,
    socket: &Path,
) -> Result<(), DemoError> {
    use std::os::unix::fs::OpenOptionsExt;
    let key_path = dir.join(format!("{}.key", NAMES[i]));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(step("key file"))?;
    std::io::Write::write_all(
        &mut f,
        format!("{}\n", local.to_base64().as_str()).as_bytes(),
    )
    .map_err(step("key file"))?;
    let role = if i == 0 { "initiator" } else { "target" };
    let text = format!(
        "[interface]\nname = \"{}\"\nprivate_key_file = \"{}.key\"\naddress = [\"{}/24\"]\n\n[peer]\npublic_key = \"{}\"\n\n[fc]\nrole = \"{role}\"\nbackend = \"sim\"\nfabric = \"{}\"\n",
        NAMES[i],
        NAMES[i],
        ADDRS[i],
        peer.public_key().to_base64(),
        socket.display()
    );
    std::fs::write(dir.join(format!("{}.conf", NAMES[i])), text).map_err(step("config file"))
}

/// Starts `fcvpn up` for both ends, each inside its namespace.
fn start_ends(setup: &mut Setup) -> Result<(), DemoError> {
    let exe = std::env::current_exe().map_err(step("own executable"))?;
    for i in [1, 0] {
        let log = std::fs::File::create(setup.dir.join(format!("{}.log", NAMES[i])))
            .map_err(step("log file"))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("up")
            .arg(setup.dir.join(format!("{}.conf", NAMES[i])))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = setup.ns[i].spawn(cmd).map_err(step("starting fcvpn up"))?;
        setup.children.push(child);
    }
    Ok(())
}

/// Waits until both ends report a carrier; returns how long it took.
fn wait_for_carrier(setup: &Setup, limit: Duration) -> Result<Duration, DemoError> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let up = NAMES
            .iter()
            .all(|n| control::query(&control::socket_path(n)).is_ok_and(|s| s.carrier));
        if up {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let logs: Vec<String> = NAMES
        .iter()
        .map(|n| std::fs::read_to_string(setup.dir.join(format!("{n}.log"))).unwrap_or_default())
        .collect();
    Err(DemoError::Step(format!(
        "the link did not come up within {limit:?}; logs:\n{}",
        logs.join("\n")
    )))
}

//! `fcvpn up`: checks, then builds the link, the interface and the transports from a
//! [`Config`], runs the [`Driver`] until SIGINT or SIGTERM, and tears everything down.
//!
//! Every check that can fail on bad input runs before anything is created, so a failed start
//! leaves nothing behind.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use thiserror::Error;

use crate::config::{self, Backend, Config, Mode, Role};
use crate::control::{self, ControlServer};
use crate::crypto::LocalStatic;
use crate::crypto::fabric::{FabricKey, FabricRole, LowOrderKey};
use crate::driver::Driver;
use crate::link::{Entropy, Link, LinkConfig, PathConfig};
use crate::scsi::{CommandVerifier, DeviceIdentity, VirtualDevice};
use crate::status::StaticInfo;
use crate::sys::caps::Cap;
use crate::transport::WallClock;
use crate::transport::initiator::{InitiatorPort, InitiatorSettings};
use crate::transport::lio::{self, LioPaths, LioSpec};
use crate::transport::sim::{SimInitiator, SimTarget};
use crate::transport::target::{TargetPort, TargetSettings};
use crate::transport::tcmu::{TcmuError, TcmuTarget};
use crate::transport::udp::{ETHERNET_PATH, UdpPath};
use crate::transport::{FC_PATH, Transport};
use crate::tun::{LinuxTun, TunSettings};

/// Why `fcvpn up` could not start or stopped with an error. Each is one line naming the cause.
#[derive(Debug, Error)]
pub enum UpError {
    /// The configuration is invalid (the message names file, line and key).
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// Not running as root.
    #[error("must run as root: it creates a network interface and opens SCSI devices")]
    NotRoot,
    /// The simulated fabric's socket does not exist.
    #[error(
        "{file}:{line}: fc.fabric: {socket}: no such socket; start `fcvpn fabric --socket {socket}` first"
    )]
    NoFabric {
        /// The config file.
        file: String,
        /// The line of `fabric` in it.
        line: usize,
        /// The socket path.
        socket: String,
    },
    /// LIO TCMU could not be set up.
    #[error("fc.backend tcmu: {0}")]
    Tcmu(#[from] TcmuError),
    /// The backend does not serve this role (the configuration parser already refuses this).
    #[error("fc.backend: {0} does not serve this fc.role")]
    Unsupported(String),
    /// The peer's public key cannot authenticate SCSI commands.
    #[error("peer.public_key: {0}")]
    LowOrderPeer(#[from] LowOrderKey),
    /// Anything else, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// Why.
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> UpError {
    let what = what.into();
    move |source| UpError::Io { what, source }
}

/// Random bytes from the operating system, for the link.
struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        // The OS RNG does not fail on Linux once booted; a failure here is unrecoverable.
        getrandom::fill(buf).expect("the operating system's random number generator failed");
    }
}

/// Runs `fcvpn up CONFIG` to completion.
pub fn up(path: &Path) -> Result<(), UpError> {
    let cfg = Config::load(path)?;
    if !nix::unistd::geteuid().is_root() {
        return Err(UpError::NotRoot);
    }
    check_backend(&cfg, path)?;
    let control = ControlServer::bind(&control::socket_path(&cfg.interface.name))
        .map_err(io_err("control socket"))?;
    let stop = stop_signals().map_err(|e| UpError::Io {
        what: "signal setup".into(),
        source: e.into(),
    })?;
    let mut transports = Vec::new();
    if let Some(fc) = &cfg.fc {
        transports.push(build_transport(&cfg, fc)?);
    }
    if let Some(e) = &cfg.ethernet {
        let udp = UdpPath::bind(e.listen, e.endpoint, e.max_datagram)
            .map_err(io_err(format!("ethernet.listen {}", e.listen)))?;
        transports.push(Box::new(udp));
    }
    let epoch = Instant::now();
    let link = Link::new(link_config(&cfg), Box::new(OsEntropy), Duration::ZERO).map_err(|e| {
        UpError::Io {
            what: "link".into(),
            source: std::io::Error::other(e),
        }
    })?;
    let tun = LinuxTun::open(&tun_settings(&cfg))
        .map_err(io_err(format!("interface {}", cfg.interface.name)))?;
    if tun.reattached {
        tracing::info!(
            "reattached to interface {} left by an earlier fcvpn",
            cfg.interface.name
        );
    }
    let info = static_info(&cfg);
    match &cfg.fc {
        Some(_) => tracing::info!(
            "{} up as FC {} over the {} backend",
            info.name,
            info.role,
            info.backend
        ),
        None => tracing::info!("{} up over Ethernet (UDP) only", info.name),
    }
    let mut driver = Driver::new(link, Box::new(tun), transports, info, epoch);
    driver.control = Some(control);
    drop_privileges(&cfg)?;
    let result = driver.run(stop.as_fd()).map_err(io_err("event loop"));
    shut_down(&mut driver);
    result
}

/// The capabilities an end keeps once it is set up (interface created, addresses and routes
/// set, backend opened, sockets bound); everything else is dropped from every set.
///
/// - Every end: `CAP_NET_ADMIN`, for TUNSETCARRIER (the carrier follows the link) and
///   clearing the interface's persistence at exit.
/// - `sim` and Ethernet: nothing more (a lost fabric is reconnected through a root-owned
///   socket, which needs no capability for root's own uid).
/// - `sg`: `CAP_SYS_RAWIO`, for SG_IO on a device found again after it disappeared (the
///   kernel lets commands outside its unprivileged list through only with it).
/// - `tcmu`: `CAP_SYS_ADMIN` and `CAP_DAC_OVERRIDE`, to re-create LIO's configfs objects and
///   reopen the UIO device when the ring is lost, and to remove them at exit.
///
/// The process keeps uid 0 (the objects it reopens are root's); `PR_SET_NO_NEW_PRIVS` and
/// the emptied bounding set make sure no execve can give anything back.
pub fn kept_capabilities(cfg: &Config) -> Vec<Cap> {
    let mut keep = vec![Cap::NET_ADMIN];
    match cfg.fc.as_ref().map(|fc| &fc.backend) {
        Some(Backend::Sg { .. }) => keep.push(Cap::SYS_RAWIO),
        Some(Backend::Tcmu { .. }) => keep.extend([Cap::SYS_ADMIN, Cap::DAC_OVERRIDE]),
        Some(Backend::Sim { .. }) | None => {}
    }
    keep
}

/// Drops every capability but [`kept_capabilities`]; the loop is single-threaded, so the
/// calling thread is the whole process. (An sg device search started before, still running
/// on its helper thread, keeps its capabilities until it ends; every later search thread
/// inherits the reduced set.)
fn drop_privileges(cfg: &Config) -> Result<(), UpError> {
    let keep = kept_capabilities(cfg);
    crate::sys::caps::restrict_to(&keep).map_err(io_err("dropping capabilities"))?;
    tracing::debug!("capabilities reduced to {keep:?}, no new privileges");
    Ok(())
}

/// Checks what the backend needs before anything is created.
fn check_backend(cfg: &Config, path: &Path) -> Result<(), UpError> {
    let Some(fc) = &cfg.fc else {
        return Ok(());
    };
    if let Backend::Sim { fabric, line } = &fc.backend {
        use std::os::unix::fs::FileTypeExt;
        let is_socket = std::fs::metadata(fabric).is_ok_and(|m| m.file_type().is_socket());
        if !is_socket {
            return Err(UpError::NoFabric {
                file: path.display().to_string(),
                line: *line,
                socket: fabric.display().to_string(),
            });
        }
    }
    if let Some(spec) = LioSpec::from_config(cfg) {
        lio::check_prerequisites(&LioPaths::system(), &spec).map_err(TcmuError::from)?;
    }
    if let Backend::Sg { device } = &fc.backend {
        let roots = crate::transport::sg_discovery::Roots::default();
        crate::transport::sg_discovery::preflight(device, &roots).map_err(|why| UpError::Io {
            what: "fc.device".into(),
            source: std::io::Error::other(why),
        })?;
    }
    Ok(())
}

fn stop_signals() -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()?;
    // SIGPIPE needs nothing: Rust programs start with it ignored, so a write to a closed
    // socket returns EPIPE.
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

fn link_config(cfg: &Config) -> LinkConfig {
    let local = LocalStatic::new(cfg.interface.private_key.clone());
    let mut paths = Vec::new();
    if let Some(fc) = &cfg.fc {
        let mut path = PathConfig::new(FC_PATH, "fc", 0, fc.max_transfer);
        path.probe_interval = fc.probe_interval;
        path.dead_after = fc.dead_after;
        paths.push(path);
    }
    if let Some(e) = &cfg.ethernet {
        let mut eth = PathConfig::new(ETHERNET_PATH, "ethernet", 1, e.max_datagram);
        eth.max_in_flight = ETHERNET_WINDOW;
        let (source, len) = crate::transport::udp::source_bytes(Some(e.endpoint));
        eth.peer_source = Some(source[..len].to_vec());
        paths.push(eth);
    }
    let mut lc = LinkConfig::new(local, cfg.peer.public_key, paths);
    let mut instance = [0u8; 8];
    OsEntropy.fill(&mut instance);
    lc.instance = u64::from_le_bytes(instance);
    lc.epoch_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    lc.max_frame_age = cfg.interface.max_frame_age;
    if let Some(rekey) = test_rekey_after() {
        scale_rekey(&mut lc, rekey);
    }
    lc.padding = cfg.interface.padding;
    lc.compression = match cfg.interface.compression {
        config::Compression::Off => crate::link::Compression::Off,
        config::Compression::Lz4 => crate::link::Compression::Lz4,
    };
    lc
}

/// Test-only: `FCVPN_TEST_REKEY_AFTER_MS` (milliseconds, at least 1) shortens the rekey
/// interval so that a test of a minute sees several rekeys. Never set it in production.
pub const TEST_REKEY_AFTER_ENV: &str = "FCVPN_TEST_REKEY_AFTER_MS";

fn test_rekey_after() -> Option<Duration> {
    let ms: u64 = std::env::var(TEST_REKEY_AFTER_ENV)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// Sets `rekey_after` and scales `reject_after` with it as the defaults relate (180 s to
/// 120 s); the other side's fallback (`rekey_after` + 3 retries) follows by itself.
fn scale_rekey(lc: &mut LinkConfig, rekey: Duration) {
    let default = LinkConfig::new(lc.local.clone(), lc.peer, Vec::new());
    lc.rekey_after = rekey;
    lc.reject_after =
        rekey.mul_f64(default.reject_after.as_secs_f64() / default.rekey_after.as_secs_f64());
    tracing::warn!("{TEST_REKEY_AFTER_ENV}: rekey after {rekey:?} (test setting)");
}

fn tun_settings(cfg: &Config) -> TunSettings {
    let i = &cfg.interface;
    TunSettings {
        name: i.name.clone(),
        tap: i.mode == Mode::Tap,
        mtu: i.mtu,
        addresses: i.addresses.iter().map(|a| (a.addr, a.prefix)).collect(),
        bring_up: !(i.mode == Mode::Tap && i.addresses.is_empty()),
    }
}

fn build_transport(cfg: &Config, fc: &config::Fc) -> Result<Box<dyn Transport>, UpError> {
    match (&fc.backend, fc.role) {
        (Backend::Sim { fabric, .. }, Role::Target) => {
            let backend = SimTarget::new(fabric.clone(), fc.port);
            Ok(Box::new(TargetPort::new(
                backend,
                virtual_device(cfg)?,
                target_settings(fc),
            )))
        }
        (Backend::Sim { fabric, .. }, Role::Initiator) => {
            let backend = SimInitiator::new(fabric.clone(), fc.port);
            Ok(Box::new(InitiatorPort::new(
                backend,
                initiator_settings(cfg, fc)?,
            )))
        }
        (
            Backend::Tcmu {
                fabric_module,
                allowed_initiators,
            },
            Role::Target,
        ) => {
            let spec = LioSpec::new(
                &cfg.interface.name,
                *fabric_module,
                fc.port,
                allowed_initiators.clone(),
                fc.max_transfer,
            );
            let device = virtual_device(cfg)?;
            let backend = TcmuTarget::open(&spec, &LioPaths::system(), device.clone())?;
            Ok(Box::new(TargetPort::new(
                backend,
                device,
                target_settings(fc),
            )))
        }
        (Backend::Sg { device }, Role::Initiator) => {
            use crate::transport::sg::{FIRST_SEARCH_WAIT, SgInitiator};
            let peer = DeviceIdentity::from_target_public(cfg.peer.public_key.as_bytes());
            let mut backend = SgInitiator::new(device.clone(), peer);
            backend.wait_connected(FIRST_SEARCH_WAIT); // Not found yet: the port keeps looking.
            let mut settings = initiator_settings(cfg, fc)?;
            settings.max_transfer = settings.max_transfer.min(backend.max_transfer());
            backend.set_transfer(settings.max_transfer);
            Ok(Box::new(InitiatorPort::new(backend, settings)))
        }
        (other, _) => Err(UpError::Unsupported(format!("{other:?}"))),
    }
}

/// The pair's fabric key (one X25519), with the local end in `role`.
fn fabric_key(cfg: &Config, role: FabricRole) -> Result<FabricKey, LowOrderKey> {
    FabricKey::derive(&cfg.interface.private_key, &cfg.peer.public_key, role)
}

/// The wall clock now (the daemon reads it once here; the driver keeps it up to date).
fn wall_clock() -> WallClock {
    WallClock::new(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// The virtual device the target end serves, its token verifier set to the clock now.
fn virtual_device(cfg: &Config) -> Result<VirtualDevice, UpError> {
    let local = cfg.interface.private_key.public_key();
    let mut device = VirtualDevice::new(
        DeviceIdentity::from_target_public(local.as_bytes()),
        CommandVerifier::new(fabric_key(cfg, FabricRole::Target)?),
    );
    device.tick(wall_clock().seconds(Duration::ZERO));
    Ok(device)
}

fn target_settings(fc: &config::Fc) -> TargetSettings {
    TargetSettings {
        read_hold: fc.read_hold,
        max_transfer: fc.max_transfer,
        reconnect_every: RECONNECT_EVERY,
        wall_clock: wall_clock(),
    }
}

fn initiator_settings(cfg: &Config, fc: &config::Fc) -> Result<InitiatorSettings, UpError> {
    Ok(InitiatorSettings {
        fabric_key: fabric_key(cfg, FabricRole::Initiator)?,
        read_hold: fc.read_hold,
        wall_clock: wall_clock(),
        reads_in_flight: fc.reads_in_flight,
        writes_in_flight: fc.writes_in_flight,
        max_transfer: fc.max_transfer,
        command_timeout: fc.command_timeout,
        reconnect_every: RECONNECT_EVERY,
        impostor_after: matches!(
            fc.backend,
            Backend::Sg {
                device: config::SgDevice::Auto
            }
        )
        .then(|| fc.dead_after * IMPOSTOR_AFTER_DEAD),
    })
}

/// With `device = "auto"`, a device is suspected of being an impostor after this many
/// `dead_after` periods of GOOD completions with no authenticated proof on FC (2 s with the
/// defaults): long enough for a handshake retried a few times, short against an outage.
const IMPOSTOR_AFTER_DEAD: u32 = 10;

/// Payload bytes in flight on the Ethernet path: well above its bandwidth-delay product on a
/// LAN, well below the socket buffers ([`crate::transport::udp`] sets 8 MiB).
const ETHERNET_WINDOW: usize = 2 << 20;

/// Pause between attempts to reach a lost fabric or device.
const RECONNECT_EVERY: Duration = Duration::from_millis(200);

fn static_info(cfg: &Config) -> StaticInfo {
    StaticInfo {
        name: cfg.interface.name.clone(),
        role: match cfg.fc.as_ref().map(|fc| fc.role) {
            Some(Role::Target) => "target",
            Some(Role::Initiator) => "initiator",
            None => "none",
        }
        .to_owned(),
        mode: match cfg.interface.mode {
            Mode::Tun => "tun",
            Mode::Tap => "tap",
        }
        .to_owned(),
        backend: match cfg.fc.as_ref().map(|fc| &fc.backend) {
            Some(Backend::Sim { .. }) => "sim",
            Some(Backend::Tcmu { .. }) => "tcmu",
            Some(Backend::Sg { .. }) => "sg",
            None => "udp",
        }
        .to_owned(),
        peer_public_key: cfg.peer.public_key.to_base64(),
        public_key: cfg.interface.private_key.public_key().to_base64(),
    }
}

/// Tells the peer we are leaving, then removes the interface.
fn shut_down(driver: &mut Driver) {
    tracing::info!("shutting down");
    driver.link.close();
    let deadline = driver.epoch.elapsed() + Duration::from_millis(100);
    while driver.epoch.elapsed() < deadline {
        driver.turn(driver.epoch.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Err(e) = driver.tun.remove() {
        tracing::warn!("removing the interface: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PrivateKey;

    fn parse(sections: &str) -> Config {
        let own = PrivateKey::from_bytes([1; 32]).to_base64();
        let peer = PrivateKey::from_bytes([2; 32]).public_key().to_base64();
        let text = format!(
            "[interface]\nprivate_key = \"{}\"\n[peer]\npublic_key = \"{peer}\"\n{sections}",
            own.as_str()
        );
        Config::parse(&text, Path::new("t.conf")).expect("valid")
    }

    const FC: &str = "[fc]\nrole = \"target\"\nbackend = \"sim\"\nfabric = \"f.sock\"\n";
    const ETHERNET: &str =
        "[ethernet]\nlisten = \"127.0.0.1:51900\"\nendpoint = \"127.0.0.1:51901\"\n";

    fn path_ids(cfg: &Config) -> Vec<(u8, usize)> {
        link_config(cfg)
            .paths
            .iter()
            .map(|p| (p.id, p.max_batch))
            .collect()
    }

    #[test]
    fn paths_follow_the_sections() {
        assert_eq!(path_ids(&parse(FC)), [(FC_PATH, 1 << 20)]);
        let both = parse(&format!("{FC}{ETHERNET}"));
        assert_eq!(path_ids(&both), [(FC_PATH, 1 << 20), (ETHERNET_PATH, 1472)]);
        let ethernet = parse(ETHERNET);
        assert_eq!(path_ids(&ethernet), [(ETHERNET_PATH, 1472)]);
        assert_eq!(
            link_config(&ethernet).paths[0].max_in_flight,
            ETHERNET_WINDOW
        );
        // No FC backend to check before an Ethernet-only link comes up.
        assert!(check_backend(&ethernet, Path::new("t.conf")).is_ok());
    }

    #[test]
    fn each_backend_keeps_only_its_capabilities() {
        assert_eq!(kept_capabilities(&parse(FC)), [Cap::NET_ADMIN]);
        assert_eq!(kept_capabilities(&parse(ETHERNET)), [Cap::NET_ADMIN]);
        let sg = "[fc]\nrole = \"initiator\"\nbackend = \"sg\"\n";
        assert_eq!(
            kept_capabilities(&parse(sg)),
            [Cap::NET_ADMIN, Cap::SYS_RAWIO]
        );
        let tcmu = "[fc]\nrole = \"target\"\nbackend = \"tcmu\"\nfabric_module = \"loopback\"\nallowed_initiators = [\"naa.5001405fc0000002\"]\n";
        assert_eq!(
            kept_capabilities(&parse(tcmu)),
            [Cap::NET_ADMIN, Cap::SYS_ADMIN, Cap::DAC_OVERRIDE]
        );
    }

    #[test]
    fn an_ethernet_only_link_has_no_role_nor_backend() {
        let info = static_info(&parse(ETHERNET));
        assert_eq!((info.role.as_str(), info.backend.as_str()), ("none", "udp"));
        let info = static_info(&parse(FC));
        assert_eq!(
            (info.role.as_str(), info.backend.as_str()),
            ("target", "sim")
        );
    }
}

//! `peer.conf`: the TOML file describing one end of a link, parsed into a typed [`Config`].
//!
//! ```toml
//! [interface]
//! name = "fc0"                      # default "fcvpn0"; also names /run/fcvpn/NAME.sock
//! private_key_file = "a.key"        # or private_key = "<base64>"; exactly one of the two
//! address = ["10.77.0.1/24", "fd77::1/64"]
//! mtu = 65000                       # default 65000 (tun) or 9000 (tap); 1280..=65535
//! mode = "tun"                      # "tun" (default) or "tap"
//! compression = "off"               # "off" (default) or "lz4"
//! padding = "off"                   # "off" (default) or "bucket": pad batches to size buckets
//! max_frame_age_ms = 3000           # 100..=60000
//!
//! [peer]
//! public_key = "<base64>"
//!
//! [fc]                              # optional when [ethernet] is given (Ethernet only)
//! role = "target"                   # "target" or "initiator"
//! backend = "sim"                   # "sim": the simulated fabric
//! fabric = "/run/fcvpn/fabric.sock" # the simulated fabric's socket (backend "sim")
//! port = "naa.5001405fc0000001"     # or 50:01:40:5f:c0:00:00:01; default from the public key
//! read_hold_ms = 250                # 1..=1000
//! reads_in_flight = 8               # 1..=15
//! writes_in_flight = 8              # 1..=15
//! max_transfer = 1048576            # 4096..=16777216, a multiple of 512
//! command_timeout_ms = 1500         # 1001..=60000 (more than the longest read hold)
//! probe_interval_ms = 50            # 10..=10000
//! dead_after_ms = 200               # at least twice probe_interval_ms; at most 60000
//!
//! [ethernet]                        # optional when [fc] is given (then the backup path)
//! listen = "192.0.2.1:51900"        # local address and port
//! endpoint = "192.0.2.2:51900"      # the peer's
//! max_datagram = 1472               # 512..=65507; default 1472 (IPv4) or 1452 (IPv6)
//! ```
//!
//! A link needs `[fc]`, `[ethernet]` or both: with both, FC carries the traffic and Ethernet
//! takes over when FC fails; with `[ethernet]` alone, the link runs over UDP only.
//!
//! Unknown keys and sections are errors, and so is every value out of its range: a typo never
//! silently falls back to a default. Relative paths are relative to the file's directory. A
//! private key file, and a configuration file that holds an inline `private_key`, must not be
//! accessible by group or others (as `ssh` insists) and must be owned by the user running
//! fcvpn or by root (see [`check_secret_file`]).
//!
//! Every error is one [`ConfigError`] line naming the file, the line and the dotted key:
//! `peer.conf:4: interface.mode: expected "tun" or "tap", got "tan"`.

mod error;
mod net;
mod port;
mod raw;
#[cfg(test)]
mod tests;

use core::ops::{Range, RangeInclusive};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use zeroize::Zeroizing;

use crate::crypto::{KeyError, PrivateKey, PublicKey};
use error::Source;
use raw::{Opt, RawEthernet, RawFc, RawFile, RawInterface, RawPeer};

pub use crate::link::{Compression, Padding};
pub use error::ConfigError;
pub use net::{IpNet, IpNetError};
pub use port::{default_port_name, format_port_colon, format_port_naa, parse_port_name};

/// Interface name when `interface.name` is not set.
pub const DEFAULT_INTERFACE_NAME: &str = "fcvpn0";

/// Default MTU of a TUN interface.
///
/// Per-packet cost dominates on this path: a TUN relay spends about 4 µs of CPU per packet
/// whatever its size, so a large inner MTU is the biggest throughput lever there is. 65000
/// leaves room for headers under the 65535-byte IPv4 packet limit.
pub const DEFAULT_TUN_MTU: u16 = 65000;

/// Default MTU of a TAP interface: 9000, because a TAP interface is meant to be enslaved to a
/// bond next to Ethernet NICs (active-backup), and a bond's slaves must share one MTU; 9000 is
/// the jumbo-frame size those NICs support.
pub const DEFAULT_TAP_MTU: u16 = 9000;

/// Longest a target may hold a parked READ (`fc.read_hold_ms`), fixed by `proto/SPEC.md` §11.3;
/// the initiator's command timeout must exceed it.
pub const MAX_READ_HOLD: Duration = Duration::from_millis(1000);

const MTU_RANGE: RangeInclusive<i64> = 1280..=65535;
const MAX_FRAME_AGE_MS: RangeInclusive<i64> = 100..=60_000;
const DEFAULT_MAX_FRAME_AGE_MS: u64 = 3000;
const READ_HOLD_MS: RangeInclusive<i64> = 1..=1000;
const DEFAULT_READ_HOLD_MS: u64 = 250;
const IN_FLIGHT: RangeInclusive<i64> = 1..=15;
/// READs parked plus WRITEs in flight fill the sg driver's 16 commands per descriptor, and
/// give room to keep going while a lost command waits for its timeout.
const DEFAULT_IN_FLIGHT: usize = 8;
const MAX_TRANSFER: RangeInclusive<i64> = 4096..=16_777_216;
const TRANSFER_UNIT: usize = 512;
const DEFAULT_MAX_TRANSFER: usize = 1 << 20;
const COMMAND_TIMEOUT_MS: RangeInclusive<i64> = 1001..=60_000;
const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 1500;
const PROBE_INTERVAL_MS: RangeInclusive<i64> = 10..=10_000;
const DEFAULT_PROBE_INTERVAL_MS: u64 = 50;
const DEAD_AFTER_MS: RangeInclusive<i64> = 20..=60_000;
const DEFAULT_DEAD_AFTER_MS: u64 = 200;
/// Linux IFNAMSIZ less the terminating NUL.
const MAX_NAME_LEN: usize = 15;
/// A key file is 45 bytes; anything much larger is not one.
const MAX_KEY_FILE_LEN: usize = 1024;

/// One end of a link, as its `peer.conf` describes it. `Debug` never shows the private key.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, as given (errors and relative paths refer to it).
    pub path: PathBuf,
    /// The `[interface]` section: the local TUN/TAP interface and key.
    pub interface: Interface,
    /// The `[peer]` section: the other end.
    pub peer: Peer,
    /// The `[fc]` section: the Fibre Channel transport. `None` for an Ethernet-only link.
    pub fc: Option<Fc>,
    /// The `[ethernet]` section: the UDP path (the backup next to FC, or the only path).
    pub ethernet: Option<Ethernet>,
}

/// The Ethernet path: encrypted UDP in the same session as FC (its backup), or alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ethernet {
    /// Local address and port to receive on.
    pub listen: std::net::SocketAddr,
    /// The peer's address and port.
    pub endpoint: std::net::SocketAddr,
    /// Largest UDP payload: 1472 (IPv4) or 1452 (IPv6) fits an MTU of 1500 unfragmented.
    pub max_datagram: usize,
}

/// The local network interface and this end's key.
#[derive(Debug, Clone)]
pub struct Interface {
    /// Interface name (1 to 15 bytes of `[A-Za-z0-9_.-]`); also names `/run/fcvpn/NAME.sock`.
    pub name: String,
    /// This end's static private key (from `private_key_file` or `private_key`).
    pub private_key: PrivateKey,
    /// Addresses to put on the interface.
    pub addresses: Vec<IpNet>,
    /// Interface MTU.
    pub mtu: u16,
    /// Layer 3 (TUN) or layer 2 (TAP).
    pub mode: Mode,
    /// Per-packet compression.
    pub compression: Compression,
    /// Padding of batches to size buckets (hides exact sizes from the fabric and the network).
    pub padding: Padding,
    /// A frame unacknowledged this long after it was sent is given up.
    pub max_frame_age: Duration,
}

/// The other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The peer's pinned static public key.
    pub public_key: PublicKey,
}

/// The Fibre Channel transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fc {
    /// Which side of the SCSI conversation this end is.
    pub role: Role,
    /// Where SCSI commands go.
    pub backend: Backend,
    /// This end's port name (WWPN).
    pub port: u64,
    /// Longest the target parks a READ before answering it with an idle batch.
    pub read_hold: Duration,
    /// READs the initiator keeps parked at the target.
    pub reads_in_flight: usize,
    /// WRITEs the initiator keeps in flight.
    pub writes_in_flight: usize,
    /// Bytes per SCSI command (a multiple of 512).
    pub max_transfer: usize,
    /// The initiator's SCSI command timeout (always more than [`MAX_READ_HOLD`]).
    pub command_timeout: Duration,
    /// How often the FC path is probed.
    pub probe_interval: Duration,
    /// The FC path is declared down after this long without proof of a round trip.
    pub dead_after: Duration,
}

/// Kind of local interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// IP packets (layer 3).
    Tun,
    /// Ethernet frames (layer 2), for bonding with Ethernet NICs.
    Tap,
}

/// Which side of the SCSI conversation this end is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves the virtual SCSI device and parks READs.
    Target,
    /// Sends the SCSI commands.
    Initiator,
}

/// Where this end's SCSI commands travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The simulated fabric (tests, demos): a socket served by `fcvpn fabric`.
    Sim {
        /// The fabric's socket; its existence is checked when the link comes up.
        fabric: PathBuf,
        /// The line of `fabric` in the file, for that check's error.
        line: usize,
    },
    /// Target end: LIO with a TCMU user backstore, exported on a fabric module.
    Tcmu {
        /// The LIO fabric module the target port lives on.
        fabric_module: FabricModule,
        /// Initiator port names admitted by the ACL (for loopback, the first is the nexus).
        allowed_initiators: Vec<u64>,
    },
    /// Initiator end: SG_IO on a `/dev/sgN`.
    Sg {
        /// Which device.
        device: SgDevice,
    },
}

/// LIO fabric modules fcvpn configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FabricModule {
    /// `tcm_loop`: a local SCSI host (tests, and a VM without HBAs).
    Loopback,
    /// `tcm_qla2xxx`: QLogic HBAs in target mode.
    Qla2xxx,
}

/// How the initiator finds its SCSI generic device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SgDevice {
    /// Scan `/dev/sg*` for the fcvpn device of the configured peer (INQUIRY and VPD 83h).
    Auto,
    /// This device node.
    Path(PathBuf),
}

impl Config {
    /// Reads and parses the file at `path`. An inline `private_key` is refused unless the file
    /// passes [`check_secret_file`] (mode and owner come from the same open file as the text).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let unreadable = |e: std::io::Error| ConfigError::unreadable(path, &e);
        let mut file = File::open(path).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        let mut text = Zeroizing::new(String::new());
        file.read_to_string(&mut text).map_err(unreadable)?;
        Self::parse_file(&text, path, Some(&meta))
    }

    /// Parses `text` as if it had been read from `path`: errors name `path`, and relative paths
    /// in it are resolved against `path`'s directory. A `private_key_file` is read from disk.
    /// The mode and owner of `path` itself are not checked (see [`Config::load`]).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_file(text, path, None)
    }

    /// [`Config::parse`], with the metadata of the file the text came from when there is one.
    fn parse_file(
        text: &str,
        path: &Path,
        meta: Option<&std::fs::Metadata>,
    ) -> Result<Config, ConfigError> {
        let src = Source { text, file: path };
        let raw: RawFile = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        let build = Build {
            src,
            dir: path.parent().unwrap_or(Path::new("")),
            meta,
        };
        let interface = build.interface(raw.interface.as_ref())?;
        let peer = build.peer(raw.peer.as_ref())?;
        let public = interface.private_key.public_key();
        if peer.public_key == public {
            let span = raw
                .peer
                .as_ref()
                .and_then(|p| p.get_ref().public_key.as_ref());
            return Err(build.err(
                span.map(Spanned::span),
                "peer.public_key",
                "is this end's own public key; give the other end's".to_owned(),
            ));
        }
        // Without [ethernet], [fc] is required (and a missing one is reported by its keys);
        // with it, [fc] may be left out: an Ethernet-only link.
        let fc = match (&raw.fc, &raw.ethernet) {
            (Some(fc), _) => Some(build.fc(Some(fc), &public)?),
            (None, Some(_)) => None,
            (None, None) => {
                let reason = "missing: a link needs [fc], [ethernet] or both".to_owned();
                return Err(build.err(None, "fc", reason));
            }
        };
        let ethernet = raw
            .ethernet
            .as_ref()
            .map(|e| build.ethernet(e))
            .transpose()?;
        Ok(Config {
            path: path.to_owned(),
            interface,
            peer,
            fc,
            ethernet,
        })
    }
}

/// Turns the raw file into a [`Config`], checking each value where it is.
struct Build<'a> {
    src: Source<'a>,
    /// Directory that relative paths are relative to.
    dir: &'a Path,
    /// The configuration file's metadata, when it was read from disk.
    meta: Option<&'a std::fs::Metadata>,
}

impl Build<'_> {
    fn err(&self, span: Option<Range<usize>>, key: &str, reason: String) -> ConfigError {
        self.src.error(span, key, reason)
    }

    fn interface(&self, section: Option<&Spanned<RawInterface>>) -> Result<Interface, ConfigError> {
        let at = section.map(Spanned::span);
        let empty = RawInterface::default();
        let raw = section.map_or(&empty, Spanned::get_ref);

        let name = match &raw.name {
            Some(name) => {
                check_interface_name(name.get_ref())
                    .map_err(|r| self.err(Some(name.span()), "interface.name", r))?;
                name.get_ref().clone()
            }
            None => DEFAULT_INTERFACE_NAME.to_owned(),
        };

        let private_key = match (&raw.private_key_file, &raw.private_key) {
            (Some(file), Some(inline)) => {
                // Blame whichever of the two comes second.
                let (span, key) = if file.span().start > inline.span().start {
                    (file.span(), "interface.private_key_file")
                } else {
                    (inline.span(), "interface.private_key")
                };
                let reason = "give private_key_file or private_key, not both".to_owned();
                return Err(self.err(Some(span), key, reason));
            }
            (Some(file), None) => self.read_key_file(file)?,
            (None, Some(inline)) => {
                let fail = |reason| self.err(Some(inline.span()), "interface.private_key", reason);
                if let Some(meta) = self.meta {
                    check_secret_file(meta).map_err(|why| {
                        fail(format!(
                            "an inline key needs a private file, but {} {why}; or use private_key_file",
                            self.src.file.display()
                        ))
                    })?;
                }
                PrivateKey::from_base64(&inline.get_ref().0).map_err(|e| fail(key_reason(e)))?
            }
            (None, None) => {
                let reason = "missing (or give private_key)".to_owned();
                return Err(self.err(at, "interface.private_key_file", reason));
            }
        };

        let mut addresses: Vec<IpNet> = Vec::new();
        for item in raw.address.iter().flat_map(|list| list.get_ref()) {
            let text = item.get_ref();
            let net: IpNet = text.parse().map_err(|e| {
                self.err(
                    Some(item.span()),
                    "interface.address",
                    format!("{}: {e}", text.escape_debug()),
                )
            })?;
            if addresses.iter().any(|a| a.addr == net.addr) {
                let reason = format!("{}: address given twice", text.escape_debug());
                return Err(self.err(Some(item.span()), "interface.address", reason));
            }
            addresses.push(net);
        }

        let mode = self
            .choice(
                &raw.mode,
                "interface.mode",
                &[("tun", Mode::Tun), ("tap", Mode::Tap)],
            )?
            .unwrap_or(Mode::Tun);
        let default_mtu = match mode {
            Mode::Tun => DEFAULT_TUN_MTU,
            Mode::Tap => DEFAULT_TAP_MTU,
        };
        let compression = self
            .choice(
                &raw.compression,
                "interface.compression",
                &[("off", Compression::Off), ("lz4", Compression::Lz4)],
            )?
            .unwrap_or(Compression::Off);
        let padding = self
            .choice(
                &raw.padding,
                "interface.padding",
                &[("off", Padding::Off), ("bucket", Padding::Bucket)],
            )?
            .unwrap_or(Padding::Off);

        Ok(Interface {
            name,
            private_key,
            addresses,
            mtu: self.int(&raw.mtu, "interface.mtu", MTU_RANGE, default_mtu)?,
            mode,
            compression,
            padding,
            max_frame_age: self.millis(
                &raw.max_frame_age_ms,
                "interface.max_frame_age_ms",
                MAX_FRAME_AGE_MS,
                DEFAULT_MAX_FRAME_AGE_MS,
            )?,
        })
    }

    /// Reads `private_key_file`, refusing one that group or others may access.
    fn read_key_file(&self, file: &Spanned<String>) -> Result<PrivateKey, ConfigError> {
        let path = self.dir.join(file.get_ref());
        let fail = |reason: String| {
            let reason = format!("{}{reason}", path.display());
            self.err(Some(file.span()), "interface.private_key_file", reason)
        };
        if file.get_ref().is_empty() {
            return Err(self.err(
                Some(file.span()),
                "interface.private_key_file",
                "empty path".to_owned(),
            ));
        }
        // Mode and contents come from the same open file, so they belong together.
        let mut handle = File::open(&path).map_err(|e| fail(format!(": cannot read: {e}")))?;
        let meta = handle
            .metadata()
            .map_err(|e| fail(format!(": cannot read: {e}")))?;
        if !meta.is_file() {
            return Err(fail(": cannot read: not a regular file".to_owned()));
        }
        check_secret_file(&meta).map_err(|why| fail(format!(" {why}")))?;
        // Room for the whole file up front, so the buffer (wiped on drop) never reallocates.
        let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN + 1));
        (&mut handle)
            .take(MAX_KEY_FILE_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!(": cannot read: {e}")))?;
        if bytes.len() > MAX_KEY_FILE_LEN {
            return Err(fail(format!(
                ": not a valid key: longer than {MAX_KEY_FILE_LEN} bytes"
            )));
        }
        let text = core::str::from_utf8(&bytes)
            .map_err(|_| fail(": not a valid key: not text".to_owned()))?;
        PrivateKey::from_base64(text)
            .map_err(|e| fail(format!(": not a valid key: {}", key_reason(e))))
    }

    fn peer(&self, section: Option<&Spanned<RawPeer>>) -> Result<Peer, ConfigError> {
        let at = section.map(Spanned::span);
        let Some(key) = section.and_then(|s| s.get_ref().public_key.as_ref()) else {
            return Err(self.err(at, "peer.public_key", "missing".to_owned()));
        };
        let public_key = PublicKey::from_base64(key.get_ref())
            .map_err(|e| self.err(Some(key.span()), "peer.public_key", key_reason(e)))?;
        Ok(Peer { public_key })
    }

    fn fc(&self, section: Option<&Spanned<RawFc>>, public: &PublicKey) -> Result<Fc, ConfigError> {
        let at = section.map(Spanned::span);
        let empty = RawFc::default();
        let raw = section.map_or(&empty, Spanned::get_ref);
        let missing = |key: &str| self.err(at.clone(), key, "missing".to_owned());

        let roles = [("target", Role::Target), ("initiator", Role::Initiator)];
        let role = self
            .choice(&raw.role, "fc.role", &roles)?
            .ok_or_else(|| missing("fc.role"))?;

        let backend = self.backend(raw, role, at.clone())?;

        let port = match &raw.port {
            None => default_port_name(public),
            Some(text) => match parse_port_name(text.get_ref()) {
                Some(port) if port != 0 => port,
                parsed => {
                    let reason = if parsed.is_some() {
                        format!("{:?}: the all-zero port name is reserved", text.get_ref())
                    } else {
                        format!(
                            "{:?} is not a port name (naa. and 16 hex digits, or 8 colon-separated hex pairs)",
                            text.get_ref()
                        )
                    };
                    return Err(self.err(Some(text.span()), "fc.port", reason));
                }
            },
        };
        self.fc_rest(raw, role, backend, port)
    }

    /// The `[ethernet]` section.
    fn ethernet(&self, section: &Spanned<RawEthernet>) -> Result<Ethernet, ConfigError> {
        let at = Some(section.span());
        let raw = section.get_ref();
        let addr = |v: &Opt<String>, key: &str| -> Result<std::net::SocketAddr, ConfigError> {
            let v = v
                .as_ref()
                .ok_or_else(|| self.err(at.clone(), key, "missing".to_owned()))?;
            v.get_ref().parse().map_err(|_| {
                let reason = format!("{:?} is not an address and port (like \"192.0.2.1:51900\" or \"[2001:db8::1]:51900\")", v.get_ref());
                self.err(Some(v.span()), key, reason)
            })
        };
        let listen = addr(&raw.listen, "ethernet.listen")?;
        let endpoint = addr(&raw.endpoint, "ethernet.endpoint")?;
        let default = if endpoint.is_ipv4() { 1472 } else { 1452 };
        let max_datagram: usize = self.int(
            &raw.max_datagram,
            "ethernet.max_datagram",
            512..=65_507,
            default,
        )?;
        Ok(Ethernet {
            listen,
            endpoint,
            max_datagram,
        })
    }

    /// `fc.backend` and its keys; a backend that does not suit the role is an error.
    fn backend(
        &self,
        raw: &RawFc,
        role: Role,
        at: Option<Range<usize>>,
    ) -> Result<Backend, ConfigError> {
        #[derive(Clone, Copy)]
        enum Kind {
            Sim,
            Tcmu,
            Sg,
        }
        let missing = |key: &str| self.err(at.clone(), key, "missing".to_owned());
        let kinds = [("sim", Kind::Sim), ("tcmu", Kind::Tcmu), ("sg", Kind::Sg)];
        let kind = self
            .choice(&raw.backend, "fc.backend", &kinds)?
            .ok_or_else(|| missing("fc.backend"))?;
        let wrong_role = |needed: &str| {
            let span = raw.backend.as_ref().map(Spanned::span);
            self.err(
                span,
                "fc.backend",
                format!("this backend needs role = \"{needed}\""),
            )
        };
        match kind {
            Kind::Sim => {
                let fabric = raw.fabric.as_ref().ok_or_else(|| missing("fc.fabric"))?;
                if fabric.get_ref().is_empty() {
                    let reason = "empty path".to_owned();
                    return Err(self.err(Some(fabric.span()), "fc.fabric", reason));
                }
                Ok(Backend::Sim {
                    fabric: self.dir.join(fabric.get_ref()),
                    line: self.src.line_of(fabric.span().start),
                })
            }
            Kind::Tcmu if role != Role::Target => Err(wrong_role("target")),
            Kind::Tcmu => {
                let modules = [
                    ("loopback", FabricModule::Loopback),
                    ("qla2xxx", FabricModule::Qla2xxx),
                ];
                let fabric_module = self
                    .choice(&raw.fabric_module, "fc.fabric_module", &modules)?
                    .ok_or_else(|| missing("fc.fabric_module"))?;
                if fabric_module == FabricModule::Qla2xxx && raw.port.is_none() {
                    return Err(missing("fc.port"));
                }
                let list = raw
                    .allowed_initiators
                    .as_ref()
                    .ok_or_else(|| missing("fc.allowed_initiators"))?;
                let mut allowed_initiators = Vec::new();
                for name in list.get_ref() {
                    let port = parse_port_name(name.get_ref()).filter(|&p| p != 0).ok_or_else(|| {
                        let reason = format!("{:?} is not a port name (naa. and 16 hex digits, or 8 colon-separated hex pairs)", name.get_ref());
                        self.err(Some(name.span()), "fc.allowed_initiators", reason)
                    })?;
                    allowed_initiators.push(port);
                }
                if allowed_initiators.is_empty() {
                    return Err(self.err(
                        Some(list.span()),
                        "fc.allowed_initiators",
                        "at least one initiator is needed".to_owned(),
                    ));
                }
                Ok(Backend::Tcmu {
                    fabric_module,
                    allowed_initiators,
                })
            }
            Kind::Sg if role != Role::Initiator => Err(wrong_role("initiator")),
            Kind::Sg => {
                let device = match raw
                    .device
                    .as_ref()
                    .map(|d| (d.get_ref().as_str(), d.span()))
                {
                    None | Some(("auto", _)) => SgDevice::Auto,
                    Some((p, _)) if p.starts_with("/dev/") => SgDevice::Path(PathBuf::from(p)),
                    Some((p, span)) => {
                        let reason = format!("expected \"auto\" or a /dev/sgN path, got {p:?}");
                        return Err(self.err(Some(span), "fc.device", reason));
                    }
                };
                Ok(Backend::Sg { device })
            }
        }
    }

    /// The numeric part of `[fc]`.
    fn fc_rest(
        &self,
        raw: &RawFc,
        role: Role,
        backend: Backend,
        port: u64,
    ) -> Result<Fc, ConfigError> {
        let read_hold = self.millis(
            &raw.read_hold_ms,
            "fc.read_hold_ms",
            READ_HOLD_MS,
            DEFAULT_READ_HOLD_MS,
        )?;
        let reads_in_flight = self.int(
            &raw.reads_in_flight,
            "fc.reads_in_flight",
            IN_FLIGHT,
            DEFAULT_IN_FLIGHT,
        )?;
        let writes_in_flight = self.int(
            &raw.writes_in_flight,
            "fc.writes_in_flight",
            IN_FLIGHT,
            DEFAULT_IN_FLIGHT,
        )?;
        let max_transfer: usize = self.int(
            &raw.max_transfer,
            "fc.max_transfer",
            MAX_TRANSFER,
            DEFAULT_MAX_TRANSFER,
        )?;
        if max_transfer % TRANSFER_UNIT != 0 {
            let span = raw.max_transfer.as_ref().map(Spanned::span);
            let reason = format!("must be a multiple of {TRANSFER_UNIT}, got {max_transfer}");
            return Err(self.err(span, "fc.max_transfer", reason));
        }
        let command_timeout = self.millis(
            &raw.command_timeout_ms,
            "fc.command_timeout_ms",
            COMMAND_TIMEOUT_MS,
            DEFAULT_COMMAND_TIMEOUT_MS,
        )?;
        let probe_interval = self.millis(
            &raw.probe_interval_ms,
            "fc.probe_interval_ms",
            PROBE_INTERVAL_MS,
            DEFAULT_PROBE_INTERVAL_MS,
        )?;
        let dead_after = self.millis(
            &raw.dead_after_ms,
            "fc.dead_after_ms",
            DEAD_AFTER_MS,
            DEFAULT_DEAD_AFTER_MS,
        )?;
        if dead_after < 2 * probe_interval {
            let (probe, dead) = (probe_interval.as_millis(), dead_after.as_millis());
            // Blame the key the user wrote: dead_after_ms if given, else probe_interval_ms.
            return Err(match &raw.dead_after_ms {
                Some(v) => self.err(
                    Some(v.span()),
                    "fc.dead_after_ms",
                    format!("must be at least twice probe_interval_ms ({probe}), got {dead}"),
                ),
                None => self.err(
                    raw.probe_interval_ms.as_ref().map(Spanned::span),
                    "fc.probe_interval_ms",
                    format!(
                        "{probe} needs dead_after_ms of at least {} (the default is {dead})",
                        2 * probe
                    ),
                ),
            });
        }
        Ok(Fc {
            role,
            backend,
            port,
            read_hold,
            reads_in_flight,
            writes_in_flight,
            max_transfer,
            command_timeout,
            probe_interval,
            dead_after,
        })
    }

    /// An integer key within `range`, or `default` when absent.
    fn int<T: TryFrom<i64>>(
        &self,
        value: &Opt<i64>,
        key: &str,
        range: RangeInclusive<i64>,
        default: T,
    ) -> Result<T, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let n = *value.get_ref();
        // Every range here fits T, so the conversion only fails together with the range check.
        range
            .contains(&n)
            .then(|| T::try_from(n).ok())
            .flatten()
            .ok_or_else(|| {
                let (lo, hi) = (range.start(), range.end());
                self.err(
                    Some(value.span()),
                    key,
                    format!("must be in {lo}..={hi}, got {n}"),
                )
            })
    }

    /// A `*_ms` key within `range`, or `default_ms` when absent.
    fn millis(
        &self,
        value: &Opt<i64>,
        key: &str,
        range: RangeInclusive<i64>,
        default_ms: u64,
    ) -> Result<Duration, ConfigError> {
        self.int(value, key, range, default_ms)
            .map(Duration::from_millis)
    }

    /// One of a fixed set of strings, or `None` when absent.
    fn choice<T: Copy>(
        &self,
        value: &Opt<String>,
        key: &str,
        options: &[(&str, T)],
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = value else {
            return Ok(None);
        };
        if let Some((_, t)) = options.iter().find(|(name, _)| name == value.get_ref()) {
            return Ok(Some(*t));
        }
        let names: Vec<String> = options
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        let expected = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        };
        let reason = format!("expected {expected}, got {:?}", value.get_ref());
        Err(self.err(Some(value.span()), key, reason))
    }
}

/// Linux accepts 1 to 15 bytes other than `/`, whitespace and `:`, and not `.` or `..`; this
/// takes the portable subset, which is also safe in a socket path.
fn check_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("{name:?} is longer than {MAX_NAME_LEN} bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(format!(
            "{name:?} may only contain letters, digits, '_', '.' and '-'"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    Ok(())
}

/// Checks that a file holding a private key (a key file, or a configuration with an inline
/// key) is private: no permission bit for group or others, and owned by the effective user
/// or by root (a file another user owns can be replaced or read by that user). The error
/// completes a sentence whose subject is the file: `is readable by group or others ...`.
pub fn check_secret_file(meta: &std::fs::Metadata) -> Result<(), String> {
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        let how = if mode & 0o044 != 0 {
            "readable"
        } else {
            "accessible"
        };
        return Err(format!(
            "is {how} by group or others (mode {mode:04o}); chmod 600 it"
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "is owned by uid {}, neither this user (uid {me}) nor root; chown it",
            meta.uid()
        ));
    }
    Ok(())
}

/// Why a key string was refused, in this file's words.
fn key_reason(e: KeyError) -> String {
    match e {
        KeyError::BadBase64 => "invalid base64 X25519 key".to_owned(),
        KeyError::WrongLength => "X25519 key must be 32 bytes of base64 (44 characters)".to_owned(),
    }
}

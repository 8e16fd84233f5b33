//! Finding fcvpn's `/dev/sgN` and how much one command may carry.
//!
//! `device = "auto"` scans `/sys/class/scsi_generic/sg*` in numeric order and passes over
//! every device whose `device/type` is not 3 (processor) or whose `device/vendor` is not
//! `FCVPN`, without opening it: never a disk, never someone else's device. Each remaining node
//! is opened (O_RDWR | O_NONBLOCK) and asked for its standard INQUIRY data and VPD page 83h
//! with a synchronous SG_IO of [`PROBE_TIMEOUT`]; it is ours only if
//! [`matches_inquiry`] holds for the identity derived from the peer's (the target's) public
//! key. An explicit `device = "/dev/sgN"` is probed and judged the same way, and a mismatch is
//! an error that says what the device is instead. The sg number is never remembered: after a
//! device loss the same LUN may come back as another sgN.
//!
//! The per-command limit ([`device_limit`]) is the smallest of what the kernel reports:
//! `BLKSECTGET` on the sg file (the queue's max_sectors, in bytes), the queue's max_segments
//! (`SG_GET_SG_TABLESIZE`) times the page size, because sg builds its bounce buffer from at
//! most that many elements and falls back to single pages when larger allocations fail, and,
//! as a fallback, the same two values from sysfs. Through tcm_loop that is 1 MiB (256
//! segments), the size that worked in a real VM (2 MiB failed with EINVAL).

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::SgDevice;
use crate::scsi::inquiry::{PERIPHERAL_DEVICE_TYPE_PROCESSOR, StandardInquiry, VENDOR_ID};
use crate::scsi::{BLOCK_LEN, DeviceIdentity, MAX_TRANSFER_LEN, cdb, matches_inquiry};
use crate::sys::sg::{DataDir, MAX_DXFER_LEN, SgFile, page_size};
use crate::transport::initiator::{Direction, Outcome};
use crate::transport::sg::outcome::outcome;

/// Timeout of each probing INQUIRY: a live fcvpn target answers at once.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Allocation length of the standard INQUIRY (at least the 36-byte fixed part).
const STD_INQUIRY_ALLOC: u16 = 96;
/// Allocation length of the VPD 83h INQUIRY (fcvpn's page is 60 bytes).
const VPD_ALLOC: u16 = 512;
/// VPD page 83h, device identification.
const VPD_DEVICE_IDENTIFICATION: u8 = 0x83;
/// Per-command limit when the kernel reports none (the block layer's classic 1024 sectors).
pub const FALLBACK_LIMIT: usize = 512 * 1024;
/// The character-device major number of sg.
const SG_MAJOR: u64 = 21;

/// Where sysfs and device nodes are (`/sys` and `/dev`; a temporary tree in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// The sysfs mount.
    pub sys: PathBuf,
    /// The device node directory.
    pub dev: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            sys: PathBuf::from("/sys"),
            dev: PathBuf::from("/dev"),
        }
    }
}

impl Roots {
    fn class_dir(&self) -> PathBuf {
        self.sys.join("class/scsi_generic")
    }
}

/// One SCSI generic device node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its sysfs name (`sg3`), when known.
    pub name: Option<String>,
    /// Its device node (`/dev/sg3`).
    pub path: PathBuf,
}

impl Node {
    /// The node at `path`, named from its file name or its device number.
    pub fn for_path(path: &Path) -> Self {
        Self {
            name: sg_name(path),
            path: path.to_path_buf(),
        }
    }

    fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.path.display().to_string())
    }
}

/// The outcome of a sysfs scan: nodes worth probing, and why the others were passed over.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Processor devices of vendor `FCVPN` (or of unknown vendor), in sg number order.
    pub nodes: Vec<Node>,
    /// `sgN: reason` for each device not probed.
    pub passed_over: Vec<String>,
}

/// What a live probe read from a device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// Standard INQUIRY data.
    pub std_inquiry: Vec<u8>,
    /// VPD page 83h.
    pub vpd83: Vec<u8>,
}

/// Why no usable device was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    /// `/sys/class/scsi_generic` is missing: the sg module is not loaded.
    NoScsiGeneric,
    /// `auto` found no device of ours; each entry says why one was not taken.
    NoneFound {
        /// The VPD 80h serial number looked for.
        serial: String,
        /// `sgN: reason` per device seen.
        seen: Vec<String>,
    },
    /// The configured device could not be opened or asked.
    Unusable {
        /// The device node.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The configured device answered, but it is not fcvpn's device for this peer.
    NotOurs {
        /// The device node.
        path: PathBuf,
        /// What it is instead.
        why: String,
    },
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoScsiGeneric => write!(f, "no SCSI generic devices: load the sg module"),
            Self::NoneFound { serial, seen } if seen.is_empty() => write!(
                f,
                "no fcvpn device with serial {serial} yet: no SCSI generic devices (is the \
                 target up and its LUN mapped to this initiator?)"
            ),
            Self::NoneFound { serial, seen } => write!(
                f,
                "no fcvpn device with serial {serial} among {} SCSI generic devices ({})",
                seen.len(),
                seen.join("; ")
            ),
            Self::Unusable { path, why } => write!(f, "{}: {why}", path.display()),
            Self::NotOurs { path, why } => write!(
                f,
                "{} is not fcvpn's device for this peer: {why}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DiscoveryError {}

/// A device that passed the identity test, opened, with its per-command limit.
#[derive(Debug)]
pub struct Found {
    /// The open device.
    pub file: SgFile,
    /// Its node.
    pub path: PathBuf,
    /// The largest transfer of one command, in bytes (a multiple of 512).
    pub limit: usize,
}

/// Finds and opens fcvpn's device for the peer whose device identity is `expected`. Blocks
/// for the probing INQUIRYs (at most [`PROBE_TIMEOUT`] each, longer only if the kernel's error
/// handling holds the command).
pub fn search(
    device: &SgDevice,
    expected: &DeviceIdentity,
    roots: &Roots,
) -> Result<Found, DiscoveryError> {
    search_avoiding(device, expected, roots, None)
}

/// [`search`], probing the node `avoid` (a device suspected of being an impostor) only after
/// every other candidate (`device = "auto"`; a configured path is always the one probed).
pub fn search_avoiding(
    device: &SgDevice,
    expected: &DeviceIdentity,
    roots: &Roots,
    avoid: Option<&Path>,
) -> Result<Found, DiscoveryError> {
    let (node, file) = match device {
        SgDevice::Path(path) => {
            let node = Node::for_path(path);
            let (file, id) = probe(path).map_err(|e| DiscoveryError::Unusable {
                path: path.clone(),
                why: e.to_string(),
            })?;
            if let Some(why) = mismatch(&id, expected) {
                return Err(DiscoveryError::NotOurs {
                    path: path.clone(),
                    why,
                });
            }
            (node, file)
        }
        SgDevice::Auto => {
            let mut scan = scan(roots)?;
            let nodes = last_resort(std::mem::take(&mut scan.nodes), avoid);
            find(nodes, expected, |n| probe(&n.path)).map_err(|tried| {
                DiscoveryError::NoneFound {
                    serial: expected.serial_str().to_owned(),
                    seen: scan.passed_over.into_iter().chain(tried).collect(),
                }
            })?
        }
    };
    let (sysfs_kb, sysfs_segments) = node
        .name
        .as_deref()
        .map_or((None, None), |name| sysfs_limits(roots, name));
    let limits = Limits {
        max_sectors_bytes: file.max_sectors_bytes().ok(),
        max_segments: file.sg_tablesize().ok(),
        sysfs_max_sectors_kb: sysfs_kb,
        sysfs_max_segments: sysfs_segments,
        page: page_size(),
    };
    Ok(Found {
        file,
        path: node.path,
        limit: device_limit(&limits),
    })
}

/// Lists the sg devices worth probing: processor type, and vendor `FCVPN` where sysfs shows
/// the vendor. Nothing is opened.
pub fn scan(roots: &Roots) -> Result<Scan, DiscoveryError> {
    let entries = fs::read_dir(roots.class_dir()).map_err(|_| DiscoveryError::NoScsiGeneric)?;
    let mut names: Vec<(u32, String)> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| Some((sg_number(&name)?, name)))
        .collect();
    names.sort();
    let mut scan = Scan::default();
    for (_, name) in names {
        let device = roots.class_dir().join(&name).join("device");
        let kind = read_trimmed(&device.join("type")).and_then(|t| t.parse::<u8>().ok());
        let vendor = read_trimmed(&device.join("vendor"));
        match (kind, vendor) {
            (Some(PERIPHERAL_DEVICE_TYPE_PROCESSOR), Some(v)) if v != vendor_id() => {
                scan.passed_over.push(format!("{name}: vendor {v:?}"));
            }
            (Some(PERIPHERAL_DEVICE_TYPE_PROCESSOR), _) => scan.nodes.push(Node {
                path: roots.dev.join(&name),
                name: Some(name),
            }),
            (Some(t), _) => scan
                .passed_over
                .push(format!("{name}: type {t} (not a processor)")),
            (None, _) => scan.passed_over.push(format!("{name}: type unknown")),
        }
    }
    Ok(scan)
}

/// `nodes` in the same order, except that the one at `avoid` (if any) goes last: a device that
/// answered SCSI commands but never let the link prove the peer is behind it is tried only
/// when no other candidate is ours.
pub fn last_resort(nodes: Vec<Node>, avoid: Option<&Path>) -> Vec<Node> {
    let (avoided, mut rest): (Vec<Node>, Vec<Node>) = nodes
        .into_iter()
        .partition(|n| avoid.is_some_and(|a| n.path == a));
    rest.extend(avoided);
    rest
}

/// Probes `nodes` in order and returns the first that is `expected`'s device, with the
/// handle its probe opened; otherwise `sgN: reason` for each.
pub fn find<H>(
    nodes: Vec<Node>,
    expected: &DeviceIdentity,
    mut probe: impl FnMut(&Node) -> io::Result<(H, Identity)>,
) -> Result<(Node, H), Vec<String>> {
    let mut tried = Vec::new();
    for node in nodes {
        match probe(&node) {
            Ok((handle, id)) => match mismatch(&id, expected) {
                None => return Ok((node, handle)),
                Some(why) => tried.push(format!("{}: {why}", node.label())),
            },
            Err(e) => tried.push(format!("{}: {e}", node.label())),
        }
    }
    Err(tried)
}

/// `None` if `id` is `expected`'s device; otherwise what it is instead.
pub fn mismatch(id: &Identity, expected: &DeviceIdentity) -> Option<String> {
    if matches_inquiry(&id.std_inquiry, &id.vpd83, expected) {
        return None;
    }
    let Ok(std) = StandardInquiry::new_checked(&id.std_inquiry) else {
        return Some(format!(
            "short INQUIRY data ({} bytes)",
            id.std_inquiry.len()
        ));
    };
    let vendor = text(&std.vendor_id());
    let product = text(&std.product_id());
    Some(
        match (std.peripheral_qualifier(), std.peripheral_device_type()) {
            (0, PERIPHERAL_DEVICE_TYPE_PROCESSOR) if std.vendor_id() == VENDOR_ID => {
                "an fcvpn device of another target (its VPD 83h names another key)".to_owned()
            }
            (0, PERIPHERAL_DEVICE_TYPE_PROCESSOR) => {
                format!("a processor device of {vendor} {product}")
            }
            (0, t) => format!("device type {t:#04x} ({vendor} {product}), not a processor"),
            (q, _) => format!("no logical unit connected (peripheral qualifier {q})"),
        },
    )
}

/// Opens `path` and reads its identity with two synchronous INQUIRYs.
pub fn probe(path: &Path) -> io::Result<(SgFile, Identity)> {
    let mut file = SgFile::open(path)?;
    let std_inquiry = inquiry(&mut file, false, 0, STD_INQUIRY_ALLOC)?;
    let vpd83 = inquiry(&mut file, true, VPD_DEVICE_IDENTIFICATION, VPD_ALLOC)?;
    Ok((file, Identity { std_inquiry, vpd83 }))
}

fn inquiry(file: &mut SgFile, evpd: bool, page: u8, alloc: u16) -> io::Result<Vec<u8>> {
    let mut data = vec![0u8; usize::from(alloc)];
    let cdb = cdb::inquiry(evpd, page, alloc);
    let r = file.command(&cdb, DataDir::FromDevice, &mut data, PROBE_TIMEOUT)?;
    let what = if evpd { "INQUIRY VPD 83h" } else { "INQUIRY" };
    match outcome(&r.reply, &r.sense, Direction::In) {
        Outcome::Good { len } => {
            data.truncate(len);
            Ok(data)
        }
        Outcome::Status { status, .. } => Err(other(format!("{what}: status {status:#04x}"))),
        Outcome::Failed(why) => Err(other(format!("{what}: {why}"))),
    }
}

/// The per-command limits a device reports; `None` where one could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `BLKSECTGET` on the sg file: max_sectors in bytes.
    pub max_sectors_bytes: Option<usize>,
    /// `SG_GET_SG_TABLESIZE`: the queue's max_segments.
    pub max_segments: Option<usize>,
    /// `device/block/*/queue/max_sectors_kb` (only when a block driver is bound).
    pub sysfs_max_sectors_kb: Option<usize>,
    /// The host's `scsi_host/hostN/sg_tablesize`.
    pub sysfs_max_segments: Option<usize>,
    /// The page size.
    pub page: usize,
}

/// The largest transfer one command can carry (see the module docs): the smallest known
/// limit, at most [`MAX_TRANSFER_LEN`], rounded down to whole 512-byte blocks;
/// [`FALLBACK_LIMIT`] when nothing is known. Zeros are treated as unknown.
pub fn device_limit(l: &Limits) -> usize {
    let by_segments = |n: Option<usize>| n.map(|n| n.saturating_mul(l.page));
    let known = [
        l.max_sectors_bytes,
        by_segments(l.max_segments),
        l.sysfs_max_sectors_kb.map(|kb| kb.saturating_mul(1024)),
        by_segments(l.sysfs_max_segments),
    ];
    let limit = known
        .into_iter()
        .flatten()
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(FALLBACK_LIMIT)
        .min(MAX_TRANSFER_LEN)
        .min(MAX_DXFER_LEN);
    limit / BLOCK_LEN * BLOCK_LEN
}

/// `(max_sectors_kb, sg_tablesize)` of sg device `name` from sysfs, where present.
pub fn sysfs_limits(roots: &Roots, name: &str) -> (Option<usize>, Option<usize>) {
    let Ok(device) = fs::canonicalize(roots.class_dir().join(name).join("device")) else {
        return (None, None);
    };
    let max_sectors_kb = fs::read_dir(device.join("block"))
        .ok()
        .and_then(|mut d| d.next()?.ok())
        .and_then(|disk| read_trimmed(&disk.path().join("queue/max_sectors_kb")))
        .and_then(|t| t.parse().ok());
    let segments = device
        .ancestors()
        .find_map(|a| {
            let host = a.file_name()?.to_str()?;
            let digits = host.strip_prefix("host")?;
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| a.join("scsi_host").join(host).join("sg_tablesize"))
        })
        .and_then(|p| read_trimmed(&p))
        .and_then(|t| t.parse().ok());
    (max_sectors_kb, segments)
}

/// What `fcvpn up` checks before starting: an explicit device exists and is a character
/// device; for `auto`, the sg class exists (devices themselves may appear later).
pub fn preflight(device: &SgDevice, roots: &Roots) -> Result<(), String> {
    match device {
        SgDevice::Path(path) => match fs::metadata(path) {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            Ok(_) => Err(format!("{}: not a character device", path.display())),
            Err(e) => Err(format!("{}: {e}", path.display())),
        },
        SgDevice::Auto if roots.class_dir().is_dir() => Ok(()),
        SgDevice::Auto => Err(DiscoveryError::NoScsiGeneric.to_string()),
    }
}

/// `sgN` for a node named so, or for a character device of sg's major number.
fn sg_name(path: &Path) -> Option<String> {
    let by_name = path.file_name()?.to_str()?;
    if sg_number(by_name).is_some() {
        return Some(by_name.to_owned());
    }
    let m = fs::metadata(path).ok()?;
    let rdev = m.rdev();
    (m.file_type().is_char_device() && nix::sys::stat::major(rdev) == SG_MAJOR)
        .then(|| format!("sg{}", nix::sys::stat::minor(rdev)))
}

/// N for a name `sgN`.
fn sg_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("sg")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// fcvpn's T10 vendor ID without its padding, as sysfs shows it.
fn vendor_id() -> String {
    text(&VENDOR_ID)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

fn other(why: String) -> io::Error {
    io::Error::other(why)
}

#[cfg(test)]
mod tests;

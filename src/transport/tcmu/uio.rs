//! The UIO device of a TCMU backstore: finding it in sysfs, its descriptor, and the two 4-byte
//! operations on it (drain the event count, notify the kernel).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A UIO device found in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UioInfo {
    /// N of `uioN`.
    pub index: u32,
    /// Size of map 0 in bytes: the exact length TCMU accepts for `mmap`.
    pub map_size: usize,
}

impl UioInfo {
    /// The device node under `dev` (normally `/dev`).
    pub fn node(&self, dev: &Path) -> PathBuf {
        dev.join(format!("uio{}", self.index))
    }
}

/// Finds the UIO device whose `name` is `name` under `class` (normally `/sys/class/uio`); a
/// TCMU backstore's is `tcm-user/<hba>/<device>/<dev_config>`.
pub fn find(class: &Path, name: &str) -> io::Result<Option<UioInfo>> {
    let entries = match std::fs::read_dir(class) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    for dir in entries {
        let dir = dir?;
        let file_name = dir.file_name();
        let Some(index) = file_name
            .to_str()
            .and_then(|s| s.strip_prefix("uio"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let path = dir.path();
        let Ok(found) = std::fs::read_to_string(path.join("name")) else {
            continue;
        };
        if found.trim_end_matches('\n') != name {
            continue;
        }
        let size = std::fs::read_to_string(path.join("maps/map0/size"))?;
        let map_size = parse_size(&size).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: bad map size {size:?}", path.display()),
            )
        })?;
        return Ok(Some(UioInfo { index, map_size }));
    }
    Ok(None)
}

/// Parses a sysfs size: `0x`-prefixed hex (as UIO prints it) or decimal.
fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => usize::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// An open UIO device (non-blocking). TCMU allows one opener: a second gets `EBUSY`.
pub struct Uio {
    file: File,
}

impl Uio {
    /// Opens `node` read-write, non-blocking, close-on-exec.
    pub fn open(node: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(node)?;
        Ok(Self { file })
    }

    /// Reads the event count if it changed since the last read, so that `poll` stops
    /// reporting it; `Ok(false)` if there was nothing to read.
    pub fn drain(&self) -> io::Result<bool> {
        let mut count = [0u8; 4];
        match (&self.file).read(&mut count) {
            Ok(4) => Ok(true),
            Ok(n) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("UIO read returned {n} bytes"),
            )),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Tells the kernel to reap completions up to `cmd_tail` (any 4-byte write).
    pub fn notify(&self) -> io::Result<()> {
        loop {
            match (&self.file).write(&1u32.to_ne_bytes()) {
                Ok(4) => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("UIO write took {n} bytes"),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsFd for Uio {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_uio(class: &Path, index: u32, name: &str, size: &str) {
        let dir = class.join(format!("uio{index}"));
        std::fs::create_dir_all(dir.join("maps/map0")).unwrap();
        std::fs::write(dir.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(dir.join("maps/map0/size"), format!("{size}\n")).unwrap();
    }

    #[test]
    fn finds_the_device_by_name_and_reads_its_map_size() {
        let tmp = tempdir();
        let class = tmp.join("class/uio");
        assert_eq!(find(&class, "x").unwrap(), None, "no uio class at all");
        fake_uio(&class, 0, "tcm-user/0/other/fcvpn/other", "0x1000");
        fake_uio(
            &class,
            12,
            "tcm-user/0/fcvpn_fc0/fcvpn/fcvpn_fc0",
            "0x0000000040800000",
        );
        std::fs::create_dir_all(class.join("not-uio")).unwrap();
        let found = find(&class, "tcm-user/0/fcvpn_fc0/fcvpn/fcvpn_fc0")
            .unwrap()
            .unwrap();
        assert_eq!(
            found,
            UioInfo {
                index: 12,
                map_size: 0x4080_0000
            }
        );
        assert_eq!(found.node(Path::new("/dev")), Path::new("/dev/uio12"));
        assert_eq!(
            find(&class, "tcm-user/0/fcvpn_fc1/fcvpn/fcvpn_fc1").unwrap(),
            None
        );
        fake_uio(&class, 3, "bad", "lots");
        assert!(find(&class, "bad").is_err());
        std::fs::remove_dir_all(tmp).unwrap();
    }

    #[test]
    fn sizes_parse_in_hex_and_decimal() {
        assert_eq!(parse_size("0x0000000040800000\n"), Some(0x4080_0000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0xzz"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn drain_and_notify_move_four_bytes() {
        // A FIFO stands in for the UIO node: notify writes 4 bytes, drain reads them once.
        let tmp = tempdir();
        let fifo = tmp.join("uio0");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let uio = Uio::open(&fifo).unwrap();
        assert!(!uio.drain().unwrap());
        uio.notify().unwrap();
        assert!(uio.drain().unwrap());
        assert!(!uio.drain().unwrap());
        std::fs::remove_dir_all(tmp).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "fcvpn-uio-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

//! A raw SG_IO loop for the VM benchmark (`fcvpn sg-bench`): how fast the bare SCSI path moves
//! payloads of fcvpn's size, to set fcvpn's own throughput against.
//!
//! The loop is synchronous: one WRITE(16) of the payload, then one READ(16) of the same size,
//! again and again, with `tag` in the LBA field. A plain LUN (a LIO ramdisk, with tag 0) answers
//! both at once; fcvpn's own device takes the WRITEs at once but parks the READs until it has a
//! batch (up to its hold time), so point the loop at a plain LUN to measure the path.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::outcome::outcome;
use crate::scsi::{BLOCK_LEN, MAX_TRANSFER_LEN, cdb};
use crate::sys::sg::{DataDir, SgFile};
use crate::transport::block_round;
use crate::transport::initiator::{Direction, Outcome};

/// Timeout of each command in the loop.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs WRITE(16)/READ(16) pairs of `payload_len` bytes (rounded up to whole 512-byte blocks)
/// with nexus tag (LBA) `tag` against the sg device at `path` until `seconds` have passed (at
/// least one pair). Returns the data bytes moved both ways and the seconds taken. Any status
/// other than GOOD, or a transport failure, ends it with an error.
pub fn raw_loop(path: &Path, payload_len: usize, seconds: f64, tag: u64) -> io::Result<(u64, f64)> {
    let len = block_round(payload_len).max(BLOCK_LEN);
    if len > MAX_TRANSFER_LEN {
        let why = format!("{payload_len} bytes is more than {MAX_TRANSFER_LEN} per command");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    }
    let budget = Duration::try_from_secs_f64(seconds)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{seconds} s: {e}")))?;
    let mut file = SgFile::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let _ = file.set_reserved_size(len);
    let write = cdb::write16(tag, len);
    let read = cdb::read16(tag, len);
    let mut out = vec![0xA5u8; len];
    let mut back = vec![0u8; len];
    let start = Instant::now();
    let mut bytes = 0u64;
    loop {
        bytes += one(&mut file, &write, Direction::Out, &mut out)?;
        bytes += one(&mut file, &read, Direction::In, &mut back)?;
        if start.elapsed() >= budget {
            return Ok((bytes, start.elapsed().as_secs_f64()));
        }
    }
}

/// One synchronous command; the data bytes it moved.
fn one(file: &mut SgFile, cdb: &[u8], dir: Direction, data: &mut [u8]) -> io::Result<u64> {
    let (sg_dir, what) = match dir {
        Direction::Out => (DataDir::ToDevice, "WRITE(16)"),
        Direction::In => (DataDir::FromDevice, "READ(16)"),
    };
    let r = file.command(cdb, sg_dir, data, COMMAND_TIMEOUT)?;
    match outcome(&r.reply, &r.sense, dir) {
        Outcome::Good { len } if dir == Direction::In => Ok(len as u64),
        Outcome::Good { .. } => Ok(data.len() as u64),
        Outcome::Status { status, sense } => {
            let detail = crate::scsi::parse_sense(&sense)
                .map(|s| {
                    format!(
                        ", sense key {:#x}, ASC/ASCQ {:02x}/{:02x}",
                        s.key.0, s.asc, s.ascq
                    )
                })
                .unwrap_or_default();
            Err(io::Error::other(format!(
                "{what}: status {status:#04x}{detail}"
            )))
        }
        Outcome::Failed(why) => Err(io::Error::other(format!("{what}: {why}"))),
    }
}

/// Megabytes (10^6 bytes) per second.
pub fn megabytes_per_second(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / seconds / 1e6
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments_and_non_sg_devices_are_refused_before_any_io() {
        let e = raw_loop(Path::new("/dev/null"), MAX_TRANSFER_LEN + 1, 1.0, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = raw_loop(Path::new("/dev/null"), 4096, -1.0, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = raw_loop(Path::new("/dev/null"), 4096, f64::NAN, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = raw_loop(Path::new("/dev/null"), 4096, 0.1, 0).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/dev/null: not a SCSI generic device (")
        );
        let e = raw_loop(Path::new("/nonexistent/sg0"), 4096, 0.1, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn rates_are_in_megabytes() {
        assert_eq!(megabytes_per_second(10_000_000, 2.0), 5.0);
        assert_eq!(megabytes_per_second(1, 0.0), 0.0);
    }
}

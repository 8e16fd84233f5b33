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

/// What one run of the loop measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchReport {
    /// Data bytes moved, both directions together.
    pub bytes: u64,
    /// WRITE/READ pairs completed.
    pub pairs: u64,
    /// Seconds the pairs took.
    pub seconds: f64,
}

impl BenchReport {
    /// Megabytes (10^6 bytes) per second, both directions together.
    pub fn megabytes_per_second(&self) -> f64 {
        megabytes_per_second(self.bytes, self.seconds)
    }

    /// Mean microseconds per WRITE/READ pair: the round trip of the bare path, which is what
    /// a ping through fcvpn costs at least (a WRITE out, a READ back).
    pub fn micros_per_pair(&self) -> f64 {
        if self.pairs == 0 {
            return 0.0;
        }
        self.seconds * 1e6 / self.pairs as f64
    }
}

/// Runs WRITE(16)/READ(16) pairs of `payload_len` bytes (rounded up to whole 512-byte blocks)
/// with nexus tag (LBA) `tag` against the sg device at `path` until `seconds` have passed (at
/// least one pair). Any status other than GOOD, or a transport failure, ends it with an error.
pub fn raw_loop(
    path: &Path,
    payload_len: usize,
    seconds: f64,
    tag: u64,
) -> io::Result<BenchReport> {
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
    let mut report = BenchReport {
        bytes: 0,
        pairs: 0,
        seconds: 0.0,
    };
    loop {
        report.bytes += one(&mut file, &write, Direction::Out, &mut out)?;
        report.bytes += one(&mut file, &read, Direction::In, &mut back)?;
        report.pairs += 1;
        if start.elapsed() >= budget {
            report.seconds = start.elapsed().as_secs_f64();
            return Ok(report);
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

    #[test]
    fn a_report_gives_rate_and_time_per_pair() {
        let r = BenchReport {
            bytes: 4_000_000,
            pairs: 4,
            seconds: 2.0,
        };
        assert_eq!(r.megabytes_per_second(), 2.0);
        assert_eq!(r.micros_per_pair(), 500_000.0);
        let none = BenchReport { pairs: 0, ..r };
        assert_eq!(none.micros_per_pair(), 0.0);
    }
}

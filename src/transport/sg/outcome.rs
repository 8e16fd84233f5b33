//! How a finished sg command maps to an [`Outcome`] for the initiator port.
//!
//! The transport is judged first: a nonzero `host_status` (DID_*) means the command did not
//! complete in the SCSI sense, whatever the status byte says, and becomes
//! [`Outcome::Failed`] with a short reason. A driver error (DRIVER_* other than the
//! informational DRIVER_SENSE) is a failure too. Then the SAM status: GOOD is [`Outcome::Good`]
//! with the data-in length `dxfer_len - resid` (clamped to `0..=dxfer_len`; 0 for writes), and
//! any other status (CHECK CONDITION with its sense, BUSY, TASK SET FULL, ...) is
//! [`Outcome::Status`], which the port judges (UNIT ATTENTION is retried, BUSY backs off).

use crate::scsi::status;
use crate::sys::sg::{Reply, did};
use crate::transport::initiator::{Direction, Outcome};

/// DRIVER_* codes proper (1..=7); the upper bits are DRIVER_SENSE and old "suggestions".
const DRIVER_CODE_MASK: u16 = 0x07;

/// The outcome of a command submitted with `dir` that finished with `reply` and `sense`.
pub fn outcome(reply: &Reply, sense: &[u8], dir: Direction) -> Outcome {
    if reply.host_status != did::OK {
        return Outcome::Failed(host_reason(reply.host_status));
    }
    if reply.driver_status & DRIVER_CODE_MASK != 0 {
        return Outcome::Failed(driver_reason(reply.driver_status));
    }
    let status = sam_status(reply);
    if status != status::GOOD {
        let n = usize::from(reply.sb_len_wr).min(sense.len());
        return Outcome::Status {
            status,
            sense: sense[..n].to_vec(),
        };
    }
    let len = match dir {
        Direction::Out => 0,
        Direction::In => transferred(reply.dxfer_len, reply.resid),
    };
    Outcome::Good { len }
}

/// The SAM status byte; a driver that filled only the shifted `masked_status` is believed too.
fn sam_status(reply: &Reply) -> u8 {
    match (reply.status, reply.masked_status) {
        (0, masked) if masked != 0 => masked.saturating_mul(2),
        (s, _) => s,
    }
}

/// Bytes actually moved: `dxfer_len - resid`, with `resid` clamped to `0..=dxfer_len` (a
/// negative or oversized residual from a confused driver never yields more than was asked).
pub fn transferred(dxfer_len: u32, resid: i32) -> usize {
    let resid = u32::try_from(resid).unwrap_or(0).min(dxfer_len);
    usize::try_from(dxfer_len - resid).unwrap_or(0)
}

/// A short reason for a host (transport) status.
pub fn host_reason(host_status: u16) -> &'static str {
    match host_status {
        did::OK => "ok",
        did::NO_CONNECT => "no connection to the target (DID_NO_CONNECT)",
        did::BUS_BUSY => "bus busy (DID_BUS_BUSY)",
        did::TIME_OUT => "timed out and aborted by the kernel (DID_TIME_OUT)",
        did::BAD_TARGET => "bad target (DID_BAD_TARGET)",
        did::ABORT => "aborted (DID_ABORT)",
        did::PARITY => "parity error (DID_PARITY)",
        did::ERROR => "host adapter error (DID_ERROR)",
        did::RESET => "ended by a reset (DID_RESET)",
        did::BAD_INTR => "unexpected interrupt (DID_BAD_INTR)",
        did::PASSTHROUGH => "passed through (DID_PASSTHROUGH)",
        did::SOFT_ERROR => "soft error, retry (DID_SOFT_ERROR)",
        did::IMM_RETRY => "retry requested (DID_IMM_RETRY)",
        did::REQUEUE => "requeue requested (DID_REQUEUE)",
        did::TRANSPORT_DISRUPTED => "transport disrupted (DID_TRANSPORT_DISRUPTED)",
        did::TRANSPORT_FAILFAST => "transport failed fast (DID_TRANSPORT_FAILFAST)",
        did::TARGET_FAILURE => "target failure (DID_TARGET_FAILURE)",
        did::NEXUS_FAILURE => "nexus failure (DID_NEXUS_FAILURE)",
        did::ALLOC_FAILURE => "allocation failure (DID_ALLOC_FAILURE)",
        did::MEDIUM_ERROR => "medium error (DID_MEDIUM_ERROR)",
        did::TRANSPORT_MARGINAL => "transport marginal (DID_TRANSPORT_MARGINAL)",
        _ => "unknown host status",
    }
}

/// A short reason for a driver status with an error code in its low bits.
fn driver_reason(driver_status: u16) -> &'static str {
    match driver_status & DRIVER_CODE_MASK {
        1 => "driver busy (DRIVER_BUSY)",
        2 => "driver soft error (DRIVER_SOFT)",
        3 => "driver media error (DRIVER_MEDIA)",
        4 => "driver error (DRIVER_ERROR)",
        5 => "driver: invalid (DRIVER_INVALID)",
        6 => "driver timeout (DRIVER_TIMEOUT)",
        _ => "driver hard error (DRIVER_HARD)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::{Sense, SenseKey, parse_sense};
    use crate::sys::sg::{DRIVER_SENSE, SG_INFO_CHECK};

    fn reply(status: u8, host: u16, driver: u16, resid: i32, sb: u8) -> Reply {
        Reply {
            status,
            masked_status: status >> 1,
            sb_len_wr: sb,
            host_status: host,
            driver_status: driver,
            resid,
            duration_ms: 1,
            info: if status | host as u8 | driver as u8 != 0 {
                SG_INFO_CHECK
            } else {
                0
            },
            dxfer_len: 4096,
        }
    }

    fn show(o: &Outcome) -> String {
        match o {
            Outcome::Good { len } => format!("good {len}"),
            Outcome::Status { status, sense } => {
                format!("status {status:#04x} sense {}", sense.len())
            }
            Outcome::Failed(why) => format!("failed: {why}"),
        }
    }

    #[test]
    fn table() {
        use Direction::{In, Out};
        let sense = Sense::invalid_field_in_cdb(2).to_fixed();
        let cases: &[(Reply, Direction, &str)] = &[
            (reply(0x00, 0, 0, 0, 0), In, "good 4096"),
            (reply(0x00, 0, 0, 4096 - 512, 0), In, "good 512"),
            (reply(0x00, 0, 0, 0, 0), Out, "good 0"),
            (reply(0x00, 0, 0, -5, 0), In, "good 4096"),
            (reply(0x00, 0, 0, 9999, 0), In, "good 0"),
            (reply(0x00, 0, DRIVER_SENSE, 0, 18), In, "good 4096"),
            (
                reply(0x02, 0, DRIVER_SENSE, 0, 18),
                In,
                "status 0x02 sense 18",
            ),
            (reply(0x02, 0, 0, 0, 0), Out, "status 0x02 sense 0"),
            (reply(0x08, 0, 0, 4096, 0), In, "status 0x08 sense 0"),
            (reply(0x28, 0, 0, 4096, 0), In, "status 0x28 sense 0"),
            (reply(0x40, 0, 0, 4096, 0), In, "status 0x40 sense 0"),
            (reply(0x18, 0, 0, 0, 0), Out, "status 0x18 sense 0"),
            (
                reply(0x00, did::TIME_OUT, 0, 4096, 0),
                In,
                "failed: timed out and aborted by the kernel (DID_TIME_OUT)",
            ),
            (
                reply(0x00, did::ABORT, 0, 0, 0),
                Out,
                "failed: aborted (DID_ABORT)",
            ),
            (
                reply(0x02, did::ERROR, DRIVER_SENSE, 0, 18),
                In,
                "failed: host adapter error (DID_ERROR)",
            ),
            (
                reply(0x00, did::RESET, 0, 0, 0),
                In,
                "failed: ended by a reset (DID_RESET)",
            ),
            (
                reply(0x00, did::TRANSPORT_DISRUPTED, 0, 0, 0),
                In,
                "failed: transport disrupted (DID_TRANSPORT_DISRUPTED)",
            ),
            (
                reply(0x00, did::TRANSPORT_FAILFAST, 0, 0, 0),
                In,
                "failed: transport failed fast (DID_TRANSPORT_FAILFAST)",
            ),
            (
                reply(0x00, did::NO_CONNECT, 0, 0, 0),
                In,
                "failed: no connection to the target (DID_NO_CONNECT)",
            ),
            (
                reply(0x00, did::SOFT_ERROR, 0, 0, 0),
                In,
                "failed: soft error, retry (DID_SOFT_ERROR)",
            ),
            (
                reply(0x00, did::BUS_BUSY, 0, 0, 0),
                In,
                "failed: bus busy (DID_BUS_BUSY)",
            ),
            (
                reply(0x00, 0x7F, 0, 0, 0),
                In,
                "failed: unknown host status",
            ),
            (
                reply(0x00, 0, 0x06, 0, 0),
                In,
                "failed: driver timeout (DRIVER_TIMEOUT)",
            ),
            (
                reply(0x00, 0, 0x14, 0, 0),
                In,
                "failed: driver error (DRIVER_ERROR)",
            ),
        ];
        for (i, (r, dir, want)) in cases.iter().enumerate() {
            let got = show(&outcome(r, &sense, *dir));
            assert_eq!(&got, want, "case {i}: {r:?}");
        }
    }

    #[test]
    fn check_condition_carries_the_written_sense() {
        let ua = Sense::new(
            SenseKey::UNIT_ATTENTION,
            crate::scsi::AdditionalSense::I_T_NEXUS_LOSS,
        )
        .to_fixed();
        let o = outcome(&reply(0x02, 0, DRIVER_SENSE, 0, 18), &ua, Direction::In);
        let Outcome::Status { status, sense } = o else {
            panic!("{}", show(&o));
        };
        assert_eq!(status, status::CHECK_CONDITION);
        assert_eq!(
            parse_sense(&sense).map(|s| s.key),
            Some(SenseKey::UNIT_ATTENTION)
        );
    }

    #[test]
    fn a_status_only_in_masked_status_is_believed() {
        let mut r = reply(0, 0, 0, 0, 0);
        r.masked_status = 0x04; // BUSY >> 1
        assert_eq!(
            show(&outcome(&r, &[], Direction::In)),
            "status 0x08 sense 0"
        );
    }

    #[test]
    fn transferred_is_clamped() {
        assert_eq!(transferred(4096, 0), 4096);
        assert_eq!(transferred(4096, 4096), 0);
        assert_eq!(transferred(4096, i32::MAX), 0);
        assert_eq!(transferred(4096, i32::MIN), 4096);
        assert_eq!(transferred(0, 1), 0);
    }
}

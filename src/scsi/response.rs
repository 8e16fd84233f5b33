//! The completion of a SCSI command: status, sense and data-in, as a target backend returns it.

use crate::scsi::sense::Sense;
use crate::scsi::status;

/// What a target backend sends back for one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// SAM status (see [`crate::scsi::status`]).
    pub status: u8,
    /// Sense data; empty unless `status` is CHECK CONDITION.
    pub sense: Vec<u8>,
    /// Data-in bytes (possibly fewer than the initiator asked for: the rest is residual).
    pub data_in: Vec<u8>,
}

impl Response {
    /// GOOD with no data.
    pub fn good() -> Self {
        Self::data_in(Vec::new())
    }

    /// GOOD carrying `bytes` as data-in. The caller keeps `bytes` within the command's
    /// data-in length (for a parked READ(16): within `Dispatch::Receive::max_len`).
    pub fn data_in(bytes: Vec<u8>) -> Self {
        Self {
            status: status::GOOD,
            sense: Vec::new(),
            data_in: bytes,
        }
    }

    /// CHECK CONDITION with `sense` in fixed format (18 bytes), no data.
    pub fn check_condition(sense: &Sense) -> Self {
        Self {
            status: status::CHECK_CONDITION,
            sense: sense.to_fixed().to_vec(),
            data_in: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_is_status_zero_and_empty() {
        let expected = Response {
            status: 0x00,
            sense: vec![],
            data_in: vec![],
        };
        assert_eq!(Response::good(), expected);
    }

    #[test]
    fn data_in_is_good_with_data() {
        let response = Response::data_in(vec![1, 2, 3]);
        assert_eq!((response.status, response.sense.len()), (0x00, 0));
        assert_eq!(response.data_in, [1, 2, 3]);
    }

    #[test]
    fn check_condition_carries_fixed_sense() {
        let response = Response::check_condition(&Sense::invalid_field_in_cdb(2));
        let sense = [
            0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0x00, 0, 0xC0, 0x00, 0x02,
        ];
        assert_eq!(response.status, 0x02);
        assert_eq!(response.sense, sense);
        assert!(response.data_in.is_empty());
    }
}

//! The fcvpn virtual device, shared by every target backend (TCMU, SCST, the simulated fabric).
//!
//! Sans-IO: a backend hands each command's CDB and data-out buffer to
//! [`VirtualDevice::dispatch`] and acts on the [`Dispatch`]: answer now, pass a WRITE(16) batch to
//! the link, or park a READ(16) until the link has a batch for it. Only data commands carrying a
//! valid command token of this pair ([`crate::scsi::token`]) reach the link; everything else is
//! answered here with proper sense, at the cost of one table lookup per refused command.

use crate::scsi::cdb::{self, Cdb, CdbError, transfer_len};
use crate::scsi::identity::DeviceIdentity;
use crate::scsi::inquiry::standard_inquiry_data;
use crate::scsi::response::Response;
use crate::scsi::sense::Sense;
use crate::scsi::token::CommandVerifier;
use crate::scsi::vpd::vpd_page;
use crate::scsi::wire::truncated;

/// CDB byte of the INQUIRY page code (the field pointer for an unsupported VPD page).
const INQUIRY_PAGE_BYTE: u16 = cdb::INQUIRY_PAGE as u16;
/// CDB byte of the READ/WRITE(16) command token (the field pointer for an invalid token).
pub const RW16_TOKEN_BYTE: u16 = cdb::RW16_TOKEN as u16;
/// CDB byte of the READ/WRITE(16) transfer length (the field pointer for a length mismatch).
const RW16_TRANSFER_LEN_BYTE: u16 = cdb::RW16_TRANSFER_LEN as u16;
/// REPORT LUNS data: LUN LIST LENGTH 8 (one entry), 4 reserved bytes, then LUN 0.
const REPORT_LUNS_DATA: [u8; 16] = [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// What the backend does with a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dispatch<'a> {
    /// Complete the command now with this response.
    Complete(Response),
    /// A valid WRITE(16) of ours: hand `payload` (the whole data-out) to the link, then complete
    /// the command with [`Response::good`].
    Send {
        /// The sealed batch the initiator wrote.
        payload: &'a [u8],
    },
    /// A valid READ(16) of ours: park it, and later complete it with [`Response::data_in`]
    /// carrying at most `max_len` bytes (fewer leave a residual).
    Receive {
        /// The command's transfer length in bytes (never more than the data-in buffer).
        max_len: usize,
    },
}

/// Running totals of what the device has seen; they only grow (saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeviceCounters {
    /// Every command dispatched.
    pub commands: u64,
    /// WRITE(16)s handed to the link as [`Dispatch::Send`].
    pub sends: u64,
    /// READ(16)s to park, returned as [`Dispatch::Receive`].
    pub receives: u64,
    /// WRITE(16)/READ(16) refused for a command token that is unknown or already used.
    pub foreign_token: u64,
    /// WRITE(16)/READ(16) refused because the data buffer did not fit the transfer length.
    pub bad_length: u64,
    /// Commands refused for an unsupported operation code.
    pub unknown_opcode: u64,
    /// Commands refused for a short CDB or an invalid field (including an unsupported VPD page).
    pub invalid_cdb: u64,
}

/// The fcvpn virtual device: a processor LU answering INQUIRY, VPD, TEST UNIT READY, REQUEST
/// SENSE and REPORT LUNS itself, and passing its pair's WRITE(16)/READ(16) to the link.
#[derive(Clone, Debug)]
pub struct VirtualDevice {
    identity: DeviceIdentity,
    verifier: CommandVerifier,
    counters: DeviceCounters,
}

impl VirtualDevice {
    /// A device reporting `identity` and accepting data commands whose tokens `verifier`
    /// accepts.
    pub fn new(identity: DeviceIdentity, verifier: CommandVerifier) -> Self {
        Self {
            identity,
            verifier,
            counters: DeviceCounters::default(),
        }
    }

    /// Gives the token verifier the wall clock (Unix seconds); call at least once a second.
    pub fn tick(&mut self, unix_seconds: u64) {
        self.verifier.tick(unix_seconds);
    }

    /// The identity reported in INQUIRY and VPD pages.
    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    /// The command token verifier.
    pub fn verifier(&self) -> &CommandVerifier {
        &self.verifier
    }

    /// The counters so far.
    pub fn counters(&self) -> &DeviceCounters {
        &self.counters
    }

    /// Decides what to do with one command.
    ///
    /// `cdb` is the CDB as received (any length); `data_out` is the whole data-out buffer, sized
    /// by the fabric's expected length (empty for data-in commands); `data_in_len` is the size of
    /// the data-in buffer (0 for data-out commands). Data-in replies never exceed `data_in_len`.
    /// Never panics, whatever the inputs.
    pub fn dispatch<'a>(
        &mut self,
        cdb: &[u8],
        data_out: &'a [u8],
        data_in_len: usize,
    ) -> Dispatch<'a> {
        bump(&mut self.counters.commands);
        match cdb::parse(cdb) {
            Ok(command) => self.execute(command, data_out, data_in_len),
            Err(error) => self.refuse_cdb(&error),
        }
    }

    fn execute<'a>(
        &mut self,
        command: Cdb,
        data_out: &'a [u8],
        data_in_len: usize,
    ) -> Dispatch<'a> {
        match command {
            Cdb::TestUnitReady => Dispatch::Complete(Response::good()),
            Cdb::RequestSense { desc, alloc_len } => {
                let limit = data_in_len.min(usize::from(alloc_len));
                complete_with_data(Sense::no_sense().to_bytes(desc, limit), limit)
            }
            Cdb::Inquiry {
                evpd,
                page,
                alloc_len,
            } => {
                let limit = data_in_len.min(usize::from(alloc_len));
                self.inquiry(evpd, page, limit)
            }
            Cdb::ReportLuns { alloc_len, .. } => {
                let limit = usize::try_from(alloc_len).unwrap_or(usize::MAX);
                complete_with_data(REPORT_LUNS_DATA.to_vec(), limit.min(data_in_len))
            }
            Cdb::Write16 { token, blocks } => self.write16(token, blocks, data_out),
            Cdb::Read16 { token, blocks } => self.read16(token, blocks, data_in_len),
        }
    }

    /// Standard INQUIRY data, or a supported VPD page, cut to `limit` bytes.
    fn inquiry<'a>(&mut self, evpd: bool, page: u8, limit: usize) -> Dispatch<'a> {
        if !evpd {
            return complete_with_data(standard_inquiry_data().to_vec(), limit);
        }
        match vpd_page(&self.identity, page) {
            Some(data) => complete_with_data(data, limit),
            None => {
                bump(&mut self.counters.invalid_cdb);
                check_condition(Sense::invalid_field_in_cdb(INQUIRY_PAGE_BYTE))
            }
        }
    }

    /// WRITE(16): exactly `blocks` blocks of data-out and a valid token, or refused. The
    /// token is checked last, so that only a command that would be carried out uses it up.
    fn write16<'a>(&mut self, token: u64, blocks: u32, data_out: &'a [u8]) -> Dispatch<'a> {
        if u64::try_from(data_out.len()).ok() != Some(transfer_len(blocks)) {
            return self.refuse_length();
        }
        if let Some(refusal) = self.refuse_foreign(token) {
            return refusal;
        }
        if data_out.is_empty() {
            return Dispatch::Complete(Response::good());
        }
        bump(&mut self.counters.sends);
        Dispatch::Send { payload: data_out }
    }

    /// READ(16): fitting the data-in buffer and with a valid token, or refused.
    fn read16<'a>(&mut self, token: u64, blocks: u32, data_in_len: usize) -> Dispatch<'a> {
        let max_len = match usize::try_from(transfer_len(blocks)) {
            Ok(len) if len <= data_in_len => len,
            _ => return self.refuse_length(),
        };
        if let Some(refusal) = self.refuse_foreign(token) {
            return refusal;
        }
        if max_len == 0 {
            return Dispatch::Complete(Response::good());
        }
        bump(&mut self.counters.receives);
        Dispatch::Receive { max_len }
    }

    /// A refusal unless the verifier accepts `token` (which then counts as used).
    fn refuse_foreign<'a>(&mut self, token: u64) -> Option<Dispatch<'a>> {
        if self.verifier.verify(token).is_ok() {
            return None;
        }
        bump(&mut self.counters.foreign_token);
        Some(check_condition(Sense::invalid_field_in_cdb(
            RW16_TOKEN_BYTE,
        )))
    }

    /// INVALID FIELD IN CDB at the transfer length, counted as a bad length.
    fn refuse_length<'a>(&mut self) -> Dispatch<'a> {
        bump(&mut self.counters.bad_length);
        check_condition(Sense::invalid_field_in_cdb(RW16_TRANSFER_LEN_BYTE))
    }

    /// The CHECK CONDITION for a CDB that did not parse, counted by kind.
    fn refuse_cdb<'a>(&mut self, error: &CdbError) -> Dispatch<'a> {
        match error {
            CdbError::UnsupportedOpcode { .. } => bump(&mut self.counters.unknown_opcode),
            _ => bump(&mut self.counters.invalid_cdb),
        }
        check_condition(error.sense())
    }
}

/// GOOD with `data` cut to `limit` bytes.
fn complete_with_data<'a>(data: Vec<u8>, limit: usize) -> Dispatch<'a> {
    Dispatch::Complete(Response::data_in(truncated(data, limit)))
}

/// CHECK CONDITION with `sense`.
fn check_condition<'a>(sense: Sense) -> Dispatch<'a> {
    Dispatch::Complete(Response::check_condition(&sense))
}

/// Adds one to a counter, saturating.
fn bump(counter: &mut u64) {
    *counter = counter.saturating_add(1);
}

#[cfg(test)]
mod tests;

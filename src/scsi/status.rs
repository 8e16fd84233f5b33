//! SAM status codes: the status byte a device server returns for each command.
//!
//! Values are the unshifted SAM-5 codes (not Linux's `masked_status`, which is shifted right by one).

/// The command completed successfully.
pub const GOOD: u8 = 0x00;
/// The command failed; the sense data says why.
pub const CHECK_CONDITION: u8 = 0x02;
/// The logical unit is busy; the initiator may retry later.
pub const BUSY: u8 = 0x08;
/// The task set is full; the initiator should retry with fewer commands outstanding.
pub const TASK_SET_FULL: u8 = 0x28;
/// The command was aborted (by a task management function or another nexus).
pub const TASK_ABORTED: u8 = 0x40;

//! TCMU, LIO's userspace backstore: the structures the kernel shares with its handler
//! (`include/uapi/linux/target_core_user.h`) and the memory they live in.
//!
//! The shared region is UIO map 0 of the backstore's `/dev/uioN`: the [`Mailbox`] at offset 0,
//! the command ring at `cmdr_off`, the data area after the ring. The kernel writes entries and
//! `cmd_head`; the handler writes responses into entries and `cmd_tail`.
//!
//! The structs below document the layout and are checked against the kernel's offsets by tests;
//! the ring code reads and writes fields through [`SharedMemory`] at the offsets named by the
//! constants derived from them, never through references (the kernel writes concurrently, so
//! no Rust reference may cover this memory).

mod shared;

use std::mem::{offset_of, size_of};

pub use shared::{OutOfBounds, SharedMemory};

/// `TCMU_MAILBOX_VERSION`: the only mailbox version this code speaks.
pub const MAILBOX_VERSION: u16 = 2;
/// Mailbox flag: completions may be written out of order (`TCMU_MAILBOX_FLAG_CAP_OOOC`).
pub const CAP_OOOC: u16 = 1 << 0;
/// Mailbox flag: `rsp.read_len` is honoured (`TCMU_MAILBOX_FLAG_CAP_READ_LEN`).
pub const CAP_READ_LEN: u16 = 1 << 1;
/// Mailbox flag: TMR entries may appear in the ring (`TCMU_MAILBOX_FLAG_CAP_TMR`).
pub const CAP_TMR: u16 = 1 << 2;
/// Mailbox flag: data buffers may be kept after completion (`TCMU_MAILBOX_FLAG_CAP_KEEP_BUF`).
pub const CAP_KEEP_BUF: u16 = 1 << 3;

/// Entry opcode: padding to the end of the ring; skip it.
pub const OP_PAD: u32 = 0;
/// Entry opcode: a SCSI command.
pub const OP_CMD: u32 = 1;
/// Entry opcode: a task management notification (only with `attrib/tmr_notification = 1`).
pub const OP_TMR: u32 = 2;
/// The low bits of `len_op` hold the opcode; the rest is the entry length (a multiple of 8).
pub const OP_MASK: u32 = 0x7;

/// `uflags`: the handler did not know the command (the kernel answers CHECK CONDITION).
pub const UFLAG_UNKNOWN_OP: u8 = 0x1;
/// `uflags`: `rsp.read_len` is valid.
pub const UFLAG_READ_LEN: u8 = 0x2;
/// `uflags`: keep the data buffer after completion (fcvpn never sets it).
pub const UFLAG_KEEP_BUF: u8 = 0x4;

/// `TCMU_SENSE_BUFFERSIZE`.
pub const SENSE_BUFFER_LEN: usize = 96;

/// TMR types in [`TmrEntry::tmr_type`].
pub mod tmr {
    /// Unknown function.
    pub const UNKNOWN: u8 = 0;
    /// ABORT TASK.
    pub const ABORT_TASK: u8 = 1;
    /// ABORT TASK SET.
    pub const ABORT_TASK_SET: u8 = 2;
    /// CLEAR ACA.
    pub const CLEAR_ACA: u8 = 3;
    /// CLEAR TASK SET.
    pub const CLEAR_TASK_SET: u8 = 4;
    /// LOGICAL UNIT RESET.
    pub const LUN_RESET: u8 = 5;
    /// TARGET WARM RESET.
    pub const TARGET_WARM_RESET: u8 = 6;
    /// TARGET COLD RESET.
    pub const TARGET_COLD_RESET: u8 = 7;
    /// The pseudo reset LIO performs for a PERSISTENT RESERVE OUT.
    pub const LUN_RESET_PRO: u8 = 128;
}

/// `struct tcmu_mailbox` (128 bytes; the kernel's is packed with `cmd_tail` on its own
/// 64-byte cache line).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct Mailbox {
    /// [`MAILBOX_VERSION`].
    pub version: u16,
    /// `CAP_*` flags.
    pub flags: u16,
    /// Offset of the command ring from the start of the region.
    pub cmdr_off: u32,
    /// Size of the command ring in bytes.
    pub cmdr_size: u32,
    /// Written by the kernel: ring offset where its next entry goes.
    pub cmd_head: u32,
    _pad: [u8; 48],
    /// Written by the handler: ring offset up to which entries are completed.
    pub cmd_tail: u32,
    _pad2: [u8; 60],
}

/// `struct tcmu_cmd_entry_hdr` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EntryHeader {
    /// Opcode (`OP_*`, low 3 bits) and entry length.
    pub len_op: u32,
    /// The command's id (1..=65535), unique among the kernel's commands in flight.
    pub cmd_id: u16,
    /// Flags set by the kernel.
    pub kflags: u8,
    /// Flags set by the handler (`UFLAG_*`).
    pub uflags: u8,
}

/// The request half of `struct tcmu_cmd_entry` (the `iov[]` array follows it).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Request {
    /// Data iovecs.
    pub iov_cnt: u32,
    /// Bidirectional (data-in) iovecs after the data iovecs.
    pub iov_bidi_cnt: u32,
    /// Protection information iovecs.
    pub iov_dif_cnt: u32,
    /// Where the CDB is, from the start of the region (not of the entry).
    pub cdb_off: u64,
    _pad1: u64,
    _pad2: u64,
}

/// The response half of `struct tcmu_cmd_entry`, overlaying the request.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Response {
    /// SAM status.
    pub scsi_status: u8,
    _pad1: u8,
    _pad2: u16,
    /// Data-in length actually transferred (with [`UFLAG_READ_LEN`]; zero is ignored).
    pub read_len: u32,
    /// Sense data, copied for CHECK CONDITION.
    pub sense_buffer: [u8; SENSE_BUFFER_LEN],
}

/// The union of request and response.
#[repr(C)]
#[derive(Clone, Copy)]
pub union EntryBody {
    /// As the kernel writes it.
    pub req: Request,
    /// As the handler completes it.
    pub rsp: Response,
}

/// `struct tcmu_cmd_entry` (112 bytes; the minimum size of a CMD entry).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CmdEntry {
    /// Header.
    pub hdr: EntryHeader,
    /// Request or response.
    pub body: EntryBody,
}

/// `struct iovec` as TCMU fills it: `base` is an offset from the start of the region.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Iovec {
    /// Offset of the buffer from the start of the region.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
}

/// `struct tcmu_tmr_entry` (32 bytes; the `u16` affected cmd_ids follow it).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TmrEntry {
    /// Header (opcode [`OP_TMR`]).
    pub hdr: EntryHeader,
    /// One of [`tmr`].
    pub tmr_type: u8,
    _pad1: u8,
    _pad2: u16,
    /// Number of cmd_ids that follow.
    pub cmd_cnt: u32,
    _pad3: u64,
    _pad4: u64,
}

/// Mailbox field offsets.
pub mod mb {
    use super::*;
    /// `version`.
    pub const VERSION: usize = offset_of!(Mailbox, version);
    /// `flags`.
    pub const FLAGS: usize = offset_of!(Mailbox, flags);
    /// `cmdr_off`.
    pub const CMDR_OFF: usize = offset_of!(Mailbox, cmdr_off);
    /// `cmdr_size`.
    pub const CMDR_SIZE: usize = offset_of!(Mailbox, cmdr_size);
    /// `cmd_head`.
    pub const CMD_HEAD: usize = offset_of!(Mailbox, cmd_head);
    /// `cmd_tail`.
    pub const CMD_TAIL: usize = offset_of!(Mailbox, cmd_tail);
    /// The mailbox's size (the kernel puts the ring right after it).
    pub const SIZE: usize = size_of::<Mailbox>();
}

/// Entry field offsets, from the start of an entry.
pub mod entry {
    use super::*;
    const BODY: usize = offset_of!(CmdEntry, body);
    /// `hdr.len_op`.
    pub const LEN_OP: usize = offset_of!(CmdEntry, hdr) + offset_of!(EntryHeader, len_op);
    /// `hdr.cmd_id`.
    pub const CMD_ID: usize = offset_of!(CmdEntry, hdr) + offset_of!(EntryHeader, cmd_id);
    /// `hdr.kflags`.
    pub const KFLAGS: usize = offset_of!(CmdEntry, hdr) + offset_of!(EntryHeader, kflags);
    /// `hdr.uflags`.
    pub const UFLAGS: usize = offset_of!(CmdEntry, hdr) + offset_of!(EntryHeader, uflags);
    /// The header's size: the smallest possible entry.
    pub const HEADER_LEN: usize = size_of::<EntryHeader>();
    /// `req.iov_cnt`.
    pub const IOV_CNT: usize = BODY + offset_of!(Request, iov_cnt);
    /// `req.iov_bidi_cnt`.
    pub const IOV_BIDI_CNT: usize = BODY + offset_of!(Request, iov_bidi_cnt);
    /// `req.iov_dif_cnt`.
    pub const IOV_DIF_CNT: usize = BODY + offset_of!(Request, iov_dif_cnt);
    /// `req.cdb_off`.
    pub const CDB_OFF: usize = BODY + offset_of!(Request, cdb_off);
    /// `req.iov[0]`.
    pub const IOV: usize = BODY + size_of::<Request>();
    /// One iovec.
    pub const IOV_LEN: usize = size_of::<Iovec>();
    /// `iovec.iov_base` within an iovec.
    pub const IOV_BASE_FIELD: usize = offset_of!(Iovec, base);
    /// `iovec.iov_len` within an iovec.
    pub const IOV_LEN_FIELD: usize = offset_of!(Iovec, len);
    /// `rsp.scsi_status`.
    pub const SCSI_STATUS: usize = BODY + offset_of!(Response, scsi_status);
    /// `rsp.read_len`.
    pub const READ_LEN: usize = BODY + offset_of!(Response, read_len);
    /// `rsp.sense_buffer`.
    pub const SENSE: usize = BODY + offset_of!(Response, sense_buffer);
    /// `sizeof(struct tcmu_cmd_entry)`: every CMD entry has at least this much room.
    pub const CMD_MIN_LEN: usize = size_of::<CmdEntry>();
    /// `tmr_type` of a TMR entry.
    pub const TMR_TYPE: usize = offset_of!(TmrEntry, tmr_type);
    /// `cmd_cnt` of a TMR entry.
    pub const TMR_CMD_CNT: usize = offset_of!(TmrEntry, cmd_cnt);
    /// `cmd_ids[0]` of a TMR entry.
    pub const TMR_CMD_IDS: usize = size_of::<TmrEntry>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_layout_matches_the_kernel() {
        assert_eq!(size_of::<Mailbox>(), 128);
        assert_eq!(mb::VERSION, 0);
        assert_eq!(mb::FLAGS, 2);
        assert_eq!(mb::CMDR_OFF, 4);
        assert_eq!(mb::CMDR_SIZE, 8);
        assert_eq!(mb::CMD_HEAD, 12);
        assert_eq!(mb::CMD_TAIL, 64);
        assert_eq!(mb::SIZE, 128);
    }

    #[test]
    fn entry_layouts_match_the_kernel() {
        assert_eq!(size_of::<EntryHeader>(), 8);
        assert_eq!(offset_of!(EntryHeader, len_op), 0);
        assert_eq!(offset_of!(EntryHeader, cmd_id), 4);
        assert_eq!(offset_of!(EntryHeader, kflags), 6);
        assert_eq!(offset_of!(EntryHeader, uflags), 7);

        assert_eq!(size_of::<CmdEntry>(), 112);
        assert_eq!(offset_of!(CmdEntry, body), 8);
        assert_eq!(size_of::<Request>(), 40);
        assert_eq!(size_of::<Response>(), 104);
        assert_eq!(entry::IOV_CNT, 8);
        assert_eq!(entry::IOV_BIDI_CNT, 12);
        assert_eq!(entry::IOV_DIF_CNT, 16);
        assert_eq!(entry::CDB_OFF, 24);
        assert_eq!(entry::IOV, 48);
        assert_eq!(entry::SCSI_STATUS, 8);
        assert_eq!(entry::READ_LEN, 12);
        assert_eq!(entry::SENSE, 16);
        assert_eq!(entry::SENSE + SENSE_BUFFER_LEN, entry::CMD_MIN_LEN);

        assert_eq!(size_of::<Iovec>(), 16);
        assert_eq!(align_of::<Iovec>(), 8);
        assert_eq!(entry::IOV_BASE_FIELD, 0);
        assert_eq!(entry::IOV_LEN_FIELD, 8);

        assert_eq!(size_of::<TmrEntry>(), 32);
        assert_eq!(entry::TMR_TYPE, 8);
        assert_eq!(entry::TMR_CMD_CNT, 12);
        assert_eq!(entry::TMR_CMD_IDS, 32);
    }
}

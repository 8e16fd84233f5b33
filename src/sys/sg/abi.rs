//! The sg v3 ABI of include/scsi/sg.h (64-bit Linux): `struct sg_io_hdr`, its constants, the
//! ioctl numbers fcvpn uses, and the host status codes of include/scsi/scsi_status.h.

use nix::libc::c_int;
use std::ffi::c_void;

/// `interface_id` of the v3 interface: `'S'`.
pub const SG_INTERFACE_ID_ORIG: c_int = b'S' as c_int;
/// `dxfer_direction`: no data.
pub const SG_DXFER_NONE: c_int = -1;
/// `dxfer_direction`: data-out (initiator to device).
pub const SG_DXFER_TO_DEV: c_int = -2;
/// `dxfer_direction`: data-in (device to initiator).
pub const SG_DXFER_FROM_DEV: c_int = -3;
/// `flags`: queue the request at the tail of the block queue (sg's default is the head).
pub const SG_FLAG_Q_AT_TAIL: u32 = 0x10;
/// `info` bit 0: something other than GOOD happened (status, host or driver).
pub const SG_INFO_CHECK: u32 = 0x1;
/// `driver_status`: sense data was written (informational, not an error).
pub const DRIVER_SENSE: u16 = 0x08;
/// Requests one file may have outstanding; a 17th `write(2)` fails with `EDOM`.
pub const SG_MAX_QUEUE: usize = 16;
/// Size of sg's per-request sense buffer (SCSI_SENSE_BUFFERSIZE): more is never written.
pub const SENSE_LEN: usize = 96;
/// Longest CDB sg accepts (SG_MAX_CDB_SIZE); the shortest is 6 bytes.
pub const MAX_CDB_LEN: usize = 252;
/// `dxfer_len` must stay below 256 MiB (sg.c refuses SZ_256M and more with EINVAL).
pub const MAX_DXFER_LEN: usize = 256 * 1024 * 1024 - 1;
/// Version of the mainline sg driver (`SG_GET_VERSION_NUM`, 3.5.36); v3 headers need 30000+.
pub const SG_V3_MIN_VERSION: c_int = 30000;

/// ioctl `SG_IO`: one synchronous command (a plain number, not an `_IOWR` encoding).
pub const SG_IO: u32 = 0x2285;
/// ioctl `SG_GET_RESERVED_SIZE`: the reserved buffer's size in bytes.
pub const SG_GET_RESERVED_SIZE: u32 = 0x2272;
/// ioctl `SG_SET_RESERVED_SIZE`: asks for a reserved buffer of that size (capped by the driver).
pub const SG_SET_RESERVED_SIZE: u32 = 0x2275;
/// ioctl `SG_GET_SG_TABLESIZE`: the queue's `max_segments`.
pub const SG_GET_SG_TABLESIZE: u32 = 0x227F;
/// ioctl `SG_GET_VERSION_NUM`: the driver version, e.g. 30536.
pub const SG_GET_VERSION_NUM: u32 = 0x2282;
/// ioctl `BLKSECTGET` = `_IO(0x12, 103)`: on an sg file, the queue's max_sectors **in bytes**.
pub const BLKSECTGET: u32 = 0x1267;

/// Host (transport) status codes, `DID_*` (include/scsi/scsi_status.h).
pub mod did {
    /// The transport delivered the command; the SCSI status tells the rest.
    pub const OK: u16 = 0x00;
    /// No connection: the remote port is gone or is not an FCP target.
    pub const NO_CONNECT: u16 = 0x01;
    /// Bus busy through the timeout period.
    pub const BUS_BUSY: u16 = 0x02;
    /// Timed out: the kernel aborted the command.
    pub const TIME_OUT: u16 = 0x03;
    /// Bad target.
    pub const BAD_TARGET: u16 = 0x04;
    /// Aborted by the low-level driver or a task management function.
    pub const ABORT: u16 = 0x05;
    /// Parity error.
    pub const PARITY: u16 = 0x06;
    /// Internal error of the low-level driver (e.g. a bad FCP_RSP, an overrun).
    pub const ERROR: u16 = 0x07;
    /// Completed by a reset.
    pub const RESET: u16 = 0x08;
    /// An unexpected interrupt.
    pub const BAD_INTR: u16 = 0x09;
    /// Forced past the midlayer.
    pub const PASSTHROUGH: u16 = 0x0A;
    /// The low-level driver asks for a retry.
    pub const SOFT_ERROR: u16 = 0x0B;
    /// Retry without counting it.
    pub const IMM_RETRY: u16 = 0x0C;
    /// Requeue.
    pub const REQUEUE: u16 = 0x0D;
    /// The link or remote port was blocked during the command.
    pub const TRANSPORT_DISRUPTED: u16 = 0x0E;
    /// The transport failed the command fast (`fast_io_fail_tmo`).
    pub const TRANSPORT_FAILFAST: u16 = 0x0F;
    /// Obsolete codes 10h-13h: target, nexus, allocation and medium failures.
    pub const TARGET_FAILURE: u16 = 0x10;
    /// See [`TARGET_FAILURE`].
    pub const NEXUS_FAILURE: u16 = 0x11;
    /// See [`TARGET_FAILURE`].
    pub const ALLOC_FAILURE: u16 = 0x12;
    /// See [`TARGET_FAILURE`].
    pub const MEDIUM_ERROR: u16 = 0x13;
    /// The remote port is marked marginal.
    pub const TRANSPORT_MARGINAL: u16 = 0x14;
}

/// `struct sg_io_hdr` of include/scsi/sg.h on 64-bit Linux: 88 bytes, every offset checked by
/// the tests. The two padding words are explicit so that no byte of it is uninitialized.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgIoHdr {
    /// `'S'` ([`SG_INTERFACE_ID_ORIG`]); anything else fails with ENOSYS.
    pub interface_id: c_int,
    /// [`SG_DXFER_NONE`], [`SG_DXFER_TO_DEV`] or [`SG_DXFER_FROM_DEV`].
    pub dxfer_direction: c_int,
    /// CDB length, 6..=252.
    pub cmd_len: u8,
    /// Size of the buffer at `sbp`.
    pub mx_sb_len: u8,
    /// 0: `dxferp` is a flat buffer.
    pub iovec_count: u16,
    /// Bytes to transfer.
    pub dxfer_len: u32,
    /// The data buffer.
    pub dxferp: *mut c_void,
    /// The CDB.
    pub cmdp: *mut u8,
    /// The sense buffer.
    pub sbp: *mut u8,
    /// Timeout in milliseconds (0 = the device's default, 30 s).
    pub timeout: u32,
    /// `SG_FLAG_*`.
    pub flags: u32,
    /// Echoed back; used by read(2) only with SG_SET_FORCE_PACK_ID.
    pub pack_id: c_int,
    /// Alignment padding before `usr_ptr`.
    pub pad0: u32,
    /// Echoed back untouched: fcvpn keeps the command's key here.
    pub usr_ptr: *mut c_void,
    /// SAM status byte.
    pub status: u8,
    /// `status >> 1` (kept for compatibility).
    pub masked_status: u8,
    /// Message status.
    pub msg_status: u8,
    /// Sense bytes written to `sbp`.
    pub sb_len_wr: u8,
    /// `DID_*` ([`did`]).
    pub host_status: u16,
    /// `DRIVER_*` (bit 3: [`DRIVER_SENSE`]).
    pub driver_status: u16,
    /// `dxfer_len` minus the bytes actually moved.
    pub resid: c_int,
    /// Milliseconds the command took.
    pub duration: u32,
    /// `SG_INFO_*` bits.
    pub info: u32,
    /// Tail padding to the 8-byte alignment.
    pub pad1: u32,
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<SgIoHdr>() == 88);

impl SgIoHdr {
    /// An all-zero header with null pointers.
    pub const fn zeroed() -> Self {
        Self {
            interface_id: 0,
            dxfer_direction: 0,
            cmd_len: 0,
            mx_sb_len: 0,
            iovec_count: 0,
            dxfer_len: 0,
            dxferp: std::ptr::null_mut(),
            cmdp: std::ptr::null_mut(),
            sbp: std::ptr::null_mut(),
            timeout: 0,
            flags: 0,
            pack_id: 0,
            pad0: 0,
            usr_ptr: std::ptr::null_mut(),
            status: 0,
            masked_status: 0,
            msg_status: 0,
            sb_len_wr: 0,
            host_status: 0,
            driver_status: 0,
            resid: 0,
            duration: 0,
            info: 0,
            pad1: 0,
        }
    }
}

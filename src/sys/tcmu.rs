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

use std::cell::UnsafeCell;
use std::io;
use std::mem::{align_of, offset_of, size_of};
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use std::os::fd::AsRawFd;

use nix::libc;

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

/// An access outside the shared region (or a misaligned atomic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Requested offset.
    pub off: usize,
    /// Requested length.
    pub len: usize,
}

impl std::fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes at offset {:#x} are outside the shared region",
            self.len, self.off
        )
    }
}

impl std::error::Error for OutOfBounds {}

enum Backing {
    /// A `MAP_SHARED` mapping of a UIO device, unmapped on drop.
    Mapped,
    /// Heap memory shaped like the kernel's region (tests, and the fake kernel that feeds
    /// them); every alias keeps it alive.
    Heap(#[allow(dead_code)] Rc<[UnsafeCell<u64>]>),
}

/// Memory shared with the kernel: bounds-checked byte copies in and out, and the two atomic
/// words of the ring protocol. No Rust reference to the memory is ever created.
///
/// Not `Send` or `Sync`: one thread drives the ring.
pub struct SharedMemory {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
}

impl SharedMemory {
    /// Maps `len` bytes of UIO map 0 of `fd` (read-write, shared). TCMU refuses any length but
    /// the map's exact size (`/sys/class/uio/uioN/maps/map0/size`).
    pub fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty UIO map"));
        }
        // SAFETY: a fresh mapping chosen by the kernel (null address hint, no MAP_FIXED), so
        // no existing memory is replaced; `fd` is a live descriptor borrowed for the call. The
        // result is only accessed through the bounds-checked raw-pointer accessors below and
        // unmapped exactly once, in `Drop`.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(addr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Self {
            ptr,
            len,
            backing: Backing::Mapped,
        })
    }

    /// `len` zeroed bytes on the heap, 8-byte aligned: the shape of the kernel's region
    /// without a kernel.
    pub fn heap(len: usize) -> Self {
        let words: Rc<[UnsafeCell<u64>]> =
            (0..len.div_ceil(8)).map(|_| UnsafeCell::new(0)).collect();
        // `UnsafeCell` makes writes through a pointer derived from a shared borrow sound.
        let ptr = NonNull::new(UnsafeCell::raw_get(words.as_ptr()).cast::<u8>())
            .unwrap_or(NonNull::dangling());
        Self {
            ptr,
            len,
            backing: Backing::Heap(words),
        }
    }

    /// A second handle on the same heap memory (as the kernel has its own view of the
    /// region); `None` for a UIO mapping.
    pub fn alias(&self) -> Option<Self> {
        match &self.backing {
            Backing::Mapped => None,
            Backing::Heap(words) => Some(Self {
                ptr: self.ptr,
                len: self.len,
                backing: Backing::Heap(Rc::clone(words)),
            }),
        }
    }

    /// The region's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, off: usize, len: usize) -> Result<(), OutOfBounds> {
        match off.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(OutOfBounds { off, len }),
        }
    }

    /// Copies `buf.len()` bytes at `off` into `buf`.
    pub fn read(&self, off: usize, buf: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(off, buf.len())?;
        // SAFETY: `off..off + buf.len()` lies inside the live region (checked above); `buf` is
        // a distinct Rust allocation, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    /// Appends `len` bytes at `off` to `out` (no zeroing of the destination first).
    pub fn append_to(&self, off: usize, len: usize, out: &mut Vec<u8>) -> Result<(), OutOfBounds> {
        self.check(off, len)?;
        out.reserve(len);
        let spare = out.spare_capacity_mut();
        // SAFETY: the source range lies inside the live region (checked above); `spare` has
        // room for at least `len` bytes after `reserve`, and is a distinct allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(off),
                spare.as_mut_ptr().cast::<u8>(),
                len,
            );
        }
        // SAFETY: the `len` bytes after the current length were initialized just above.
        unsafe { out.set_len(out.len() + len) };
        Ok(())
    }

    /// Copies `data` to `off`.
    pub fn write(&self, off: usize, data: &[u8]) -> Result<(), OutOfBounds> {
        self.check(off, data.len())?;
        // SAFETY: `off..off + data.len()` lies inside the live, writable region (checked
        // above); `data` is a distinct Rust allocation, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(off), data.len())
        };
        Ok(())
    }

    /// Sets `len` bytes at `off` to `byte`.
    pub fn fill(&self, off: usize, len: usize, byte: u8) -> Result<(), OutOfBounds> {
        self.check(off, len)?;
        // SAFETY: `off..off + len` lies inside the live, writable region (checked above).
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(off), byte, len) };
        Ok(())
    }

    /// The native-endian `u8` at `off`.
    pub fn u8_at(&self, off: usize) -> Result<u8, OutOfBounds> {
        let mut b = [0u8; 1];
        self.read(off, &mut b)?;
        Ok(b[0])
    }

    /// The native-endian `u16` at `off`.
    pub fn u16_at(&self, off: usize) -> Result<u16, OutOfBounds> {
        let mut b = [0u8; 2];
        self.read(off, &mut b)?;
        Ok(u16::from_ne_bytes(b))
    }

    /// The native-endian `u32` at `off`.
    pub fn u32_at(&self, off: usize) -> Result<u32, OutOfBounds> {
        let mut b = [0u8; 4];
        self.read(off, &mut b)?;
        Ok(u32::from_ne_bytes(b))
    }

    /// The native-endian `u64` at `off`.
    pub fn u64_at(&self, off: usize) -> Result<u64, OutOfBounds> {
        let mut b = [0u8; 8];
        self.read(off, &mut b)?;
        Ok(u64::from_ne_bytes(b))
    }

    fn atomic(&self, off: usize) -> Result<&AtomicU32, OutOfBounds> {
        self.check(off, 4)?;
        let addr = self.ptr.as_ptr().wrapping_add(off);
        if (addr as usize) % align_of::<AtomicU32>() != 0 {
            return Err(OutOfBounds { off, len: 4 });
        }
        // SAFETY: the 4 bytes at `addr` lie inside the live region (checked above) and are
        // aligned for `AtomicU32` (checked just above). The word is only ever accessed
        // atomically by both sides (the kernel uses READ_ONCE/smp_store_release on it), and
        // the reference does not outlive `&self`, which keeps the memory mapped.
        Ok(unsafe { AtomicU32::from_ptr(addr.cast::<u32>()) })
    }

    /// Loads the `u32` at `off` with acquire ordering (pairs with the kernel's release store
    /// of `cmd_head`, so the entries before it are visible).
    pub fn load_acquire(&self, off: usize) -> Result<u32, OutOfBounds> {
        Ok(self.atomic(off)?.load(Ordering::Acquire))
    }

    /// Stores `value` at `off` with release ordering (so the kernel sees the responses written
    /// before a `cmd_tail` update).
    pub fn store_release(&self, off: usize, value: u32) -> Result<(), OutOfBounds> {
        self.atomic(off)?.store(value, Ordering::Release);
        Ok(())
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        if let Backing::Mapped = self.backing {
            // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, unmapped only here;
            // no reference into it outlives `self`.
            let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                tracing::warn!("unmapping the TCMU ring: {e}");
            }
        }
    }
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

    #[test]
    fn heap_memory_is_bounds_checked_and_shared_by_aliases() {
        let mem = SharedMemory::heap(100);
        let other = mem.alias().unwrap();
        mem.write(96, &[1, 2, 3, 4]).unwrap();
        assert_eq!(other.u32_at(96).unwrap(), u32::from_ne_bytes([1, 2, 3, 4]));
        assert_eq!(mem.write(97, &[0; 4]), Err(OutOfBounds { off: 97, len: 4 }));
        assert!(mem.read(usize::MAX, &mut [0; 2]).is_err());
        assert!(mem.load_acquire(98).is_err(), "misaligned");
        mem.store_release(12, 7).unwrap();
        assert_eq!(other.load_acquire(12).unwrap(), 7);
        let mut v = vec![9];
        other.append_to(96, 4, &mut v).unwrap();
        assert_eq!(v, [9, 1, 2, 3, 4]);
        mem.fill(96, 4, 0xee).unwrap();
        assert_eq!(other.u8_at(99).unwrap(), 0xee);
        assert!(other.fill(99, 2, 0).is_err());
    }
}

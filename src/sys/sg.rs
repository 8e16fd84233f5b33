//! The Linux SCSI generic driver (`/dev/sgN`, sg v3): the `sg_io_hdr` layout, its ioctls, and
//! [`SgFile`], which runs commands synchronously (ioctl `SG_IO`) or several at a time through the
//! driver's asynchronous interface (`write(2)` submits a header, `read(2)` reaps one).
//!
//! # Why the buffers of asynchronous commands stay valid
//!
//! A header written to the driver carries raw pointers: `cmdp` (the CDB), `dxferp` (the data) and
//! `sbp` (the sense buffer). fcvpn never asks for direct I/O (`SG_FLAG_DIRECT_IO`), so the
//! driver bounces data through its own pages and touches our memory only inside system calls on
//! the open file (drivers/scsi/sg.c, block/blk-map.c):
//!
//! - `write(2)` copies the header, the CDB and the data-out into the kernel before it returns;
//! - `read(2)` (or the `SG_IO` ioctl) copies one finished command's data-in to its `dxferp` and
//!   its sense to its `sbp`, the pointers given when that command was submitted;
//! - a command that finishes after its file was released is cleaned up by a kernel worker
//!   that has no user address space, and copies nothing (`bio_uncopy_user` checks
//!   `current->mm`). The same holds for an `SG_IO` interrupted by a signal: sg orphans the
//!   request and drops it on completion (fcvpn never sets `SG_SET_KEEP_ORPHAN`).
//!
//! So the buffers of a submitted command must stay allocated and unmoved while a `read(2)` on
//! the same open file can still reap it. [`SgFile`] guarantees that by owning them: a buffer
//! goes into its table (keyed by the caller's tag) when the kernel accepts the header and comes
//! back out only when `read(2)` has reaped that command. A `Vec`'s heap block does not move when
//! the `Vec` itself is moved into or out of the table. The descriptor never leaves this
//! module: it is opened here and never duplicated, and what callers poll is a separate epoll
//! descriptor ([`SgFile::poll_fd`]), so no other code can `read(2)` from this open file. When an
//! [`SgFile`] is dropped, its descriptor is closed before the buffers are freed (field order),
//! and after that close no system call can reap a command into them.

use std::collections::HashMap;
use std::ffi::c_void;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use nix::libc::{self, c_int};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

mod abi;
pub use abi::*;

/// Direction of a command's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    /// No data (`len` must be 0).
    None,
    /// Data-out: the buffer is sent to the device.
    ToDevice,
    /// Data-in: the device's data is copied into the buffer.
    FromDevice,
}

impl DataDir {
    fn raw(self) -> c_int {
        match self {
            Self::None => SG_DXFER_NONE,
            Self::ToDevice => SG_DXFER_TO_DEV,
            Self::FromDevice => SG_DXFER_FROM_DEV,
        }
    }
}

/// The output fields of a finished command, copied out of its header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reply {
    /// SAM status byte.
    pub status: u8,
    /// `status >> 1`, as the driver reports it.
    pub masked_status: u8,
    /// Sense bytes written.
    pub sb_len_wr: u8,
    /// `DID_*`.
    pub host_status: u16,
    /// `DRIVER_*`.
    pub driver_status: u16,
    /// Residual count (may be negative or exceed `dxfer_len` if a driver misreports).
    pub resid: i32,
    /// Milliseconds the command took.
    pub duration_ms: u32,
    /// `SG_INFO_*`.
    pub info: u32,
    /// The transfer length the command was submitted with.
    pub dxfer_len: u32,
}

impl Reply {
    fn from_hdr(hdr: &SgIoHdr, dxfer_len: u32) -> Self {
        Self {
            status: hdr.status,
            masked_status: hdr.masked_status,
            sb_len_wr: hdr.sb_len_wr,
            host_status: hdr.host_status,
            driver_status: hdr.driver_status,
            resid: hdr.resid,
            duration_ms: hdr.duration,
            info: hdr.info,
            dxfer_len,
        }
    }
}

/// A finished asynchronous command, with the buffer it was submitted with.
#[derive(Debug)]
pub struct Reaped {
    /// The key given to [`SgFile::submit`].
    pub key: u64,
    /// The direction it was submitted with.
    pub dir: DataDir,
    /// The buffer given to [`SgFile::submit`] (data-in written into its first bytes).
    pub data: Vec<u8>,
    /// The command's status fields.
    pub reply: Reply,
    /// The sense data written (`sb_len_wr` bytes).
    pub sense: Vec<u8>,
}

/// A synchronous command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReply {
    /// The command's status fields.
    pub reply: Reply,
    /// The sense data written (`sb_len_wr` bytes).
    pub sense: Vec<u8>,
}

/// Buffers of a command the kernel has accepted and not yet returned.
struct InFlight {
    /// What `dxferp` points into (the first `dxfer_len` bytes).
    data: Vec<u8>,
    /// What `sbp` points to ([`SENSE_LEN`] bytes).
    sense: Vec<u8>,
    dxfer_len: u32,
    dir: DataDir,
}

/// An open `/dev/sgN` and the buffers of its commands in flight (see the module docs for why
/// their pointers stay valid).
pub struct SgFile {
    /// The sg descriptor. Declared first so that it is closed before `in_flight` is freed.
    fd: OwnedFd,
    /// An epoll descriptor watching `fd` for input: what callers poll.
    epoll: OwnedFd,
    /// Submitted and not yet reaped, by key.
    in_flight: HashMap<u64, InFlight>,
    /// Replies read for keys we do not hold (never expected from the sg driver).
    strays: u64,
}

impl std::fmt::Debug for SgFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SgFile")
            .field("fd", &self.fd.as_raw_fd())
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}

// The ioctls, private so that every call goes through a method with its safety argument.
mod ioctl {
    use super::{BLKSECTGET, SG_GET_RESERVED_SIZE, SG_GET_SG_TABLESIZE, SG_GET_VERSION_NUM};
    use super::{SG_IO, SG_SET_RESERVED_SIZE, SgIoHdr};
    use nix::libc::c_int;

    nix::ioctl_readwrite_bad!(sg_io, SG_IO, SgIoHdr);
    nix::ioctl_read_bad!(get_version_num, SG_GET_VERSION_NUM, c_int);
    nix::ioctl_read_bad!(get_reserved_size, SG_GET_RESERVED_SIZE, c_int);
    nix::ioctl_write_ptr_bad!(set_reserved_size, SG_SET_RESERVED_SIZE, c_int);
    nix::ioctl_read_bad!(get_sg_tablesize, SG_GET_SG_TABLESIZE, c_int);
    nix::ioctl_read_bad!(blksectget, BLKSECTGET, c_int);
}

impl SgFile {
    /// Opens the sg device at `path` read-write and non-blocking (so neither `open(2)` nor
    /// `write(2)` waits for the host's error recovery), close-on-exec. Fails with
    /// `InvalidInput` if it is not an sg device with the v3 interface.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let not_sg = |why: String| {
            let why = format!("not a SCSI generic device ({why})");
            io::Error::new(io::ErrorKind::InvalidInput, why)
        };
        match version(file.as_fd()) {
            Ok(v) if v >= SG_V3_MIN_VERSION => Self::from_fd(file.into()),
            Ok(v) => Err(not_sg(format!("driver version {v}"))),
            Err(e) => Err(not_sg(e.to_string())),
        }
    }

    /// Wraps a descriptor this module opened (or, in tests, one end of a socket pair).
    fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        let epoll = epoll_watching(fd.as_fd())?;
        Ok(Self {
            fd,
            epoll,
            in_flight: HashMap::with_capacity(SG_MAX_QUEUE),
            strays: 0,
        })
    }

    /// A file over a socket standing in for the driver, for tests: replies are whatever the
    /// peer writes, and no data or sense is ever copied into the buffers.
    #[cfg(test)]
    pub(crate) fn for_tests(fd: OwnedFd) -> io::Result<Self> {
        Self::from_fd(fd)
    }

    /// What to poll: readable when a command has finished or the device is going away.
    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// Commands submitted and not yet reaped.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether `key` is in flight.
    pub fn holds(&self, key: u64) -> bool {
        self.in_flight.contains_key(&key)
    }

    /// Replies read whose key was not in flight (none are expected).
    pub fn strays(&self) -> u64 {
        self.strays
    }

    /// Whether the driver reports the device going away (POLLHUP, or POLLERR/POLLNVAL).
    pub fn hung_up(&self) -> bool {
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        let gone = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
        poll(&mut fds, PollTimeout::ZERO).is_ok()
            && fds[0].revents().is_some_and(|r| r.intersects(gone))
    }

    /// The driver version (`SG_GET_VERSION_NUM`), e.g. 30536.
    pub fn version(&self) -> io::Result<c_int> {
        version(self.fd.as_fd())
    }

    /// The queue's largest transfer in bytes (`BLKSECTGET`, which sg answers in bytes).
    pub fn max_sectors_bytes(&self) -> io::Result<usize> {
        let mut v: c_int = 0;
        // SAFETY: as in `version`: one int written to our stack variable.
        unsafe { ioctl::blksectget(self.fd.as_raw_fd(), &mut v) }?;
        Ok(usize::try_from(v).unwrap_or(0))
    }

    /// The queue's `max_segments` (`SG_GET_SG_TABLESIZE`).
    pub fn sg_tablesize(&self) -> io::Result<usize> {
        let mut v: c_int = 0;
        // SAFETY: as in `version`: one int written to our stack variable.
        unsafe { ioctl::get_sg_tablesize(self.fd.as_raw_fd(), &mut v) }?;
        Ok(usize::try_from(v).unwrap_or(0))
    }

    /// Asks for a reserved buffer of `bytes` (the driver caps it at max_sectors and may
    /// allocate less); returns the size it now has.
    pub fn set_reserved_size(&self, bytes: usize) -> io::Result<usize> {
        let want = c_int::try_from(bytes).unwrap_or(c_int::MAX);
        // SAFETY: the driver reads one int from `&want`, which outlives the call.
        unsafe { ioctl::set_reserved_size(self.fd.as_raw_fd(), &want) }?;
        let mut got: c_int = 0;
        // SAFETY: as in `version`: one int written to our stack variable.
        unsafe { ioctl::get_reserved_size(self.fd.as_raw_fd(), &mut got) }?;
        Ok(usize::try_from(got).unwrap_or(0))
    }

    /// Runs one command synchronously (ioctl `SG_IO`) and waits for it. `data` is sent
    /// ([`DataDir::ToDevice`]) or filled ([`DataDir::FromDevice`]) whole. A signal ends the
    /// wait with EINTR and leaves the command orphaned; it is not sent again.
    pub fn command(
        &mut self,
        cdb: &[u8],
        dir: DataDir,
        data: &mut [u8],
        timeout: Duration,
    ) -> io::Result<SyncReply> {
        check_command(cdb, dir, data.len(), data.len())?;
        let mut sense = [0u8; SENSE_LEN];
        let mut hdr = header(cdb, dir, data.as_mut_ptr(), data.len(), &mut sense, timeout);
        // SAFETY: `self.fd` is open. SG_IO reads the header, the CDB and the data-out, and
        // writes the data-in, the sense and the header, all before it returns; `hdr`, `cdb`,
        // `data` and `sense` are live and borrowed for the whole call (`cdb` is only read), and
        // the pointers in `hdr` cover exactly `cdb.len()`, `data.len()` and `SENSE_LEN` bytes.
        // If a signal interrupts the wait, sg orphans the request and never copies into them
        // later (see the module docs).
        unsafe { ioctl::sg_io(self.fd.as_raw_fd(), &mut hdr) }?;
        let reply = Reply::from_hdr(&hdr, hdr.dxfer_len);
        let n = usize::from(hdr.sb_len_wr).min(SENSE_LEN);
        Ok(SyncReply {
            reply,
            sense: sense[..n].to_vec(),
        })
    }

    /// Submits a command without waiting: `data[..len]` is sent ([`DataDir::ToDevice`]) or up
    /// to `len` bytes are read into it ([`DataDir::FromDevice`]). On success `data` stays here
    /// until [`SgFile::reap`] returns it under `key`; on failure it comes back with the error:
    /// `EDOM` when [`SG_MAX_QUEUE`] commands are already in flight, `InvalidInput` for a
    /// duplicate key or a bad CDB or length, or the driver's error (then nothing was queued).
    pub fn submit(
        &mut self,
        key: u64,
        cdb: &[u8],
        dir: DataDir,
        mut data: Vec<u8>,
        len: usize,
        timeout: Duration,
    ) -> Result<(), (Vec<u8>, io::Error)> {
        if let Err(e) = self.check_submit(key, cdb, dir, data.len(), len) {
            return Err((data, e));
        }
        let dxfer_len = u32::try_from(len).unwrap_or(u32::MAX);
        let mut sense = vec![0u8; SENSE_LEN];
        let mut hdr = header(cdb, dir, data.as_mut_ptr(), len, &mut sense, timeout);
        hdr.usr_ptr = std::ptr::without_provenance_mut(key as usize);
        hdr.pack_id = key as c_int; // Informational only (truncated); `usr_ptr` is the key.
        // SAFETY: `self.fd` is open; write(2) reads exactly `size_of::<SgIoHdr>()` bytes from
        // `hdr`, which lives on our stack for the call. During the call sg also reads `cdb` and
        // the data-out (`len <= data.len()` bytes) through the header's pointers. The pointers
        // to `data`'s and `sense`'s heap blocks are kept by the kernel; on success both vectors
        // go into `in_flight` below, unmoved and untouched until `reap` gets this command back
        // (module docs).
        let n = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&raw const hdr).cast::<c_void>(),
                size_of::<SgIoHdr>(),
            )
        };
        if n < 0 {
            return Err((data, io::Error::last_os_error()));
        }
        let entry = InFlight {
            data,
            sense,
            dxfer_len,
            dir,
        };
        self.in_flight.insert(key, entry);
        Ok(())
    }

    fn check_submit(
        &self,
        key: u64,
        cdb: &[u8],
        dir: DataDir,
        capacity: usize,
        len: usize,
    ) -> io::Result<()> {
        if self.in_flight.contains_key(&key) {
            return Err(invalid(format!("command key {key} is already in flight")));
        }
        if self.in_flight.len() >= SG_MAX_QUEUE {
            return Err(io::Error::from_raw_os_error(libc::EDOM));
        }
        check_command(cdb, dir, capacity, len)
    }

    /// Reaps one finished command, or `None` when none is ready (EAGAIN). Errors: the
    /// driver's, `UnexpectedEof` for a short read, and `NotConnected` when nothing is ready
    /// and the device is going away: sg's non-blocking read(2) then still says EAGAIN (since
    /// Linux 5.x; older kernels said ENODEV), and only poll(2) tells, with POLLHUP.
    pub fn reap(&mut self) -> io::Result<Option<Reaped>> {
        loop {
            let mut hdr = SgIoHdr::zeroed();
            // SAFETY: `self.fd` is open; read(2) writes at most `size_of::<SgIoHdr>()` bytes
            // into `hdr` on our stack, and every bit pattern is a valid `SgIoHdr` (integers
            // and raw pointers only). Any data-in and sense the kernel copies during this call
            // go to buffers held in `in_flight` (module docs).
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&raw mut hdr).cast::<c_void>(),
                    size_of::<SgIoHdr>(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock if self.hung_up() => Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "the device is going away (POLLHUP)",
                    )),
                    io::ErrorKind::WouldBlock => Ok(None),
                    _ => Err(e),
                };
            }
            if usize::try_from(n).ok() != Some(size_of::<SgIoHdr>()) {
                let why = format!(
                    "read {n} bytes of a {}-byte sg_io_hdr",
                    size_of::<SgIoHdr>()
                );
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, why));
            }
            let key = hdr.usr_ptr.addr() as u64;
            let Some(entry) = self.in_flight.remove(&key) else {
                self.strays += 1;
                continue;
            };
            let mut sense = entry.sense;
            sense.truncate(usize::from(hdr.sb_len_wr));
            return Ok(Some(Reaped {
                key,
                dir: entry.dir,
                data: entry.data,
                reply: Reply::from_hdr(&hdr, entry.dxfer_len),
                sense,
            }));
        }
    }
}

/// The sg driver version behind `fd`; fails (ENOTTY) if it is not an sg device.
fn version(fd: BorrowedFd<'_>) -> io::Result<c_int> {
    let mut v: c_int = 0;
    // SAFETY: `fd` is open for the call; the ioctl writes one int to `v`, which lives on our
    // stack for the whole call (a non-sg driver fails the call without writing).
    unsafe { ioctl::get_version_num(fd.as_raw_fd(), &mut v) }?;
    Ok(v)
}

/// Checks what sg would refuse (so that its refusals stay exceptional): the CDB length, the
/// transfer length against the buffer and the driver's limit, and no data for [`DataDir::None`].
fn check_command(cdb: &[u8], dir: DataDir, capacity: usize, len: usize) -> io::Result<()> {
    if !(6..=MAX_CDB_LEN).contains(&cdb.len()) {
        return Err(invalid(format!("a CDB of {} bytes (6..=252)", cdb.len())));
    }
    if len > capacity || len > MAX_DXFER_LEN {
        return Err(invalid(format!(
            "transfer of {len} bytes into a {capacity}-byte buffer"
        )));
    }
    if dir == DataDir::None && len != 0 {
        return Err(invalid(format!(
            "{len} bytes of data for a no-data command"
        )));
    }
    Ok(())
}

/// A v3 header for one command: `data` points to `len` bytes (null when `len` is 0) and `sense`
/// is the sense buffer. `cdb` is only ever read by the kernel, so its pointer is cast to `*mut`.
fn header(
    cdb: &[u8],
    dir: DataDir,
    data: *mut u8,
    len: usize,
    sense: &mut [u8],
    timeout: Duration,
) -> SgIoHdr {
    let mut hdr = SgIoHdr::zeroed();
    hdr.interface_id = SG_INTERFACE_ID_ORIG;
    hdr.dxfer_direction = if len == 0 { SG_DXFER_NONE } else { dir.raw() };
    hdr.cmd_len = u8::try_from(cdb.len()).unwrap_or(u8::MAX);
    hdr.cmdp = cdb.as_ptr().cast_mut();
    hdr.mx_sb_len = u8::try_from(sense.len()).unwrap_or(u8::MAX);
    hdr.sbp = sense.as_mut_ptr();
    hdr.dxfer_len = u32::try_from(len).unwrap_or(u32::MAX);
    if len > 0 {
        hdr.dxferp = data.cast();
    }
    hdr.timeout = timeout_ms(timeout);
    hdr.flags = SG_FLAG_Q_AT_TAIL;
    hdr
}

/// `timeout` in whole milliseconds, rounded up, at least 1 (0 would mean the device's default
/// of 30 s) and below `u32::MAX` (which means "never").
pub fn timeout_ms(timeout: Duration) -> u32 {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    u32::try_from(ms).unwrap_or(u32::MAX).clamp(1, u32::MAX - 1)
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

/// A close-on-exec epoll descriptor watching `fd` for input (level-triggered): polling it
/// reports readable whenever `fd` would.
fn epoll_watching(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 takes only flags and returns a new descriptor or -1.
    let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor we just created and nothing else owns.
    let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 0,
    };
    // SAFETY: both descriptors are open; the kernel copies `event` during the call.
    let rc = unsafe {
        libc::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd.as_raw_fd(),
            &mut event,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(epoll)
}

/// The system's page size (4096 if it cannot be read).
pub fn page_size() -> usize {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(v).ok().filter(|&p| p > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests;

//! Memory shared with the kernel: a UIO mapping (or heap memory of the same shape for
//! tests), accessed only through bounds-checked raw-pointer copies and two atomic words.

use std::cell::UnsafeCell;
use std::io;
use std::mem::align_of;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::libc;

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
    ///
    /// Safe because no Rust reference into the mapping is ever made, so concurrent writes by
    /// the kernel are no data race on Rust's terms. TCMU allocates data-area pages per command:
    /// touching a page outside every iovec the kernel handed out faults (SIGBUS), which is why
    /// the ring only ever accesses the iovecs of commands it holds.
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

//! Reading into a vector's spare capacity, so packet buffers need no zeroing before a read.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Reads once from `fd` into the spare capacity of `buf` (reserving up to `max` bytes of it) and
/// extends `buf` by the bytes read. Returns the count; `WouldBlock` on an empty non-blocking fd.
pub fn read_to_spare(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(max);
    // SAFETY: `spare` is writable memory owned by `buf` of at least `len` bytes; read(2)
    // writes at most `len` bytes into it and reports how many.
    let n = unsafe { nix::libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), len) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialized exactly `n <= len` bytes after the current length.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn reads_into_spare_capacity_and_reports_would_block() {
        let (r, mut w) = std::io::pipe().unwrap();
        w.write_all(b"hello").unwrap();
        let mut buf = b"ab".to_vec();
        assert_eq!(read_to_spare(r.as_fd(), &mut buf, 3).unwrap(), 3);
        assert_eq!(buf, b"abhel");
        assert_eq!(read_to_spare(r.as_fd(), &mut buf, 100).unwrap(), 2);
        assert_eq!(buf, b"abhello");
        nix::fcntl::fcntl(
            r.as_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .unwrap();
        let err = read_to_spare(r.as_fd(), &mut buf, 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
}

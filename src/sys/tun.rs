//! TUN/TAP ioctls that `tun-rs` does not offer: persistence off, and the carrier.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

// TUNSETPERSIST = _IOW('T', 203, int): the argument is the value itself.
nix::ioctl_write_int!(tunsetpersist, b'T', 203);
// TUNSETCARRIER = _IOW('T', 226, int): the argument points to the value.
nix::ioctl_write_ptr!(tunsetcarrier, b'T', 226, nix::libc::c_int);

/// Sets or clears the device's persist flag: a persistent device outlives the process that
/// created it (so a restart keeps its addresses, routes and the TCP connections over them).
pub fn set_persist(fd: BorrowedFd<'_>, persist: bool) -> io::Result<()> {
    // SAFETY: `fd` is a live descriptor borrowed for the call; TUNSETPERSIST reads only the
    // integer argument and touches no user memory.
    unsafe { tunsetpersist(fd.as_raw_fd(), u64::from(persist)) }.map_err(io::Error::from)?;
    Ok(())
}

/// Turns the device's carrier on or off (what `miimon` and `ip link` see as LOWER_UP).
pub fn set_carrier(fd: BorrowedFd<'_>, up: bool) -> io::Result<()> {
    let value: nix::libc::c_int = up.into();
    // SAFETY: `fd` is a live descriptor borrowed for the call; the pointer refers to a
    // `c_int` on our stack that outlives the call, and the kernel only reads `sizeof(int)`
    // bytes from it.
    unsafe { tunsetcarrier(fd.as_raw_fd(), &value) }.map_err(io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ioctl_numbers_match_linux_if_tun_h() {
        // _IOW('T', nr, int) = dir(1) << 30 | size(4) << 16 | 'T' << 8 | nr
        let iow = |nr: u64| (1u64 << 30) | (4 << 16) | (u64::from(b'T') << 8) | nr;
        assert_eq!(iow(203), 0x400454cb, "TUNSETPERSIST");
        assert_eq!(iow(226), 0x400454e2, "TUNSETCARRIER");
        assert_eq!(nix::request_code_write!(b'T', 203, 4), iow(203));
        assert_eq!(nix::request_code_write!(b'T', 226, 4), iow(226));
    }
}

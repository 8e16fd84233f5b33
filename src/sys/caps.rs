//! Dropping privileges once setup is done: capabilities (capset(2), prctl(2) on the bounding
//! and ambient sets) and `PR_SET_NO_NEW_PRIVS`.
//!
//! Linux capabilities are per thread: [`restrict_to`] changes the calling thread, and threads
//! it starts afterwards inherit the result. Call it while the process has one thread.

use std::io;

use nix::libc;

/// A Linux capability number (`linux/capability.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap(pub u8);

impl Cap {
    /// `CAP_DAC_OVERRIDE`: bypass file permission checks.
    pub const DAC_OVERRIDE: Cap = Cap(1);
    /// `CAP_NET_ADMIN`: network configuration (TUN carrier and persistence, interfaces).
    pub const NET_ADMIN: Cap = Cap(12);
    /// `CAP_SYS_RAWIO`: SG_IO with commands outside the kernel's unprivileged list.
    pub const SYS_RAWIO: Cap = Cap(17);
    /// `CAP_SYS_ADMIN`: mounts, configfs and other administration.
    pub const SYS_ADMIN: Cap = Cap(21);

    /// The bit of this capability in a 64-bit set (as `/proc/PID/status` shows them).
    pub fn bit(self) -> u64 {
        1u64 << self.0
    }
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets split over two [`CapData`].
const VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
#[derive(Debug, Default)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`: one 32-bit half of each set.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Effective, permitted and inheritable sets of the calling thread, as 64-bit masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSets {
    /// What the thread may use now.
    pub effective: u64,
    /// What it may ever make effective.
    pub permitted: u64,
    /// What survives an execve (with file capabilities).
    pub inheritable: u64,
}

/// The calling thread's capability sets.
pub fn current() -> io::Result<CapSets> {
    let mut header = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2) with a version-3 header reads the header and writes two CapData
    // structs, which `data` provides; both outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | (u64::from(f(&data[1])) << 32);
    Ok(CapSets {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
    })
}

/// Keeps only `keep` in the calling thread's bounding, permitted and effective sets, clears
/// the inheritable and ambient sets, and sets `PR_SET_NO_NEW_PRIVS` (no execve can gain a
/// privilege again). Needs `CAP_SETPCAP` to shrink the bounding set (root has it); the order
/// (bounding first, then capset) is what makes that work.
pub fn restrict_to(keep: &[Cap]) -> io::Result<()> {
    let mask: u64 = keep.iter().map(|c| c.bit()).fold(0, |a, b| a | b);
    for cap in 0..64u8 {
        let cap = libc::c_ulong::from(cap);
        // SAFETY: prctl(PR_CAPBSET_READ, cap) takes plain integers and touches no memory.
        let present = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) };
        if present < 0 {
            break; // Past the kernel's last capability.
        }
        if present == 1 && mask & (1 << cap) == 0 {
            // SAFETY: as above; integers only.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    let clear = libc::c_ulong::try_from(libc::PR_CAP_AMBIENT_CLEAR_ALL).unwrap_or(4);
    // SAFETY: integers only. Kernels before 4.3 have no ambient set and answer EINVAL,
    // which leaves nothing to clear.
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, clear, 0, 0, 0) };
    set_caps(mask)?;
    // SAFETY: integers only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// capset(2): effective = permitted = `mask`, inheritable empty.
fn set_caps(mask: u64) -> io::Result<()> {
    let mut header = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let half = |shift: u32| {
        let bits = (mask >> shift) as u32;
        CapData {
            effective: bits,
            permitted: bits,
            inheritable: 0,
        }
    };
    let data = [half(0), half(32)];
    // SAFETY: capset(2) with a version-3 header reads the header and two CapData structs,
    // which `data` provides; both outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `Cap*:` or `NoNewPrivs:` line of `/proc/.../status`, as a number.
pub fn status_field(status: &str, field: &str) -> Option<u64> {
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim();
    if field.starts_with("Cap") {
        u64::from_str_radix(value, 16).ok()
    } else {
        value.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernel() {
        assert_eq!(core::mem::size_of::<CapHeader>(), 8);
        assert_eq!(core::mem::size_of::<CapData>(), 12);
        assert_eq!(core::mem::align_of::<CapData>(), 4);
    }

    #[test]
    fn status_fields() {
        let status =
            "Name:\tx\nCapEff:\t0000000000001000\nCapBnd:\t000001ffffffffff\nNoNewPrivs:\t1\n";
        assert_eq!(status_field(status, "CapEff"), Some(Cap::NET_ADMIN.bit()));
        assert_eq!(status_field(status, "CapBnd"), Some(0x1ff_ffff_ffff));
        assert_eq!(status_field(status, "NoNewPrivs"), Some(1));
        assert_eq!(status_field(status, "CapPrm"), None);
    }

    /// Runs in a thread of its own: capabilities are per thread, so the test runner keeps
    /// its own.
    #[test]
    fn a_thread_keeps_only_what_it_asked_for() {
        if current().is_ok_and(|c| c.effective & (1 << 8) == 0) {
            return; // No CAP_SETPCAP (not root): the bounding set cannot shrink.
        }
        let keep = [Cap::NET_ADMIN, Cap::SYS_RAWIO];
        let want = Cap::NET_ADMIN.bit() | Cap::SYS_RAWIO.bit();
        let (sets, status) = std::thread::spawn(move || {
            restrict_to(&keep).expect("restrict");
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            (current().unwrap(), status)
        })
        .join()
        .unwrap();
        assert_eq!(
            sets,
            CapSets {
                effective: want,
                permitted: want,
                inheritable: 0
            }
        );
        for field in ["CapEff", "CapPrm", "CapBnd"] {
            assert_eq!(status_field(&status, field), Some(want), "{field}");
        }
        assert_eq!(status_field(&status, "CapAmb"), Some(0));
        assert_eq!(status_field(&status, "NoNewPrivs"), Some(1));
    }
}

//! The harness of the root-only suites `tests/netns.rs` and `tests/failover.rs`: named network
//! namespaces, the fcvpn processes (fabric and both ends) of one topology, checksummed TCP
//! transfers between the namespaces, and the external tools (ping, iperf3).
//!
//! Everything a test creates is owned by a guard whose `Drop` removes it, also when the test
//! panics: processes are stopped (SIGCONT, SIGTERM, then SIGKILL), control sockets of the
//! test's interfaces removed, namespaces deleted, the temporary directory removed. When a test
//! panics, the logs of its fcvpn processes are printed before they are deleted.
//!
//! Names embed the test process id (`fcvt-PID-N-a` for namespaces, `fcvPPPPPNa` for interfaces),
//! so two concurrent runs never collide; [`gate`] deletes namespaces left by a dead run.

#![allow(dead_code)]

pub mod attacker;
pub mod forged;
pub mod iperf;
pub mod ns;
pub mod process;
pub mod relay;
pub mod tools;
pub mod topology;
pub mod transfer;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

pub use ns::Netns;
#[allow(unused_imports)] // Each suite uses its own part.
pub use topology::{ADDRS, ETH_ADDRS, INITIATOR, Options, TARGET, Topology};
pub use transfer::TransferSpec;

/// Set to 1: the suite must run (fail instead of skipping when it cannot).
pub const REQUIRE_ENV: &str = "FCVPN_REQUIRE_ROOT_SUITES";
/// Set to 1 (and `REQUIRE_ENV` unset): skip the suite, e.g. in a run that runs it separately.
pub const SKIP_ENV: &str = "FCVPN_SKIP_ROOT_SUITES";
/// Set to 1: keep each test's directory (configs, keys, logs) for a post-mortem.
pub const KEEP_ENV: &str = "FCVPN_NETNS_KEEP";
/// The external tools the suite runs.
const TOOLS: [&str; 3] = ["ip", "iperf3", "ping"];
/// Prefix of the namespaces the suite creates.
pub const NS_PREFIX: &str = "fcvt-";

/// The fcvpn binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fcvpn")
}

/// One test at a time: namespaces, processes and CPU are shared.
static SERIAL: Mutex<()> = Mutex::new(());

/// Decides whether the suite runs. `None`: skip (a line saying why is printed). `Some`: run,
/// holding the suite's lock. Panics instead of skipping when `FCVPN_REQUIRE_ROOT_SUITES=1`.
pub fn gate() -> Option<MutexGuard<'static, ()>> {
    gate_suite("netns")
}

/// [`gate`] for a suite that reports itself as `suite` (`SUITE suite SKIPPED: ...`).
pub fn gate_suite(suite: &str) -> Option<MutexGuard<'static, ()>> {
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1");
    if !required && std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("{suite} suite SKIPPED: {SKIP_ENV}=1");
        return None;
    }
    if !nix::unistd::geteuid().is_root() {
        assert!(
            !required,
            "{suite} suite: {REQUIRE_ENV}=1 but not running as root"
        );
        eprintln!("{suite} suite SKIPPED: needs root");
        return None;
    }
    let missing: Vec<&str> = TOOLS.into_iter().filter(|t| !on_path(t)).collect();
    if !missing.is_empty() {
        assert!(
            !required,
            "{suite} suite: {REQUIRE_ENV}=1 but {missing:?} not found on PATH \
             (apt-get install iproute2 iperf3 iputils-ping)"
        );
        eprintln!("{suite} suite SKIPPED: {missing:?} not found on PATH");
        return None;
    }
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    ns::delete_stale();
    Some(guard)
}

fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(tool))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// A number unique within this test process.
pub fn unique() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A temporary directory (mode 0755, so that an unprivileged process may traverse it), removed
/// on drop.
pub struct TempDir {
    path: std::path::PathBuf,
}

impl TempDir {
    /// `/tmp/fcvpn-netns-PID-N`.
    pub fn new() -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let path =
            std::env::temp_dir().join(format!("fcvpn-netns-{}-{}", std::process::id(), unique()));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self { path })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var(KEEP_ENV).is_ok_and(|v| v == "1") {
            eprintln!("netns: {KEEP_ENV}=1: keeping {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Prints `figure` as a line the closing note can quote: `netns: TEST: figure`.
#[allow(unused_macros)] // tests/failover.rs prints its own prefix.
macro_rules! figure {
    ($test:expr, $($arg:tt)*) => {
        eprintln!("netns: {}: {}", $test, format_args!($($arg)*))
    };
}
#[allow(unused_imports)]
pub(crate) use figure;

//! The real-kernel suite: a stock Debian 12 kernel under qemu (TCG) with LIO, TCMU, tcm_loop, sg
//! and bonding, running the scenarios of `tests/vm/scenarios/` against the release binaries
//! (`fcvpn` and the `fcvpn-testkit` helper). `tests/vm/build-initramfs` assembles the kernel and
//! initramfs (downloading Debian packages into `$FCVPN_VM_CACHE`, default `/var/cache/fcvpn-vm`),
//! `tests/vm/run` boots one scenario and exits 0 only on `FCVPN-VM-PASS`. The `FCVPN-RESULT`
//! lines of each run are printed at the end.
//!
//! Run it as root: `cargo test --release --test vm -- --nocapture --test-threads=1`. Without
//! root it prints `vm suite SKIPPED: needs root` and passes, unless `FCVPN_REQUIRE_ROOT_SUITES=1`
//! (then it fails). `FCVPN_SKIP_VM_SUITE=1` skips it (scripts/test-all runs it separately).
//!
//! Scenarios, all run by default: `smoke` (the simulated fabric in the VM, bonding, LIO with a
//! ramdisk and a TCMU backstore), `tcmu` (the real SCSI path: backend "tcmu" target, backend
//! "sg" initiator, with the raw SG_IO benchmark) and `bond` (Linux bonding over fcvpn's TAP
//! on that path and a veth). `FCVPN_VM_SCENARIOS=smoke,tcmu` lists exactly the scenarios to
//! run (a scenario left out says so). `FCVPN_VM_TIMEOUT` overrides a scenario's time limit
//! inside the VM (s).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

const REQUIRE_ENV: &str = "FCVPN_REQUIRE_ROOT_SUITES";
const SKIP_ENV: &str = "FCVPN_SKIP_VM_SUITE";
const SCENARIOS_ENV: &str = "FCVPN_VM_SCENARIOS";
const TIMEOUT_ENV: &str = "FCVPN_VM_TIMEOUT";

/// One VM at a time: the machine has two cores and TCG uses both.
static SERIAL: Mutex<()> = Mutex::new(());

/// Prints a line past the test harness's output capture (which takes only `print!`/`eprint!`),
/// so a skipped or opt-in scenario is visible in a plain `cargo test`.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == value)
}

/// `None`: the suite is skipped (a line says why). Panics when it must run and cannot.
fn gate() -> Option<MutexGuard<'static, ()>> {
    if env_is(SKIP_ENV, "1") {
        say(&format!(
            "vm suite SKIPPED: {SKIP_ENV}=1 (scripts/test-all runs it on its own)"
        ));
        return None;
    }
    if !nix::unistd::geteuid().is_root() {
        assert!(
            !env_is(REQUIRE_ENV, "1"),
            "vm suite: {REQUIRE_ENV}=1 but not running as root"
        );
        say("vm suite SKIPPED: needs root");
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Whether scenario `name` is selected (all are, unless `FCVPN_VM_SCENARIOS` lists others), with
/// the reason printed when it is not.
fn selected(name: &str) -> bool {
    let Ok(list) = std::env::var(SCENARIOS_ENV) else {
        return true;
    };
    let on = list
        .split([',', ' '])
        .any(|s| s.trim() == name || s.trim() == "all");
    if !on {
        say(&format!(
            "vm scenario {name}: not selected ({SCENARIOS_ENV}={list:?})"
        ));
    }
    on
}

fn vm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm")
}

/// Builds the kernel and initramfs once per test process; returns their directory.
fn image() -> &'static Result<PathBuf, String> {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vm-image");
        let status = Command::new(vm_dir().join("build-initramfs"))
            .arg("--fcvpn")
            .arg(env!("CARGO_BIN_EXE_fcvpn"))
            .arg("--testkit")
            .arg(env!("CARGO_BIN_EXE_fcvpn-testkit"))
            .arg("--out")
            .arg(&out)
            .status()
            .map_err(|e| format!("running tests/vm/build-initramfs: {e}"))?;
        if status.success() {
            Ok(out)
        } else {
            Err(format!("tests/vm/build-initramfs failed ({status})"))
        }
    })
}

/// Boots scenario `name`, asserts it passed, prints its FCVPN-RESULT lines.
fn run_scenario(name: &str, timeout_s: u32) {
    let dir = match image() {
        Ok(dir) => dir,
        Err(e) => panic!("vm suite: {e}"),
    };
    let timeout = std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|t| t.parse::<u32>().ok())
        .unwrap_or(timeout_s);
    let log = dir.join(format!("{name}.log"));
    let status = Command::new(vm_dir().join("run"))
        .arg("--dir")
        .arg(dir)
        .arg("--scenario")
        .arg(name)
        .arg("--timeout")
        .arg(timeout.to_string())
        .arg("--log")
        .arg(&log)
        .status()
        .unwrap_or_else(|e| panic!("running tests/vm/run: {e}"));
    let console = std::fs::read_to_string(&log).unwrap_or_default();
    println!("\n== vm scenario {name}: results");
    for line in console.lines().filter(|l| l.starts_with("FCVPN-RESULT ")) {
        println!("  {}", &line["FCVPN-RESULT ".len()..]);
    }
    let verdict = console
        .lines()
        .find(|l| l.starts_with("FCVPN-VM-PASS") || l.starts_with("FCVPN-VM-FAIL"))
        .unwrap_or("no verdict on the console");
    println!("  verdict: {verdict} (console log: {})", log.display());
    assert!(
        status.success(),
        "vm scenario {name} failed: {verdict} (see {})",
        log.display()
    );
}

#[test]
fn smoke() {
    let Some(_guard) = gate() else { return };
    if selected("smoke") {
        run_scenario("smoke", 600);
    }
}

#[test]
fn tcmu() {
    let Some(_guard) = gate() else { return };
    if selected("tcmu") {
        run_scenario("tcmu", 1200);
    }
}

#[test]
fn bond() {
    let Some(_guard) = gate() else { return };
    if selected("bond") {
        run_scenario("bond", 900);
    }
}

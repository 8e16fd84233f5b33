//! The root-only suite: real TUN devices in two network namespaces, joined by `fcvpn fabric`
//! (the simulated FC switch), one `fcvpn up` in each. Ping, iperf3, checksummed TCP transfers
//! through dropped and failed SCSI commands, a frozen and a restarted fabric, restarts of
//! either end under a live TCP connection, clean exits, bad input, `show --json` and the demo.
//!
//! Without root it prints `netns suite SKIPPED: needs root` and passes, unless
//! `FCVPN_REQUIRE_ROOT_SUITES=1` (then it fails, as it does when ip, iperf3 or ping is missing).
//! `scripts/test-all` runs it with `--test-threads=1`; the tests also take a global lock.
//! Every test prints what it measured as `netns: TEST: ...` lines (see them with
//! `--nocapture`). `FCVPN_SKIP_ROOT_SUITES=1` skips the suite (test-all's `--all-targets` run,
//! which is followed by a run of its own); `FCVPN_NETNS_KEEP=1` keeps each test's directory
//! (configs, keys and the logs of the fabric and both ends).

#[path = "support/netns/mod.rs"]
mod harness;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::process::output_timeout;
use harness::tools::{iperf3, ping};
use harness::transfer::hex;
use harness::{ADDRS, INITIATOR, TARGET, Topology, TransferSpec, figure, gate};
use nix::sys::signal::Signal;
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// The packet and path counters that tell how much was resent, as one line.
fn resend_counters(s: &Value) -> String {
    let fc = &s["paths"][0];
    format!(
        "packets.retransmitted {}, paths[fc].retransmits {}, scsi.timeouts {}, scsi.transport_errors {}",
        s["packets"]["retransmitted"],
        fc["retransmits"],
        s["scsi"]["timeouts"],
        s["scsi"]["transport_errors"]
    )
}

#[test]
fn ping_and_iperf3_both_ways() {
    const T: &str = "ping_and_iperf3_both_ways";
    let Some(_serial) = gate() else { return };
    let mut t = Topology::new(&[]);
    let carrier = t.up();
    figure!(
        T,
        "carrier on both ends {:.1} ms after start",
        carrier.as_secs_f64() * 1e3
    );
    for (from, to) in [(INITIATOR, TARGET), (TARGET, INITIATOR)] {
        let p = ping(&t, from, to, 5).unwrap_or_else(|e| panic!("{e}"));
        figure!(
            T,
            "ping {} -> {}: 5 sent, {} received, avg {:.3} ms",
            ADDRS[from],
            ADDRS[to],
            p.received,
            p.avg_ms
        );
        assert_eq!(
            p.received, 5,
            "ping {} -> {} lost replies",
            ADDRS[from], ADDRS[to]
        );
    }
    for (from, to) in [(INITIATOR, TARGET), (TARGET, INITIATOR)] {
        let bps = iperf3(&t, from, to, 3, 5201).unwrap_or_else(|e| panic!("{e}"));
        figure!(
            T,
            "iperf3 TCP {} -> {}: {:.2} Gbit/s",
            ADDRS[from],
            ADDRS[to],
            bps / 1e9
        );
        assert!(
            bps > 100e6,
            "iperf3 {} -> {}: {bps} bit/s is not above 100 Mbit/s",
            ADDRS[from],
            ADDRS[to]
        );
    }
}

/// The `[fc]` settings for the lossy-fabric transfer: the defaults. (With the first defaults,
/// 4 READs and 4 WRITEs in flight and a 2 s timeout for both, every lost command held one of
/// the few slots for 2 s and the link crawled at 26-39 Mbit/s at 5% loss; 8 + 8 slots and a
/// WRITE timeout of a quarter of the command timeout fixed that.)
const LOSSY_FC: &str = "";

#[test]
fn transfer_256mib_intact_through_drops_and_errors() {
    const T: &str = "transfer_256mib_intact_through_drops_and_errors";
    let Some(_serial) = gate() else { return };
    let mut t = Topology::with_fc(
        &["--drop", "0.05", "--error", "0.01", "--seed", "7"],
        LOSSY_FC,
    );
    t.up();
    let (sent, received, took) = t
        .transfer_sha256(256 * MIB, INITIATOR, ADDRS[TARGET])
        .unwrap_or_else(|e| panic!("transfer: {e}"));
    figure!(
        T,
        "256 MiB {} -> {} in {:.1} s ({:.0} Mbit/s), sha256 {}",
        ADDRS[INITIATOR],
        ADDRS[TARGET],
        took.as_secs_f64(),
        256.0 * 8.0 * 1.048_576 / took.as_secs_f64(),
        hex(&received)
    );
    assert_eq!(
        hex(&sent),
        hex(&received),
        "the received bytes differ from the sent ones"
    );
    let mut resent = 0;
    for i in [INITIATOR, TARGET] {
        let s = t.show_json(i).unwrap_or_else(|e| panic!("show: {e}"));
        figure!(T, "{} ({}): {}", t.names[i], s["role"], resend_counters(&s));
        resent += s["packets"]["retransmitted"].as_u64().unwrap_or(0);
    }
    assert!(
        resent > 0,
        "5% drops and 1% errors caused no retransmission: were faults injected?"
    );
}

#[test]
fn transfer_intact_across_fabric_freeze_and_restart() {
    const T: &str = "transfer_intact_across_fabric_freeze_and_restart";
    let Some(_serial) = gate() else { return };
    let mut t = Topology::new(&[]);
    t.up();
    let pids = [t.end_pid(INITIATOR), t.end_pid(TARGET)];
    let total = 256 * MIB;
    // Target to initiator (the data rides parked READs), paced so that the transfer spans
    // both events: a freeze after a quarter, a fabric restart after five eighths.
    let x = t.transfer(TARGET, INITIATOR, TransferSpec::new(total).rate(24 * MIB));
    let limit = Duration::from_secs(20);
    x.wait_for(64 * MIB, limit)
        .unwrap_or_else(|e| panic!("{e}"));
    let frozen_at = x.received();
    let freeze = Instant::now();
    t.fabric_stop();
    std::thread::sleep(Duration::from_secs(3));
    let cont = Instant::now();
    t.fabric_cont();
    let stall = x
        .stall_after(freeze, limit)
        .unwrap_or_else(|e| panic!("after SIGCONT: {e}"));
    figure!(
        T,
        "fabric SIGSTOPped for 3 s at {} MiB: stream paused {:.2} s, flowing {:.2} s after SIGCONT",
        frozen_at / MIB,
        stall.length().as_secs_f64(),
        stall.until.saturating_duration_since(cont).as_secs_f64()
    );
    x.wait_for(160 * MIB, limit)
        .unwrap_or_else(|e| panic!("{e}"));
    let killed_at = x.received();
    let kill = Instant::now();
    t.fabric_kill();
    t.fabric_restart();
    let restarted = kill.elapsed();
    let stall = x
        .stall_after(kill, limit)
        .unwrap_or_else(|e| panic!("after the fabric restart: {e}"));
    figure!(
        T,
        "fabric SIGKILLed at {} MiB, new fabric listening {:.0} ms later: stream paused {:.2} s, flowing {:.2} s after the kill",
        killed_at / MIB,
        restarted.as_secs_f64() * 1e3,
        stall.length().as_secs_f64(),
        stall.until.saturating_duration_since(kill).as_secs_f64()
    );
    assert!(
        killed_at < total && frozen_at < total,
        "the events did not happen during the transfer"
    );
    let r = x.wait().unwrap_or_else(|e| panic!("transfer: {e}"));
    figure!(
        T,
        "256 MiB {} -> {} in {:.1} s, longest stall {:.2} s, sha256 {}",
        ADDRS[TARGET],
        ADDRS[INITIATOR],
        r.duration.as_secs_f64(),
        r.longest_stall.as_secs_f64(),
        hex(&r.received)
    );
    assert!(
        r.intact(),
        "sent {} bytes sha256 {}, received {} bytes sha256 {}",
        r.bytes_sent,
        hex(&r.sent),
        r.bytes_received,
        hex(&r.received)
    );
    t.wait_carrier(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("after the transfer: {e}"));
    assert!(
        t.end_running(INITIATOR) && t.end_running(TARGET),
        "an end exited"
    );
    assert_eq!(
        [t.end_pid(INITIATOR), t.end_pid(TARGET)],
        pids,
        "an end was restarted"
    );
    for i in [INITIATOR, TARGET] {
        let s = t.show_json(i).unwrap_or_else(|e| panic!("show: {e}"));
        assert_eq!(s["carrier"], true);
        figure!(
            T,
            "{} ({}): carrier {}, handshakes {}, {}",
            t.names[i],
            s["role"],
            s["carrier"],
            s["handshakes"],
            resend_counters(&s)
        );
    }
}

#[test]
fn restart_of_either_end_keeps_tcp_connections() {
    const T: &str = "restart_of_either_end_keeps_tcp_connections";
    let Some(_serial) = gate() else { return };
    let mut t = Topology::new(&[]);
    t.up();
    let total = 96 * MIB;
    let x = t.transfer(INITIATOR, TARGET, TransferSpec::new(total).rate(8 * MIB));
    let limit = Duration::from_secs(20);
    let events = [
        (TARGET, Signal::SIGKILL, 16 * MIB),
        (INITIATOR, Signal::SIGTERM, 48 * MIB),
    ];
    for (end, sig, at) in events {
        x.wait_for(at, limit).unwrap_or_else(|e| panic!("{e}"));
        let name = t.names[end].clone();
        // A route an admin added through the interface must outlive a crash and restart.
        let route = ["route", "add", "10.200.0.0/24", "dev", name.as_str()];
        assert_ok(t.ns[end].exec("ip", route), "ip route add");
        let at = x.received();
        let signalled = Instant::now();
        let status = t.kill_end(end, sig);
        let persists = t.ns[end].has_link(&name);
        if sig == Signal::SIGKILL {
            assert!(persists, "{name} did not survive SIGKILL");
        } else {
            assert!(status.success(), "{name} exited with {status} on SIGTERM");
            assert!(!persists, "{name} survived a clean exit");
        }
        t.start_end(end);
        t.wait_carrier(limit)
            .unwrap_or_else(|e| panic!("after restarting {name}: {e}"));
        let carrier = signalled.elapsed();
        let routes = output_of(t.ns[end].exec("ip", ["route", "show", "10.200.0.0/24"]));
        let routes = String::from_utf8_lossy(&routes.stdout);
        assert_eq!(
            routes.contains(&name),
            sig == Signal::SIGKILL,
            "after {sig:?} and a restart of {name}, the route through it: {routes:?}"
        );
        let stall = x
            .stall_after(signalled, limit)
            .unwrap_or_else(|e| panic!("after restarting {name}: {e}"));
        figure!(
            T,
            "{name} ({}) {sig:?} at {} MiB and restarted: carrier back within {:.0} ms, stream paused {:.2} s, flowing {:.2} s after the signal",
            if end == TARGET { "target" } else { "initiator" },
            at / MIB,
            carrier.as_secs_f64() * 1e3,
            stall.length().as_secs_f64(),
            stall
                .until
                .saturating_duration_since(signalled)
                .as_secs_f64()
        );
    }
    let r = x
        .wait()
        .unwrap_or_else(|e| panic!("the TCP stream failed: {e}"));
    figure!(
        T,
        "one TCP connection carried {} MiB in {:.1} s, longest stall {:.2} s, sha256 {}",
        r.bytes_received / MIB,
        r.duration.as_secs_f64(),
        r.longest_stall.as_secs_f64(),
        hex(&r.received)
    );
    assert!(
        r.intact(),
        "sent {} bytes sha256 {}, received {} bytes sha256 {}",
        r.bytes_sent,
        hex(&r.sent),
        r.bytes_received,
        hex(&r.received)
    );
}

#[test]
fn clean_exit_removes_the_interface_and_socket() {
    const T: &str = "clean_exit_removes_the_interface_and_socket";
    let Some(_serial) = gate() else { return };
    let mut t = Topology::new(&[]);
    t.up();
    for end in [TARGET, INITIATOR] {
        let name = t.names[end].clone();
        assert!(t.ns[end].has_link(&name), "{name} is missing while up");
        assert!(t.control_socket(end).exists(), "no control socket while up");
        let start = Instant::now();
        let status = t.kill_end(end, Signal::SIGTERM);
        let took = start.elapsed();
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
        assert!(
            !t.ns[end].has_link(&name),
            "/sys/class/net/{name} is still there after SIGTERM"
        );
        assert!(
            !t.control_socket(end).exists(),
            "{} is still there after SIGTERM",
            t.control_socket(end).display()
        );
        figure!(
            T,
            "{name}: SIGTERM -> exit 0 in {:.0} ms; interface and control socket gone",
            took.as_secs_f64() * 1e3
        );
    }
}

/// One bad start: its config text, what its one line of stderr must contain, and whether it
/// runs as nobody.
struct BadCase {
    label: &'static str,
    config: String,
    expect: Vec<String>,
    nobody: bool,
}

#[test]
fn bad_input_fails_with_one_line_and_leaves_nothing() {
    const T: &str = "bad_input_fails_with_one_line_and_leaves_nothing";
    let Some(_serial) = gate() else { return };
    let t = Topology::new(&[]);
    let dir = t.dir.path().to_owned();
    let name = t.names[INITIATOR].clone();
    let key = format!("{name}.key");
    let good = harness::topology::config_text(
        &name,
        &key,
        ADDRS[0],
        &t.public_keys[TARGET],
        "initiator",
        &t.socket,
    );
    // Line 3 is private_key_file, line 7 the peer's public key.
    assert_eq!(
        good.lines()
            .nth(2)
            .map(|l| l.starts_with("private_key_file")),
        Some(true)
    );
    let with_line3 = |line: &str| {
        let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
        lines[2] = line.to_owned();
        lines.join("\n") + "\n"
    };

    let open_key = dir.join("open.key");
    std::fs::copy(dir.join(&key), &open_key).expect("copy key");
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).expect("chmod 644");

    // The unprivileged run reads a config and a key it may read (the key is its own, 0600):
    // only the root check can stop it.
    let nobody_dir = dir.join("nobody");
    std::fs::create_dir(&nobody_dir).expect("mkdir");
    std::fs::set_permissions(&nobody_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let nobody_key = nobody_dir.join("nobody.key");
    std::fs::copy(dir.join(&key), &nobody_key).expect("copy key");
    std::os::unix::fs::chown(&nobody_key, Some(65534), Some(65534)).expect("chown");
    std::fs::set_permissions(&nobody_key, std::fs::Permissions::from_mode(0o600))
        .expect("chmod 600");

    let cases = vec![
        BadCase {
            label: "syntax",
            config: with_line3(&format!("private_key_file = \"{key}")),
            expect: vec!["syntax.conf:3:".into(), "syntax".into()],
            nobody: false,
        },
        BadCase {
            label: "unknown-key",
            config: with_line3(&format!("colour = \"blue\"\nprivate_key_file = \"{key}\"")),
            expect: vec!["unknown-key.conf:3:".into(), "interface.colour".into()],
            nobody: false,
        },
        BadCase {
            label: "missing-key-file",
            config: with_line3("private_key_file = \"absent.key\""),
            expect: vec![
                "missing-key-file.conf:3:".into(),
                "interface.private_key_file".into(),
                "absent.key".into(),
            ],
            nobody: false,
        },
        BadCase {
            label: "world-readable-key",
            config: with_line3("private_key_file = \"open.key\""),
            expect: vec![
                "world-readable-key.conf:3:".into(),
                "open.key".into(),
                "0644".into(),
                "chmod 600".into(),
            ],
            nobody: false,
        },
        BadCase {
            label: "missing-fabric",
            config: good.replace(
                &t.socket.display().to_string(),
                &dir.join("absent.sock").display().to_string(),
            ),
            expect: vec![
                "missing-fabric.conf:12: fc.fabric:".into(),
                "absent.sock".into(),
                "no such socket".into(),
                "fc.fabric".into(),
            ],
            nobody: false,
        },
        BadCase {
            label: "not-root",
            config: with_line3(&format!("private_key_file = \"{}\"", nobody_key.display())),
            expect: vec!["root".into()],
            nobody: true,
        },
    ];

    for case in cases {
        let path = if case.nobody {
            nobody_dir.join(format!("{}.conf", case.label))
        } else {
            dir.join(format!("{}.conf", case.label))
        };
        std::fs::write(&path, &case.config).expect("write config");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let out = if case.nobody {
            let mut cmd = Command::new(harness::bin());
            cmd.arg("up")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd.uid(65534).gid(65534);
            // Started from a thread inside namespace A (`ip netns exec` would need root).
            let mut run = None;
            t.ns[INITIATOR]
                .run(|| run = Some(output_of(cmd)))
                .expect("namespace");
            run.expect("ran")
        } else {
            output_timeout(
                t.ns[INITIATOR].exec(harness::bin(), ["up".as_ref(), path.as_os_str()]),
                Duration::from_secs(20),
            )
            .expect("fcvpn up")
        };
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = stderr.lines().collect();
        assert!(!out.status.success(), "{}: fcvpn up succeeded", case.label);
        assert_eq!(
            lines.len(),
            1,
            "{}: stderr is not one line: {stderr:?}",
            case.label
        );
        for want in &case.expect {
            assert!(
                lines[0].contains(want.as_str()),
                "{}: {:?} does not contain {want:?}",
                case.label,
                lines[0]
            );
        }
        assert!(
            !t.ns[INITIATOR].has_link(&name),
            "{}: an interface {name} was left behind",
            case.label
        );
        assert!(
            !t.control_socket(INITIATOR).exists(),
            "{}: a control socket was left behind",
            case.label
        );
        figure!(T, "{}: {} -> {}", case.label, out.status, lines[0]);
    }
}

/// Runs `cmd` (from the calling thread) with a 20 s limit.
/// Runs `cmd` and panics with its standard error unless it succeeds.
fn assert_ok(cmd: Command, what: &str) {
    let out = output_of(cmd);
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn output_of(cmd: Command) -> std::process::Output {
    output_timeout(cmd, Duration::from_secs(20)).expect("a command that ends within 20 s")
}

#[test]
fn show_json_has_the_documented_fields() {
    const T: &str = "show_json_has_the_documented_fields";
    let Some(_serial) = gate() else { return };
    let mut t = Topology::new(&[]);
    t.up();
    let p = ping(&t, INITIATOR, TARGET, 3).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.received, 3);
    for i in [INITIATOR, TARGET] {
        let s = t.show_json(i).unwrap_or_else(|e| panic!("show: {e}"));
        let fail = |what: &str| -> ! { panic!("{}: {what} in {s:#}", t.names[i]) };
        if s["name"] != t.names[i].as_str() {
            fail("wrong name");
        }
        if s["peer_public_key"] != t.public_keys[1 - i].as_str() {
            fail("peer_public_key is not the other end's key");
        }
        let age = s["handshake_age_s"]
            .as_f64()
            .unwrap_or_else(|| fail("handshake_age_s is not a number"));
        if !(0.0..60.0).contains(&age) {
            fail("handshake_age_s out of range");
        }
        if s["active_path"] != "fc" {
            fail("active_path is not \"fc\"");
        }
        if s["carrier"] != true {
            fail("carrier is not true");
        }
        if s["rejected_batches"].as_u64() != Some(0) {
            fail("rejected_batches is not 0");
        }
        if s["path_changes"].as_u64().is_none() {
            fail("path_changes is not a count");
        }
        if !(s["last_path_change"].is_null() || s["last_path_change"]["cause"].is_string()) {
            fail("last_path_change is neither null nor a change with a cause");
        }
        let packets = &s["packets"];
        for k in [
            "accepted",
            "dropped_full",
            "dropped_oversize",
            "delivered",
            "delivered_bytes",
            "retransmitted",
            "expired",
            "skipped",
            "duplicates",
            "tun_dropped",
        ] {
            if packets[k].as_u64().is_none() {
                fail(&format!("packets.{k} is not a count"));
            }
        }
        if packets["accepted"].as_u64() < Some(3) || packets["delivered"].as_u64() < Some(3) {
            fail("fewer than the 3 pings were accepted and delivered");
        }
        let paths = s["paths"]
            .as_array()
            .unwrap_or_else(|| fail("paths is not an array"));
        let fc = paths.first().unwrap_or_else(|| fail("no path"));
        if fc["name"] != "fc" || fc["state"] != "up" {
            fail("paths[0] is not fc, up");
        }
        let rtt = fc["rtt_us"]
            .as_u64()
            .unwrap_or_else(|| fail("paths[0].rtt_us is not a count"));
        if rtt == 0 || rtt > 1_000_000 {
            fail("paths[0].rtt_us out of range");
        }
        let loss = fc["loss"]
            .as_f64()
            .unwrap_or_else(|| fail("paths[0].loss is not a number"));
        if !(0.0..=1.0).contains(&loss) {
            fail("paths[0].loss out of range");
        }
        for k in ["tx_bytes", "rx_bytes", "tx_batches", "rx_batches"] {
            if fc[k].as_u64().unwrap_or(0) == 0 {
                fail(&format!("paths[0].{k} is not a positive count"));
            }
        }
        if fc["retransmits"].as_u64().is_none() {
            fail("paths[0].retransmits is not a count");
        }
        if fc["downs"].as_u64().is_none() {
            fail("paths[0].downs is not a count");
        }
        let scsi = s["scsi"]
            .as_object()
            .unwrap_or_else(|| fail("scsi is not an object"));
        if scsi.get("commands").and_then(Value::as_u64).unwrap_or(0) == 0 {
            fail("scsi.commands is not a positive count");
        }
        figure!(
            T,
            "{} ({}): handshake {:.2} s ago, path fc up, rtt {} us, loss {}, tx {} B, rx {} B, scsi {}",
            t.names[i],
            s["role"],
            age,
            rtt,
            loss,
            fc["tx_bytes"],
            fc["rx_bytes"],
            s["scsi"]
        );
    }
}

#[test]
fn demo_runs_and_reports() {
    const T: &str = "demo_runs_and_reports";
    let Some(_serial) = gate() else { return };
    let start = Instant::now();
    let mut cmd = Command::new(harness::bin());
    cmd.arg("demo").stdin(Stdio::null());
    let out = output_timeout(cmd, Duration::from_secs(80)).expect("fcvpn demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fcvpn demo failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for want in ["handshake", "ping", "Gbit/s"] {
        assert!(
            stdout.lines().any(|l| l.contains(want)),
            "no line with {want:?} in:\n{stdout}"
        );
    }
    for line in stdout.lines() {
        figure!(T, "{line}");
    }
    figure!(T, "exit 0 in {:.1} s", start.elapsed().as_secs_f64());
}

/// The capability sets and `NoNewPrivs` of process `pid`, from `/proc/PID/status`.
fn privileges_of(pid: u32) -> Vec<(&'static str, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| -> u64 {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .trim();
        if name.starts_with("Cap") {
            u64::from_str_radix(value, 16).expect("hex")
        } else {
            value.parse().expect("number")
        }
    };
    [
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
    ]
    .into_iter()
    .map(|name| (name, field(name)))
    .collect()
}

/// `CAP_NET_ADMIN`, all a `sim` end keeps once it is up (`daemon::kept_capabilities`).
const NET_ADMIN: u64 = 1 << 12;

/// Both ends keep only CAP_NET_ADMIN, with no_new_privs, while the link passes traffic;
/// then the target end is restarted under the bounding set and no_new_privs of
/// contrib/systemd/fcvpn@.service (emulated with setpriv: systemd is not PID 1 here) and
/// comes up the same.
#[test]
fn a_running_link_keeps_only_the_capabilities_it_needs() {
    const T: &str = "a_running_link_keeps_only_the_capabilities_it_needs";
    let Some(_serial) = gate() else { return };
    let mut t = Topology::new(&[]);
    t.up();
    let want = [
        ("CapInh", 0),
        ("CapPrm", NET_ADMIN),
        ("CapEff", NET_ADMIN),
        ("CapBnd", NET_ADMIN),
        ("CapAmb", 0),
        ("NoNewPrivs", 1),
    ];
    let check = |t: &mut Topology, label: &str| {
        for (from, to) in [(INITIATOR, TARGET), (TARGET, INITIATOR)] {
            let p = ping(t, from, to, 3).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                p.received, 3,
                "{label}: ping {} -> {}",
                ADDRS[from], ADDRS[to]
            );
        }
        for i in [INITIATOR, TARGET] {
            let pid = t.end_pid(i).expect("running");
            let got = privileges_of(pid);
            figure!(T, "{label}: {} (pid {pid}): {got:x?}", t.names[i]);
            assert_eq!(got, want, "{label}: {}", t.names[i]);
            let s = t.show_json(i).unwrap_or_else(|e| panic!("show: {e}"));
            assert_eq!(s["carrier"].as_bool(), Some(true), "{label}: carrier");
        }
    };
    check(&mut t, "plain start");
    let bps = iperf3(&t, INITIATOR, TARGET, 2, 5201).unwrap_or_else(|e| panic!("{e}"));
    figure!(
        T,
        "iperf3 with reduced capabilities: {:.2} Gbit/s",
        bps / 1e9
    );
    assert!(bps > 100e6, "iperf3: {bps} bit/s");

    assert!(t.kill_end(TARGET, Signal::SIGTERM).success());
    let unit = include_str!("../contrib/systemd/fcvpn@.service");
    let bounding = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets CapabilityBoundingSet");
    let caps: Vec<String> = bounding
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let bounding_arg = format!("--bounding-set=-all,{}", caps.join(","));
    figure!(
        T,
        "restarting the target under setpriv {bounding_arg} --no-new-privs"
    );
    t.start_end_under(
        TARGET,
        &[
            "setpriv",
            &bounding_arg,
            "--no-new-privs",
            "--inh-caps=-all",
            "--ambient-caps=-all",
        ],
    );
    t.wait_carrier(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("under the unit's limits: {e}"));
    check(&mut t, "under the unit's limits");
}

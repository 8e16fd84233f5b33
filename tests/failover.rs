//! The root-only failover suite: the topology of `tests/netns.rs` (two namespaces, real TUN
//! devices, `fcvpn fabric` as the FC switch) plus a veth pair carrying each end's `[ethernet]`
//! backup path. The fabric is frozen (SIGSTOP for 5 s, then SIGCONT) and killed and restarted
//! under an iperf3 stream and a 256 MiB sha256-checked transfer; both paths run healthy under
//! load; the Ethernet port is fed garbage, replays and datagrams sealed under other keys.
//!
//! Every test prints what it measured as `failover: TEST: ...` lines (see them with
//! `--nocapture`): the longest gap in delivery at failover and at fail-back (asserted under
//! [`GAP_LIMIT`]; the goal, [`GAP_GOAL`], is printed), the path changes `fcvpn show` reports,
//! the Ethernet path's probe-only traffic and the counters of rejected input.
//!
//! Gating is the netns suite's: without root it prints `failover suite SKIPPED: needs root`
//! and passes, unless `FCVPN_REQUIRE_ROOT_SUITES=1`; `FCVPN_SKIP_ROOT_SUITES=1` skips it.
//! `scripts/test-all` runs it with `--test-threads=1`.

#[path = "support/netns/mod.rs"]
mod harness;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use fcvpn::crypto::PublicKey;
use harness::iperf::Iperf3;
use harness::relay::Relay;
use harness::topology::{ETH_PORT, eth_listen};
use harness::transfer::hex;
use harness::{ADDRS, ETH_ADDRS, INITIATOR, Options, TARGET, Topology, TransferSpec, gate_suite};
use serde_json::Value;

const MIB: u64 = 1 << 20;
/// The longest gap in delivery a failover or fail-back may cause (asserted).
const GAP_LIMIT: Duration = Duration::from_secs(2);
/// The design goal for that gap (printed).
const GAP_GOAL: Duration = Duration::from_millis(300);
/// Gaps between reads at least this long are recorded (a paced sender writes every 5 ms).
const GAP_RECORD: Duration = Duration::from_millis(20);
/// The paced rate of the 256 MiB transfers: about 13 s, so that both events fall inside.
const RATE: u64 = 20 * MIB;
/// The iperf3 stream's rate cap, alongside the transfer (the Ethernet path carries both).
const IPERF_RATE: &str = "100M";
/// How long the fabric stays frozen.
const FREEZE: Duration = Duration::from_secs(5);
/// How long the fabric stays dead before it is restarted.
const DEAD: Duration = Duration::from_secs(2);

/// Prints `figure` as `failover: TEST: figure`.
macro_rules! figure {
    ($test:expr, $($arg:tt)*) => {
        eprintln!("failover: {}: {}", $test, format_args!($($arg)*))
    };
}

fn gate() -> Option<std::sync::MutexGuard<'static, ()>> {
    gate_suite("failover")
}

fn show(t: &Topology, i: usize) -> Value {
    t.show_json(i)
        .unwrap_or_else(|e| panic!("show {}: {e}", t.names[i]))
}

/// The entry of `paths` named `name`.
fn path<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["paths"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no path {name} in {s:#}"))
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// One line: active path, path changes (the latest with its cause), each path's state.
fn summary(s: &Value) -> String {
    let latest = match &s["last_path_change"] {
        Value::Null => "none".to_owned(),
        c => format!(
            "{} -> {} {:.1} s ago ({})",
            c["from"], c["to"], c["age_s"], c["cause"]
        ),
    };
    let paths: Vec<String> = s["paths"]
        .as_array()
        .map(|v| v.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            format!(
                "{} {} (rtt {} us, loss {}, down {}x, tx {} B in {} batches, retransmits {})",
                p["name"],
                p["state"],
                p["rtt_us"],
                p["loss"],
                p["downs"],
                p["tx_bytes"],
                p["tx_batches"],
                p["retransmits"]
            )
        })
        .collect();
    format!(
        "active {}, carrier {}, path_changes {}, latest {latest}; {}",
        s["active_path"],
        s["carrier"],
        s["path_changes"],
        paths.join("; ")
    )
}

/// Polls both ends until `ok` holds for both; returns when each first did.
fn wait_both(
    t: &Topology,
    limit: Duration,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> [(Instant, Value); 2] {
    let start = Instant::now();
    let mut seen: [Option<(Instant, Value)>; 2] = [None, None];
    loop {
        for i in [INITIATOR, TARGET] {
            if seen[i].is_none() {
                let s = show(t, i);
                if ok(&s) {
                    seen[i] = Some((Instant::now(), s));
                }
            }
        }
        if let [Some(a), Some(b)] = &seen {
            return [a.clone(), b.clone()];
        }
        if start.elapsed() > limit {
            let states: Vec<String> = (0..2)
                .map(|i| format!("{}: {}", t.names[i], summary(&show(t, i))))
                .collect();
            panic!("{what}: not within {limit:?}: {}", states.join(" | "));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until both ends carry traffic on `name`; returns when each moved there (from the
/// age of its latest path change) and its status then.
fn wait_active(t: &Topology, name: &str, limit: Duration) -> [(Instant, Value); 2] {
    wait_both(t, limit, &format!("traffic on {name}"), |s| {
        s["active_path"] == name
    })
    .map(|(seen, s)| {
        let c = &s["last_path_change"];
        let at = match c["age_s"].as_f64() {
            Some(age) if c["to"] == name => seen
                .checked_sub(Duration::from_secs_f64(age))
                .unwrap_or(seen),
            _ => seen,
        };
        (at, s)
    })
}

/// Starts both ends and waits until both paths are up on both and traffic is on FC.
fn up_with_ethernet(opts: Options) -> Topology {
    let mut t = Topology::with_options(opts);
    t.up();
    wait_both(&t, Duration::from_secs(10), "both paths up", |s| {
        s["active_path"] == "fc"
            && path(s, "fc")["state"] == "up"
            && path(s, "ethernet")["state"] == "up"
    });
    t
}

/// `d` in ms, with whether it met [`GAP_GOAL`].
fn ms_goal(d: Duration) -> String {
    format!(
        "{:.0} ms ({} the {} ms goal)",
        d.as_secs_f64() * 1e3,
        if d < GAP_GOAL { "within" } else { "over" },
        GAP_GOAL.as_millis()
    )
}

/// The two failure modes of the fabric the suite injects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outage {
    /// SIGSTOP for [`FREEZE`], then SIGCONT.
    Freeze,
    /// SIGKILL, [`DEAD`] without a fabric, then a new one on the same socket.
    KillRestart,
}

/// An iperf3 stream and a paced 256 MiB transfer run through `outage` of the fabric: both
/// survive, the data arrives intact, traffic moves to Ethernet and back, and the longest
/// gaps at failover and fail-back stay under [`GAP_LIMIT`].
fn outage_under_load(test: &str, outage: Outage) {
    let mut t = up_with_ethernet(Options::ethernet());
    let pids = [t.end_pid(INITIATOR), t.end_pid(TARGET)];
    let total = 256 * MIB;
    // Initiator to target rides SCSI WRITEs, the iperf3 stream (target to initiator) parked
    // READs: both directions of the FC path fail over.
    let x = t.transfer(
        INITIATOR,
        TARGET,
        TransferSpec::new(total).rate(RATE).stall(GAP_RECORD),
    );
    let iperf_secs = (total / RATE) as u32 + 2;
    let iperf = Iperf3::start(&t, TARGET, INITIATOR, iperf_secs, 5201, IPERF_RATE)
        .unwrap_or_else(|e| panic!("{e}"));
    let limit = Duration::from_secs(20);
    x.wait_for(48 * MIB, limit)
        .unwrap_or_else(|e| panic!("{e}"));
    let at_mib = x.received() / MIB;

    let start = Instant::now();
    match outage {
        Outage::Freeze => t.fabric_stop(),
        Outage::KillRestart => t.fabric_kill(),
    }
    let over = wait_active(&t, "ethernet", Duration::from_secs(5));
    let hold = match outage {
        Outage::Freeze => FREEZE,
        Outage::KillRestart => DEAD,
    };
    std::thread::sleep(hold.saturating_sub(start.elapsed()));
    let resume = Instant::now();
    match outage {
        Outage::Freeze => t.fabric_cont(),
        Outage::KillRestart => t.fabric_restart(),
    }
    let back = wait_active(&t, "fc", Duration::from_secs(10));
    let back_last = back[0].0.max(back[1].0);
    // Let the stream run on FC for a while after the fail-back.
    let after = back_last + Duration::from_secs(1);
    std::thread::sleep(after.saturating_duration_since(Instant::now()));

    // Once every byte is in, every gap has ended and is recorded.
    x.wait_for(total, Duration::from_secs(40))
        .unwrap_or_else(|e| panic!("{e}"));
    let failover_gap = x.longest_stall_between(start, resume);
    let failback_gap = x.longest_stall_between(resume, after);
    for i in [INITIATOR, TARGET] {
        figure!(
            test,
            "{} ({}): {outage:?} at {at_mib} MiB: traffic on ethernet {:.0} ms after it ({}), back on fc {:.0} ms after {}",
            t.names[i],
            if i == INITIATOR {
                "initiator"
            } else {
                "target"
            },
            over[i].0.saturating_duration_since(start).as_secs_f64() * 1e3,
            over[i].1["last_path_change"]["cause"],
            back[i].0.saturating_duration_since(resume).as_secs_f64() * 1e3,
            if outage == Outage::Freeze {
                "SIGCONT"
            } else {
                "the restart"
            },
        );
    }
    figure!(
        test,
        "longest delivery gap at failover: {}; at fail-back: {}",
        ms_goal(failover_gap),
        ms_goal(failback_gap)
    );

    let r = x.wait().unwrap_or_else(|e| panic!("transfer: {e}"));
    figure!(
        test,
        "256 MiB {} -> {} in {:.1} s, longest gap {:.0} ms, sha256 {}",
        ADDRS[INITIATOR],
        ADDRS[TARGET],
        r.duration.as_secs_f64(),
        r.longest_stall.as_secs_f64() * 1e3,
        hex(&r.received)
    );
    let ip = iperf.wait().unwrap_or_else(|e| panic!("iperf3: {e}"));
    let during = ip.bytes_between(start, resume);
    figure!(
        test,
        "iperf3 TCP {} -> {}: {:.0} Mbit/s, {} MiB ({:.1} MiB while the fabric was out), {} TCP retransmits, longest silent run {} ms",
        ADDRS[TARGET],
        ADDRS[INITIATOR],
        ip.bits_per_second / 1e6,
        ip.bytes / MIB,
        during as f64 / MIB as f64,
        ip.retransmits,
        ip.longest_silence().as_millis()
    );
    let finals = [show(&t, INITIATOR), show(&t, TARGET)];
    for i in [INITIATOR, TARGET] {
        figure!(test, "{}: {}", t.names[i], summary(&finals[i]));
    }
    let text = t.show_text(TARGET).unwrap_or_else(|e| panic!("show: {e}"));
    for line in text.lines().filter(|l| l.contains("path")) {
        figure!(test, "`fcvpn show {}`: {}", t.names[TARGET], line.trim());
    }
    assert!(
        text.contains("path changes: ") && text.contains("(fail-back: fc up for"),
        "`fcvpn show` does not report the path changes:\n{text}"
    );

    assert!(
        r.intact(),
        "sent {} bytes sha256 {}, received {} bytes sha256 {}",
        r.bytes_sent,
        hex(&r.sent),
        r.bytes_received,
        hex(&r.received)
    );
    assert!(
        failover_gap < GAP_LIMIT && failback_gap < GAP_LIMIT && r.longest_stall < GAP_LIMIT,
        "delivery gaps {failover_gap:?} at failover, {failback_gap:?} at fail-back, {:?} at most: over {GAP_LIMIT:?}",
        r.longest_stall
    );
    assert!(ip.bytes > 0, "iperf3 received nothing");
    assert!(
        during > 0,
        "the iperf3 stream received nothing while the fabric was out"
    );
    assert!(
        t.end_running(INITIATOR) && t.end_running(TARGET),
        "an end exited"
    );
    assert_eq!(
        [t.end_pid(INITIATOR), t.end_pid(TARGET)],
        pids,
        "an end was restarted"
    );
    for (i, s) in finals.iter().enumerate() {
        let name = &t.names[i];
        assert_eq!(s["active_path"], "fc", "{name}: not back on fc");
        assert!(
            count(&s["path_changes"]) >= 2,
            "{name}: fewer than 2 path changes: {}",
            summary(s)
        );
        assert!(
            count(&path(s, "fc")["downs"]) >= 1,
            "{name}: fc never went down: {}",
            summary(s)
        );
        let last = &s["last_path_change"];
        assert!(
            last["from"] == "ethernet"
                && last["to"] == "fc"
                && last["cause"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("fail-back")),
            "{name}: the latest path change is not the fail-back: {}",
            summary(s)
        );
    }
}

#[test]
fn fabric_frozen_5s_under_iperf3_and_256mib_transfer() {
    let Some(_serial) = gate() else { return };
    outage_under_load(
        "fabric_frozen_5s_under_iperf3_and_256mib_transfer",
        Outage::Freeze,
    );
}

#[test]
fn fabric_killed_and_restarted_under_iperf3_and_256mib_transfer() {
    let Some(_serial) = gate() else { return };
    outage_under_load(
        "fabric_killed_and_restarted_under_iperf3_and_256mib_transfer",
        Outage::KillRestart,
    );
}

/// Exactly-once accounting of one direction: every packet the sender accepted was delivered
/// once or skipped (none is while FC is healthy), and every duplicate the receiver dropped
/// came from a resend.
fn delivery_consistent(sender: &Value, receiver: &Value) -> Result<String, String> {
    let (sp, rp) = (&sender["packets"], &receiver["packets"]);
    let accepted = count(&sp["accepted"]);
    let delivered = count(&rp["delivered"]);
    let skipped = count(&rp["skipped"]);
    let duplicates = count(&rp["duplicates"]);
    let resent = count(&sp["retransmitted"]);
    let line = format!(
        "accepted {accepted}, delivered {delivered}, skipped {skipped}, expired {}, duplicates {duplicates}, resent {resent}",
        sp["expired"]
    );
    if delivered + skipped == accepted && duplicates <= resent {
        Ok(line)
    } else {
        Err(line)
    }
}

#[test]
fn both_paths_healthy_no_duplicates_and_ethernet_carries_only_probes() {
    const T: &str = "both_paths_healthy_no_duplicates_and_ethernet_carries_only_probes";
    let Some(_serial) = gate() else { return };
    let t = up_with_ethernet(Options::ethernet());
    let start = Instant::now();
    let before = [show(&t, INITIATOR), show(&t, TARGET)];
    // Both directions at full speed: the transfer over WRITEs, iperf3 over parked READs.
    let x = t.transfer(INITIATOR, TARGET, TransferSpec::new(128 * MIB));
    let ip = Iperf3::start(&t, TARGET, INITIATOR, 3, 5201, "0").unwrap_or_else(|e| panic!("{e}"));
    let r = x.wait().unwrap_or_else(|e| panic!("transfer: {e}"));
    let ip = ip.wait().unwrap_or_else(|e| panic!("iperf3: {e}"));
    assert!(r.intact(), "the transfer arrived damaged");
    figure!(
        T,
        "128 MiB {} -> {} at {:.0} Mbit/s beside iperf3 TCP {} -> {} at {:.0} Mbit/s",
        ADDRS[INITIATOR],
        ADDRS[TARGET],
        r.mbit_per_s(),
        ADDRS[TARGET],
        ADDRS[INITIATOR],
        ip.bits_per_second / 1e6
    );
    // Both ends idle: what one sent, the other has delivered (retried a few times, for a
    // packet of the kernel's own caught between the two snapshots).
    let mut after = [show(&t, INITIATOR), show(&t, TARGET)];
    let mut consistent = Err(String::new());
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        after = [show(&t, INITIATOR), show(&t, TARGET)];
        consistent = delivery_consistent(&after[INITIATOR], &after[TARGET])
            .and_then(|a| delivery_consistent(&after[TARGET], &after[INITIATOR]).map(|b| (a, b)))
            .map(|(a, b)| format!("initiator -> target: {a}; target -> initiator: {b}"));
        if consistent.is_ok() {
            break;
        }
    }
    let took = start.elapsed();
    let consistent = consistent.unwrap_or_else(|e| panic!("delivery counts inconsistent: {e}"));
    figure!(T, "{consistent}");
    // Probes every 50 ms each way, each answered: at most two batches per interval and end,
    // plus slack for the snapshots' timing.
    let budget = 2 * (took.as_millis() as u64 / 50) + 10;
    for i in [INITIATOR, TARGET] {
        let (b, a) = (&before[i], &after[i]);
        let delta = |p: &str, k: &str| count(&path(a, p)[k]) - count(&path(b, p)[k]);
        let (eth_batches, eth_bytes) = (
            delta("ethernet", "tx_batches"),
            delta("ethernet", "tx_bytes"),
        );
        let fc_bytes = delta("fc", "tx_bytes");
        figure!(
            T,
            "{} in {:.1} s: ethernet sent {eth_batches} batches, {eth_bytes} B ({} B per batch; budget {budget} batches), fc sent {} MiB; {}",
            t.names[i],
            took.as_secs_f64(),
            eth_bytes / eth_batches.max(1),
            fc_bytes / MIB,
            summary(a)
        );
        assert_eq!(
            a["path_changes"], b["path_changes"],
            "{}: the active path changed",
            t.names[i]
        );
        assert_eq!(a["active_path"], "fc");
        assert!(eth_batches > 0, "{}: no probes on ethernet", t.names[i]);
        assert!(
            eth_batches <= budget,
            "{}: ethernet sent {eth_batches} batches in {took:?}, over the probe budget {budget}",
            t.names[i]
        );
        assert!(
            eth_bytes <= eth_batches * 160,
            "{}: ethernet batches average {} B: more than probes",
            t.names[i],
            eth_bytes / eth_batches
        );
        assert_eq!(
            delta("ethernet", "retransmits"),
            0,
            "{}: frames resent on ethernet",
            t.names[i]
        );
        assert!(
            fc_bytes >= 32 * MIB,
            "{}: fc sent only {fc_bytes} B",
            t.names[i]
        );
    }
}

/// Sends each datagram to `to` from a socket in namespace `ns` of `t`, pausing briefly every
/// 64 so that the receiver's socket buffer is not what drops them.
fn send_all(t: &Topology, ns: usize, to: SocketAddr, datagrams: &[Vec<u8>]) -> u64 {
    let from: SocketAddr = format!("{}:0", ETH_ADDRS[ns]).parse().expect("an address");
    let socket = t.ns[ns]
        .run(move || UdpSocket::bind(from))
        .and_then(|r| r)
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let mut sent = 0;
    for (k, d) in datagrams.iter().enumerate() {
        if socket.send_to(d, to).is_ok() {
            sent += 1;
        }
        if k % 64 == 63 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    sent
}

/// Pseudo-random datagrams: `n` of random length (0 to 1472 bytes) and content, and `n` that
/// keep the header of a genuine datagram (magic, version, type, path, receiver index, counter)
/// with a random body.
fn garbage(n: usize, genuine: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut out = Vec::new();
    for k in 0..2 * n {
        let d: Vec<u8> = if k < n || genuine.is_empty() {
            let len = (next() % 1473) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            let mut d = genuine[k % genuine.len()].clone();
            for b in d.iter_mut().skip(24) {
                *b = next() as u8;
            }
            d
        };
        out.push(d);
    }
    out
}

#[test]
fn bad_udp_input_is_dropped_counted_and_moves_nothing() {
    const T: &str = "bad_udp_input_is_dropped_counted_and_moves_nothing";
    let Some(_serial) = gate() else { return };
    // The initiator's datagrams to the target go through a relay in the target's namespace,
    // which keeps copies: genuine datagrams to replay.
    let relay_addr: SocketAddr = format!("{}:{}", ETH_ADDRS[TARGET], ETH_PORT + 1)
        .parse()
        .expect("an address");
    let mut opts = Options::ethernet();
    opts.endpoints[INITIATOR] = Some(relay_addr);
    let t = Topology::with_options(opts);
    let relay = Relay::start(&t.ns[TARGET], relay_addr, eth_listen(TARGET), 256)
        .unwrap_or_else(|e| panic!("relay: {e}"));
    let mut t = t;
    t.up();
    wait_both(&t, Duration::from_secs(10), "both paths up", |s| {
        s["active_path"] == "fc" && path(s, "ethernet")["state"] == "up"
    });
    std::thread::sleep(Duration::from_millis(500));
    // Start-up may count a change (Ethernet can come up first, then FC takes over): the attack
    // is judged against what the target had before it.
    let changes_before = count(&show(&t, TARGET)["path_changes"]);
    let captured = relay.captured();
    assert!(!captured.is_empty(), "the relay captured nothing");
    let victim = PublicKey::from_base64(&t.public_keys[TARGET]).expect("a public key");
    let attacks: [(&str, Vec<Vec<u8>>); 4] = [
        (
            "random garbage and genuine headers with random bodies",
            garbage(1000, &captured),
        ),
        ("replays of captured genuine datagrams", {
            let mut v = Vec::new();
            for _ in 0..8 {
                v.extend(captured.iter().cloned());
            }
            v
        }),
        (
            "initiations from a stranger's key",
            harness::forged::initiations(&victim, 64),
        ),
        (
            "batches of a session between two strangers",
            harness::forged::foreign_session(256),
        ),
    ];

    // A transfer runs through the attack, and must not notice it.
    let x = t.transfer(
        INITIATOR,
        TARGET,
        TransferSpec::new(64 * MIB).rate(16 * MIB).stall(GAP_RECORD),
    );
    x.wait_for(8 * MIB, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let log_lines = [
        t.end_log(INITIATOR).lines().count(),
        t.end_log(TARGET).lines().count(),
    ];
    let attack_start = Instant::now();
    for (what, datagrams) in &attacks {
        let before = show(&t, TARGET);
        let sent = send_all(&t, INITIATOR, eth_listen(TARGET), datagrams);
        std::thread::sleep(Duration::from_millis(200));
        let after = show(&t, TARGET);
        let rejected = count(&after["rejected_batches"]) - count(&before["rejected_batches"]);
        figure!(
            T,
            "{what}: {sent} datagrams sent to the target's port, rejected_batches +{rejected}; {}",
            summary(&after)
        );
        assert!(
            rejected * 10 >= sent * 9,
            "{what}: only {rejected} of {sent} datagrams counted as rejected"
        );
        assert_eq!(after["active_path"], "fc", "{what}: traffic left fc");
        assert_eq!(
            after["path_changes"], before["path_changes"],
            "{what}: the active path changed"
        );
        assert_eq!(path(&after, "ethernet")["state"], "up", "{what}");
        assert_eq!(after["carrier"], true, "{what}: carrier lost");
    }
    let attack_gap = x.longest_stall_between(attack_start, Instant::now());
    let r = x.wait().unwrap_or_else(|e| panic!("transfer: {e}"));
    for i in [INITIATOR, TARGET] {
        let log = t.end_log(i);
        let new: Vec<&str> = log.lines().skip(log_lines[i]).collect();
        figure!(
            T,
            "{}: {} log lines during the attack{}",
            t.names[i],
            new.len(),
            if new.is_empty() {
                String::new()
            } else {
                format!(": {new:?}")
            }
        );
        assert!(
            new.len() < 5,
            "{}: logged per datagram: {new:?}",
            t.names[i]
        );
    }
    assert!(
        r.intact(),
        "the transfer through the attack arrived damaged"
    );
    figure!(
        T,
        "64 MiB through the attack intact, longest gap {:.0} ms during the attack, {:.0} ms in all; relay forwarded {} genuine datagrams",
        attack_gap.as_secs_f64() * 1e3,
        r.longest_stall.as_secs_f64() * 1e3,
        relay.forwarded()
    );
    let s = show(&t, TARGET);
    let rejected = count(&s["rejected_batches"]);
    assert_eq!(
        count(&s["path_changes"]),
        changes_before,
        "the target's active path changed during the attack"
    );
    figure!(
        T,
        "target: rejected_batches {rejected} in all; {}",
        summary(&s)
    );
}

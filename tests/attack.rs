//! The root-only attack suite: the link between two namespaces (as in `tests/netns.rs`) under
//! attackers that hold no keys, each attack run under a SHA-256-checked TCP transfer and
//! compared with the same transfer unattacked, measured just before and just after it.
//!
//! - a stranger initiator on the simulated fabric, logged in with the pair's WWPN and nexus
//!   tag, parking READs of one block, then of full size, then spraying WRITEs;
//! - floods of forged INITIATIONs (with a correct mac1) and genuine-looking TRANSPORT datagrams
//!   on the UDP port of an Ethernet-only link from several addresses, across rekeys;
//! - INITIATIONs captured from the wire replayed after a restart of either end.
//!
//! In every case the data must arrive intact, the link must not go down (no path down, no
//! path change, carrier on), the attacker's commands or datagrams must be counted, and the
//! attacked transfer must reach at least [`MIN_RATIO`] of the unattacked speed. Every test
//! prints its figures as `attack: TEST: ...` lines (`--nocapture`). Gate and skip conventions
//! are those of `tests/netns.rs` (`FCVPN_REQUIRE_ROOT_SUITES=1`, `FCVPN_SKIP_ROOT_SUITES=1`,
//! `FCVPN_NETNS_KEEP=1`); the attack tools are `fcvpn-testkit` subcommands.

#[path = "support/netns/mod.rs"]
mod harness;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use harness::attacker::{self, Attacker, Summary};
use harness::topology::{ETH_PORT, eth_listen};
use harness::transfer::{TransferReport, hex};
use harness::{ETH_ADDRS, INITIATOR, Netns, Options, TARGET, Topology, TransferSpec, gate_suite};
use nix::sys::signal::Signal;
use serde_json::Value;

const MIB: u64 = 1 << 20;
/// The attacked speed must be at least this share of the unattacked one.
const MIN_RATIO: f64 = 0.8;
/// The test-only rekey interval the daemons get ([`REKEY_ENV`]).
const REKEY_MS: u64 = 4000;
/// The test-only setting that shortens the rekey interval (read by `fcvpn up`).
const REKEY_ENV: &str = "FCVPN_TEST_REKEY_AFTER_MS";
/// The port both ends are given with `fc.port` in the fabric test, and the stranger copies.
const SHARED_WWPN: &str = "5001405fc0000001";

/// Prints `figure` as `attack: TEST: figure`.
macro_rules! figure {
    ($test:expr, $($arg:tt)*) => {
        eprintln!("attack: {}: {}", $test, format_args!($($arg)*))
    };
}

fn gate() -> Option<std::sync::MutexGuard<'static, ()>> {
    gate_suite("attack")
}

fn show(t: &Topology, i: usize) -> Value {
    t.show_json(i)
        .unwrap_or_else(|e| panic!("show {}: {e}", t.names[i]))
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// What tells whether the link stayed up, and what was counted, for both ends.
#[derive(Debug, Clone)]
struct Health {
    status: [Value; 2],
}

impl Health {
    fn of(t: &Topology) -> Self {
        Self {
            status: [show(t, INITIATOR), show(t, TARGET)],
        }
    }

    /// Path-down events of end `i` so far (over all paths).
    fn downs(&self, i: usize) -> u64 {
        self.status[i]["paths"]
            .as_array()
            .map_or(0, |p| p.iter().map(|p| count(&p["downs"])).sum())
    }

    fn get(&self, i: usize, key: &str) -> u64 {
        count(&self.status[i][key])
    }

    fn foreign(&self, i: usize) -> u64 {
        count(&self.status[i]["scsi"]["foreign_commands"])
    }

    /// Initiations end `i` refused as replays or over its handshake budget
    /// (`handshake.rejected_replay` + `handshake.rejected_budget`).
    fn replays_refused(&self, i: usize) -> u64 {
        let h = &self.status[i]["handshake"];
        count(&h["rejected_replay"]) + count(&h["rejected_budget"])
    }

    /// The counters of end `i` that name rejections, as one line.
    fn rejections(&self, i: usize) -> String {
        let s = &self.status[i];
        format!(
            "rejected_batches {}, handshake {}",
            s["rejected_batches"], s["handshake"]
        )
    }
}

/// The failed checks of one test, reported together at its end, so that every attack of a
/// test runs and prints its figures even when an earlier one fails.
struct Checks {
    test: &'static str,
    failures: Vec<String>,
}

impl Checks {
    fn new(test: &'static str) -> Self {
        Self {
            test,
            failures: Vec::new(),
        }
    }

    /// Records `msg` unless `ok`.
    fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            let msg = msg();
            figure!(self.test, "FAILED CHECK: {msg}");
            self.failures.push(msg);
        }
    }

    /// Panics with every failed check.
    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{}: {} checks failed:\n{}",
            self.test,
            self.failures.len(),
            self.failures.join("\n")
        );
    }

    /// The link stayed up from `before` to `after`: carrier on both ends, no path went down,
    /// the active path never changed.
    fn stayed_up(&mut self, what: &str, t: &Topology, before: &Health, after: &Health) {
        for i in [INITIATOR, TARGET] {
            let name = &t.names[i];
            self.check(after.status[i]["carrier"] == true, || {
                format!("{what}: {name} lost carrier")
            });
            self.check(after.downs(i) == before.downs(i), || {
                format!(
                    "{what}: a path of {name} went down {} times: {}",
                    after.downs(i) - before.downs(i),
                    after.status[i]["paths"]
                )
            });
            let changes = [before, after].map(|h| h.get(i, "path_changes"));
            self.check(changes[0] == changes[1], || {
                format!(
                    "{what}: the active path of {name} changed {} times: {}",
                    changes[1] - changes[0],
                    after.status[i]["last_path_change"]
                )
            });
        }
    }

    /// Every byte of `r` arrived intact.
    fn intact(&mut self, what: &str, r: &TransferReport) {
        self.check(r.intact(), || {
            format!(
                "{what}: sent {} bytes sha256 {}, received {} bytes sha256 {}",
                r.bytes_sent,
                hex(&r.sent),
                r.bytes_received,
                hex(&r.received)
            )
        });
    }

    /// `attacked` reached [`MIN_RATIO`] of the unattacked speed measured around it (the mean
    /// of the runs just before and just after, so that a machine busy with something else for
    /// a while does not decide the test); prints the figure.
    fn speed(&mut self, what: &str, attacked: f64, around: [f64; 2]) {
        let unattacked = (around[0] + around[1]) / 2.0;
        let ratio = attacked / unattacked;
        figure!(
            self.test,
            "{what}: {attacked:.0} Mbit/s attacked vs {unattacked:.0} unattacked \
             (before {:.0}, after {:.0}): {:.0}%",
            around[0],
            around[1],
            ratio * 100.0
        );
        self.check(ratio >= MIN_RATIO, || {
            format!(
                "{what}: {attacked:.0} Mbit/s is {:.0}% of the unattacked {unattacked:.0} \
                 Mbit/s (at least {:.0}% required)",
                ratio * 100.0,
                MIN_RATIO * 100.0
            )
        });
    }
}

/// One transfer of `bytes` from end `from` to the other, given at most `limit`.
fn transfer(t: &Topology, from: usize, bytes: u64, port: u16, limit: Duration) -> TransferReport {
    let mut spec = TransferSpec::new(bytes).port(port);
    spec.limit = limit;
    spec.idle_timeout = limit.min(Duration::from_secs(20));
    t.transfer(from, 1 - from, spec)
        .wait()
        .unwrap_or_else(|e| panic!("transfer of {} MiB: {e}", bytes / MIB))
}

/// Unattacked transfers, for comparison: the same transfer as the attacked ones, on its own
/// TCP port each time.
struct Baseline {
    from: usize,
    bytes: u64,
    port: u16,
    speeds: Vec<f64>,
}

impl Baseline {
    fn new(from: usize, bytes: u64, port: u16) -> Self {
        Self {
            from,
            bytes,
            port,
            speeds: Vec::new(),
        }
    }

    fn next_port(&mut self) -> u16 {
        self.port += 1;
        self.port
    }

    /// Measures one unattacked transfer; returns its speed in Mbit/s.
    fn measure(&mut self, checks: &mut Checks, t: &Topology) -> f64 {
        let port = self.next_port();
        let r = transfer(t, self.from, self.bytes, port, Duration::from_secs(60));
        checks.intact("unattacked transfer", &r);
        let speed = r.mbit_per_s();
        figure!(
            checks.test,
            "unattacked: {} MiB in {:.2} s ({speed:.0} Mbit/s)",
            self.bytes / MIB,
            r.duration.as_secs_f64()
        );
        self.speeds.push(speed);
        speed
    }

    /// The latest unattacked speed.
    fn latest(&self) -> f64 {
        *self.speeds.last().expect("measured")
    }

    /// The time an attacked transfer gets at most: ten times the unattacked one, and 10 s.
    fn limit(&self) -> Duration {
        let secs = self.bytes as f64 * 8.0 / 1e6 / self.latest();
        Duration::from_secs_f64(secs * 10.0 + 10.0)
    }

    /// Runs the attacked transfer; returns it.
    fn attacked(&mut self, t: &Topology) -> TransferReport {
        let port = self.next_port();
        let limit = self.limit();
        transfer(t, self.from, self.bytes, port, limit)
    }
}

// ---- (a) a stranger initiator on the simulated fabric ----

/// The nexus tag of the pair, as `fcvpn-testkit nexus-tag` computes it from the public keys.
fn nexus_tag(t: &Topology) -> String {
    let out = attacker::run(
        &t.ns[INITIATOR],
        "nexus-tag",
        &[
            "--target".into(),
            t.public_keys[TARGET].clone(),
            "--initiator".into(),
            t.public_keys[INITIATOR].clone(),
        ],
    );
    out.trim().to_owned()
}

/// One mode of `fabric-stranger`, the transfer direction it attacks, and its rate.
struct StrangerPhase {
    mode: &'static str,
    from: usize,
    depth: u32,
}

#[test]
fn stranger_initiator_on_the_fabric_takes_nothing_and_slows_nothing() {
    const T: &str = "stranger_initiator_on_the_fabric_takes_nothing_and_slows_nothing";
    /// Most commands per second the stranger sends once its commands are answered at once.
    const STRANGER_RATE: u64 = 5000;
    let Some(_serial) = gate() else { return };
    let mut c = Checks::new(T);
    let mut t = Topology::with_fc(&[], &format!("port = \"naa.{SHARED_WWPN}\"\n"));
    t.up();
    let tag = nexus_tag(&t);
    figure!(T, "the pair's nexus tag {tag}, WWPN {SHARED_WWPN} (copied)");
    let bytes = 128 * MIB;
    let phases = [
        // Target to initiator rides parked READs: what a parked stranger READ competes with.
        StrangerPhase {
            mode: "park-small",
            from: TARGET,
            depth: 8,
        },
        StrangerPhase {
            mode: "park-full",
            from: TARGET,
            depth: 8,
        },
        // Initiator to target rides WRITEs, next to the sprayed ones.
        StrangerPhase {
            mode: "write-spray",
            from: INITIATOR,
            depth: 8,
        },
    ];
    let mut baselines = [
        Baseline::new(INITIATOR, bytes, 7200),
        Baseline::new(TARGET, bytes, 7300),
    ];
    for p in &phases {
        let base = &mut baselines[p.from];
        let before_speed = if base.speeds.is_empty() {
            base.measure(&mut c, &t)
        } else {
            base.latest()
        };
        let before = Health::of(&t);
        let stranger = Attacker::start(
            &t.ns[INITIATOR],
            "fabric-stranger",
            &[
                "--fabric".into(),
                t.socket.display().to_string(),
                "--wwpn".into(),
                SHARED_WWPN.into(),
                "--tag".into(),
                tag.clone(),
                "--mode".into(),
                p.mode.into(),
                "--depth".into(),
                p.depth.to_string(),
                "--rate".into(),
                STRANGER_RATE.to_string(),
                "--seconds".into(),
                "120".into(),
            ],
        );
        // Let it log in and fill its queue before the transfer starts.
        std::thread::sleep(Duration::from_millis(300));
        let r = base.attacked(&t);
        let s = stranger.stop();
        let after = Health::of(&t);
        let what = format!("{} (depth {})", p.mode, p.depth);
        figure!(T, "{what}: {}", s.line);
        figure!(
            T,
            "{what}: {} MiB {} in {:.2} s, longest stall {:.0} ms; target foreign_commands +{}",
            bytes / MIB,
            if p.from == TARGET {
                "target -> initiator"
            } else {
                "initiator -> target"
            },
            r.duration.as_secs_f64(),
            r.longest_stall.as_secs_f64() * 1e3,
            after.foreign(TARGET) - before.foreign(TARGET)
        );
        c.intact(&what, &r);
        c.stayed_up(&what, &t, &before, &after);
        let after_speed = base.measure(&mut c, &t);
        stranger_checks(&mut c, &what, &s, &before, &after);
        c.speed(&what, r.mbit_per_s(), [before_speed, after_speed]);
    }
    c.finish();
}

/// The stranger took no batch and every command it got answered was refused and counted.
fn stranger_checks(c: &mut Checks, what: &str, s: &Summary, before: &Health, after: &Health) {
    c.check(s.count("sent") > 0, || {
        format!("{what}: the stranger sent nothing: {}", s.line)
    });
    c.check(s.count("data") == 0, || {
        format!(
            "{what}: the stranger was given {} batches ({} bytes)",
            s.count("data"),
            s.count("data_bytes")
        )
    });
    c.check(s.count("good") == 0, || {
        format!("{what}: {} stranger WRITEs were accepted", s.count("good"))
    });
    let answered = s.count("check_condition") + s.count("idle") + s.count("other_status");
    let foreign = after.foreign(TARGET) - before.foreign(TARGET);
    c.check(foreign >= answered && foreign > 0, || {
        format!(
            "{what}: the target counted {foreign} foreign commands; the stranger got {answered} \
             answers besides data ({} check conditions, {} idle)",
            s.count("check_condition"),
            s.count("idle")
        )
    });
}

// ---- (b) a UDP flood on an Ethernet-only link, across rekeys ----

/// Extra addresses of namespace A on its veth, the flood's sources.
const FLOOD_SOURCES: [&str; 4] = [
    "192.168.77.11",
    "192.168.77.12",
    "192.168.77.13",
    "192.168.77.14",
];

/// Adds `addrs` (/24) to the veth of `ns`.
fn add_addresses(ns: &Netns, addrs: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(["-n", ns.name(), "-o", "link", "show", "type", "veth"])
        .output()
        .expect("ip link show");
    let text = String::from_utf8_lossy(&out.stdout);
    let dev = text
        .lines()
        .next()
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|n| n.split('@').next())
        .unwrap_or_else(|| panic!("no veth in {}: {text:?}", ns.name()))
        .to_owned();
    for a in addrs {
        let cidr = format!("{a}/24");
        harness::ns::ip(&["-n", ns.name(), "addr", "add", &cidr, "dev", &dev])
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// An Ethernet-only topology; with `rekey`, its daemons rekey every [`REKEY_MS`].
fn ethernet_only(endpoints: [Option<SocketAddr>; 2], rekey: bool) -> Topology {
    let env = if rekey {
        vec![(REKEY_ENV.to_owned(), REKEY_MS.to_string())]
    } else {
        Vec::new()
    };
    Topology::with_options(Options {
        ethernet: true,
        ethernet_only: true,
        endpoints,
        env,
        ..Options::default()
    })
}

#[test]
fn udp_flood_of_forged_initiations_and_transports_across_rekeys() {
    const T: &str = "udp_flood_of_forged_initiations_and_transports_across_rekeys";
    /// Datagrams per second of each of the two floods.
    const RATE: u64 = 12_000;
    /// Attacked transfers run until this many rekeys happened, or for at most
    /// `REKEYS + 2` rekey intervals.
    const REKEYS: u64 = 2;
    let Some(_serial) = gate() else { return };
    let mut c = Checks::new(T);
    let mut t = ethernet_only([None, None], true);
    add_addresses(&t.ns[INITIATOR], &FLOOD_SOURCES);
    t.up();
    let bytes = 64 * MIB;
    let mut base = Baseline::new(INITIATOR, bytes, 7400);
    let before_speed = base.measure(&mut c, &t);
    let before = Health::of(&t);
    let target = eth_listen(TARGET).to_string();
    let flood = |kind: &str, from: &[&str], mac1: bool| {
        let mut args = vec![
            "--target".to_owned(),
            target.clone(),
            "--from".into(),
            from.join(","),
            "--rate".into(),
            RATE.to_string(),
            "--kind".into(),
            kind.into(),
            "--seconds".into(),
            "120".into(),
        ];
        if mac1 {
            args.extend(["--peer-pub".to_owned(), t.public_keys[TARGET].clone()]);
        }
        Attacker::start(&t.ns[INITIATOR], "udp-flood", &args)
    };
    let floods = [
        flood("initiation", &FLOOD_SOURCES[..2], true),
        flood("transport", &FLOOD_SOURCES[2..], false),
    ];
    let started = Instant::now();
    let mut attacked = Vec::new();
    let mut rekeys = 0;
    let give_up = Duration::from_millis(REKEY_MS * (REKEYS + 2));
    while attacked.is_empty() || (rekeys < REKEYS && started.elapsed() < give_up) {
        let r = base.attacked(&t);
        c.intact("transfer under the flood", &r);
        figure!(
            T,
            "under the flood, run {}: {} MiB in {:.2} s ({:.0} Mbit/s), longest stall {:.0} ms",
            attacked.len() + 1,
            bytes / MIB,
            r.duration.as_secs_f64(),
            r.mbit_per_s(),
            r.longest_stall.as_secs_f64() * 1e3
        );
        attacked.push(r);
        let now = Health::of(&t);
        rekeys = [INITIATOR, TARGET]
            .map(|i| now.get(i, "handshakes") - before.get(i, "handshakes"))
            .into_iter()
            .max()
            .unwrap_or(0);
    }
    let flood_secs = started.elapsed().as_secs_f64();
    let summaries = floods.map(Attacker::stop);
    let after = Health::of(&t);
    let sent: u64 = summaries.iter().map(|s| s.count("sent")).sum();
    let per_s: f64 = summaries.iter().map(|s| s.number("per_s")).sum();
    for s in &summaries {
        figure!(T, "{}", s.line);
    }
    let rejected = after.get(TARGET, "rejected_batches") - before.get(TARGET, "rejected_batches");
    figure!(
        T,
        "{sent} forged datagrams in {flood_secs:.1} s ({per_s:.0}/s) from {} addresses; target \
         rejected_batches +{rejected}; handshakes during the flood: initiator +{}, target +{}; \
         target {}",
        FLOOD_SOURCES.len(),
        after.get(INITIATOR, "handshakes") - before.get(INITIATOR, "handshakes"),
        after.get(TARGET, "handshakes") - before.get(TARGET, "handshakes"),
        after.rejections(TARGET)
    );
    c.stayed_up("the flood", &t, &before, &after);
    c.check(per_s >= 20_000.0, || {
        format!("the flood reached only {per_s:.0} datagrams/s")
    });
    c.check(rekeys >= REKEYS, || {
        format!(
            "only {rekeys} handshakes during {flood_secs:.1} s of flood (rekey every {REKEY_MS} ms)"
        )
    });
    c.check(rejected * 10 >= sent * 9, || {
        format!("the target counted {rejected} rejected batches for {sent} forged datagrams")
    });
    // The forged INITIATIONs carry a right mac1, so they must reach the per-path budget (and
    // be refused there), not stop at the mac1 filter.
    let over_budget = count(&after.status[TARGET]["handshake"]["rejected_budget"])
        - count(&before.status[TARGET]["handshake"]["rejected_budget"]);
    c.check(over_budget * 2 >= sent / 2, || {
        format!(
            "only {over_budget} of the ~{} forged initiations reached the budget",
            sent / 2
        )
    });
    let after_speed = base.measure(&mut c, &t);
    let total_bytes: u64 = attacked.iter().map(|r| r.bytes_received).sum();
    let total_secs: f64 = attacked.iter().map(|r| r.duration.as_secs_f64()).sum();
    let speed = total_bytes as f64 * 8.0 / 1e6 / total_secs;
    c.speed(
        &format!("{} transfers under the flood", attacked.len()),
        speed,
        [before_speed, after_speed],
    );
    c.finish();
}

// ---- (c) captured INITIATIONs replayed after a restart of either end ----

/// The relay in front of end `i`'s listen port, in its namespace: the other end's
/// `ethernet.endpoint`.
fn relay_addr(i: usize) -> SocketAddr {
    SocketAddr::new(ETH_ADDRS[i].parse().expect("an address"), ETH_PORT + 1)
}

/// Lines (captured datagrams) in a capture file.
fn captured(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().filter(|l| !l.is_empty()).count())
        .unwrap_or(0)
}

#[test]
fn initiations_replayed_after_a_restart_change_nothing() {
    const T: &str = "initiations_replayed_after_a_restart_change_nothing";
    /// Rounds of replays sent during each attacked transfer.
    const ROUNDS: u32 = 20;
    /// How old the replayed initiations are at least.
    const REPLAY_AGE: Duration = Duration::from_secs(35);
    let Some(_serial) = gate() else { return };
    let mut c = Checks::new(T);
    // Each end sends to a relay in the other's namespace, which forwards to that end and keeps
    // the INITIATIONs it forwards: relay i captures what end 1 - i sends to end i.
    // No shortened rekeys here: every handshake after the restart would be a replay's doing.
    let mut t = ethernet_only(
        [Some(relay_addr(TARGET)), Some(relay_addr(INITIATOR))],
        false,
    );
    let captures = [0, 1].map(|i| t.dir.path().join(format!("captured-to-{i}.hex")));
    let relays: Vec<Attacker> = [INITIATOR, TARGET]
        .into_iter()
        .map(|i| {
            Attacker::start(
                &t.ns[i],
                "udp-relay",
                &[
                    "--listen".into(),
                    relay_addr(i).to_string(),
                    "--to".into(),
                    eth_listen(i).to_string(),
                    "--capture".into(),
                    captures[i].display().to_string(),
                    "--keep".into(),
                    "32".into(),
                    "--seconds".into(),
                    "200".into(),
                ],
            )
        })
        .collect();
    t.up();
    // The first handshake is on the wire to capture.
    let deadline = Instant::now() + Duration::from_secs(5);
    while captures.iter().map(|c| captured(c)).sum::<usize>() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let n = captures.iter().map(|c| captured(c)).sum::<usize>();
    figure!(
        T,
        "captured {} INITIATIONs to the initiator end, {} to the target end",
        captured(&captures[INITIATOR]),
        captured(&captures[TARGET])
    );
    assert!(n > 0, "{T}: no INITIATION was captured");
    // Only these are replayed (the relays go on capturing the later handshakes), once they
    // are older than the clock skew a restarted end allows (`max_clock_skew`, 30 s): within
    // it, an initiation from before the restart is indistinguishable from a fresh one.
    let captured_at = Instant::now();
    let old = [0, 1].map(|i| t.dir.path().join(format!("replayed-to-{i}.hex")));
    for i in [INITIATOR, TARGET] {
        let _ = std::fs::copy(&captures[i], &old[i]);
    }
    let bytes = 64 * MIB;
    let mut base = Baseline::new(INITIATOR, bytes, 7500);
    base.measure(&mut c, &t);
    std::thread::sleep(REPLAY_AGE.saturating_sub(captured_at.elapsed()));
    for end in [TARGET, INITIATOR] {
        let role = if end == TARGET { "target" } else { "initiator" };
        t.kill_end(end, Signal::SIGTERM);
        t.start_end(end);
        t.wait_carrier(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{T}: after restarting the {role}: {e}"));
        // Let the new session settle (key confirmation) before measuring.
        std::thread::sleep(Duration::from_millis(300));
        let before_speed = base.measure(&mut c, &t);
        let before = Health::of(&t);
        let x = {
            let port = base.next_port();
            let mut spec = TransferSpec::new(bytes).port(port);
            spec.limit = base.limit();
            t.transfer(INITIATOR, TARGET, spec)
        };
        x.wait_for(bytes / 8, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{T}: {e}"));
        let mut replayed = [0u64; 2];
        for to in [INITIATOR, TARGET] {
            if captured(&old[to]) == 0 {
                continue;
            }
            // Sent from the other end's address, as the genuine ones came.
            let out = attacker::run(
                &t.ns[1 - to],
                "udp-replay",
                &[
                    "--file".into(),
                    old[to].display().to_string(),
                    "--to".into(),
                    eth_listen(to).to_string(),
                    "--from".into(),
                    ETH_ADDRS[1 - to].into(),
                    "--repeat".into(),
                    ROUNDS.to_string(),
                    "--gap-ms".into(),
                    "20".into(),
                ],
            );
            let s = Summary::parse("udp-replay", &out).unwrap_or_else(|e| panic!("{e}"));
            figure!(
                T,
                "{role} restarted, replayed to {}: {}",
                t.names[to],
                s.line
            );
            replayed[to] = s.count("sent");
        }
        let r = x.wait().unwrap_or_else(|e| panic!("{T}: transfer: {e}"));
        let after = Health::of(&t);
        let what = format!("{role} restarted, captured INITIATIONs replayed");
        figure!(
            T,
            "{what}: {} MiB in {:.2} s, longest stall {:.0} ms; initiator {}; target {}",
            bytes / MIB,
            r.duration.as_secs_f64(),
            r.longest_stall.as_secs_f64() * 1e3,
            after.rejections(INITIATOR),
            after.rejections(TARGET)
        );
        c.intact(&what, &r);
        c.stayed_up(&what, &t, &before, &after);
        for i in [INITIATOR, TARGET] {
            let refused = after.replays_refused(i) - before.replays_refused(i);
            c.check(refused >= replayed[i], || {
                format!(
                    "{what}: {} refused {refused} initiations as replays or over budget \
                     (handshake.rejected_replay + rejected_budget) for {} replayed",
                    t.names[i], replayed[i]
                )
            });
            let handshakes = [&before, &after].map(|h| h.get(i, "handshakes"));
            c.check(handshakes[0] == handshakes[1], || {
                format!(
                    "{what}: replayed INITIATIONs made {} handshakes on {}",
                    handshakes[1] - handshakes[0],
                    t.names[i]
                )
            });
        }
        let after_speed = base.measure(&mut c, &t);
        c.speed(&what, r.mbit_per_s(), [before_speed, after_speed]);
    }
    for r in relays {
        figure!(T, "{}", r.stop().line);
    }
    c.finish();
}

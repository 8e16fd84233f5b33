//! ping and iperf3 between the two ends of a [`Topology`].

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::process::{self, output_timeout};
use super::{ADDRS, Topology};

/// What `ping` measured.
#[derive(Debug, Clone, Copy)]
pub struct Ping {
    /// Replies received.
    pub received: u32,
    /// Average round trip in milliseconds.
    pub avg_ms: f64,
}

/// `ping -c COUNT` from end `from`'s namespace to end `to`'s address.
pub fn ping(t: &Topology, from: usize, to: usize, count: u32) -> Result<Ping, String> {
    let count_s = count.to_string();
    let cmd = t.ns[from].exec(
        "ping",
        ["-n", "-c", &count_s, "-i", "0.2", "-W", "2", ADDRS[to]],
    );
    let out = output_timeout(cmd, Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "ping {} -> {}: {}\n{text}{}",
            ADDRS[from],
            ADDRS[to],
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // "5 packets transmitted, 5 received, 0% packet loss, time 805ms"
    let received = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no packet count in ping's output:\n{text}"))?;
    // "rtt min/avg/max/mdev = 0.050/0.071/0.093/0.015 ms"
    let avg_ms = text
        .lines()
        .find(|l| l.starts_with("rtt ") || l.starts_with("round-trip"))
        .and_then(|l| l.split(" = ").nth(1))
        .and_then(|v| v.split('/').nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no rtt line in ping's output:\n{text}"))?;
    Ok(Ping { received, avg_ms })
}

/// iperf3 TCP for `secs` from end `from` to an iperf3 server on end `to`'s address; returns
/// the receiver's bits per second.
pub fn iperf3(t: &Topology, from: usize, to: usize, secs: u32, port: u16) -> Result<f64, String> {
    let port_s = port.to_string();
    let mut server = t.ns[to].exec("iperf3", ["-s", "-1", "-B", ADDRS[to], "-p", &port_s]);
    server.stdout(Stdio::null()).stderr(Stdio::null());
    let mut server = server.spawn().map_err(|e| format!("iperf3 -s: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.ns[to].listening(port) {
        if Instant::now() > deadline {
            process::stop(&mut server, Duration::from_secs(2));
            return Err("the iperf3 server is not listening after 10 s".to_owned());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let secs_s = secs.to_string();
    let client = t.ns[from].exec(
        "iperf3",
        ["-c", ADDRS[to], "-p", &port_s, "-t", &secs_s, "-J"],
    );
    let out = output_timeout(client, Duration::from_secs(u64::from(secs) + 30));
    // The one-off server exits after its test; stop it anyway.
    if process::wait_timeout(&mut server, Duration::from_secs(5))
        .ok()
        .flatten()
        .is_none()
    {
        process::stop(&mut server, Duration::from_secs(2));
    }
    let out = out.map_err(|e| format!("iperf3 -c: {e}"))?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "iperf3 -J output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    if let Some(err) = json["error"].as_str() {
        return Err(format!("iperf3: {err}"));
    }
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or_else(|| format!("no end.sum_received.bits_per_second in {json}"))
}

//! An iperf3 TCP stream running in the background while a test breaks things, with what the
//! receiver saw every 100 ms.

use std::io::Read;
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::process;
use super::{ADDRS, Topology};

/// iperf3's shortest reporting interval.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// A running iperf3 test: the server sends (`-R`), the client receives and reports.
pub struct Iperf3 {
    /// Both processes until [`Iperf3::wait`] reaps them.
    procs: Option<(Child, Child)>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    secs: u32,
    /// When the client started.
    pub started: Instant,
}

/// What the receiver measured.
#[derive(Debug, Clone)]
pub struct Iperf3Report {
    /// Bytes received.
    pub bytes: u64,
    /// Average bits per second received.
    pub bits_per_second: f64,
    /// TCP retransmissions of the sender.
    pub retransmits: u64,
    /// Bytes received in each 100 ms interval, in order.
    pub intervals: Vec<u64>,
    /// When the client was started (its first interval begins a little later, once it has
    /// connected).
    pub started: Instant,
}

impl Iperf3Report {
    /// The longest run of intervals in which nothing arrived.
    pub fn longest_silence(&self) -> Duration {
        let (mut run, mut longest) = (0u32, 0u32);
        for b in &self.intervals {
            run = if *b == 0 { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        INTERVAL * longest
    }

    /// Bytes received in the intervals that certainly lie inside `from..until` (an interval's
    /// start is taken to be up to one interval after its nominal time, for the connection).
    pub fn bytes_between(&self, from: Instant, until: Instant) -> u64 {
        let (from, until) = (
            from.saturating_duration_since(self.started),
            until.saturating_duration_since(self.started),
        );
        self.intervals
            .iter()
            .enumerate()
            .filter(|(k, _)| {
                let begin = INTERVAL * *k as u32;
                begin >= from && begin + 2 * INTERVAL <= until
            })
            .map(|(_, b)| *b)
            .sum()
    }
}

impl Iperf3 {
    /// Streams TCP for `secs` from end `from` to end `to` (the client runs in `to`, with
    /// `-R`), at most `bitrate` (iperf3's `-b`, e.g. "200M"), using port `port`.
    pub fn start(
        t: &Topology,
        from: usize,
        to: usize,
        secs: u32,
        port: u16,
        bitrate: &str,
    ) -> Result<Self, String> {
        let port_s = port.to_string();
        let mut server = t.ns[from].exec("iperf3", ["-s", "-1", "-B", ADDRS[from], "-p", &port_s]);
        server.stdout(Stdio::null()).stderr(Stdio::null());
        let mut server = server.spawn().map_err(|e| format!("iperf3 -s: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !t.ns[from].listening(port) {
            if Instant::now() > deadline {
                process::stop(&mut server, Duration::from_secs(2));
                return Err("the iperf3 server is not listening after 10 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let secs_s = secs.to_string();
        let mut client = t.ns[to].exec(
            "iperf3",
            [
                "-c",
                ADDRS[from],
                "-p",
                &port_s,
                "-t",
                &secs_s,
                "-R",
                "-b",
                bitrate,
                "-i",
                "0.1",
                "-J",
            ],
        );
        client.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut client = match client.spawn() {
            Ok(c) => c,
            Err(e) => {
                process::stop(&mut server, Duration::from_secs(2));
                return Err(format!("iperf3 -c: {e}"));
            }
        };
        let mut out = client.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        Ok(Self {
            procs: Some((server, client)),
            stdout: Some(stdout),
            secs,
            started: Instant::now(),
        })
    }

    /// Waits for the test to end (its length plus 30 s at most) and parses the client's report.
    pub fn wait(mut self) -> Result<Iperf3Report, String> {
        let limit = Duration::from_secs(u64::from(self.secs) + 30);
        let (mut server, mut client) = self.procs.take().expect("not waited for yet");
        let status = process::wait_timeout(&mut client, limit).ok().flatten();
        if status.is_none() {
            process::stop(&mut client, Duration::from_secs(2));
        }
        // The one-off server exits after its test; stop it anyway.
        if process::wait_timeout(&mut server, Duration::from_secs(5))
            .ok()
            .flatten()
            .is_none()
        {
            process::stop(&mut server, Duration::from_secs(2));
        }
        let out = self
            .stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let status = status.ok_or_else(|| format!("iperf3 -c did not finish within {limit:?}"))?;
        let json: serde_json::Value = serde_json::from_slice(&out).map_err(|e| {
            format!(
                "iperf3 -J output is not JSON ({e}): {}",
                String::from_utf8_lossy(&out)
            )
        })?;
        if let Some(err) = json["error"].as_str() {
            return Err(format!("iperf3 ({status}): {err}"));
        }
        if !status.success() {
            return Err(format!("iperf3 -c exited with {status}"));
        }
        let end = &json["end"];
        let bytes = end["sum_received"]["bytes"]
            .as_u64()
            .ok_or_else(|| format!("no end.sum_received.bytes in {end}"))?;
        let intervals = json["intervals"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|i| i["sum"]["bytes"].as_u64().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Iperf3Report {
            bytes,
            bits_per_second: end["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap_or(0.0),
            retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
            intervals,
            started: self.started,
        })
    }
}

impl Drop for Iperf3 {
    fn drop(&mut self) {
        if let Some((mut server, mut client)) = self.procs.take() {
            process::stop(&mut client, Duration::from_secs(2));
            process::stop(&mut server, Duration::from_secs(2));
        }
    }
}

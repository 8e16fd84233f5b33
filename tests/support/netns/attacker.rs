//! The attack tools of `fcvpn-testkit` (`fabric-stranger`, `udp-flood`, `udp-relay`,
//! `udp-replay`) run as child processes inside a namespace, and the one-line summaries they
//! print (`tool key=value ...`) read back as numbers.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::Netns;
use super::process::{self, output_timeout, wait_timeout};

/// The testkit binary under test.
pub fn testkit() -> &'static str {
    env!("CARGO_BIN_EXE_fcvpn-testkit")
}

/// The summary line of a tool: its `key=value` fields.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The whole line.
    pub line: String,
    fields: HashMap<String, String>,
}

impl Summary {
    /// Parses the last line of `stdout` that starts with `tool`.
    pub fn parse(tool: &str, stdout: &str) -> Result<Self, String> {
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with(tool))
            .ok_or_else(|| format!("no {tool} summary in {stdout:?}"))?;
        let fields = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(Self {
            line: line.to_owned(),
            fields,
        })
    }

    /// Field `key` as a count (panics when missing: the tool's format changed).
    pub fn count(&self, key: &str) -> u64 {
        self.fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no count {key} in {:?}", self.line))
    }

    /// Field `key` as a number.
    pub fn number(&self, key: &str) -> f64 {
        self.fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no number {key} in {:?}", self.line))
    }
}

/// A running tool; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Attacker {
    tool: String,
    child: Option<Child>,
}

impl Attacker {
    /// Starts `fcvpn-testkit TOOL ARGS...` inside `ns`.
    pub fn start(ns: &Netns, tool: &str, args: &[String]) -> Self {
        let mut cmd = ns.exec(
            testkit(),
            std::iter::once(tool.to_owned()).chain(args.to_vec()),
        );
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {tool}: {e}"));
        Self {
            tool: tool.to_owned(),
            child: Some(child),
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Stops it with SIGTERM (it prints its summary and exits) and returns the summary.
    pub fn stop(mut self) -> Summary {
        let mut child = self.child.take().expect("running");
        process::signal(&child, Signal::SIGTERM);
        self.collect(&mut child)
    }

    /// Waits (up to 60 s) for it to end by itself and returns the summary.
    pub fn wait(mut self) -> Summary {
        let mut child = self.child.take().expect("running");
        self.collect(&mut child)
    }

    fn collect(&self, child: &mut Child) -> Summary {
        let status = wait_timeout(child, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{}: {e}", self.tool))
            .unwrap_or_else(|| {
                process::stop(child, Duration::from_secs(1));
                panic!("{} did not exit", self.tool)
            });
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        assert!(status.success(), "{} failed ({status}): {out}", self.tool);
        Summary::parse(&self.tool, &out).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            process::stop(child, Duration::from_secs(2));
        }
    }
}

/// Runs `fcvpn-testkit TOOL ARGS...` inside `ns` to its end (at most 60 s); returns its
/// standard output.
pub fn run(ns: &Netns, tool: &str, args: &[String]) -> String {
    let cmd = ns.exec(
        testkit(),
        std::iter::once(tool.to_owned()).chain(args.to_vec()),
    );
    let out =
        output_timeout(cmd, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

//! Two namespaces, a simulated fabric and the two fcvpn ends: the initiator in namespace A
//! (10.77.0.1) and the target in namespace B (10.77.0.2). Optionally ([`Options::ethernet`])
//! a veth pair joins the namespaces too (192.168.77.1 and .2, MTU 1500) and both ends use it
//! as their `[ethernet]` backup path.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use super::process::{self, output_timeout, wait_timeout};
use super::{Netns, TempDir, bin};

/// The initiator end's index (namespace A).
pub const INITIATOR: usize = 0;
/// The target end's index (namespace B).
pub const TARGET: usize = 1;
/// The tunnel addresses of the two ends.
pub const ADDRS: [&str; 2] = ["10.77.0.1", "10.77.0.2"];
const ROLES: [&str; 2] = ["initiator", "target"];
/// The addresses of the two ends on the veth pair of [`Options::ethernet`].
pub const ETH_ADDRS: [&str; 2] = ["192.168.77.1", "192.168.77.2"];
/// The UDP port both ends listen on for the Ethernet path.
pub const ETH_PORT: u16 = 51900;

/// How to build a [`Topology`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Arguments of `fcvpn fabric` (e.g. `["--drop", "0.05"]`).
    pub fabric_args: Vec<String>,
    /// Lines appended to the `[fc]` section of both configs (e.g. `"reads_in_flight = 8\n"`).
    pub fc_lines: String,
    /// Join the namespaces with a veth pair too, and give both ends an `[ethernet]` section:
    /// `listen` on their veth address, port [`ETH_PORT`], `endpoint` the other end's.
    pub ethernet: bool,
    /// Per end, an `ethernet.endpoint` to use instead of the other end's listen address (e.g.
    /// a relay the test runs).
    pub endpoints: [Option<SocketAddr>; 2],
    /// With [`Options::ethernet`]: leave out the `[fc]` section (an Ethernet-only link).
    pub ethernet_only: bool,
    /// Environment variables of both ends' `fcvpn up` (e.g. a test-only rekey interval).
    pub env: Vec<(String, String)>,
}

impl Options {
    /// The default topology with the Ethernet path.
    pub fn ethernet() -> Self {
        Self {
            ethernet: true,
            ..Self::default()
        }
    }
}

/// The `ethernet.listen` address of end `i` (with [`Options::ethernet`]).
pub fn eth_listen(i: usize) -> SocketAddr {
    SocketAddr::new(ETH_ADDRS[i].parse().expect("an address"), ETH_PORT)
}
/// How long a stopped process gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// Everything one test runs. Dropping it stops the processes, removes the control sockets of
/// its interfaces, deletes the namespaces and the directory (printing the logs first when the
/// test is panicking).
pub struct Topology {
    /// Interface names (also the control socket names).
    pub names: [String; 2],
    /// The `fcvpn up` configuration files.
    pub configs: [PathBuf; 2],
    /// Base64 public keys of the two ends.
    pub public_keys: [String; 2],
    /// The fabric's socket.
    pub socket: PathBuf,
    fabric_args: Vec<String>,
    env: Vec<(String, String)>,
    fabric: Option<Child>,
    ends: [Option<Child>; 2],
    /// Every log file written so far, in order.
    logs: Vec<PathBuf>,
    /// The namespaces (A, B), deleted after the processes are stopped.
    pub ns: [Netns; 2],
    /// Keys, configs, logs and the fabric socket.
    pub dir: TempDir,
}

impl Topology {
    /// Keys and configs for both ends, two namespaces, and a fabric started with
    /// `fabric_args` (e.g. `["--drop", "0.05"]`). The ends are not started.
    pub fn new(fabric_args: &[&str]) -> Self {
        Self::with_fc(fabric_args, "")
    }

    /// Like [`Topology::new`], with `fc_lines` (e.g. `"reads_in_flight = 8\n"`) appended to
    /// the `[fc]` section of both ends' configs.
    pub fn with_fc(fabric_args: &[&str], fc_lines: &str) -> Self {
        Self::with_options(Options {
            fabric_args: fabric_args.iter().map(|s| (*s).to_owned()).collect(),
            fc_lines: fc_lines.to_owned(),
            ..Options::default()
        })
    }

    /// The topology `opts` describes; the ends are not started.
    pub fn with_options(opts: Options) -> Self {
        Self::try_new(&opts).unwrap_or_else(|e| panic!("setting up the topology: {e}"))
    }

    fn try_new(opts: &Options) -> io::Result<Self> {
        let dir = TempDir::new()?;
        let ns = [Netns::new("a")?, Netns::new("b")?];
        if opts.ethernet {
            veth_pair(&ns)?;
        }
        let n = super::unique();
        let pid = std::process::id() % 100_000;
        let names = [format!("fcv{pid:05}-{n}a"), format!("fcv{pid:05}-{n}b")];
        let socket = dir.path().join("fabric.sock");
        let mut keys = Vec::new();
        for name in &names {
            let key = dir.path().join(format!("{name}.key"));
            let private = cli(&["genkey"], None)?;
            write_private(&key, &private)?;
            let public = cli(&["pubkey"], Some(&private))?;
            keys.push((key, public.trim().to_owned()));
        }
        let mut configs = Vec::new();
        for i in 0..2 {
            let path = dir.path().join(format!("{}.conf", names[i]));
            std::fs::write(
                &path,
                end_config(opts, &names[i], &keys[1 - i].1, i, &socket),
            )?;
            configs.push(path);
        }
        let mut topo = Self {
            names,
            configs: [configs[0].clone(), configs[1].clone()],
            public_keys: [keys[0].1.clone(), keys[1].1.clone()],
            socket,
            fabric_args: opts.fabric_args.clone(),
            env: opts.env.clone(),
            fabric: None,
            ends: [None, None],
            logs: Vec::new(),
            ns,
            dir,
        };
        topo.fabric_start()?;
        Ok(topo)
    }

    fn log_file(&mut self, what: &str) -> io::Result<File> {
        let path = self
            .dir
            .path()
            .join(format!("{}-{what}.log", self.logs.len()));
        let f = File::create(&path)?;
        self.logs.push(path);
        Ok(f)
    }

    fn fabric_start(&mut self) -> io::Result<()> {
        let log = self.log_file("fabric")?;
        let mut cmd = Command::new(bin());
        cmd.arg("fabric")
            .arg("--socket")
            .arg(&self.socket)
            .args(&self.fabric_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut child = cmd.spawn()?;
        // Ready once the socket accepts a connection (a stale socket file left by a killed
        // fabric refuses them; the new fabric replaces it).
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&self.socket).is_err() {
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!("the fabric exited: {status}")));
            }
            if Instant::now() > deadline {
                process::stop(&mut child, GRACE);
                return Err(io::Error::other("the fabric does not accept connections"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.fabric = Some(child);
        Ok(())
    }

    fn fabric_child(&self) -> &Child {
        self.fabric.as_ref().expect("the fabric is running")
    }

    /// SIGSTOP to the fabric (a frozen switch).
    pub fn fabric_stop(&self) {
        process::signal(self.fabric_child(), Signal::SIGSTOP);
    }

    /// SIGCONT to the fabric.
    pub fn fabric_cont(&self) {
        process::signal(self.fabric_child(), Signal::SIGCONT);
    }

    /// SIGKILL to the fabric; waits for it to die. Its socket file stays behind.
    pub fn fabric_kill(&mut self) {
        let mut child = self.fabric.take().expect("the fabric is running");
        process::signal(&child, Signal::SIGKILL);
        let _ = child.wait();
    }

    /// Starts a new fabric on the same socket path with the same options.
    pub fn fabric_restart(&mut self) {
        assert!(self.fabric.is_none(), "the fabric is still running");
        self.fabric_start()
            .unwrap_or_else(|e| panic!("restarting the fabric: {e}"));
    }

    /// Starts `fcvpn up` for end `i` inside its namespace.
    pub fn start_end(&mut self, i: usize) {
        self.start_end_under(i, &[]);
    }

    /// Starts `fcvpn up` for end `i` inside its namespace as the last arguments of `wrapper`
    /// (a program and its arguments that runs the rest, such as `setpriv ...`).
    pub fn start_end_under(&mut self, i: usize, wrapper: &[&str]) {
        assert!(self.ends[i].is_none(), "end {i} is already running");
        let log = self
            .log_file(&format!("{}-up", self.names[i]))
            .expect("log file");
        use std::ffi::OsStr;
        let up = [
            OsStr::new(bin()),
            OsStr::new("up"),
            self.configs[i].as_os_str(),
        ];
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let args = args.iter().map(OsStr::new).chain(up);
                self.ns[i].exec(program, args.collect::<Vec<&OsStr>>())
            }
            None => self.ns[i].exec(bin(), &up[1..]),
        };
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdout(Stdio::null()).stderr(log);
        self.ends[i] = Some(cmd.spawn().expect("starting fcvpn up"));
    }

    /// Whether end `i`'s process is running (started and not exited).
    pub fn end_running(&mut self, i: usize) -> bool {
        self.ends[i]
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The process id of end `i`.
    pub fn end_pid(&self, i: usize) -> Option<u32> {
        self.ends[i].as_ref().map(Child::id)
    }

    /// Sends `sig` to end `i` and waits (up to 10 s) for it to exit.
    pub fn kill_end(&mut self, i: usize, sig: Signal) -> ExitStatus {
        let mut child = self.ends[i].take().expect("end is running");
        process::signal(&child, sig);
        match wait_timeout(&mut child, Duration::from_secs(10)) {
            Ok(Some(status)) => status,
            _ => {
                self.ends[i] = Some(child);
                panic!("end {i} did not exit within 10 s of {sig:?}");
            }
        }
    }

    /// `fcvpn show NAME --json` for end `i`.
    pub fn show_json(&self, i: usize) -> Result<Value, String> {
        let mut cmd = Command::new(bin());
        cmd.args(["show", &self.names[i], "--json"])
            .stdin(Stdio::null());
        let out = output_timeout(cmd, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("show --json: {e}"))
    }

    /// `fcvpn show NAME` (the human-readable form) for end `i`.
    pub fn show_text(&self, i: usize) -> Result<String, String> {
        let mut cmd = Command::new(bin());
        cmd.args(["show", &self.names[i]]).stdin(Stdio::null());
        let out = output_timeout(cmd, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        String::from_utf8(out.stdout).map_err(|e| e.to_string())
    }

    /// Waits until both ends report carrier; returns how long that took.
    pub fn wait_carrier(&mut self, limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            let up = (0..2).all(|i| {
                self.show_json(i)
                    .is_ok_and(|s| s["carrier"].as_bool() == Some(true))
            });
            if up {
                return Ok(start.elapsed());
            }
            for i in 0..2 {
                if self.ends[i].is_some() && !self.end_running(i) {
                    return Err(format!("end {} ({}) exited", i, self.names[i]));
                }
            }
            if start.elapsed() > limit {
                let states: Vec<String> = (0..2)
                    .map(|i| match self.show_json(i) {
                        Ok(s) => format!("{}: carrier {}", self.names[i], s["carrier"]),
                        Err(e) => format!("{}: {e}", self.names[i]),
                    })
                    .collect();
                return Err(format!(
                    "no carrier on both ends within {limit:?}: {}",
                    states.join("; ")
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts both ends (target first) and waits for carrier; returns the time to carrier.
    pub fn up(&mut self) -> Duration {
        self.start_end(TARGET);
        self.start_end(INITIATOR);
        self.wait_carrier(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("bringing the link up: {e}"))
    }

    /// What end `i` (its latest run) logged so far.
    pub fn end_log(&self, i: usize) -> String {
        let suffix = format!("-{}-up.log", self.names[i]);
        self.logs
            .iter()
            .rev()
            .find(|p| p.to_string_lossy().ends_with(&suffix))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// The control socket path of end `i`.
    pub fn control_socket(&self, i: usize) -> PathBuf {
        Path::new("/run/fcvpn").join(format!("{}.sock", self.names[i]))
    }

    fn dump_logs(&self) {
        for log in &self.logs {
            eprintln!(
                "---- {} (last 40 lines)\n{}",
                log.display(),
                process::tail(log, 40)
            );
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for child in self.ends.iter_mut().flatten() {
            process::stop(child, GRACE);
        }
        if let Some(child) = self.fabric.as_mut() {
            process::stop(child, GRACE);
        }
        for i in 0..2 {
            let _ = std::fs::remove_file(self.control_socket(i));
        }
        if std::thread::panicking() {
            self.dump_logs();
        }
    }
}

/// Runs `fcvpn ARGS` with `input` on standard input; returns its standard output.
fn cli(args: &[&str], input: Option<&str>) -> io::Result<String> {
    use std::io::Write;
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    if let Some(text) = input {
        stdin.write_all(text.as_bytes())?;
    }
    drop(stdin);
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("fcvpn {args:?}: {}", out.status)));
    }
    String::from_utf8(out.stdout).map_err(io::Error::other)
}

/// Writes a private key file with mode 0600.
pub fn write_private(path: &Path, key: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(key.as_bytes())
}

/// Joins namespaces A and B with a veth pair: [`ETH_ADDRS`], MTU 1500, up.
fn veth_pair(ns: &[Netns; 2]) -> io::Result<()> {
    use super::ns::ip;
    let tag = format!("fve{:05}{}", std::process::id() % 100_000, super::unique());
    let ends = [format!("{tag}a"), format!("{tag}b")];
    ip(&[
        "link", "add", &ends[0], "type", "veth", "peer", "name", &ends[1],
    ])?;
    for i in 0..2 {
        let dev = ends[i].as_str();
        if let Err(e) = ip(&["link", "set", dev, "netns", ns[i].name()]) {
            let _ = ip(&["link", "del", &ends[0]]);
            return Err(e);
        }
        let addr = format!("{}/24", ETH_ADDRS[i]);
        ip(&["-n", ns[i].name(), "addr", "add", &addr, "dev", dev])?;
        ip(&["-n", ns[i].name(), "link", "set", dev, "mtu", "1500", "up"])?;
    }
    Ok(())
}

/// The configuration of end `i` (`name`, pinned to `peer_public`).
fn end_config(opts: &Options, name: &str, peer_public: &str, i: usize, socket: &Path) -> String {
    let text = config_text(
        name,
        &format!("{name}.key"),
        ADDRS[i],
        peer_public,
        ROLES[i],
        socket,
    );
    if opts.ethernet && opts.ethernet_only {
        let fc = text.find("\n[fc]\n").map_or(text.len(), |at| at + 1);
        return text[..fc].to_owned() + &ethernet_section(opts, i);
    }
    text + &opts.fc_lines + &ethernet_section(opts, i)
}

/// The `[ethernet]` section of end `i`, or nothing.
fn ethernet_section(opts: &Options, i: usize) -> String {
    if !opts.ethernet {
        return String::new();
    }
    let endpoint = opts.endpoints[i].unwrap_or_else(|| eth_listen(1 - i));
    format!(
        "\n[ethernet]\nlisten = \"{}\"\nendpoint = \"{endpoint}\"\n",
        eth_listen(i)
    )
}

/// A `peer.conf` (the format `src/demo.rs` writes).
pub fn config_text(
    name: &str,
    key_file: &str,
    addr: &str,
    peer_public: &str,
    role: &str,
    socket: &Path,
) -> String {
    format!(
        "[interface]\nname = \"{name}\"\nprivate_key_file = \"{key_file}\"\naddress = [\"{addr}/24\"]\n\n\
         [peer]\npublic_key = \"{peer_public}\"\n\n\
         [fc]\nrole = \"{role}\"\nbackend = \"sim\"\nfabric = \"{}\"\n",
        socket.display()
    )
}

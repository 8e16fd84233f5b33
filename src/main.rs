//! The `fcvpn` command line.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fcvpn::config::Config;
use fcvpn::control;
use fcvpn::crypto::PrivateKey;
use fcvpn::fabric::FabricOptions;

/// fcvpn: an authenticated, encrypted, reliable IP link over Fibre Channel SCSI.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a new base64 X25519 private key (run under `umask 077`).
    Genkey,
    /// Read a base64 private key on standard input, print its public key.
    Pubkey,
    /// Bring a link up and run it in the foreground (SIGINT/SIGTERM tear it down).
    Up {
        /// The link's configuration file.
        config: PathBuf,
        /// Print the LIO configuration a TCMU target creates (configfs shell commands), and
        /// exit without touching anything.
        #[arg(long)]
        print_lio: bool,
    },
    /// Show the state of running links.
    Show {
        /// A link name (default: every running link).
        name: Option<String>,
        /// Print one JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a configuration file; print file:line: key: reason and fail if it is invalid.
    Check {
        /// The configuration file.
        config: PathBuf,
    },
    /// Run the simulated FC fabric (the switch) on a Unix socket.
    Fabric {
        /// Where ports connect.
        #[arg(long)]
        socket: PathBuf,
        /// Probability that a command or a completion is lost.
        #[arg(long, default_value_t = 0.0)]
        drop: f64,
        /// Probability that a command fails with a transport error.
        #[arg(long, default_value_t = 0.0)]
        error: f64,
        /// Latency added to every command and completion, in microseconds.
        #[arg(long, default_value_t = 0)]
        delay_us: u64,
        /// Seed of the fault generator (repeatable runs).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Two network namespaces, a fabric and both ends: handshake, ping and throughput.
    Demo,
    /// Raw SG_IO WRITE(16)/READ(16) loop against an sg device, printing MB/s (VM benchmarks).
    #[command(hide = true)]
    SgBench {
        /// The sg device, e.g. /dev/sg1.
        #[arg(long)]
        device: PathBuf,
        /// Bytes per command (rounded up to 512-byte blocks).
        #[arg(long, default_value_t = 1048576)]
        size: usize,
        /// How long to run.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// The LBA field, in hex (a raw LIO LUN ignores it).
        #[arg(long, default_value = "0")]
        tag: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own report; its in-process fabric logs only warnings.
    init_logging(if matches!(cli.command, Command::Demo) {
        "warn"
    } else {
        "info"
    });
    let result = match cli.command {
        Command::Genkey => genkey(),
        Command::Pubkey => pubkey(),
        Command::Up {
            config,
            print_lio: true,
        } => print_lio(&config),
        Command::Up { config, .. } => fcvpn::daemon::up(&config).map_err(|e| e.to_string()),
        Command::Show { name, json } => show(name.as_deref(), json),
        Command::Check { config } => check(&config),
        Command::Fabric {
            socket,
            drop,
            error,
            delay_us,
            seed,
        } => fabric(FabricOptions {
            socket,
            drop,
            error,
            delay: Duration::from_micros(delay_us),
            seed,
        }),
        Command::Demo => fcvpn::demo::run().map_err(|e| e.to_string()),
        Command::SgBench {
            device,
            size,
            seconds,
            tag,
        } => sg_bench(&device, size, seconds, &tag),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fcvpn: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error; `FCVPN_LOG` (e.g. `debug`) sets the level, `default` otherwise.
fn init_logging(default: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("FCVPN_LOG").unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn genkey() -> Result<(), String> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let key = PrivateKey::from_bytes(*seed);
    let text = key.to_base64();
    writeln!(std::io::stdout(), "{}", text.as_str()).map_err(|e| format!("writing the key: {e}"))
}

fn pubkey() -> Result<(), String> {
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .take(1024)
        .read_to_string(&mut text)
        .map_err(|e| format!("reading the private key from standard input: {e}"))?;
    let key = PrivateKey::from_base64(&text).map_err(|e| format!("standard input: {e}"))?;
    writeln!(std::io::stdout(), "{}", key.public_key().to_base64())
        .map_err(|e| format!("writing the key: {e}"))
}

fn check(path: &std::path::Path) -> Result<(), String> {
    let cfg = Config::load(path).map_err(|e| e.to_string())?;
    let over = match (&cfg.fc, &cfg.ethernet) {
        (Some(fc), Some(_)) => format!("{:?} over {:?}, Ethernet backup", fc.role, fc.backend),
        (Some(fc), None) => format!("{:?} over {:?}", fc.role, fc.backend),
        (None, _) => "Ethernet (UDP) only".to_owned(),
    };
    println!(
        "{}: ok: link {} ({over})",
        path.display(),
        cfg.interface.name
    );
    Ok(())
}

fn print_lio(path: &std::path::Path) -> Result<(), String> {
    use fcvpn::transport::lio::{LioPaths, LioSpec, script};
    let cfg = Config::load(path).map_err(|e| e.to_string())?;
    let spec = LioSpec::from_config(&cfg).ok_or_else(|| {
        format!(
            "{}: fc.backend is not \"tcmu\": --print-lio shows the LIO configuration of a TCMU target",
            path.display()
        )
    })?;
    print!("{}", script(&spec, &LioPaths::system()));
    Ok(())
}

fn show(name: Option<&str>, json: bool) -> Result<(), String> {
    let sockets = match name {
        Some(n) => vec![control::socket_path(n)],
        None => control::all_sockets(),
    };
    let mut shown = 0;
    for path in sockets {
        match control::query(&path) {
            Ok(status) if json => {
                println!(
                    "{}",
                    serde_json::to_string(&status).map_err(|e| e.to_string())?
                );
                shown += 1;
            }
            Ok(status) => {
                print!("{}", status.render());
                shown += 1;
            }
            Err(e) if name.is_some() => {
                return Err(format!("{}: {e} (is the link up?)", path.display()));
            }
            Err(_) => {} // Not a link's socket, or a stale one.
        }
    }
    if shown == 0 && name.is_none() && !json {
        println!("no links are up");
    }
    Ok(())
}

fn fabric(opts: FabricOptions) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("signal setup: {e}"))?;
    }
    let stats = fcvpn::fabric::run(opts, &stop).map_err(|e| e.to_string())?;
    eprintln!("fcvpn fabric: stopped: {stats:?}");
    Ok(())
}

fn sg_bench(device: &std::path::Path, size: usize, seconds: f64, tag: &str) -> Result<(), String> {
    let tag = u64::from_str_radix(tag.trim_start_matches("0x"), 16)
        .map_err(|e| format!("--tag {tag}: {e} (expected hex)"))?;
    let r = fcvpn::transport::sg::raw_loop(device, size, seconds, tag)
        .map_err(|e| format!("sg-bench: {e}"))?;
    println!(
        "sg-bench {}: {size}-byte WRITE(16)/READ(16) pairs: {} pairs, {} bytes in {:.2} s: \
         {:.1} MB/s, {:.0} us per pair (MBps={:.3} us_per_pair={:.0})",
        device.display(),
        r.pairs,
        r.bytes,
        r.seconds,
        r.megabytes_per_second(),
        r.micros_per_pair(),
        r.megabytes_per_second(),
        r.micros_per_pair()
    );
    Ok(())
}

//! The `fcvpn` command line.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fcvpn::crypto::PrivateKey;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Genkey => genkey(),
        Command::Pubkey => pubkey(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fcvpn: {e}");
            ExitCode::FAILURE
        }
    }
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

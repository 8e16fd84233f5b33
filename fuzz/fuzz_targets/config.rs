//! The config parser: any text gives a `Config` or an error, never a panic; an error about a
//! key or the TOML syntax names a line within the text.
//! API: `config::Config::parse`, `ConfigError::{line, key}`.
#![no_main]

use std::path::Path;

use fcvpn::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("fuzz.conf")) {
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
            if e.key().is_some() {
                let line = e.line().expect("an error about a key names a line");
                assert!(
                    line >= 1 && line <= text.lines().count().max(1) + 1,
                    "line {line}"
                );
            }
        }
    }
});

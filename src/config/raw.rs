//! The file as TOML says it, before any check: every key optional and spanned, unknown keys and
//! sections refused by serde. `super` turns this into a [`super::Config`].

use serde::{Deserialize, Deserializer};
use toml::Spanned;
use zeroize::Zeroizing;

/// A spanned optional value, the type of every key.
pub(super) type Opt<T> = Option<Spanned<T>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub interface: Opt<RawInterface>,
    pub peer: Opt<RawPeer>,
    pub fc: Opt<RawFc>,
    pub ethernet: Opt<RawEthernet>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEthernet {
    pub listen: Opt<String>,
    pub endpoint: Opt<String>,
    pub max_datagram: Opt<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInterface {
    pub name: Opt<String>,
    pub private_key_file: Opt<String>,
    pub private_key: Opt<Secret>,
    pub address: Opt<Vec<Spanned<String>>>,
    pub mtu: Opt<i64>,
    pub mode: Opt<String>,
    pub compression: Opt<String>,
    pub padding: Opt<String>,
    pub max_frame_age_ms: Opt<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub public_key: Opt<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFc {
    pub role: Opt<String>,
    pub backend: Opt<String>,
    pub fabric: Opt<String>,
    pub fabric_module: Opt<String>,
    pub allowed_initiators: Opt<Vec<Spanned<String>>>,
    pub device: Opt<String>,
    pub port: Opt<String>,
    pub read_hold_ms: Opt<i64>,
    pub reads_in_flight: Opt<i64>,
    pub writes_in_flight: Opt<i64>,
    pub max_transfer: Opt<i64>,
    pub command_timeout_ms: Opt<i64>,
    pub probe_interval_ms: Opt<i64>,
    pub dead_after_ms: Opt<i64>,
}

/// A string wiped from memory when dropped: an inline `private_key`.
pub(super) struct Secret(pub Zeroizing<String>);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(Zeroizing::new(s)))
    }
}

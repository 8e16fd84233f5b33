//! Interface addresses in CIDR notation (`10.77.0.1/24`, `fd77::1/64`).

use core::fmt;
use core::str::FromStr;
use std::net::IpAddr;

/// An interface address with its prefix length, as `ip addr add` takes it. Host bits may be
/// set (that is the usual case: the address of this end inside its network), and a network
/// address without host bits is accepted as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length: at most 32 for IPv4, 128 for IPv6.
    pub prefix: u8,
}

impl IpNet {
    /// `addr/prefix`, or `None` when the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        (prefix <= max_prefix(addr)).then_some(Self { addr, prefix })
    }
}

/// 32 for IPv4, 128 for IPv6.
fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a string is not an [`IpNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    /// No `/` and prefix length.
    #[error("missing /prefix length")]
    MissingPrefix,
    /// The part before `/` is not an IPv4 or IPv6 address.
    #[error("not an IP address")]
    BadAddress,
    /// The part after `/` is not a decimal number.
    #[error("prefix length is not a number")]
    BadPrefix,
    /// The prefix is longer than the address.
    #[error("prefix longer than {max}")]
    PrefixTooLong {
        /// 32 or 128.
        max: u8,
    },
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, IpNetError> {
        let (addr, prefix) = s.split_once('/').ok_or(IpNetError::MissingPrefix)?;
        let addr: IpAddr = addr.parse().map_err(|_| IpNetError::BadAddress)?;
        // Digits only: u8's parser would also take a sign.
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IpNetError::BadPrefix);
        }
        let prefix: u16 = prefix.parse().map_err(|_| IpNetError::BadPrefix)?;
        let max = max_prefix(addr);
        u8::try_from(prefix)
            .ok()
            .and_then(|prefix| Self::new(addr, prefix))
            .ok_or(IpNetError::PrefixTooLong { max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for s in [
            "10.77.0.1/24",
            "10.77.0.0/24",
            "0.0.0.0/0",
            "10.0.0.1/32",
            "fd77::1/64",
            "::/0",
            "fe80::1/128",
            "::ffff:10.0.0.1/96",
        ] {
            let net: IpNet = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(net.to_string(), s);
        }
        let net: IpNet = "FD77::0001/64".parse().unwrap();
        assert_eq!(net.to_string(), "fd77::1/64");
        assert_eq!(net.prefix, 64);
    }

    #[test]
    fn refuses_bad_ones() {
        let cases: &[(&str, IpNetError)] = &[
            ("10.77.0.1", IpNetError::MissingPrefix),
            ("fd77::1", IpNetError::MissingPrefix),
            ("10.77.0.1/33", IpNetError::PrefixTooLong { max: 32 }),
            ("10.77.0.1/256", IpNetError::PrefixTooLong { max: 32 }),
            ("fd77::1/129", IpNetError::PrefixTooLong { max: 128 }),
            ("10.77.0.1/", IpNetError::BadPrefix),
            ("10.77.0.1/+8", IpNetError::BadPrefix),
            ("10.77.0.1/-8", IpNetError::BadPrefix),
            ("10.77.0.1/8/8", IpNetError::BadPrefix),
            ("10.77.0.1/1000", IpNetError::BadPrefix),
            ("10.77.0.1/ 8", IpNetError::BadPrefix),
            ("10.77.0/24", IpNetError::BadAddress),
            ("10.77.0.256/24", IpNetError::BadAddress),
            ("host/24", IpNetError::BadAddress),
            ("fe80::1%eth0/64", IpNetError::BadAddress),
            ("/24", IpNetError::BadAddress),
            ("", IpNetError::MissingPrefix),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<IpNet>(), Err(*want), "{s}");
        }
        assert_eq!(
            IpNetError::PrefixTooLong { max: 32 }.to_string(),
            "prefix longer than 32"
        );
    }

    #[test]
    fn new_checks_the_prefix() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd77::1".parse().unwrap();
        assert!(IpNet::new(v4, 32).is_some());
        assert!(IpNet::new(v4, 33).is_none());
        assert!(IpNet::new(v6, 128).is_some());
        assert!(IpNet::new(v6, 129).is_none());
    }
}

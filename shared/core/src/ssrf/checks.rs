//! The checks: [`check_url`] before any DNS, [`check_ip`] on every address
//! connected to, [`check_registration`] for both at once, under an
//! [`SsrfPolicy`] and its allow-list of [`IpNet`] blocks.

use super::ranges::{Blocked, classify};
use crate::endpoint::EndpointUrl;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use url::Host;

/// A CIDR block such as `10.0.0.0/8` or `::1/128`, stored as its network
/// address (host bits cleared). An [`ipnet::IpNet`] with the parsing an
/// allow-list entry needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet(ipnet::IpNet);

/// Why a CIDR block could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    /// The text (given) is neither an address nor a block.
    #[error("`{0}` is not an IP address or CIDR block (expected e.g. `10.0.0.0/8`, `127.0.0.1` or `::1/128`)")]
    Address(String),
    /// The block's (given) prefix length is too long for its family.
    #[error("`{0}` has an invalid prefix length (0-32 for IPv4, 0-128 for IPv6)")]
    Prefix(String),
}

impl IpNet {
    /// The block of `prefix` leading bits of `addr`; host bits are cleared, so
    /// `127.0.0.1/8` is `127.0.0.0/8`.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, IpNetError> {
        ipnet::IpNet::new(addr, prefix)
            .map(|net| Self(net.trunc()))
            .map_err(|_| IpNetError::Prefix(format!("{addr}/{prefix}")))
    }

    /// The block holding exactly `addr` (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        Self(ipnet::IpNet::from(addr))
    }

    /// Parses `10.0.0.0/8`, `::1/128`, or a bare address (`127.0.0.1`,
    /// `::1`) meaning that one address. Surrounding whitespace is ignored.
    /// Addresses use std's strict syntax: no octal or hex IPv4 parts.
    pub fn parse(s: &str) -> Result<Self, IpNetError> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| IpNetError::Address(s.to_owned()))?;
        match prefix {
            None => Ok(Self::host(addr)),
            Some(p) => {
                let prefix = if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) {
                    p.parse::<u8>().map_err(|_| IpNetError::Prefix(s.to_owned()))?
                } else {
                    return Err(IpNetError::Prefix(s.to_owned()));
                };
                Self::new(addr, prefix).map_err(|_| IpNetError::Prefix(s.to_owned()))
            }
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.0.network()
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `ip` is inside this block. Blocks match their own family only.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;
    fn from_str(s: &str) -> Result<Self, IpNetError> {
        Self::parse(s)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which URLs and addresses may be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrfPolicy {
    /// Whether plain `http` URLs are allowed (local mode and tests only).
    pub allow_http: bool,
    /// Blocks allowed whatever their range (tests and local mode), e.g.
    /// `127.0.0.0/8` and `::1` for receivers on loopback.
    pub allow: Vec<IpNet>,
}

impl Default for SsrfPolicy {
    fn default() -> Self {
        Self::strict()
    }
}

impl SsrfPolicy {
    /// `https` only, global addresses only: the production policy.
    pub fn strict() -> Self {
        Self {
            allow_http: false,
            allow: Vec::new(),
        }
    }

    /// Parses a comma-separated allow-list such as the value of
    /// `SSRF_ALLOW_LIST="127.0.0.0/8,::1"`. Whitespace around entries and
    /// empty entries are ignored, so an empty string is an empty list.
    pub fn parse_allow_list(s: &str) -> Result<Vec<IpNet>, IpNetError> {
        s.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(IpNet::parse)
            .collect()
    }

    /// Whether `ip` is inside one of the allow-listed blocks.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(ip))
    }
}

/// Why a URL or an address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    /// The policy wants https and the URL is plain http.
    #[error("https is required")]
    HttpsRequired,
    /// The host is, or resolves to, an address in a blocked range.
    #[error("the host resolves to {reason} ({ip})")]
    Address {
        /// The address refused.
        ip: IpAddr,
        /// The range it falls in.
        reason: Blocked,
    },
    /// The host is `localhost` or a name under it.
    #[error("the host `{host}` is a local name")]
    LocalName {
        /// The host as the URL names it.
        host: String,
    },
    /// The URL names no host.
    #[error("the URL has no host")]
    NoHost,
}

impl SsrfError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::HttpsRequired => "https_required",
            Self::Address { .. } => "blocked_address",
            Self::LocalName { .. } => "local_host_name",
            Self::NoHost => "no_host",
        }
    }
}

/// Whether Switchyard may connect to `ip`: allowed if it is inside the
/// policy's allow-list, otherwise if it is globally reachable.
pub fn check_ip(ip: IpAddr, policy: &SsrfPolicy) -> Result<(), SsrfError> {
    if policy.allows(ip) {
        return Ok(());
    }
    classify(ip).map_err(|reason| SsrfError::Address { ip, reason })
}

/// Whether `name` is `localhost` or a name under it (RFC 6761), which
/// resolvers answer with loopback without asking DNS. Trailing dots and case
/// are ignored.
fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether an endpoint URL may be registered or called, before any DNS:
///
/// - the scheme must be `https`, unless the policy allows `http`;
/// - an IP-literal host must pass [`check_ip`] (the url crate has already
///   normalised decimal, hex, octal and shortened IPv4 forms to an address);
/// - `localhost` and `*.localhost` (with or without a trailing dot) are
///   refused unless the allow-list allows `127.0.0.1`;
/// - any other domain name passes: its addresses are checked with
///   [`check_ip`] at connect time, when they are the ones connected to.
pub fn check_url(url: &EndpointUrl, policy: &SsrfPolicy) -> Result<(), SsrfError> {
    let url = url.url();
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err(SsrfError::HttpsRequired),
    }
    match url.host() {
        Some(Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip), policy),
        Some(Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip), policy),
        Some(Host::Domain(name)) => {
            if is_localhost_name(name) && !policy.allows(IpAddr::V4(Ipv4Addr::LOCALHOST)) {
                Err(SsrfError::LocalName { host: name.to_owned() })
            } else {
                Ok(())
            }
        }
        // EndpointUrl guarantees a host; refuse rather than guess.
        None => Err(SsrfError::NoHost),
    }
}

/// Whether an endpoint may be registered: [`check_url`], and every address
/// its host resolves to now must pass [`check_ip`] (at registration all
/// must; at connect time the disallowed ones are simply never used).
/// `resolved` is empty for an IP-literal host.
pub fn check_registration(url: &EndpointUrl, resolved: &[IpAddr], policy: &SsrfPolicy) -> Result<(), SsrfError> {
    check_url(url, policy)?;
    resolved.iter().try_for_each(|ip| check_ip(*ip, policy))
}

#[cfg(test)]
mod tests;

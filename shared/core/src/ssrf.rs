//! The SSRF guard: which endpoint URLs and which addresses Switchyard may
//! call.
//!
//! A webhook URL is chosen by a tenant, so without a guard a tenant could
//! make Switchyard call into its own network: the instance metadata service
//! (`169.254.169.254`), loopback services, private subnets. The guard runs
//! twice:
//!
//! 1. [`check_url`] when an endpoint is registered and again before each
//!    attempt: the scheme must be `https` (unless the policy allows `http`),
//!    an IP-literal host must be a global address, and `localhost` names are
//!    refused. Other domain names pass here.
//! 2. [`check_ip`] at connect time, on every address a domain name resolves
//!    to. The HTTP client connects only to the addresses that pass, so the
//!    address checked is the address connected to and DNS rebinding (a name
//!    that resolves to a public address at registration and to a private one
//!    later) fails.
//!
//! # What is refused
//!
//! [`classify`] refuses every address that is not globally reachable unicast;
//! [`Blocked`] names the range. Addresses that embed an IPv4 address:
//!
//! - IPv4-mapped (`::ffff:0:0/96`) and IPv4-compatible (`::/96`) addresses are
//!   always refused, whatever they embed: a resolver never needs to return
//!   them, and on a dual-stack socket they reach the embedded IPv4 address.
//! - NAT64 with the well-known prefix (`64:ff9b::/96`) is classified by the
//!   embedded IPv4 address: allowed when it is global, refused as
//!   [`Blocked::Nat64`] otherwise. IPv6-only networks with DNS64 (such as
//!   IPv6-only AWS subnets) reach every IPv4-only endpoint this way.
//!   Local-use NAT64 prefixes (`64:ff9b:1::/48`) embed addresses in an
//!   operator-defined way and are always refused.
//! - 6to4 (`2002::/16`) and Teredo (`2001::/32`) are deprecated transition
//!   mechanisms relayed through third parties; they are always refused.
//!
//! The allow-list ([`SsrfPolicy::allow`]) exists for tests and local mode: an
//! address inside one of its blocks is allowed whatever its range. Blocks
//! match their own address family only: `127.0.0.0/8` does not allow
//! `::ffff:127.0.0.1`.

use crate::endpoint::EndpointUrl;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use url::Host;

/// A CIDR block such as `10.0.0.0/8` or `::1/128`, stored as its network
/// address (host bits cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR block could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    #[error("`{0}` is not an IP address or CIDR block (expected e.g. `10.0.0.0/8`, `127.0.0.1` or `::1/128`)")]
    Address(String),
    #[error("`{0}` has an invalid prefix length (0-32 for IPv4, 0-128 for IPv6)")]
    Prefix(String),
}

impl IpNet {
    /// The block of `prefix` leading bits of `addr`; host bits are cleared, so
    /// `127.0.0.1/8` is `127.0.0.0/8`.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, IpNetError> {
        let addr = match addr {
            IpAddr::V4(a) if prefix <= 32 => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) if prefix <= 128 => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
            _ => return Err(IpNetError::Prefix(format!("{addr}/{prefix}"))),
        };
        Ok(Self { addr, prefix })
    }

    /// The block holding exactly `addr` (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
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
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside this block. Blocks match their own family only.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => u32::from(ip) & mask32(self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => u128::from(ip) & mask128(self.prefix) == u128::from(net),
            _ => false,
        }
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
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The mask of the `prefix` leading bits of an IPv4 address.
fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0)
}

/// The mask of the `prefix` leading bits of an IPv6 address.
fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0)
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

/// Why an address is not globally reachable, and so refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blocked {
    /// `0.0.0.0/8` ("this network"), `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`.
    Private,
    /// `169.254.0.0/16` (including the `169.254.169.254` metadata service),
    /// `fe80::/10`.
    LinkLocal,
    /// Shared address space for carrier-grade NAT, `100.64.0.0/10`.
    Cgnat,
    /// `fc00::/7` (including the `fd00:ec2::254` metadata service).
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `240.0.0.0/4`, the deprecated 6to4 relay anycast `192.88.99.0/24`, and
    /// IPv6 outside the global unicast space `2000::/3` not named otherwise.
    Reserved,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`,
    /// `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// IETF protocol assignments: `192.0.0.0/24`, `2001::/23`.
    ProtocolAssignment,
    /// `::ffff:0:0/96`, whatever IPv4 address it embeds.
    Ipv4Mapped,
    /// `::/96` (deprecated), whatever IPv4 address it embeds.
    Ipv4Compatible,
    /// `64:ff9b::/96` embedding a non-global IPv4 address, or any address
    /// in the local-use prefix `64:ff9b:1::/48`.
    Nat64,
    /// `2002::/16`.
    SixToFour,
    /// `2001::/32`.
    Teredo,
    /// `fec0::/10` (deprecated).
    SiteLocal,
    /// The discard-only prefix `100::/64`.
    Discard,
}

impl Blocked {
    /// A stable machine-readable name.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link_local",
            Self::Cgnat => "cgnat",
            Self::UniqueLocal => "unique_local",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::ProtocolAssignment => "protocol_assignment",
            Self::Ipv4Mapped => "ipv4_mapped",
            Self::Ipv4Compatible => "ipv4_compatible",
            Self::Nat64 => "nat64",
            Self::SixToFour => "6to4",
            Self::Teredo => "teredo",
            Self::SiteLocal => "site_local",
            Self::Discard => "discard",
        }
    }
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "an unspecified address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::LinkLocal => "a link-local address",
            Self::Cgnat => "a carrier-grade NAT (shared) address",
            Self::UniqueLocal => "a unique-local address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Reserved => "a reserved address",
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::ProtocolAssignment => "an IETF protocol assignment address",
            Self::Ipv4Mapped => "an IPv4-mapped IPv6 address",
            Self::Ipv4Compatible => "an IPv4-compatible IPv6 address",
            Self::Nat64 => "a NAT64 address of a non-global IPv4 address",
            Self::SixToFour => "a 6to4 address",
            Self::Teredo => "a Teredo address",
            Self::SiteLocal => "a site-local address",
            Self::Discard => "a discard-only address",
        })
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

/// Non-global IPv4 ranges, most specific first.
const V4_RANGES: &[(u32, u8, Blocked)] = &[
    (v4(0, 0, 0, 0), 8, Blocked::Unspecified),
    (v4(127, 0, 0, 0), 8, Blocked::Loopback),
    (v4(10, 0, 0, 0), 8, Blocked::Private),
    (v4(172, 16, 0, 0), 12, Blocked::Private),
    (v4(192, 168, 0, 0), 16, Blocked::Private),
    (v4(169, 254, 0, 0), 16, Blocked::LinkLocal),
    (v4(100, 64, 0, 0), 10, Blocked::Cgnat),
    (v4(192, 0, 0, 0), 24, Blocked::ProtocolAssignment),
    (v4(192, 0, 2, 0), 24, Blocked::Documentation),
    (v4(198, 51, 100, 0), 24, Blocked::Documentation),
    (v4(203, 0, 113, 0), 24, Blocked::Documentation),
    (v4(198, 18, 0, 0), 15, Blocked::Benchmarking),
    (v4(192, 88, 99, 0), 24, Blocked::Reserved),
    (v4(224, 0, 0, 0), 4, Blocked::Multicast),
    (v4(255, 255, 255, 255), 32, Blocked::Broadcast),
    (v4(240, 0, 0, 0), 4, Blocked::Reserved),
];

const fn v6(segments: [u16; 8]) -> u128 {
    let mut n = 0u128;
    let mut i = 0;
    while i < 8 {
        n = (n << 16) | segments[i] as u128;
        i += 1;
    }
    n
}

/// The NAT64 well-known prefix `64:ff9b::/96`, classified by its embedded
/// IPv4 address.
const NAT64_WKP: u128 = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]);

/// Non-global IPv6 ranges, most specific first. Whatever is not listed here
/// and lies outside `2000::/3` (and the NAT64 well-known prefix) is
/// [`Blocked::Reserved`].
const V6_RANGES: &[(u128, u8, Blocked)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0]), 128, Blocked::Unspecified),
    (v6([0, 0, 0, 0, 0, 0, 0, 1]), 128, Blocked::Loopback),
    (v6([0, 0, 0, 0, 0, 0xffff, 0, 0]), 96, Blocked::Ipv4Mapped),
    (v6([0, 0, 0, 0, 0, 0, 0, 0]), 96, Blocked::Ipv4Compatible),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]), 48, Blocked::Nat64),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0]), 64, Blocked::Discard),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32, Blocked::Teredo),
    (v6([0x2001, 2, 0, 0, 0, 0, 0, 0]), 48, Blocked::Benchmarking),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 23, Blocked::ProtocolAssignment),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]), 32, Blocked::Documentation),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0]), 20, Blocked::Documentation),
    (v6([0x2002, 0, 0, 0, 0, 0, 0, 0]), 16, Blocked::SixToFour),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7, Blocked::UniqueLocal),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10, Blocked::LinkLocal),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]), 10, Blocked::SiteLocal),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8, Blocked::Multicast),
];

fn classify_v4(ip: Ipv4Addr) -> Result<(), Blocked> {
    let n = u32::from(ip);
    match V4_RANGES.iter().find(|(net, prefix, _)| n & mask32(*prefix) == *net) {
        Some((_, _, blocked)) => Err(*blocked),
        None => Ok(()),
    }
}

fn classify_v6(ip: Ipv6Addr) -> Result<(), Blocked> {
    let n = u128::from(ip);
    if let Some((_, _, blocked)) = V6_RANGES.iter().find(|(net, prefix, _)| n & mask128(*prefix) == *net) {
        return Err(*blocked);
    }
    if n & mask128(96) == NAT64_WKP {
        // The low 32 bits are the IPv4 address (RFC 6052 section 2.2).
        return classify_v4(Ipv4Addr::from(n as u32)).map_err(|_| Blocked::Nat64);
    }
    // Global unicast is allocated from 2000::/3 only.
    if n >> 125 != 0b001 {
        return Err(Blocked::Reserved);
    }
    Ok(())
}

/// Whether `ip` is a globally reachable unicast address; if not, which kind
/// of address it is. The allow-list is not consulted (see [`check_ip`]).
pub fn classify(ip: IpAddr) -> Result<(), Blocked> {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

/// Why a URL or an address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    #[error("https is required")]
    HttpsRequired,
    #[error("the host resolves to {reason} ({ip})")]
    Address { ip: IpAddr, reason: Blocked },
    #[error("the host `{host}` is a local name")]
    LocalName { host: String },
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
mod tests {
    use super::*;

    #[test]
    fn registration_refuses_a_name_with_any_forbidden_address() {
        let policy = SsrfPolicy::strict();
        let u = EndpointUrl::parse("https://hooks.example.com/x").unwrap();
        assert_eq!(
            check_registration(&u, &["93.184.216.34".parse().unwrap()], &policy),
            Ok(())
        );
        let mixed: Vec<IpAddr> = vec!["93.184.216.34".parse().unwrap(), "10.1.2.3".parse().unwrap()];
        assert!(matches!(
            check_registration(&u, &mixed, &policy),
            Err(SsrfError::Address {
                reason: Blocked::Private,
                ..
            })
        ));
        let http = EndpointUrl::parse("http://hooks.example.com/x").unwrap();
        assert_eq!(check_registration(&http, &[], &policy), Err(SsrfError::HttpsRequired));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("bad test address {s}"))
    }

    fn url(s: &str) -> EndpointUrl {
        EndpointUrl::parse(s).unwrap_or_else(|e| panic!("bad test URL {s}: {e}"))
    }

    fn http_policy(allow: &str) -> SsrfPolicy {
        SsrfPolicy {
            allow_http: true,
            allow: SsrfPolicy::parse_allow_list(allow).unwrap(),
        }
    }

    use Blocked::*;

    /// (address, expected classification). Boundaries sit next to each range.
    const CASES: &[(&str, Option<Blocked>)] = &[
        // 0.0.0.0/8
        ("0.0.0.0", Some(Unspecified)),
        ("0.255.255.255", Some(Unspecified)),
        ("1.0.0.0", None),
        ("1.1.1.1", None),
        ("8.8.8.8", None),
        // 10/8
        ("9.255.255.255", None),
        ("10.0.0.0", Some(Private)),
        ("10.255.255.255", Some(Private)),
        ("11.0.0.0", None),
        // 100.64/10
        ("100.63.255.255", None),
        ("100.64.0.0", Some(Cgnat)),
        ("100.127.255.255", Some(Cgnat)),
        ("100.128.0.0", None),
        // 127/8
        ("126.255.255.255", None),
        ("127.0.0.0", Some(Loopback)),
        ("127.0.0.1", Some(Loopback)),
        ("127.255.255.255", Some(Loopback)),
        ("128.0.0.0", None),
        // 169.254/16
        ("169.253.255.255", None),
        ("169.254.0.0", Some(LinkLocal)),
        ("169.254.169.254", Some(LinkLocal)),
        ("169.254.170.2", Some(LinkLocal)),
        ("169.254.255.255", Some(LinkLocal)),
        ("169.255.0.0", None),
        // 172.16/12
        ("172.15.255.255", None),
        ("172.16.0.0", Some(Private)),
        ("172.31.255.255", Some(Private)),
        ("172.32.0.0", None),
        // 192.0.0/24, 192.0.2/24
        ("191.255.255.255", None),
        ("192.0.0.0", Some(ProtocolAssignment)),
        ("192.0.0.255", Some(ProtocolAssignment)),
        ("192.0.1.0", None),
        ("192.0.2.0", Some(Documentation)),
        ("192.0.2.255", Some(Documentation)),
        ("192.0.3.0", None),
        // 192.88.99/24
        ("192.88.98.255", None),
        ("192.88.99.1", Some(Reserved)),
        ("192.88.100.0", None),
        // 192.168/16
        ("192.167.255.255", None),
        ("192.168.0.0", Some(Private)),
        ("192.168.255.255", Some(Private)),
        ("192.169.0.0", None),
        // 198.18/15
        ("198.17.255.255", None),
        ("198.18.0.0", Some(Benchmarking)),
        ("198.19.255.255", Some(Benchmarking)),
        ("198.20.0.0", None),
        // 198.51.100/24, 203.0.113/24
        ("198.51.99.255", None),
        ("198.51.100.0", Some(Documentation)),
        ("198.51.100.255", Some(Documentation)),
        ("198.51.101.0", None),
        ("203.0.112.255", None),
        ("203.0.113.0", Some(Documentation)),
        ("203.0.113.255", Some(Documentation)),
        ("203.0.114.0", None),
        // 224/4, 240/4, broadcast
        ("223.255.255.255", None),
        ("224.0.0.0", Some(Multicast)),
        ("239.255.255.255", Some(Multicast)),
        ("240.0.0.0", Some(Reserved)),
        ("255.255.255.254", Some(Reserved)),
        ("255.255.255.255", Some(Broadcast)),
        // IPv6: unspecified, loopback, compatible
        ("::", Some(Unspecified)),
        ("::1", Some(Loopback)),
        ("::2", Some(Ipv4Compatible)),
        ("::7f00:1", Some(Ipv4Compatible)),
        ("::808:808", Some(Ipv4Compatible)),
        ("::ffff:ffff", Some(Ipv4Compatible)),
        // mapped, whatever it embeds
        ("::ffff:0:0", Some(Ipv4Mapped)),
        ("::ffff:127.0.0.1", Some(Ipv4Mapped)),
        ("::ffff:7f00:1", Some(Ipv4Mapped)),
        ("::ffff:169.254.169.254", Some(Ipv4Mapped)),
        ("::ffff:8.8.8.8", Some(Ipv4Mapped)),
        ("::ffff:ffff:ffff", Some(Ipv4Mapped)),
        ("::1:0:0", Some(Reserved)),
        ("::ffff:0:0:0", Some(Reserved)),
        // NAT64 well-known prefix: by the embedded address
        ("64:ff9b::a00:1", Some(Nat64)),
        ("64:ff9b::127.0.0.1", Some(Nat64)),
        ("64:ff9b::169.254.169.254", Some(Nat64)),
        ("64:ff9b::192.168.1.1", Some(Nat64)),
        ("64:ff9b::8.8.8.8", None),
        ("64:ff9b::1.1.1.1", None),
        ("64:ff9b::1:0:0", Some(Reserved)),
        ("64:ff9b:0:0:1::808:808", Some(Reserved)),
        // NAT64 local-use: always
        ("64:ff9b:1::", Some(Nat64)),
        ("64:ff9b:1::808:808", Some(Nat64)),
        ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", Some(Nat64)),
        ("64:ff9b:2::", Some(Reserved)),
        // discard
        ("100::", Some(Discard)),
        ("100::ffff:ffff:ffff:ffff", Some(Discard)),
        ("100:0:0:1::", Some(Reserved)),
        // 2001::/23 and friends
        ("2001::", Some(Teredo)),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some(Teredo)),
        ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", Some(Teredo)),
        ("2001:1::1", Some(ProtocolAssignment)),
        ("2001:2::", Some(Benchmarking)),
        ("2001:2:0:ffff::", Some(Benchmarking)),
        ("2001:2:1::", Some(ProtocolAssignment)),
        ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", Some(ProtocolAssignment)),
        ("2001:200::", None),
        ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2001:db8::", Some(Documentation)),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Some(Documentation)),
        ("2001:db9::", None),
        ("2001:4860:4860::8888", None),
        ("2606:4700:4700::1111", None),
        // 6to4, always
        ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2002::", Some(SixToFour)),
        ("2002:7f00:1::", Some(SixToFour)),
        ("2002:808:808::", Some(SixToFour)),
        ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(SixToFour)),
        ("2003::", None),
        // 3fff::/20 documentation
        ("3ffe:ffff::", None),
        ("3fff::", Some(Documentation)),
        ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Documentation)),
        ("3fff:1000::", None),
        // outside 2000::/3
        ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
        ("4000::", Some(Reserved)),
        ("5f00::1", Some(Reserved)),
        ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
        // fc00::/7
        ("fc00::", Some(UniqueLocal)),
        ("fd00:ec2::254", Some(UniqueLocal)),
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(UniqueLocal)),
        ("fe00::", Some(Reserved)),
        ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
        // fe80::/10, fec0::/10
        ("fe80::", Some(LinkLocal)),
        ("fe80::1", Some(LinkLocal)),
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(LinkLocal)),
        ("fec0::", Some(SiteLocal)),
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(SiteLocal)),
        // ff00::/8
        ("ff00::", Some(Multicast)),
        ("ff02::1", Some(Multicast)),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Multicast)),
    ];

    #[test]
    fn ssrf_classify_table() {
        let mut failures = Vec::new();
        for &(addr, expected) in CASES {
            let got = classify(ip(addr)).err();
            if got != expected {
                failures.push(format!("{addr}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Cross-checks against std's stable predicates over a pseudo-random
    /// sweep: whatever std calls non-global must be refused.
    #[test]
    fn ssrf_classify_agrees_with_std_predicates() {
        let mut x: u128 = 0x2545_f491_4f6c_dd1d_9e37_79b9_7f4a_7c15;
        let mut next = || {
            // xorshift128
            x ^= x << 35;
            x ^= x >> 59;
            x ^= x << 21;
            x
        };
        for _ in 0..200_000 {
            let n = next();
            let a = Ipv4Addr::from(n as u32);
            if a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_documentation()
                || a.is_unspecified()
            {
                assert!(classify(IpAddr::V4(a)).is_err(), "{a}");
            }
            // Bias the top bits so the small IPv6 ranges get hit too.
            let b = Ipv6Addr::from(match n % 4 {
                0 => n,
                1 => n >> (n as u32 % 128),
                2 => (0xfe00u128 << 112) | (n >> 16),
                _ => (0xfc00u128 << 112) | (n >> 16),
            });
            if b.is_loopback()
                || b.is_unspecified()
                || b.is_multicast()
                || b.is_unique_local()
                || b.is_unicast_link_local()
                || b.to_ipv4_mapped().is_some()
            {
                assert!(classify(IpAddr::V6(b)).is_err(), "{b}");
            }
        }
    }

    #[test]
    fn ssrf_every_blocked_kind_is_covered_with_distinct_codes() {
        let kinds: std::collections::BTreeSet<&str> = CASES.iter().filter_map(|(_, b)| b.map(Blocked::code)).collect();
        assert_eq!(kinds.len(), 19, "{kinds:?}");
    }

    #[test]
    fn ssrf_check_ip_allow_list_overrides() {
        let policy = http_policy("127.0.0.0/8, ::1, 10.1.0.0/16");
        for allowed in ["127.0.0.1", "127.255.0.1", "::1", "10.1.2.3", "8.8.8.8"] {
            assert_eq!(check_ip(ip(allowed), &policy), Ok(()), "{allowed}");
        }
        for (refused, reason) in [
            ("10.2.0.1", Private),
            ("::ffff:127.0.0.1", Ipv4Mapped),
            ("169.254.169.254", LinkLocal),
            ("::2", Ipv4Compatible),
        ] {
            assert_eq!(
                check_ip(ip(refused), &policy),
                Err(SsrfError::Address {
                    ip: ip(refused),
                    reason
                }),
                "{refused}"
            );
        }
        assert_eq!(
            check_ip(ip("127.0.0.1"), &SsrfPolicy::strict()),
            Err(SsrfError::Address {
                ip: ip("127.0.0.1"),
                reason: Loopback
            })
        );
    }

    #[test]
    fn ssrf_ipnet_parse_contains_display() {
        let cases: &[(&str, &str, &[&str], &[&str])] = &[
            (
                "10.0.0.0/8",
                "10.0.0.0/8",
                &["10.0.0.0", "10.255.255.255"],
                &["11.0.0.0", "9.255.255.255", "::a00:0"],
            ),
            (
                "127.0.0.1",
                "127.0.0.1/32",
                &["127.0.0.1"],
                &["127.0.0.2", "::ffff:127.0.0.1"],
            ),
            (" 127.0.0.1/8 ", "127.0.0.0/8", &["127.1.2.3"], &["128.0.0.0"]),
            ("::1/128", "::1/128", &["::1"], &["::", "::2", "127.0.0.1"]),
            ("::1", "::1/128", &["::1"], &["::2"]),
            ("fd00::/8", "fd00::/8", &["fd12::1"], &["fc00::1", "fe00::"]),
            ("0.0.0.0/0", "0.0.0.0/0", &["1.2.3.4", "255.255.255.255"], &["::1"]),
            ("::/0", "::/0", &["::1", "ffff::"], &["1.2.3.4"]),
            (
                "172.16.0.0/12",
                "172.16.0.0/12",
                &["172.31.255.255"],
                &["172.32.0.0", "172.15.255.255"],
            ),
        ];
        for &(input, display, inside, outside) in cases {
            let net = IpNet::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(net.to_string(), display, "{input}");
            assert_eq!(input.parse::<IpNet>(), Ok(net));
            for a in inside {
                assert!(net.contains(ip(a)), "{input} should contain {a}");
            }
            for a in outside {
                assert!(!net.contains(ip(a)), "{input} should not contain {a}");
            }
        }
        assert_eq!(IpNet::parse("10.0.0.0/8").unwrap().prefix(), 8);
        assert_eq!(IpNet::parse("10.1.0.0/8").unwrap().addr(), ip("10.0.0.0"));
    }

    #[test]
    fn ssrf_ipnet_parse_errors() {
        for (input, err) in [
            ("", IpNetError::Address(String::new())),
            ("localhost", IpNetError::Address("localhost".into())),
            ("10.0.0", IpNetError::Address("10.0.0".into())),
            ("0177.0.0.1", IpNetError::Address("0177.0.0.1".into())),
            ("0x7f.0.0.1", IpNetError::Address("0x7f.0.0.1".into())),
            ("[::1]", IpNetError::Address("[::1]".into())),
            ("/8", IpNetError::Address("/8".into())),
            ("10.0.0.0/33", IpNetError::Prefix("10.0.0.0/33".into())),
            ("::/129", IpNetError::Prefix("::/129".into())),
            ("10.0.0.0/", IpNetError::Prefix("10.0.0.0/".into())),
            ("10.0.0.0/+8", IpNetError::Prefix("10.0.0.0/+8".into())),
            ("10.0.0.0/8/8", IpNetError::Prefix("10.0.0.0/8/8".into())),
            ("10.0.0.0/256", IpNetError::Prefix("10.0.0.0/256".into())),
            ("10.0.0.0/0008", IpNetError::Prefix("10.0.0.0/0008".into())),
        ] {
            assert_eq!(IpNet::parse(input), Err(err), "{input:?}");
        }
        let msg = IpNet::parse("nope").unwrap_err().to_string();
        assert!(msg.contains("`nope` is not an IP address"), "{msg}");
        let msg = IpNet::parse("10.0.0.0/40").unwrap_err().to_string();
        assert!(msg.contains("`10.0.0.0/40` has an invalid prefix length"), "{msg}");
        assert!(IpNet::new(ip("::1"), 129).is_err());
        assert_eq!(IpNet::new(ip("10.9.8.7"), 16).unwrap().to_string(), "10.9.0.0/16");
    }

    #[test]
    fn ssrf_allow_list_parsing() {
        assert_eq!(SsrfPolicy::parse_allow_list(""), Ok(vec![]));
        assert_eq!(SsrfPolicy::parse_allow_list(" , "), Ok(vec![]));
        let list = SsrfPolicy::parse_allow_list("127.0.0.0/8,::1, 10.0.0.0/8 ,").unwrap();
        let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]);
        assert_eq!(
            SsrfPolicy::parse_allow_list("127.0.0.0/8,localhost"),
            Err(IpNetError::Address("localhost".into()))
        );
        assert_eq!(
            SsrfPolicy::parse_allow_list("127.0.0.0/8 ::1"),
            Err(IpNetError::Prefix("127.0.0.0/8 ::1".into()))
        );
        assert_eq!(SsrfPolicy::default(), SsrfPolicy::strict());
        assert!(!SsrfPolicy::strict().allow_http);
        assert!(SsrfPolicy::strict().allow.is_empty());
    }

    #[test]
    fn ssrf_url_ipv4_forms_are_normalised_and_checked() {
        // Every one of these is 127.0.0.1 (or 127.x) once the url crate is done.
        for (input, normalised) in [
            ("http://127.0.0.1/", "127.0.0.1"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://0x7f.0.0.1/", "127.0.0.1"),
            ("http://0X7F.0X0.0X0.0X1/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://017700000001/", "127.0.0.1"),
            ("http://00000177.0.0.01/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://127.0.1/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://127.0.0.1./", "127.0.0.1"),
            ("http://%31%32%37.0.0.1/", "127.0.0.1"),
            (
                "http://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}/",
                "127.0.0.1",
            ),
            ("https://127.0.0.1:8443/x?y=1", "127.0.0.1"),
        ] {
            let u = url(input);
            assert_eq!(
                u.url().host(),
                Some(Host::Ipv4(normalised.parse().unwrap())),
                "{input} should parse as an IPv4 host"
            );
            let err = check_url(&u, &http_policy("")).unwrap_err();
            assert_eq!(
                err,
                SsrfError::Address {
                    ip: ip(normalised),
                    reason: Loopback
                },
                "{input}"
            );
            assert_eq!(err.to_string(), "the host resolves to a loopback address (127.0.0.1)");
            assert_eq!(err.code(), "blocked_address");
        }
    }

    #[test]
    fn ssrf_url_table() {
        let strict = SsrfPolicy::strict();
        let http = http_policy("");
        let loopback = http_policy("127.0.0.0/8,::1");
        let private = http_policy("10.0.0.0/8");
        let v6_loopback = http_policy("::1");
        let address = |s: &str, reason| Err(SsrfError::Address { ip: ip(s), reason });
        let local = |h: &str| Err(SsrfError::LocalName { host: h.to_owned() });
        let cases: Vec<(&str, &SsrfPolicy, Result<(), SsrfError>)> = vec![
            // scheme
            ("https://example.com/hook", &strict, Ok(())),
            ("http://example.com/hook", &strict, Err(SsrfError::HttpsRequired)),
            ("http://example.com/hook", &http, Ok(())),
            ("HTTPS://EXAMPLE.COM/", &strict, Ok(())),
            // the scheme is checked before the host
            ("http://127.0.0.1/", &strict, Err(SsrfError::HttpsRequired)),
            // IPv4 literals
            ("https://8.8.8.8/", &strict, Ok(())),
            ("https://0.0.0.0/", &strict, address("0.0.0.0", Unspecified)),
            ("https://0/", &strict, address("0.0.0.0", Unspecified)),
            (
                "https://169.254.169.254/latest/meta-data/",
                &strict,
                address("169.254.169.254", LinkLocal),
            ),
            ("https://2852039166/", &strict, address("169.254.169.254", LinkLocal)),
            (
                "https://0xa9.0xfe.0xa9.0xfe/",
                &strict,
                address("169.254.169.254", LinkLocal),
            ),
            ("https://10.0.0.1/", &strict, address("10.0.0.1", Private)),
            ("https://012.1/", &strict, address("10.0.0.1", Private)),
            ("https://172.15.255.255/", &strict, Ok(())),
            ("https://172.16.0.0/", &strict, address("172.16.0.0", Private)),
            ("https://100.63.255.255/", &strict, Ok(())),
            ("https://100.64.0.0/", &strict, address("100.64.0.0", Cgnat)),
            (
                "https://255.255.255.255/",
                &strict,
                address("255.255.255.255", Broadcast),
            ),
            // IPv6 literals
            ("https://[2606:4700:4700::1111]/", &strict, Ok(())),
            ("https://[::1]/", &strict, address("::1", Loopback)),
            ("https://[::]/", &strict, address("::", Unspecified)),
            (
                "https://[::ffff:127.0.0.1]/",
                &strict,
                address("::ffff:7f00:1", Ipv4Mapped),
            ),
            (
                "https://[::ffff:7f00:1]/",
                &strict,
                address("::ffff:127.0.0.1", Ipv4Mapped),
            ),
            (
                "https://[::ffff:8.8.8.8]/",
                &strict,
                address("::ffff:8.8.8.8", Ipv4Mapped),
            ),
            ("https://[::127.0.0.1]/", &strict, address("::7f00:1", Ipv4Compatible)),
            ("https://[64:ff9b::a00:1]/", &strict, address("64:ff9b::a00:1", Nat64)),
            ("https://[64:ff9b::7f00:1]/", &strict, address("64:ff9b::7f00:1", Nat64)),
            ("https://[64:ff9b::808:808]/", &strict, Ok(())),
            ("https://[2002:7f00:1::]/", &strict, address("2002:7f00:1::", SixToFour)),
            ("https://[fe80::1]/", &strict, address("fe80::1", LinkLocal)),
            (
                "https://[fd00:ec2::254]/",
                &strict,
                address("fd00:ec2::254", UniqueLocal),
            ),
            ("https://[ff02::1]/", &strict, address("ff02::1", Multicast)),
            // allow-list
            ("http://127.0.0.1:8080/", &loopback, Ok(())),
            ("http://2130706433/", &loopback, Ok(())),
            ("http://[::1]:8080/", &loopback, Ok(())),
            (
                "http://[::ffff:127.0.0.1]/",
                &loopback,
                address("::ffff:127.0.0.1", Ipv4Mapped),
            ),
            ("http://10.0.0.1/", &loopback, address("10.0.0.1", Private)),
            ("https://10.0.0.1/", &private, Ok(())),
            // localhost names
            ("https://localhost/", &strict, local("localhost")),
            ("https://LOCALHOST/", &strict, local("localhost")),
            ("https://localhost./", &strict, local("localhost.")),
            ("https://localhost../", &strict, local("localhost..")),
            ("https://localhost%2e/", &strict, local("localhost.")),
            ("https://api.localhost/", &strict, local("api.localhost")),
            ("https://a.b.localhost./", &strict, local("a.b.localhost.")),
            ("http://localhost:8080/", &http, local("localhost")),
            ("http://localhost:8080/", &loopback, Ok(())),
            ("http://localhost.:8080/", &loopback, Ok(())),
            ("http://localhost/", &v6_loopback, local("localhost")),
            // not localhost: checked at connect time
            ("https://localhost.example.com/", &strict, Ok(())),
            ("https://notlocalhost/", &strict, Ok(())),
            ("https://mylocalhost/", &strict, Ok(())),
            ("https://127.0.0.1.nip.io/", &strict, Ok(())),
        ];
        for (input, policy, expected) in cases {
            assert_eq!(check_url(&url(input), policy), expected, "{input} under {policy:?}");
        }
    }

    #[test]
    fn ssrf_error_codes_and_messages() {
        assert_eq!(SsrfError::HttpsRequired.code(), "https_required");
        assert_eq!(SsrfError::HttpsRequired.to_string(), "https is required");
        let local = SsrfError::LocalName {
            host: "localhost".into(),
        };
        assert_eq!(local.code(), "local_host_name");
        assert_eq!(local.to_string(), "the host `localhost` is a local name");
        let metadata = check_ip(ip("169.254.169.254"), &SsrfPolicy::strict()).unwrap_err();
        assert_eq!(
            metadata.to_string(),
            "the host resolves to a link-local address (169.254.169.254)"
        );
        let mapped = check_ip(ip("::ffff:10.0.0.1"), &SsrfPolicy::strict()).unwrap_err();
        assert_eq!(
            mapped.to_string(),
            "the host resolves to an IPv4-mapped IPv6 address (::ffff:10.0.0.1)"
        );
        assert_eq!(Blocked::SixToFour.code(), "6to4");
        assert_eq!(Blocked::Cgnat.to_string(), "a carrier-grade NAT (shared) address");
    }
}

//! The address ranges the guard refuses, as data, and [`classify`], which
//! looks an address up in them.

use ipnet::{Ipv4Net, Ipv6Net};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// The IPv4 block `a.b.c.d/prefix`.
const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

/// Non-global IPv4 ranges, most specific first.
const V4_RANGES: &[(Ipv4Net, Blocked)] = &[
    (v4(0, 0, 0, 0, 8), Blocked::Unspecified),
    (v4(127, 0, 0, 0, 8), Blocked::Loopback),
    (v4(10, 0, 0, 0, 8), Blocked::Private),
    (v4(172, 16, 0, 0, 12), Blocked::Private),
    (v4(192, 168, 0, 0, 16), Blocked::Private),
    (v4(169, 254, 0, 0, 16), Blocked::LinkLocal),
    (v4(100, 64, 0, 0, 10), Blocked::Cgnat),
    (v4(192, 0, 0, 0, 24), Blocked::ProtocolAssignment),
    (v4(192, 0, 2, 0, 24), Blocked::Documentation),
    (v4(198, 51, 100, 0, 24), Blocked::Documentation),
    (v4(203, 0, 113, 0, 24), Blocked::Documentation),
    (v4(198, 18, 0, 0, 15), Blocked::Benchmarking),
    (v4(192, 88, 99, 0, 24), Blocked::Reserved),
    (v4(224, 0, 0, 0, 4), Blocked::Multicast),
    (v4(255, 255, 255, 255, 32), Blocked::Broadcast),
    (v4(240, 0, 0, 0, 4), Blocked::Reserved),
];

/// The IPv6 block of the eight 16-bit `segments` and `prefix`.
const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// The NAT64 well-known prefix `64:ff9b::/96`, classified by its embedded
/// IPv4 address.
const NAT64_WKP: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);

/// Global unicast, the only IPv6 space addresses are allocated from.
const GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// Non-global IPv6 ranges, most specific first. Whatever is not listed here
/// and lies outside `2000::/3` (and the NAT64 well-known prefix) is
/// [`Blocked::Reserved`].
const V6_RANGES: &[(Ipv6Net, Blocked)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), Blocked::Unspecified),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), Blocked::Loopback),
    (v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96), Blocked::Ipv4Mapped),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 96), Blocked::Ipv4Compatible),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), Blocked::Nat64),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), Blocked::Discard),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), Blocked::Teredo),
    (v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48), Blocked::Benchmarking),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), Blocked::ProtocolAssignment),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), Blocked::Documentation),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), Blocked::Documentation),
    (v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), Blocked::SixToFour),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), Blocked::UniqueLocal),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), Blocked::LinkLocal),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), Blocked::SiteLocal),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), Blocked::Multicast),
];

fn classify_v4(ip: Ipv4Addr) -> Result<(), Blocked> {
    match V4_RANGES.iter().find(|(net, _)| net.contains(&ip)) {
        Some((_, blocked)) => Err(*blocked),
        None => Ok(()),
    }
}

fn classify_v6(ip: Ipv6Addr) -> Result<(), Blocked> {
    if let Some((_, blocked)) = V6_RANGES.iter().find(|(net, _)| net.contains(&ip)) {
        return Err(*blocked);
    }
    if NAT64_WKP.contains(&ip) {
        // The low 32 bits are the IPv4 address (RFC 6052 section 2.2).
        let [.., a, b, c, d] = ip.octets();
        return classify_v4(Ipv4Addr::new(a, b, c, d)).map_err(|_| Blocked::Nat64);
    }
    if !GLOBAL_UNICAST.contains(&ip) {
        return Err(Blocked::Reserved);
    }
    Ok(())
}

/// Whether `ip` is a globally reachable unicast address; if not, which kind
/// of address it is. The allow-list is not consulted (see [`check_ip`](super::check_ip)).
pub fn classify(ip: IpAddr) -> Result<(), Blocked> {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("bad test address {s}"))
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
}

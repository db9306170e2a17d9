use super::*;
use url::Host;

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

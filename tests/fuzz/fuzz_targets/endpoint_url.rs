//! The endpoint URL parser and its SSRF check: never panic; a URL the
//! strict policy accepts is https and, when its host is an IP literal,
//! one that the address classifier calls global.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::EndpointUrl;
use switchyard_core::ssrf::{SsrfPolicy, check_url, classify};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(url) = EndpointUrl::parse(text) else { return };
    if check_url(&url, &SsrfPolicy::strict()).is_ok() {
        let u = url.url();
        assert_eq!(u.scheme(), "https", "{text}");
        match u.host() {
            Some(url::Host::Ipv4(ip)) => assert!(classify(ip.into()).is_ok(), "{text}"),
            Some(url::Host::Ipv6(ip)) => assert!(classify(ip.into()).is_ok(), "{text}"),
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                assert!(d != "localhost" && !d.ends_with(".localhost"), "{text}");
            }
            None => panic!("accepted a URL without a host: {text}"),
        }
    }
});

//! The validated values an endpoint's settings are made of: its URL, its
//! custom headers, its payload filter and its rate limit. Each is checked
//! when it is parsed, from the API or from the stored item.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use url::Url;

/// The longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Why an endpoint URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// It does not parse as an absolute URL.
    #[error("is not a valid absolute URL")]
    Syntax,
    /// Its scheme is neither `http` nor `https`.
    #[error("must use http or https")]
    Scheme,
    /// It names no host.
    #[error("must name a host")]
    NoHost,
    /// It carries a user name or password.
    #[error("must not carry a user name or password")]
    Credentials,
    /// It carries a `#fragment`.
    #[error("must not carry a fragment")]
    Fragment,
    /// It is longer than [`MAX_URL_LEN`].
    #[error("is longer than {MAX_URL_LEN} characters")]
    TooLong,
}

/// An absolute `http`/`https` URL with a host, no credentials and no fragment.
///
/// Which hosts may be called (and whether plain `http` is allowed) is a
/// deployment policy checked when the endpoint is registered and again when
/// it is called; this type only guarantees the shape.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointUrl(Url);

impl EndpointUrl {
    /// Parses `s` and checks its shape (see the type's rules).
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        if s.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let url = Url::parse(s).map_err(|_| UrlError::Syntax)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        Ok(Self(url))
    }

    /// The URL as text, exactly as it is sent.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL, for its host, port and scheme.
    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl TryFrom<String> for EndpointUrl {
    type Error = UrlError;
    fn try_from(s: String) -> Result<Self, UrlError> {
        Self::parse(&s)
    }
}

impl From<EndpointUrl> for String {
    fn from(u: EndpointUrl) -> String {
        u.0.into()
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl fmt::Debug for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Query strings often carry tokens: show scheme, host and path only.
        write!(
            f,
            "EndpointUrl({}://{}{})",
            self.0.scheme(),
            self.0.host_str().unwrap_or(""),
            self.0.path()
        )
    }
}

/// The most custom headers an endpoint may carry.
pub const MAX_CUSTOM_HEADERS: usize = 20;
/// The longest custom header value.
pub const MAX_HEADER_VALUE_LEN: usize = 1024;

/// Header names an endpoint may not set: the signature, the framing, and
/// Switchyard's own.
fn reserved_header(name: &str) -> bool {
    matches!(
        name,
        "webhook-id"
            | "webhook-timestamp"
            | "webhook-signature"
            | "content-type"
            | "content-length"
            | "content-encoding"
            | "transfer-encoding"
            | "user-agent"
            | "traceparent"
            | "tracestate"
            | "host"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
    ) || name.starts_with("x-switchyard-")
        || name.starts_with("proxy-")
        || name.starts_with("svix-")
}

/// Why an endpoint's custom headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// More than [`MAX_CUSTOM_HEADERS`] headers.
    #[error("at most {MAX_CUSTOM_HEADERS} custom headers")]
    TooMany,
    /// The name (as given) is not an HTTP token of at most 64 characters.
    #[error("`{0}` is not a valid header name")]
    Name(String),
    /// The name (lowercased) is one Switchyard sets or the transport owns.
    #[error("`{0}` is set by Switchyard and cannot be overridden")]
    Reserved(String),
    /// The value of the named header is not printable ASCII or is too long.
    #[error("the value of `{0}` must be printable ASCII of at most {MAX_HEADER_VALUE_LEN} bytes")]
    Value(String),
}

/// An endpoint's own headers, sent with every webhook. Names are lowercase
/// tokens and never one of the headers Switchyard sets.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct CustomHeaders(BTreeMap<String, String>);

impl CustomHeaders {
    /// Checks every name and value and lowercases the names.
    pub fn parse(headers: BTreeMap<String, String>) -> Result<Self, HeaderError> {
        if headers.len() > MAX_CUSTOM_HEADERS {
            return Err(HeaderError::TooMany);
        }
        let mut out = BTreeMap::new();
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            let token = !lower.is_empty()
                && lower.len() <= 64
                && lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(HeaderError::Name(name));
            }
            if reserved_header(&lower) {
                return Err(HeaderError::Reserved(lower));
            }
            let printable = value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
            if !printable || value.len() > MAX_HEADER_VALUE_LEN {
                return Err(HeaderError::Value(lower));
            }
            out.insert(lower, value);
        }
        Ok(Self(out))
    }

    /// The headers as name and value pairs, names sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<BTreeMap<String, String>> for CustomHeaders {
    type Error = HeaderError;
    fn try_from(m: BTreeMap<String, String>) -> Result<Self, HeaderError> {
        Self::parse(m)
    }
}

impl From<CustomHeaders> for BTreeMap<String, String> {
    fn from(h: CustomHeaders) -> Self {
        h.0
    }
}

impl fmt::Debug for CustomHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Custom headers often carry tokens: names only.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A filter on an event's `data`: for every dotted path (`plan`,
/// `customer.country`), the value there must be one of the listed JSON
/// values. Empty: every event passes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, Vec<serde_json::Value>>",
    into = "BTreeMap<String, Vec<serde_json::Value>>"
)]
pub struct PayloadFilter(BTreeMap<String, Vec<serde_json::Value>>);

/// The most paths one payload filter may test.
pub const MAX_FILTER_PATHS: usize = 20;
/// The most values one path of a payload filter may list.
pub const MAX_FILTER_VALUES: usize = 50;

impl PayloadFilter {
    /// Checks the rules: at most [`MAX_FILTER_PATHS`] non-empty dotted paths,
    /// each with 1 to [`MAX_FILTER_VALUES`] values. The error says which rule failed.
    pub fn parse(rules: BTreeMap<String, Vec<serde_json::Value>>) -> Result<Self, String> {
        if rules.len() > MAX_FILTER_PATHS {
            return Err(format!("at most {MAX_FILTER_PATHS} paths"));
        }
        for (path, values) in &rules {
            if path.is_empty() || path.len() > 200 || path.split('.').any(str::is_empty) {
                return Err(format!("`{path}` is not a dotted path into data"));
            }
            if values.is_empty() || values.len() > MAX_FILTER_VALUES {
                return Err(format!("`{path}` needs 1 to {MAX_FILTER_VALUES} values"));
            }
        }
        Ok(Self(rules))
    }

    /// Whether it has no rule (every event passes).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `data` passes: every path holds one of its values.
    pub fn matches(&self, data: &serde_json::Map<String, serde_json::Value>) -> bool {
        self.0.iter().all(|(path, allowed)| {
            let mut segments = path.split('.');
            let first = segments.next().and_then(|k| data.get(k));
            let found = segments.try_fold(first, |v, k| Some(v.and_then(|v| v.get(k))));
            found
                .flatten()
                .is_some_and(|v| allowed.iter().any(|a| same_value(a, v)))
        })
    }
}

/// JSON equality, with numbers compared by value: `1` and `1.0` are the
/// same number (the API reads `1.0` in a filter as `1`).
fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::Number(x), serde_json::Value::Number(y)) if x.is_f64() || y.is_f64() => {
            x.as_f64() == y.as_f64()
        }
        _ => a == b,
    }
}

impl TryFrom<BTreeMap<String, Vec<serde_json::Value>>> for PayloadFilter {
    type Error = String;
    fn try_from(rules: BTreeMap<String, Vec<serde_json::Value>>) -> Result<Self, String> {
        Self::parse(rules)
    }
}

impl From<PayloadFilter> for BTreeMap<String, Vec<serde_json::Value>> {
    fn from(f: PayloadFilter) -> Self {
        f.0
    }
}

/// Deliveries per second an endpoint takes: 1 to [`RateLimit::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct RateLimit(u32);

impl RateLimit {
    /// The highest rate accepted, in deliveries a second.
    pub const MAX: u32 = 10_000;

    /// A limit of `per_second` deliveries a second, if it is 1 to [`Self::MAX`].
    pub fn new(per_second: u32) -> Result<Self, String> {
        if (1..=Self::MAX).contains(&per_second) {
            Ok(Self(per_second))
        } else {
            Err(format!("rate_limit must be 1 to {} deliveries a second", Self::MAX))
        }
    }

    /// The limit, in deliveries a second.
    pub fn per_second(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for RateLimit {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, String> {
        Self::new(n)
    }
}

impl From<RateLimit> for u32 {
    fn from(r: RateLimit) -> u32 {
        r.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_filters_match_every_path() {
        let rules = |v: serde_json::Value| serde_json::from_value::<PayloadFilter>(v);
        let f = rules(serde_json::json!({"plan": ["pro", "team"], "customer.country": ["NZ"]})).unwrap();
        let data = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert!(f.matches(&data(serde_json::json!({"plan": "pro", "customer": {"country": "NZ"}}))));
        assert!(!f.matches(&data(
            serde_json::json!({"plan": "free", "customer": {"country": "NZ"}})
        )));
        assert!(!f.matches(&data(serde_json::json!({"plan": "pro"}))));
        assert!(!f.matches(&data(serde_json::json!({"plan": "pro", "customer": "NZ"}))));
        assert!(PayloadFilter::default().matches(&data(serde_json::json!({}))));
        // Numbers and booleans compare as JSON values.
        let n = rules(serde_json::json!({"n": [1, true]})).unwrap();
        assert!(n.matches(&data(serde_json::json!({"n": 1}))));
        assert!(!n.matches(&data(serde_json::json!({"n": "1"}))));
        assert!(rules(serde_json::json!({"a..b": [1]})).is_err());
        assert!(rules(serde_json::json!({"a": []})).is_err());
        assert!(RateLimit::new(0).is_err() && RateLimit::new(10_001).is_err());
        assert_eq!(serde_json::from_str::<RateLimit>("5").unwrap().per_second(), 5);
        assert!(serde_json::from_str::<RateLimit>("0").is_err());
    }

    #[test]
    fn payload_filters_compare_numbers_by_value() {
        let f = serde_json::from_value::<PayloadFilter>(serde_json::json!({"n": [1], "x": [2.5]})).unwrap();
        let data = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert!(f.matches(&data(serde_json::json!({"n": 1.0, "x": 2.5}))));
        assert!(f.matches(&data(serde_json::json!({"n": 1, "x": 2.5}))));
        assert!(!f.matches(&data(serde_json::json!({"n": 1.5, "x": 2.5}))));
        assert!(!f.matches(&data(serde_json::json!({"n": "1", "x": 2.5}))));
    }

    #[test]
    fn urls_are_checked_for_shape() {
        assert!(EndpointUrl::parse("https://hooks.example.com/x?y=1").is_ok());
        assert!(EndpointUrl::parse("http://127.0.0.1:8080/hook").is_ok());
        assert_eq!(EndpointUrl::parse("ftp://example.com/"), Err(UrlError::Scheme));
        assert_eq!(EndpointUrl::parse("file:///etc/passwd"), Err(UrlError::Scheme));
        assert_eq!(EndpointUrl::parse("example.com/hook"), Err(UrlError::Syntax));
        assert_eq!(
            EndpointUrl::parse("https://user:pw@example.com/"),
            Err(UrlError::Credentials)
        );
        assert_eq!(EndpointUrl::parse("https://example.com/#frag"), Err(UrlError::Fragment));
        assert_eq!(
            EndpointUrl::parse(&format!("https://e.com/{}", "a".repeat(2048))),
            Err(UrlError::TooLong)
        );
    }

    #[test]
    fn debug_hides_query_strings() {
        let u = EndpointUrl::parse("https://e.com/hook?token=s3cr3t").unwrap();
        assert!(!format!("{u:?}").contains("s3cr3t"));
    }

    #[test]
    fn custom_headers_are_validated_and_never_override_ours() {
        let h = |pairs: &[(&str, &str)]| {
            CustomHeaders::parse(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        };
        let ok = h(&[("X-Tenant-Token", "abc"), ("Authorization", "Bearer t")]).unwrap();
        assert_eq!(
            ok.iter().collect::<Vec<_>>(),
            [("authorization", "Bearer t"), ("x-tenant-token", "abc")]
        );
        for reserved in [
            "webhook-signature",
            "Webhook-Id",
            "content-type",
            "user-agent",
            "Host",
            "traceparent",
            "x-switchyard-event-type",
        ] {
            assert!(
                matches!(h(&[(reserved, "x")]), Err(HeaderError::Reserved(_))),
                "{reserved}"
            );
        }
        assert!(matches!(h(&[("bad name", "x")]), Err(HeaderError::Name(_))));
        assert!(matches!(h(&[("", "x")]), Err(HeaderError::Name(_))));
        assert!(matches!(
            h(&[("x-a", "line\r\nInjected: 1")]),
            Err(HeaderError::Value(_))
        ));
        assert!(matches!(h(&[("x-a", &"v".repeat(1025))]), Err(HeaderError::Value(_))));
        let many: Vec<(String, String)> = (0..21).map(|i| (format!("x-{i}"), "v".into())).collect();
        assert_eq!(
            CustomHeaders::parse(many.into_iter().collect()),
            Err(HeaderError::TooMany)
        );
        assert!(!format!("{ok:?}").contains("Bearer"));
        // Stored headers are validated again when read back.
        assert!(serde_json::from_str::<CustomHeaders>(r#"{"webhook-id":"x"}"#).is_err());
    }
}

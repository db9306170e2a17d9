//! Endpoints: where a tenant wants its webhooks.

use crate::event_type::{EventType, EventTypeFilter, any_matches};
use crate::ids::{EndpointId, TenantId};
use crate::retry::RetryPolicy;
use crate::signing::WebhookSecret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use time::OffsetDateTime;
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

/// A secret replaced by rotation, still signed with until `valid_until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetiredSecret {
    /// The secret signed with until `valid_until`.
    pub secret: WebhookSecret,
    /// When the retired secret stops being used.
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub valid_until: OffsetDateTime,
}

/// An endpoint's circuit breaker, kept on the endpoint's own item so one read
/// gives both. Times are unix milliseconds, which DynamoDB compares as numbers.
///
/// Closed: `open_until_ms` absent. Open: `open_until_ms` in the future —
/// deliveries are deferred without calling the endpoint. Half-open:
/// `open_until_ms` in the past — the one delivery that claims the probe calls
/// it; a success closes the circuit, a failure opens it again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Circuit {
    /// Consecutive failed attempts.
    #[serde(default, rename = "cb_failures")]
    pub failures: u32,
    /// When the current run of failures began.
    #[serde(default, rename = "cb_failing_since", skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<i64>,
    /// Until when the circuit is open, in unix ms; `None` while closed.
    #[serde(default, rename = "cb_open_until", skip_serializing_if = "Option::is_none")]
    pub open_until_ms: Option<i64>,
}

/// What the circuit lets a delivery do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Closed: call the endpoint.
    Pass,
    /// Open until this instant (unix ms): do not call.
    Open {
        /// When the circuit may close, in unix ms.
        until_ms: i64,
    },
    /// The open period is over: whoever claims the probe (replacing
    /// `open_until_ms == seen_ms`) calls the endpoint.
    Probe {
        /// The `open_until_ms` read, in unix ms: the probe's claim replaces
        /// exactly this value, so one delivery wins it.
        seen_ms: i64,
    },
}

impl Circuit {
    /// What the circuit lets a delivery do at `now_ms` (unix ms).
    pub fn gate(&self, now_ms: i64) -> Gate {
        match self.open_until_ms {
            None => Gate::Pass,
            Some(until_ms) if until_ms > now_ms => Gate::Open { until_ms },
            Some(seen_ms) => Gate::Probe { seen_ms },
        }
    }
}

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The endpoint's id.
    pub id: EndpointId,
    /// The tenant that owns it.
    pub tenant_id: TenantId,
    /// Where its webhooks are sent.
    pub url: EndpointUrl,
    /// Event types it receives; empty means all.
    #[serde(default)]
    pub filters: Vec<EventTypeFilter>,
    /// The current signing secret.
    pub secret: WebhookSecret,
    /// Secrets replaced by rotation that are still valid: every webhook is
    /// signed with each of them too, so receivers can switch over at leisure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_secrets: Vec<RetiredSecret>,
    /// Headers sent with each of its webhooks.
    #[serde(default, skip_serializing_if = "CustomHeaders::is_empty")]
    pub headers: CustomHeaders,
    /// When failed deliveries are retried, and how often.
    #[serde(default)]
    pub retry_policy: RetryPolicy,
    /// Whether it takes deliveries; `false` once disabled (by the tenant or by
    /// Switchyard).
    pub enabled: bool,
    /// Why the endpoint was disabled, when Switchyard disabled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// The tenant's note about the endpoint; empty when none.
    #[serde(default)]
    pub description: String,
    /// Only events whose `data` matches are sent (on top of the type filters).
    #[serde(default, skip_serializing_if = "PayloadFilter::is_empty")]
    pub payload_filter: PayloadFilter,
    /// At most this many deliveries a second; the rest wait their turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// When it was registered.
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub created_at: OffsetDateTime,
    /// Its circuit breaker, stored in the same item (`cb_*` attributes).
    #[serde(flatten)]
    pub circuit: Circuit,
    /// Counts the changes made to the endpoint's settings and state (by the
    /// management API, and by disabling), never those of its circuit: a
    /// change computed from an older read is refused and made again from a
    /// fresh one. 0 for an endpoint stored before it was counted.
    #[serde(default)]
    pub version: u64,
}

/// What fan-out reads of an endpoint: whether, and for which events, it
/// takes deliveries. No URL, secret or header: the registry reads only these
/// attributes for fan-out, so the function that handles every tenant's
/// events never holds a signing secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EndpointRoute {
    /// The endpoint's id.
    pub id: EndpointId,
    /// The tenant that owns it.
    pub tenant_id: TenantId,
    /// Event types it receives; empty means all.
    #[serde(default)]
    pub filters: Vec<EventTypeFilter>,
    /// Whether it takes deliveries.
    pub enabled: bool,
    /// Only events whose `data` matches are sent.
    #[serde(default)]
    pub payload_filter: PayloadFilter,
}

impl EndpointRoute {
    /// The item attributes a route is read from (fan-out's projection).
    pub const ATTRIBUTES: [&'static str; 5] = ["id", "tenant_id", "filters", "enabled", "payload_filter"];

    /// Whether the endpoint takes an event of this type with this `data`.
    pub fn takes(&self, event_type: &EventType, data: &serde_json::Map<String, serde_json::Value>) -> bool {
        self.enabled && any_matches(&self.filters, event_type) && self.payload_filter.matches(data)
    }
}

impl From<&Endpoint> for EndpointRoute {
    fn from(e: &Endpoint) -> Self {
        Self {
            id: e.id.clone(),
            tenant_id: e.tenant_id.clone(),
            filters: e.filters.clone(),
            enabled: e.enabled,
            payload_filter: e.payload_filter.clone(),
        }
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
            found.flatten().is_some_and(|v| allowed.contains(v))
        })
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

impl Endpoint {
    /// A new enabled endpoint with a fresh secret and the default retry policy.
    pub fn new(tenant_id: TenantId, url: EndpointUrl, filters: Vec<EventTypeFilter>, now: OffsetDateTime) -> Self {
        Self {
            id: EndpointId::generate(),
            tenant_id,
            url,
            filters,
            secret: WebhookSecret::generate(),
            previous_secrets: Vec::new(),
            headers: CustomHeaders::default(),
            retry_policy: RetryPolicy::default(),
            enabled: true,
            disabled_reason: None,
            description: String::new(),
            payload_filter: PayloadFilter::default(),
            rate_limit: None,
            created_at: now,
            circuit: Circuit::default(),
            version: 0,
        }
    }

    /// Whether this endpoint should receive an event of `event_type`.
    pub fn accepts(&self, event_type: &EventType) -> bool {
        self.enabled && any_matches(&self.filters, event_type)
    }

    /// The secrets to sign with at `now`: the current one first, then every
    /// retired one still valid.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> Vec<&WebhookSecret> {
        std::iter::once(&self.secret)
            .chain(
                self.previous_secrets
                    .iter()
                    .filter(|r| r.valid_until > now)
                    .map(|r| &r.secret),
            )
            .collect()
    }

    /// Replaces the secret; the old one stays valid for `overlap`. Expired
    /// retired secrets are dropped, and so is the oldest beyond
    /// [`MAX_RETIRED_SECRETS`]: rotating again and again cannot grow the
    /// signature header or the item. Returns the new secret.
    pub fn rotate_secret(&mut self, now: OffsetDateTime, overlap: time::Duration) -> &WebhookSecret {
        let old = std::mem::replace(&mut self.secret, WebhookSecret::generate());
        self.previous_secrets.retain(|r| r.valid_until > now);
        self.previous_secrets.push(RetiredSecret {
            secret: old,
            valid_until: now + overlap,
        });
        let excess = self.previous_secrets.len().saturating_sub(MAX_RETIRED_SECRETS);
        self.previous_secrets.drain(..excess);
        &self.secret
    }
}

/// The most retired secrets an endpoint keeps signing with: a webhook
/// carries at most three signatures.
pub const MAX_RETIRED_SECRETS: usize = 2;

/// What writing an endpoint's changes did (see
/// [`crate::ports::EndpointEdits::write_changes`] and
/// [`crate::endpoint_edit::edit_endpoint`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Written; the endpoint as stored now.
    Done(Box<Endpoint>),
    /// The endpoint does not exist (it is never created).
    Missing,
    /// The endpoint changed since it was read: nothing was written.
    Stale,
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

    #[test]
    fn rotation_keeps_the_old_secret_for_the_overlap() {
        let t = TenantId::parse("t").unwrap();
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1000);
        let mut ep = Endpoint::new(t, EndpointUrl::parse("https://e.com/").unwrap(), vec![], now);
        let old = ep.secret.clone();
        let new = ep.rotate_secret(now, time::Duration::hours(24)).clone();
        assert_ne!(old, new);
        assert_eq!(ep.signing_secrets(now), vec![&new, &old]);
        assert_eq!(ep.signing_secrets(now + time::Duration::hours(25)), vec![&new]);
        // A second rotation after the overlap drops the expired secret.
        ep.rotate_secret(now + time::Duration::hours(30), time::Duration::hours(24));
        assert_eq!(ep.previous_secrets.len(), 1);
        assert_eq!(ep.previous_secrets[0].secret, new);
    }

    #[test]
    fn rotating_again_and_again_keeps_at_most_two_retired_secrets() {
        let t = TenantId::parse("t").unwrap();
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1000);
        let mut ep = Endpoint::new(t, EndpointUrl::parse("https://e.com/").unwrap(), vec![], now);
        let mut secrets = vec![ep.secret.clone()];
        for i in 1..=6 {
            secrets.push(
                ep.rotate_secret(now + time::Duration::minutes(i), time::Duration::hours(720))
                    .clone(),
            );
        }
        assert_eq!(ep.previous_secrets.len(), MAX_RETIRED_SECRETS);
        let at = now + time::Duration::hours(1);
        // The current secret, then the two retired most recently.
        assert_eq!(ep.signing_secrets(at), vec![&secrets[6], &secrets[4], &secrets[5]]);
    }

    #[test]
    fn the_circuit_gate_follows_open_until() {
        let closed = Circuit::default();
        assert_eq!(closed.gate(1_000), Gate::Pass);
        let open = Circuit {
            failures: 5,
            failing_since_ms: Some(0),
            open_until_ms: Some(2_000),
        };
        assert_eq!(open.gate(1_000), Gate::Open { until_ms: 2_000 });
        assert_eq!(open.gate(2_000), Gate::Probe { seen_ms: 2_000 });
    }

    #[test]
    fn endpoints_round_trip_through_json_with_their_circuit_flattened() {
        let t = TenantId::parse("t").unwrap();
        let mut ep = Endpoint::new(
            t,
            EndpointUrl::parse("https://e.com/").unwrap(),
            vec![],
            OffsetDateTime::UNIX_EPOCH,
        );
        ep.circuit = Circuit {
            failures: 3,
            failing_since_ms: Some(17),
            open_until_ms: None,
        };
        let json = serde_json::to_value(&ep).unwrap();
        assert_eq!(json["cb_failures"], 3);
        assert_eq!(json["cb_failing_since"], 17);
        assert!(json.get("cb_open_until").is_none());
        assert_eq!(serde_json::from_value::<Endpoint>(json).unwrap(), ep);
    }

    #[test]
    fn endpoints_accept_by_filter_and_state() {
        let t = TenantId::parse("t").unwrap();
        let url = EndpointUrl::parse("https://e.com/").unwrap();
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut ep = Endpoint::new(t, url, vec![EventTypeFilter::parse("user.*").unwrap()], now);
        let created = EventType::parse("user.created").unwrap();
        assert!(ep.accepts(&created));
        assert!(!ep.accepts(&EventType::parse("order.placed").unwrap()));
        ep.enabled = false;
        assert!(!ep.accepts(&created));
        assert!(!format!("{ep:?}").contains(&ep.secret.expose()[6..]));
    }
}

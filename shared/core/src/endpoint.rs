//! Endpoints: where a tenant wants its webhooks.

use crate::event_type::{EventType, EventTypeFilter, any_matches};
use crate::ids::{EndpointId, TenantId};
use crate::retry::RetryPolicy;
use crate::signing::WebhookSecret;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

mod values;

pub use values::{
    CustomHeaders, EndpointUrl, HeaderError, MAX_CUSTOM_HEADERS, MAX_FILTER_PATHS, MAX_FILTER_VALUES,
    MAX_HEADER_VALUE_LEN, MAX_URL_LEN, PayloadFilter, RateLimit, UrlError,
};

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

//! How resources look in responses: one type per shape, which is both what
//! a handler serialises and what the OpenAPI document says (see
//! [`crate::openapi`]). Secrets never appear here but in their own types:
//! an endpoint's secret on creation and by its own route, a tenant API key
//! only once, when it is created, and custom header values never (they are
//! masked).

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use switchyard_core::Endpoint;
use switchyard_core::api_key::KeyScope;
use switchyard_core::model::{
    ApiKeyRecord, AttemptRecord, DeliveryRecord, DeliveryState, EventRecord, TenantRecord, TenantStatus, Trigger,
};
use switchyard_core::retry::RawRetryPolicy;
use switchyard_core::time_util::rfc3339;
use utoipa::ToSchema;

/// A page of a listing: at most `limit` items, and the cursor of the next
/// page (`null` on the last one).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` when there is none.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of `items`, the next one at `next`.
    pub fn new(items: Vec<T>, next: Option<String>) -> Self {
        Self {
            items,
            next_cursor: next,
        }
    }
}

/// An endpoint's circuit breaker.
#[derive(Debug, Serialize, ToSchema)]
pub struct Circuit {
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// Whether deliveries are held back until the circuit half-opens.
    pub open: bool,
}

/// A registered endpoint, as every read shows it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Endpoint)]
pub struct EndpointView {
    /// `ep_<ULID>`.
    pub id: String,
    /// Where webhooks are sent.
    #[schema(format = "uri")]
    pub url: String,
    /// The tenant's note.
    pub description: String,
    /// The event types delivered here (`order.placed`, `order.*`, `*`);
    /// none: every type.
    pub filter_types: Vec<String>,
    /// Payload rules: a dotted path into `data` and the values it may take.
    pub payload_filter: BTreeMap<String, Vec<Value>>,
    /// Custom headers sent with every webhook: names, values masked.
    pub headers: BTreeMap<String, String>,
    /// When failed attempts are retried.
    pub retry_policy: RawRetryPolicy,
    /// Most deliveries a second; `null`: no limit.
    pub rate_limit: Option<u32>,
    /// Whether deliveries are attempted (disabled: recorded as skipped).
    pub enabled: bool,
    /// Why it is disabled (`disabled_by_tenant`, `gone`, ...).
    pub disabled_reason: Option<String>,
    /// When it was registered.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Its circuit breaker.
    pub circuit: Circuit,
    /// Rotated-out secrets that still sign.
    pub secrets_in_rotation: usize,
}

/// An endpoint as its creation shows it: with its signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// The signing secret (`whsec_…`): also at `GET /v1/endpoints/{id}/secret`.
    pub secret: String,
}

/// An endpoint as the API shows it (never its secret).
pub fn endpoint(ep: &Endpoint) -> EndpointView {
    // Header values often hold the receiver's credentials: names only,
    // each value masked.
    let headers = switchyard_core::quota::masked(&ep.headers);
    EndpointView {
        id: ep.id.to_string(),
        url: ep.url.as_str().to_string(),
        description: ep.description.clone(),
        filter_types: ep.filters.iter().map(|f| f.to_string()).collect(),
        payload_filter: ep.payload_filter.clone().into(),
        headers,
        retry_policy: RawRetryPolicy::from(ep.retry_policy.clone()),
        rate_limit: ep.rate_limit.map(|r| r.per_second()),
        enabled: ep.enabled,
        disabled_reason: ep.disabled_reason.clone(),
        created_at: rfc3339(ep.created_at),
        circuit: Circuit {
            consecutive_failures: ep.circuit.failures,
            open: ep.circuit.open_until_ms.is_some(),
        },
        secrets_in_rotation: ep.previous_secrets.len(),
    }
}

/// One event's delivery to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Delivery)]
pub struct DeliveryView {
    /// The delivery's id.
    pub id: String,
    /// The event delivered.
    pub event_id: String,
    /// The endpoint it goes to.
    pub endpoint_id: String,
    /// The event's type.
    pub event_type: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last attempt's HTTP status, if it got one.
    pub last_status_code: Option<u16>,
    /// Why it failed or was skipped, or why it waits (`tenant_suspended`:
    /// its tenant is suspended; it is not attempted until resumed).
    pub reason: Option<String>,
    /// When the next attempt is due (retrying only).
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A delivery as the API shows it.
pub fn delivery(d: &DeliveryRecord) -> DeliveryView {
    DeliveryView {
        id: d.delivery_id.to_string(),
        event_id: d.event_id.to_string(),
        endpoint_id: d.endpoint_id.to_string(),
        event_type: d.event_type.to_string(),
        state: d.state,
        attempts: d.attempts,
        last_status_code: d.last_status_code,
        reason: d.reason.clone(),
        next_attempt_at: d.next_attempt_at.map(rfc3339),
        created_at: rfc3339(d.created_at),
        updated_at: rfc3339(d.updated_at),
    }
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Attempt)]
pub struct AttemptView {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it was made.
    #[schema(format = DateTime)]
    pub at: String,
    /// Whether the endpoint answered 2xx.
    pub succeeded: bool,
    /// The HTTP status, if the endpoint answered.
    pub status_code: Option<u16>,
    /// How long it took.
    pub duration_ms: u64,
    /// What kind of failure (`timeout`, `connect`, `status`, ...).
    pub error_kind: Option<String>,
    /// The failure, for a person.
    pub error: Option<String>,
    /// The start of the endpoint's answer.
    pub response_body: Option<String>,
    /// When the next attempt is due, if one is.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// What made it: the schedule, or a resend or recovery.
    pub trigger: Trigger,
}

/// One attempt of a delivery as the API shows it.
pub fn attempt(a: &AttemptRecord) -> AttemptView {
    AttemptView {
        attempt: a.attempt,
        at: rfc3339(a.at),
        succeeded: a.succeeded,
        status_code: a.status_code,
        duration_ms: a.duration_ms,
        error_kind: a.error_kind.clone(),
        error: a.error.clone(),
        response_body: a.response_body.clone(),
        next_attempt_at: a.next_attempt_at.map(rfc3339),
        trigger: a.trigger,
    }
}

/// A delivery with every attempt made.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryWithAttempts {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: DeliveryView,
    /// Its attempts, oldest first.
    pub attempt_log: Vec<AttemptView>,
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Tenant)]
pub struct TenantView {
    /// The tenant's id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Whether its traffic flows.
    pub status: TenantStatus,
}

/// A tenant as the API shows it.
pub fn tenant(t: &TenantRecord) -> TenantView {
    TenantView {
        id: t.id.to_string(),
        name: t.name.clone(),
        created_at: rfc3339(t.created_at),
        status: t.status,
    }
}

/// A tenant API key: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct ApiKeyView {
    /// `key_<ULID>`: names the key to revoke it.
    pub key_id: String,
    /// Whose key it is.
    pub tenant_id: String,
    /// The operator's note.
    pub label: Option<String>,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// What the key may do.
    pub scope: KeyScope,
    /// When it stops working; `null`: never.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A new API key: the only answer that ever holds the key.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewApiKey {
    /// The key's record.
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The key (`sy_…`): shown once, stored only as its SHA-256.
    pub api_key: String,
}

/// An API key as the API shows it.
pub fn api_key(k: &ApiKeyRecord) -> ApiKeyView {
    ApiKeyView {
        key_id: k.key_id.clone(),
        tenant_id: k.tenant_id.to_string(),
        label: k.label.clone(),
        prefix: k.prefix.clone(),
        scope: k.scope,
        expires_at: k.expires_at.map(rfc3339),
        created_at: rfc3339(k.created_at),
    }
}

/// An event as listings show it (its deliveries are at
/// `GET /v1/events/{event_id}`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    /// The event's id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who produced it.
    pub source: String,
    /// When it happened, as the producer says.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// When Switchyard accepted it.
    #[schema(format = DateTime)]
    pub received_at: String,
    /// Its payload.
    pub data: Map<String, Value>,
    /// Trace and correlation ids.
    #[schema(value_type = Object)]
    pub metadata: Value,
}

/// A stored event as listings show it.
pub fn event(r: &EventRecord) -> EventView {
    let e = &r.envelope;
    EventView {
        id: e.id.to_string(),
        event_type: e.event_type.to_string(),
        source: e.source.to_string(),
        timestamp: rfc3339(e.timestamp),
        received_at: rfc3339(r.received_at),
        data: e.data.clone(),
        metadata: serde_json::to_value(&e.metadata).unwrap_or_default(),
    }
}

/// An event with its deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventWithDeliveries {
    /// The event's id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its payload's schema version.
    pub version: String,
    /// When it happened, as the producer says.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Who produced it.
    pub source: String,
    /// Its payload.
    pub data: Map<String, Value>,
    /// Trace and correlation ids.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// Which tracks it took.
    #[schema(value_type = Object)]
    pub routing: Value,
    /// When Switchyard accepted it.
    #[schema(format = DateTime)]
    pub received_at: String,
    /// Its first hundred deliveries.
    pub deliveries: Vec<DeliveryView>,
}

/// An endpoint's signing secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointSecret {
    /// The secret that signs now (`whsec_…`).
    pub secret: String,
    /// Rotated-out secrets that still sign beside it.
    pub previous: Vec<PreviousSecret>,
}

/// A rotated-out secret that still signs.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviousSecret {
    /// The secret.
    pub secret: String,
    /// Until when it signs.
    #[schema(format = DateTime)]
    pub valid_until: String,
}

/// A rotation's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new secret.
    pub secret: String,
    /// Until when the old one keeps signing; `null` when it stopped at once.
    #[schema(format = DateTime)]
    pub previous_valid_until: Option<String>,
}

/// A test event on its way.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestSent {
    /// The `webhook.test` event.
    pub event_id: String,
    /// Its delivery to this endpoint.
    pub delivery_id: String,
}

/// A resend on its way.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResendAccepted {
    /// The delivery resent.
    pub delivery_id: String,
    /// Names the resend's attempt (its `trigger`).
    pub request_id: String,
}

/// What a recovery did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recovered {
    /// Deliveries sent again.
    pub requeued: u64,
    /// Failed deliveries whose event is no longer stored.
    pub event_expired: u64,
    /// Deliveries looked at.
    pub scanned: usize,
    /// Whether the window held more than the most one call looks at.
    pub truncated: bool,
}

/// A time window.
#[derive(Debug, Serialize, ToSchema)]
pub struct Window {
    /// Its start.
    #[schema(format = DateTime)]
    pub since: String,
    /// Its end.
    #[schema(format = DateTime)]
    pub until: String,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct Latency {
    /// The median; `null` without attempts.
    pub p50: Option<u64>,
    /// The 95th percentile; `null` without attempts.
    pub p95: Option<u64>,
}

/// An endpoint's health over the last 24 hours.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointHealth {
    /// The endpoint.
    pub endpoint_id: String,
    /// The 24 hours looked at.
    pub window: Window,
    /// Deliveries created in the window.
    pub deliveries: u64,
    /// Of which succeeded.
    pub succeeded: u64,
    /// Of which failed.
    pub failed: u64,
    /// Of which still pending or retrying.
    pub pending: u64,
    /// Succeeded over finished; `null` with none finished.
    pub success_rate: Option<f64>,
    /// Attempt latency.
    pub latency_ms: Latency,
    /// Whether the endpoint is enabled.
    pub enabled: bool,
    /// Whether its circuit is open.
    pub circuit_open: bool,
}

//! The records the services and their ports pass around: accepted events,
//! idempotency claims, webhook requests and answers, deliveries and their
//! attempts. Plain data with their serde shapes; no behaviour that needs a
//! port, so every other module can depend on this one and it on none of
//! them but the leaf types (ids, envelope, endpoint URL, task).

use crate::endpoint::EndpointUrl;
use crate::envelope::Envelope;
use crate::error::PortError;
use crate::event_type::EventType;
use crate::ids::{DeliveryId, EndpointId, EventId, TenantId};
use crate::task::DeliveryTask;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use time::OffsetDateTime;

/// The stored record of an accepted event (its audit record and dedupe key),
/// written once its hand-over (fan-out task, bus) was done.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// The event as accepted, defaults filled in.
    pub envelope: Envelope,
    /// When Switchyard accepted it (its clock, not the event's `timestamp`).
    pub received_at: OffsetDateTime,
    /// When the record may be deleted (DynamoDB TTL) and stops deduplicating
    /// its id: whole seconds. The retention period for `routing.audit`
    /// events, the dedupe window for the others.
    pub expires_at: OffsetDateTime,
}

/// The result of a conditional insert.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    /// The record was written: the event is new.
    Inserted,
    /// An event with this id already exists for the tenant; here it is.
    Exists(Box<EventRecord>),
}

/// A request to hold an idempotency key for an event until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    /// The tenant whose key it is; keys are scoped per tenant.
    pub tenant: TenantId,
    /// The SHA-256 of the producer's `Idempotency-Key`, hex
    /// ([`crate::ingest::IdempotencyKey::digest`]).
    pub key_digest: String,
    /// The event the key names if this claim wins.
    pub event_id: EventId,
    /// The time of the claim; a held key whose window has ended by then is taken over.
    pub now: OffsetDateTime,
    /// The end of the dedupe window: whole seconds.
    pub expires_at: OffsetDateTime,
}

/// The result of [`crate::ports::EventStore::claim_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The key is now held for the claim's event.
    Claimed,
    /// The tenant already holds the key (within its window) for this event.
    Held(EventId),
}

/// A header name or value: the ones Switchyard sets are static strings, the
/// endpoint's custom ones and the per-request ones are owned.
pub type HeaderText = Cow<'static, str>;

/// A request ready to send. Its `Debug` leaves the body and header values out.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// Where the request goes.
    pub url: EndpointUrl,
    /// Name and value pairs, in the order they are sent: the endpoint's custom
    /// headers first, then Switchyard's own.
    pub headers: Vec<(HeaderText, HeaderText)>,
    /// The event's JSON payload, sent as is (its bytes are what is signed).
    pub body: String,
}

impl fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRequest")
            .field("url", &self.url)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k.as_ref()).collect::<Vec<_>>(),
            )
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

/// What a receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    /// The HTTP status code.
    pub status: u16,
    /// At most [`crate::delivery::MAX_RECORDED_BODY`] bytes of the body, lossily decoded.
    pub body: String,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

/// Why no answer came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No answer within the request timeout.
    #[error("timed out")]
    Timeout,
    /// The connection could not be made; the text says why.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The resolved address is one the SSRF policy forbids; the text names it.
    #[error("refused by the SSRF guard: {0}")]
    Refused(String),
    /// The connection broke while the request or answer was in flight.
    #[error("the exchange failed: {0}")]
    Io(String),
}

impl SendError {
    /// The error kind recorded with the attempt.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect",
            Self::Refused(_) => "address_refused",
            Self::Io(_) => "io",
        }
    }
}

/// What started an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The retry schedule (or the first delivery of an event) started it.
    Scheduled,
    /// A replay the management API asked for started it.
    Manual,
}

/// One attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The delivery the attempt belongs to.
    pub delivery_id: DeliveryId,
    /// The attempt's number over the delivery's life, from 1.
    pub attempt: u32,
    /// When the attempt started.
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub at: OffsetDateTime,
    /// Whether the receiver answered 2xx.
    pub succeeded: bool,
    /// The receiver's HTTP status; `None` when no answer came back or the
    /// endpoint was not called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// How long the attempt took, in milliseconds (0 when the endpoint was not called).
    pub duration_ms: u64,
    /// `http_status`, `timeout`, `connect`, `io`, `address_refused`,
    /// `url_refused`, or `circuit_open` (the endpoint was not called).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// What went wrong, in words; `None` for a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The start of the receiver's answer (at most
    /// [`crate::delivery::MAX_RECORDED_BODY`] bytes); `None` when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// When the next attempt is due, if there will be one.
    #[serde(
        default,
        with = "crate::time_util::serde_rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// What started the attempt.
    pub trigger: Trigger,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// A 2xx was received.
    Succeeded,
    /// The last attempt failed; another is scheduled.
    Retrying,
    /// Given up: the schedule was exhausted, the endpoint is gone or its URL
    /// refused. The task is in the deliveries DLQ.
    Failed,
    /// Not attempted: the endpoint was deleted or disabled.
    Skipped,
}

/// A delivery's current state, stored beside its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The delivery's id: one per event and endpoint.
    pub delivery_id: DeliveryId,
    /// The tenant that owns the event and the endpoint.
    pub tenant_id: TenantId,
    /// The endpoint the event is delivered to.
    pub endpoint_id: EndpointId,
    /// The event delivered.
    pub event_id: EventId,
    /// The event's type, kept for listings and notices.
    pub event_type: EventType,
    /// Where the delivery stands.
    pub state: DeliveryState,
    /// Attempts made over the delivery's life.
    pub attempts: u32,
    /// Attempts in the current round (a redrive from the DLQ starts a new one);
    /// the retry schedule is indexed by this.
    #[serde(default)]
    pub round_attempts: u32,
    /// The HTTP status of the last attempt; `None` before the first attempt or
    /// when the last one got no answer.
    pub last_status_code: Option<u16>,
    /// How long the last attempt that called the endpoint took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_ms: Option<u64>,
    /// The last replay request (`DeliveryTask::manual_request`) acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_request: Option<String>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the next attempt is due while `Retrying`; `None` otherwise.
    #[serde(
        default,
        with = "crate::time_util::serde_rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When the delivery was created (the task's creation time).
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the record last changed.
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The delivery's first attempt, kept in the record itself: most
    /// deliveries succeed at once, and then the record is the only write
    /// (the attempt log is this plus the later attempts' own records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_attempt: Option<AttemptRecord>,
    /// The latest copy of the task (`DeliveryTask::generation`): raised by
    /// the reconciler when it sends a lost task again.
    #[serde(default)]
    pub task_generation: u32,
    /// It delivers an operational event (`DeliveryTask::operational`): its
    /// failure tells no one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operational: bool,
}

impl DeliveryRecord {
    pub(crate) fn new(task: &DeliveryTask, state: DeliveryState, now: OffsetDateTime) -> Self {
        Self {
            delivery_id: task.delivery_id.clone(),
            tenant_id: task.tenant_id.clone(),
            endpoint_id: task.endpoint_id.clone(),
            event_id: task.event_id.clone(),
            event_type: task.event_type.clone(),
            state,
            attempts: 0,
            round_attempts: 0,
            last_status_code: None,
            last_duration_ms: None,
            manual_request: None,
            reason: None,
            next_attempt_at: None,
            created_at: task.created_at,
            updated_at: now,
            first_attempt: None,
            task_generation: task.generation,
            operational: task.operational,
        }
    }

    /// The delivery's attempt log, oldest first: the attempts stored on
    /// their own (`stored`) and the first attempt this record carries, each
    /// attempt number once (deliveries recorded before the first attempt
    /// moved into the record have it stored on its own too).
    pub fn attempt_log(&self, mut stored: Vec<AttemptRecord>) -> Vec<AttemptRecord> {
        if let Some(first) = &self.first_attempt
            && !stored.iter().any(|a| a.attempt == first.attempt)
        {
            stored.push(first.clone());
        }
        stored.sort_by_key(|a| a.attempt);
        stored
    }
}

// ---------------------------------------------------------------------------
// What the management API reads and writes beside the records above

/// A limit that a request would go past: its name (as the API's error
/// details and the documentation call it) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    /// The limit's name as the API and the docs call it, e.g. `endpoints_per_tenant`.
    pub limit: &'static str,
    /// The limit's value: the most allowed.
    pub value: u64,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the limit {} of {} is reached", self.limit, self.value)
    }
}

/// One page of a listing; `next` is an opaque cursor for the following page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items of this page, in the listing's order.
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// A page with nothing on it and nothing after it.
    pub fn empty() -> Self {
        Self {
            items: Vec::new(),
            next: None,
        }
    }
}

/// Why a listing failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The cursor does not decode, or belongs to another listing (another
    /// tenant's, another endpoint's, another window).
    #[error("the cursor is not valid here")]
    BadCursor,
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// A tenant, as the management API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRecord {
    /// The tenant's id.
    pub id: TenantId,
    /// The tenant's display name.
    pub name: String,
    /// When it was created (the Unix epoch for a tenant stored before
    /// creation times were recorded).
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub created_at: OffsetDateTime,
    /// Whether it is active or suspended.
    pub status: TenantStatus,
}

/// Whether a tenant's traffic flows. A suspended tenant's API keys are
/// refused at ingest (403 `tenant_suspended`) and its deliveries wait,
/// unattempted, until it is active again; its management API keeps working.
/// A tenant stored without a status is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Ingest and deliveries run.
    #[default]
    Active,
    /// Ingest refuses its keys; deliveries wait.
    Suspended,
}

impl TenantStatus {
    /// The status named `s` (`active` or `suspended`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }

    /// The status's name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

/// An API key as its tenant's listing holds it: never the key, only its
/// id, label and the first characters shown to tell keys apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The key's id, used to revoke it.
    pub key_id: String,
    /// The tenant the key authenticates as.
    pub tenant_id: TenantId,
    /// A name the tenant gave the key; `None` when it gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    /// When the key was created.
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub created_at: OffsetDateTime,
    /// What the key may do (keys stored before scopes: `manage`).
    #[serde(default)]
    pub scope: crate::api_key::KeyScope,
    /// When the key stops working; `None`: never.
    #[serde(
        default,
        with = "crate::time_util::serde_rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

/// An endpoint's deliveries over a period, summed up.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EndpointStats {
    /// Deliveries in the period.
    pub deliveries: u64,
    /// Deliveries that succeeded.
    pub succeeded: u64,
    /// Deliveries that failed (given up).
    pub failed: u64,
    /// Still retrying.
    pub pending: u64,
    /// `succeeded / (succeeded + failed)`; `None` when neither happened.
    pub success_rate: Option<f64>,
    /// Nearest-rank percentiles of the last attempt's duration of the
    /// deliveries that have one.
    pub latency_p50_ms: Option<u64>,
    /// The 95th percentile of the same durations, in milliseconds.
    pub latency_p95_ms: Option<u64>,
}

/// One page of an audit trail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditPage {
    /// The event records of this page.
    pub events: Vec<EventRecord>,
    /// The cursor of the next page, if the limit cut this one short.
    pub next: Option<String>,
}

/// Why an endpoint was not registered.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The SSRF policy refuses the URL or an address its host resolves to.
    #[error("the endpoint URL is refused: {0}")]
    Refused(crate::ssrf::SsrfError),
    /// The URL's host does not resolve; the text says why.
    #[error("the endpoint's host does not resolve: {0}")]
    Unresolvable(String),
    /// The store failed.
    #[error("storing the endpoint failed: {0}")]
    Store(PortError),
    /// A tenant limit (endpoints, custom headers) would be passed.
    #[error("{0}")]
    LimitReached(LimitExceeded),
}

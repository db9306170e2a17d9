//! The event envelope: one shape for every event, whatever door it came in by.
//!
//! [`parse_event`] is the only way from untrusted bytes to an [`Envelope`]: it
//! checks size, syntax and every field, fills in defaults, and takes the tenant
//! from the caller (authentication), never from the body.
//!
//! One file on purpose: the envelope's types and the one parser that
//! builds them change together (under 500 lines without the tests).

use crate::event_type::EventType;
use crate::ids::{EventId, TenantId, string_id};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use time::OffsetDateTime;

fn source_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/')
}

fn version_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

string_id!(
    /// The producing system: `api`, `aws.s3`, `billing-service`.
    Source, "source", 128, source_char
);
string_id!(
    /// The schema version of `data`, default `1.0`.
    SchemaVersion, "version", 32, version_char
);

impl Source {
    /// `switchyard`: the source of Switchyard's own operational events.
    pub fn switchyard() -> Self {
        Self("switchyard".to_string())
    }

    /// `api`: the source of an event posted to the HTTP API without one.
    pub fn api() -> Self {
        Self("api".to_string())
    }
}

impl Default for SchemaVersion {
    fn default() -> Self {
        Self("1.0".to_string())
    }
}

/// The longest value of a metadata field.
pub const MAX_METADATA_LEN: usize = 256;
/// The highest priority.
pub const MAX_PRIORITY: u8 = 10;

/// Tracing and correlation fields, each at most 256 characters at the door.
/// Read tolerantly inside (a field added by a later version is ignored);
/// producers' events are checked strictly by [`parse_event`].
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The distributed trace the event belongs to, as the producer names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The W3C `traceparent` of the event: settled by ingest (see
    /// [`crate::trace::TraceParent::settle`]) and sent, with a span of its
    /// own, on every webhook request. `None` on events accepted before it
    /// was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Ties events of one business operation together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The end user's session, if the producer knows it (personal data: kept out
    /// of `Debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The end user the event is about or caused by (personal data: kept out of
    /// `Debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// `metadata` as a producer sends it: no unknown field, every value within
/// [`MAX_METADATA_LEN`].
#[derive(Default)]
struct DoorMetadata(Metadata);

impl<'de> Deserialize<'de> for DoorMetadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RawMetadata::deserialize(d)?;
        for (name, v) in [
            ("trace_id", &r.trace_id),
            ("traceparent", &r.traceparent),
            ("correlation_id", &r.correlation_id),
            ("session_id", &r.session_id),
            ("user_id", &r.user_id),
        ] {
            if v.as_ref().is_some_and(|v| v.chars().count() > MAX_METADATA_LEN) {
                return Err(serde::de::Error::custom(format_args!(
                    "metadata.{name} is longer than {MAX_METADATA_LEN} characters"
                )));
            }
        }
        Ok(Self(Metadata {
            trace_id: r.trace_id,
            traceparent: r.traceparent,
            correlation_id: r.correlation_id,
            session_id: r.session_id,
            user_id: r.user_id,
        }))
    }
}

/// `metadata` as a producer sends it: each value at most 256 characters
/// (`MAX_METADATA_LEN`).
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = EventMetadata))]
#[serde(deny_unknown_fields)]
pub struct RawMetadata {
    /// The distributed trace the event belongs to.
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    trace_id: Option<String>,
    /// A W3C `traceparent`; a valid one becomes the event's trace.
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    traceparent: Option<String>,
    /// Ties events of one business operation together.
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    correlation_id: Option<String>,
    /// The end user's session (personal data: never logged).
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    session_id: Option<String>,
    /// The end user the event is about (personal data: never logged).
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    user_id: Option<String>,
}

impl Metadata {
    /// Whether no field is set (then it is left out of the stored JSON).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // user and session ids are personal data: keep them out of logs.
        f.debug_struct("Metadata")
            .field("trace_id", &self.trace_id)
            .field("traceparent", &self.traceparent)
            .field("correlation_id", &self.correlation_id)
            .finish_non_exhaustive()
    }
}

/// Which tracks an event takes. All default to `true`. Read tolerantly
/// inside; producers' events are checked strictly by [`parse_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    /// The event goes onto the application's bus for the internal track's
    /// consumers.
    #[serde(default = "yes")]
    pub internal: bool,
    /// The event is delivered as webhooks to the tenant's endpoints.
    #[serde(default = "yes")]
    pub external: bool,
    /// The event's record is kept for the audit retention period.
    #[serde(default = "yes")]
    pub audit: bool,
    /// The internal track's priority, 0 to [`MAX_PRIORITY`]; `None`: the
    /// routing table's default for the event's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            internal: true,
            external: true,
            audit: true,
            priority: None,
        }
    }
}

/// `routing` as a producer sends it: no unknown field, a priority within
/// [`MAX_PRIORITY`].
#[derive(Default)]
struct DoorRouting(Routing);

impl<'de> Deserialize<'de> for DoorRouting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RawRouting::deserialize(d)?;
        if r.priority.is_some_and(|p| p > MAX_PRIORITY) {
            return Err(serde::de::Error::custom(format_args!(
                "routing.priority must be 0 to {MAX_PRIORITY}"
            )));
        }
        Ok(Self(Routing {
            internal: r.internal,
            external: r.external,
            audit: r.audit,
            priority: r.priority,
        }))
    }
}

/// `routing` as a producer sends it: which tracks the event takes (each
/// `true` when left out).
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = EventRouting))]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    /// Onto the application's bus, for the internal track's consumers.
    #[serde(default = "yes")]
    #[cfg_attr(feature = "openapi", schema(default = true))]
    internal: bool,
    /// As webhooks to the tenant's endpoints.
    #[serde(default = "yes")]
    #[cfg_attr(feature = "openapi", schema(default = true))]
    external: bool,
    /// The event's record is kept for the audit retention period.
    #[serde(default = "yes")]
    #[cfg_attr(feature = "openapi", schema(default = true))]
    audit: bool,
    /// The internal track's priority (0 to 10); absent: the routing table's
    /// default for the type.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 10))]
    priority: Option<u8>,
}

fn yes() -> bool {
    true
}

/// A normalised event. Its `Debug` leaves the payload out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The event's id, unique per tenant: the same id sent again while its
    /// record is kept is a duplicate.
    pub id: EventId,
    /// The event's type, e.g. `user.created` (`type` in JSON).
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The schema version of `data`.
    pub version: SchemaVersion,
    /// When the event happened, as the producer says (RFC 3339).
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The system that produced it.
    pub source: Source,
    /// The tenant it belongs to: always the authenticated caller's.
    pub tenant_id: TenantId,
    /// The event's payload: a JSON object.
    pub data: Map<String, Value>,
    /// Tracing and correlation fields.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    /// Which tracks the event takes.
    #[serde(default)]
    pub routing: Routing,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("id", &self.id)
            .field("type", &self.event_type)
            .field("version", &self.version)
            .field("timestamp", &self.timestamp)
            .field("source", &self.source)
            .field("tenant_id", &self.tenant_id)
            .field("data", &format_args!("<{} fields>", self.data.len()))
            .field("metadata", &self.metadata)
            .field("routing", &self.routing)
            .finish()
    }
}

/// The body a tenant's endpoint receives: the envelope as the tenant should see
/// it (no tenant id, no routing).
#[derive(Serialize)]
struct WebhookBody<'a> {
    id: &'a EventId,
    #[serde(rename = "type")]
    event_type: &'a EventType,
    version: &'a SchemaVersion,
    timestamp: String,
    source: &'a Source,
    data: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    metadata: &'a Metadata,
}

impl Envelope {
    /// The webhook body, serialised once at fan-out so that every attempt sends
    /// (and signs) the same bytes.
    pub fn webhook_body(&self) -> String {
        let body = WebhookBody {
            id: &self.id,
            event_type: &self.event_type,
            version: &self.version,
            timestamp: crate::time_util::rfc3339(self.timestamp),
            source: &self.source,
            data: &self.data,
            metadata: &self.metadata,
        };
        // Serialising a struct of strings and a JSON map cannot fail.
        serde_json::to_string(&body).unwrap_or_else(|_| "{}".to_string())
    }
}

/// Limits applied at ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl IngestLimits {
    /// 64 KiB: one SQS billing unit per message.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
    /// The most a deployment may configure: the delivery task must still fit
    /// SQS's 256 KiB message limit and DynamoDB's 400 KB item limit.
    pub const HARD_MAX_BODY_BYTES: usize = 200 * 1024;
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Why an incoming event was refused. Each maps to a 4xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is larger than the door's limit.
    #[error("the event is {actual} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// The most bytes accepted.
        limit: usize,
        /// The body's size in bytes.
        actual: usize,
    },
    /// Small enough as sent, too large once escaped into a queue message
    /// (every `"` and control character costs more there).
    #[error(
        "the event takes {actual} bytes once encoded for the queue (quotes and control characters are escaped); \
         the limit is {limit} bytes"
    )]
    TooLargeEncoded {
        /// The most bytes a queued event may take.
        limit: usize,
        /// The event's size once encoded, in bytes.
        actual: usize,
    },
    /// The body is not JSON, or not an object of the event's shape; the
    /// text says where.
    #[error("the body is not a valid event: {0}")]
    Malformed(String),
    /// The named field is required and absent.
    #[error("`{0}` is required")]
    Missing(&'static str),
    /// A field is present but its value is refused.
    #[error("`{field}` {reason}")]
    Invalid {
        /// The field's name, as in the JSON.
        field: &'static str,
        /// What is wrong with it, in words that follow the name.
        reason: String,
    },
}

impl EnvelopeError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } | Self::TooLargeEncoded { .. } => "payload_too_large",
            Self::Malformed(_) => "invalid_json",
            Self::Missing(_) => "missing_field",
            Self::Invalid { .. } => "invalid_field",
        }
    }

    /// The HTTP status it answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } | Self::TooLargeEncoded { .. } => 413,
            Self::Malformed(_) => 400,
            Self::Missing(_) | Self::Invalid { .. } => 422,
        }
    }

    /// The field at fault, where there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Missing(f) | Self::Invalid { field: f, .. } => Some(f),
            _ => None,
        }
    }
}

/// An event as a producer sends it (`POST /v1/events`): only `type` and
/// `data` are required.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = EventInput))]
#[serde(deny_unknown_fields)]
pub struct IncomingEvent {
    /// The event's id, unique per tenant: the same id sent again is
    /// accepted once (`evt_<ULID>` when left out).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")
    )]
    id: Option<String>,
    /// The event's type: two or more dot-separated segments of `[a-z0-9_]`.
    #[serde(rename = "type")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = String, required = true, max_length = 128, pattern = "^[a-z0-9_]+(\\.[a-z0-9_]+)+$")
    )]
    event_type: Option<String>,
    /// The payload's schema version (`1.0` when left out).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 32, pattern = "^[A-Za-z0-9_.-]+$")
    )]
    version: Option<String>,
    /// When the event happened (RFC 3339); the time of receipt when left out.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    timestamp: Option<String>,
    /// Who produced it (`api` when left out).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:/-]+$")
    )]
    source: Option<String>,
    /// The payload: a JSON object. `Some(Value::Null)` for an explicit
    /// `null`, `None` when absent.
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object, required = true))]
    data: Option<Value>,
    /// Trace and correlation ids.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = RawMetadata, required = false))]
    metadata: DoorMetadata,
    /// Which tracks the event takes.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = RawRouting, required = false))]
    routing: DoorRouting,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Parses an event body sent by a producer into an envelope for `tenant`.
///
/// `default_source` is used when the body names none (the HTTP door says
/// `api`); `now` stamps events that carry no timestamp.
pub fn parse_event(
    body: &[u8],
    tenant: TenantId,
    default_source: &Source,
    now: OffsetDateTime,
    limits: IngestLimits,
) -> Result<Envelope, EnvelopeError> {
    if body.len() > limits.max_body_bytes {
        return Err(EnvelopeError::TooLarge {
            limit: limits.max_body_bytes,
            actual: body.len(),
        });
    }
    let raw: IncomingEvent = serde_json::from_slice(body).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;

    let event_type = raw.event_type.ok_or(EnvelopeError::Missing("type"))?;
    let event_type = EventType::parse(event_type).map_err(|e| EnvelopeError::Invalid {
        field: "type",
        reason: e.to_string(),
    })?;

    let id = match raw.id {
        Some(id) => EventId::parse(id).map_err(|e| EnvelopeError::Invalid {
            field: "id",
            reason: format!("{} (1–128 characters of A–Z, a–z, 0–9, `_.:-`)", e.reason),
        })?,
        None => EventId::generate(),
    };

    let version = match raw.version {
        Some(v) => SchemaVersion::parse(v).map_err(|e| EnvelopeError::Invalid {
            field: "version",
            reason: e.reason.to_string(),
        })?,
        None => SchemaVersion::default(),
    };

    let timestamp = match raw.timestamp {
        Some(ts) => crate::time_util::parse_rfc3339(&ts).map_err(|_| EnvelopeError::Invalid {
            field: "timestamp",
            reason: "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z".to_string(),
        })?,
        None => now,
    };

    let source = match raw.source {
        Some(s) => Source::parse(s).map_err(|e| EnvelopeError::Invalid {
            field: "source",
            reason: e.reason.to_string(),
        })?,
        None => default_source.clone(),
    };

    let data = match raw.data {
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(EnvelopeError::Invalid {
                field: "data",
                reason: "must be a JSON object".to_string(),
            });
        }
        None => return Err(EnvelopeError::Missing("data")),
    };

    let envelope = Envelope {
        id,
        event_type,
        version,
        timestamp,
        source,
        tenant_id: tenant,
        data,
        metadata: raw.metadata.0,
        routing: raw.routing.0,
    };
    check_queued_size(&envelope)?;
    Ok(envelope)
}

/// The most an event may take in a queue message: SQS's 256 KiB, less room
/// for the task's other fields.
pub const MAX_QUEUED_BYTES: usize = 256 * 1024 - 4 * 1024;

/// Refuses an event whose fan-out task (the envelope as JSON) or delivery
/// task (the webhook body as a JSON string inside it) would not fit a queue
/// message: a body within the byte limit as sent can pass SQS's once its
/// quotes and control characters are escaped again, and then fan-out would
/// fail on it forever.
pub fn check_queued_size(envelope: &Envelope) -> Result<(), EnvelopeError> {
    let fanout = serde_json::to_string(envelope).map_or(usize::MAX, |s| s.len());
    let delivery = serde_json::to_string(&envelope.webhook_body()).map_or(usize::MAX, |s| s.len());
    let actual = fanout.max(delivery);
    if actual > MAX_QUEUED_BYTES {
        return Err(EnvelopeError::TooLargeEncoded {
            limit: MAX_QUEUED_BYTES,
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_within_the_limit_that_escapes_past_sqs_is_refused() {
        let limits = IngestLimits {
            max_body_bytes: IngestLimits::HARD_MAX_BODY_BYTES,
        };
        let body = |fill: &str, n: usize| format!(r#"{{"type":"a.b","data":{{"s":"{}"}}}}"#, fill.repeat(n));
        // 190 KiB of escaped quotes: within the 200 KiB limit as sent, about
        // 380 KiB as the delivery task's payload string.
        let quotes = body(r#"\""#, 95 * 1024);
        assert!(quotes.len() < limits.max_body_bytes);
        let e = parse_event(quotes.as_bytes(), tenant(), &api(), now(), limits).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("payload_too_large", 413), "{e}");
        assert!(e.to_string().contains("escaped"), "{e}");
        // Plain text of the same size fits.
        let plain = body("x", 190 * 1024);
        assert!(parse_event(plain.as_bytes(), tenant(), &api(), now(), limits).is_ok());
    }

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn the_built_in_sources_are_valid() {
        assert_eq!(Source::api(), Source::parse("api").unwrap());
        assert_eq!(Source::switchyard(), Source::parse("switchyard").unwrap());
    }

    fn api() -> Source {
        Source::parse("api").unwrap()
    }

    fn now() -> OffsetDateTime {
        crate::time_util::parse_rfc3339("2026-11-29T10:00:00Z").unwrap()
    }

    fn parse(body: &str) -> Result<Envelope, EnvelopeError> {
        parse_event(body.as_bytes(), tenant(), &api(), now(), IngestLimits::default())
    }

    #[test]
    fn a_minimal_event_gets_defaults() {
        let e = parse(r#"{"type":"user.created","data":{"user_id":"u1"}}"#).unwrap();
        assert!(e.id.as_str().starts_with("evt_"));
        assert_eq!(e.event_type.as_str(), "user.created");
        assert_eq!(e.version.as_str(), "1.0");
        assert_eq!(e.timestamp, now());
        assert_eq!(e.source.as_str(), "api");
        assert_eq!(e.tenant_id, tenant());
        assert_eq!(e.data["user_id"], "u1");
        assert_eq!(e.routing, Routing::default());
        assert!(e.metadata.is_empty());
    }

    #[test]
    fn a_full_event_is_kept_and_normalised() {
        let e = parse(
            r#"{"id":"order-42:v1","type":"order.placed","version":"2.1","timestamp":"2026-11-29T11:00:00+01:00",
               "source":"shop/web","data":{"n":1},"metadata":{"trace_id":"t-1","user_id":"u"},
               "routing":{"internal":false,"priority":7}}"#,
        )
        .unwrap();
        assert_eq!(e.id.as_str(), "order-42:v1");
        assert_eq!(e.version.as_str(), "2.1");
        assert_eq!(crate::time_util::rfc3339(e.timestamp), "2026-11-29T10:00:00Z");
        assert_eq!(e.source.as_str(), "shop/web");
        assert_eq!(e.metadata.trace_id.as_deref(), Some("t-1"));
        assert_eq!(
            e.routing,
            Routing {
                internal: false,
                external: true,
                audit: true,
                priority: Some(7)
            }
        );
        // The envelope survives a round trip through JSON (the fan-out task).
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), e);
    }

    #[test]
    fn bad_events_are_refused_with_the_right_error() {
        let cases: &[(&str, &str, u16)] = &[
            ("{", "invalid_json", 400),
            ("", "invalid_json", 400),
            ("[]", "invalid_json", 400),
            ("null", "invalid_json", 400),
            (r#"{"type":5,"data":{}}"#, "invalid_json", 400),
            (r#"{"type":"a.b","data":{},"tenant_id":"other"}"#, "invalid_json", 400),
            (
                r#"{"type":"a.b","data":{},"routing":{"internal":"yes"}}"#,
                "invalid_json",
                400,
            ),
            (
                r#"{"type":"a.b","data":{},"routing":{"priority":11}}"#,
                "invalid_json",
                400,
            ),
            (r#"{"type":"a.b","data":{},"metadata":{"x":"y"}}"#, "invalid_json", 400),
            (r#"{"data":{}}"#, "missing_field", 422),
            (r#"{"type":"a.b"}"#, "missing_field", 422),
            (r#"{"type":"User Created","data":{}}"#, "invalid_field", 422),
            (r#"{"type":"user","data":{}}"#, "invalid_field", 422),
            (r#"{"type":"a.b","data":[1]}"#, "invalid_field", 422),
            (r#"{"type":"a.b","data":"x"}"#, "invalid_field", 422),
            (r#"{"type":"a.b","data":null}"#, "invalid_field", 422),
            (r#"{"type":"a.b","data":{},"id":"a#b"}"#, "invalid_field", 422),
            (r#"{"type":"a.b","data":{},"id":""}"#, "invalid_field", 422),
            (
                r#"{"type":"a.b","data":{},"timestamp":"yesterday"}"#,
                "invalid_field",
                422,
            ),
            (
                r#"{"type":"a.b","data":{},"source":"bad source"}"#,
                "invalid_field",
                422,
            ),
            (r#"{"type":"a.b","data":{},"version":""}"#, "invalid_field", 422),
        ];
        for (body, code, status) in cases {
            let err = parse(body).expect_err(body);
            assert_eq!((err.code(), err.http_status()), (*code, *status), "{body}: {err}");
        }
    }

    #[test]
    fn oversize_and_hostile_bodies_are_refused_without_panicking() {
        let limits = IngestLimits { max_body_bytes: 100 };
        let big = format!(r#"{{"type":"a.b","data":{{"x":"{}"}}}}"#, "y".repeat(200));
        let err = parse_event(big.as_bytes(), tenant(), &api(), now(), limits).unwrap_err();
        assert_eq!(
            err,
            EnvelopeError::TooLarge {
                limit: 100,
                actual: big.len()
            }
        );
        assert_eq!(err.http_status(), 413);

        let deep = format!(
            r#"{{"type":"a.b","data":{{"x":{}{}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let limits = IngestLimits {
            max_body_bytes: 1 << 20,
        };
        let err = parse_event(deep.as_bytes(), tenant(), &api(), now(), limits).unwrap_err();
        assert_eq!(err.code(), "invalid_json");

        let invalid_utf8 = b"{\"type\":\"a.b\",\"data\":{\"x\":\"\xff\xfe\"}}";
        let err = parse_event(invalid_utf8, tenant(), &api(), now(), limits).unwrap_err();
        assert_eq!(err.code(), "invalid_json");
    }

    #[test]
    fn the_webhook_body_hides_tenant_and_routing() {
        let e = parse(r#"{"id":"evt_1","type":"user.created","data":{"k":"v"}}"#).unwrap();
        let body: Value = serde_json::from_str(&e.webhook_body()).unwrap();
        assert_eq!(body["id"], "evt_1");
        assert_eq!(body["type"], "user.created");
        assert_eq!(body["timestamp"], "2026-11-29T10:00:00Z");
        assert_eq!(body["data"]["k"], "v");
        assert!(body.get("tenant_id").is_none());
        assert!(body.get("routing").is_none());
    }

    #[test]
    fn the_payload_keeps_the_producers_key_order() {
        let e = parse(r#"{"type":"a.b","data":{"zeta":1,"alpha":{"y":2,"b":3}}}"#).unwrap();
        assert!(
            e.webhook_body().contains(r#""data":{"zeta":1,"alpha":{"y":2,"b":3}}"#),
            "{}",
            e.webhook_body()
        );
    }

    #[test]
    fn debug_leaves_the_payload_out() {
        let e = parse(r#"{"type":"user.created","data":{"password":"hunter2"},"metadata":{"user_id":"bob"}}"#).unwrap();
        let dbg = format!("{e:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("bob"), "{dbg}");
    }
}

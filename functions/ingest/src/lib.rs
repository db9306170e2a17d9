//! The ingest handler: three doors, one envelope.
//!
//! [`Ingest::dispatch`] takes whatever Lambda passed and recognises its shape:
//!
//! | door | recognised by | answer |
//! |---|---|---|
//! | API Gateway HTTP API (payload 2.0) | `requestContext` and `version: "2.0"` (or a `routeKey`) | the HTTP response below |
//! | SQS ingest queue | `Records[]`, every one with `eventSource: "aws:sqs"` | a partial batch response |
//! | EventBridge rule (AWS service events) | `detail-type`, `source` and `detail` | `{"id", "duplicate"}`, or an error |
//!
//! Anything else is an error. Every door ends in `switchyard_core::ingest`
//! (dedupe, store, hand over to the bus and the fan-out queue).
//!
//! The HTTP door authenticates the caller's API key and maps the outcome to a
//! status:
//!
//! | outcome | status |
//! |---|---|
//! | accepted | 202 `{"id": …}` |
//! | repeat of an event id or `Idempotency-Key` | 200 `{"id": …, "duplicate": true}` |
//! | malformed JSON / unknown field | 400 `invalid_json` |
//! | bad `Idempotency-Key` header | 400 `invalid_header` |
//! | no or unknown API key | 401 `unauthorized` |
//! | not POST | 405 `method_not_allowed` |
//! | body over the limit | 413 `payload_too_large` |
//! | not JSON content | 415 `unsupported_media_type` |
//! | invalid field | 422 `missing_field` / `invalid_field` |
//! | over the tenant's rate (`INGEST_RATE_PER_SECOND`) | 429 `rate_limited`, `Retry-After` |
//! | AWS throttled or unavailable | 503 `unavailable` (safe to retry) |
//!
//! Every error body is `{"code": …, "message": …, "details"?: …}`.
//!
//! The rate is counted per tenant and second at the HTTP door only. The
//! SQS and EventBridge doors are not limited per tenant: their producers
//! are principals of the account, a refusal there could only be a retry or
//! a loss, and their cost is bounded by the ingest function's reserved
//! concurrency (messages wait in the queue, events in Lambda's async queue).
//!
//! The SQS door reads each message body as an HTTP body, for the tenant named
//! by the message attribute `tenant_id`, optionally deduplicated by an
//! `idempotency_key` attribute. Only the producer roles the queue's policy
//! lists can send; with producer bindings (`switchyard_core::producers`),
//! a message whose `SenderId` is not bound to its tenant is refused like an
//! invalid one (a batch item failure, then the DLQ), and counted as
//! rejected. A message with the attribute
//! `switchyard_door: eventbridge` (an AWS service event replayed from the
//! AWS events DLQ) is instead read as the EventBridge door reads its event:
//! same mapping, tenant from the same tenant rules, and no `tenant_id` or
//! `idempotency_key` attribute allowed. An invalid message or a failure is a
//! batch item failure; the queue's redrive policy moves a message that keeps
//! failing to its DLQ.
//!
//! The EventBridge door maps the event with `switchyard_core::doors` and its
//! tenant rules; an event it cannot accept (no tenant rule matches, invalid,
//! or AWS unavailable) is an invocation error, which Lambda retries and then
//! sends to the function's on-failure destination.

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_lambda_events::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use switchyard_aws::config::{
    ConfigError, audit_retention_days, env_in_range, env_opt, env_var, idempotency_window, retention_days,
};
use switchyard_aws::dynamo::{DynamoEventStore, DynamoRegistry};
use switchyard_aws::eventbridge::EventBridgeBus;
use switchyard_aws::sqs::SqsQueue;
use switchyard_aws::{
    Memo, RecordFailure, SdkConfig, aws_sdk_dynamodb, aws_sdk_eventbridge, aws_sdk_sqs, item_failure, process_sqs_batch,
};
use switchyard_core::batch_log::BatchLine;
use switchyard_core::doors::{
    AuthError, DOOR_ATTRIBUTE, EVENTBRIDGE_DOOR, ServiceEventError, TenantRules, authenticate, parse_service_event,
};
use switchyard_core::envelope::parse_event;
use switchyard_core::envelope::{EnvelopeError, IngestLimits, Source};
use switchyard_core::ingest::{
    Checked, IdempotencyKey, IngestConfig, IngestError, Ingested, Ports, accept, check, confirm, ingest, publish,
};
use switchyard_core::metrics::{Recorder, m};
use switchyard_core::model::EventRecord;
use switchyard_core::ports::{EventBus, EventStore, RateLimiter, Registry, TaskQueue, send_grouped};
use switchyard_core::producers::{ProducerBindings, TenantFrom};
use switchyard_core::quota::{Admission, INGEST_PER_SECOND, admit_ingest};
use switchyard_core::{FanoutTask, PortError, TenantId};

/// The HTTP header a producer names its idempotency key with.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The SQS message attribute naming the tenant of an ingest message.
pub const TENANT_ATTRIBUTE: &str = "tenant_id";
/// The SQS message attribute carrying an idempotency key (optional).
pub const IDEMPOTENCY_KEY_ATTRIBUTE: &str = "idempotency_key";
/// The SQS system attribute naming the principal that sent a message.
pub const SENDER_ID: &str = "SenderId";
/// The source of SQS ingest messages that name none.
pub const SQS_DEFAULT_SOURCE: &str = "sqs";

/// The ingest function's state, built once per process.
pub struct Ingest<R, S, Q, B> {
    pub registry: R,
    pub store: S,
    pub queue: Q,
    /// The application's bus; events with `routing.internal` are published
    /// to it when it is set.
    pub bus: Option<B>,
    pub config: IngestConfig,
    /// How AWS service events (the EventBridge door) find their tenant.
    pub tenant_rules: TenantRules,
    /// Which producer of the SQS door may send for which tenant.
    pub producers: ProducerBindings,
    /// `EventsIngested` / `EventsDuplicated` / `EventsRejected`, written as
    /// an EMF line at the end of each invocation.
    pub metrics: Recorder,
    /// Requests a second one tenant may make of the HTTP door; 0: no limit.
    pub ingest_per_second: u32,
}

/// Ingest over DynamoDB, SQS and EventBridge.
pub type AwsIngest = Ingest<DynamoRegistry, DynamoEventStore, SqsQueue<FanoutTask>, EventBridgeBus>;

/// Where ingest's resources are and how it behaves; from the environment in
/// Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub registry_table: String,
    pub deliveries_table: String,
    pub fanout_queue_url: String,
    pub max_body_bytes: usize,
    /// How long the records of `routing.audit` events are kept.
    pub audit_retention_days: u16,
    /// How long deliveries are kept after their last change: the records
    /// of events with webhooks are kept at least this long plus the longest
    /// retry schedule, so their ids stay taken while their deliveries exist.
    pub event_retention_days: u16,
    /// How long an `Idempotency-Key` or event id deduplicates (and how long
    /// records of events with `routing.audit = false` are kept).
    pub idempotency_window: std::time::Duration,
    /// The application's EventBridge bus (the internal track), if any.
    pub event_bus_name: Option<String>,
    pub tenant_rules: TenantRules,
    /// Which producer of the SQS door may send for which tenant.
    pub producers: ProducerBindings,
    /// Requests a second one tenant may make of the HTTP door; 0: no limit.
    pub ingest_per_second: u32,
}

impl Settings {
    /// Reads `REGISTRY_TABLE`, `DELIVERIES_TABLE`, `FANOUT_QUEUE_URL`, and
    /// optionally `MAX_BODY_BYTES` (default 65536, at most 204800),
    /// `AUDIT_RETENTION_DAYS` (default 365), `EVENT_RETENTION_DAYS` (default
    /// 30), `IDEMPOTENCY_WINDOW_HOURS`
    /// (default 24, at most 720), `EVENT_BUS_NAME` (default: none),
    /// `EVENTBRIDGE_TENANT_RULES` (a JSON array of rules, default none) and
    /// `EVENTBRIDGE_DEFAULT_TENANT` (default: none) and `EVENTBRIDGE_ACCOUNT`
    /// (the stack's account: AWS service events from another are refused;
    /// default: not checked), `INGEST_PRODUCER_TENANTS` (the producer
    /// bindings, a JSON object; default none: every producer is trusted for
    /// every tenant), `INGEST_REPLAY_SENDER` (the principal id that
    /// replays AWS service events; default none) and
    /// `INGEST_RATE_PER_SECOND` (default 100, at most 1000; 0: no limit).
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut tenant_rules = TenantRules::parse(
            env_opt("EVENTBRIDGE_TENANT_RULES").as_deref(),
            env_opt("EVENTBRIDGE_DEFAULT_TENANT").as_deref(),
        )
        .map_err(|e| ConfigError::Invalid {
            name: "EVENTBRIDGE_TENANT_RULES / EVENTBRIDGE_DEFAULT_TENANT",
            reason: e.to_string(),
        })?;
        tenant_rules.account = env_opt("EVENTBRIDGE_ACCOUNT");
        let producers = ProducerBindings::parse(env_opt("INGEST_PRODUCER_TENANTS").as_deref())
            .and_then(|b| b.with_replay_sender(env_opt("INGEST_REPLAY_SENDER").as_deref()))
            .map_err(|e| ConfigError::Invalid {
                name: "INGEST_PRODUCER_TENANTS / INGEST_REPLAY_SENDER",
                reason: e.to_string(),
            })?;
        Ok(Self {
            registry_table: env_var("REGISTRY_TABLE")?,
            deliveries_table: env_var("DELIVERIES_TABLE")?,
            fanout_queue_url: env_var("FANOUT_QUEUE_URL")?,
            max_body_bytes: env_in_range(
                "MAX_BODY_BYTES",
                IngestLimits::DEFAULT_MAX_BODY_BYTES,
                1..=IngestLimits::HARD_MAX_BODY_BYTES,
            )?,
            audit_retention_days: audit_retention_days()?,
            event_retention_days: retention_days()?,
            idempotency_window: idempotency_window()?,
            event_bus_name: env_opt("EVENT_BUS_NAME"),
            tenant_rules,
            producers,
            ingest_per_second: switchyard_aws::config::limits()?.ingest_per_second,
        })
    }
}

impl AwsIngest {
    pub fn new(sdk: &SdkConfig, settings: &Settings) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let bus = settings
            .event_bus_name
            .as_ref()
            .map(|name| EventBridgeBus::new(aws_sdk_eventbridge::Client::new(sdk), name));
        Self {
            registry: DynamoRegistry::new(dynamodb.clone(), &settings.registry_table),
            store: DynamoEventStore::new(dynamodb, &settings.deliveries_table),
            queue: SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &settings.fanout_queue_url),
            bus,
            config: IngestConfig {
                limits: IngestLimits {
                    max_body_bytes: settings.max_body_bytes,
                },
                retention: time::Duration::days(i64::from(settings.audit_retention_days)),
                dedupe_window: time::Duration::try_from(settings.idempotency_window).unwrap_or(time::Duration::MAX),
                delivery_horizon: IngestConfig::delivery_horizon(settings.event_retention_days),
                ..IngestConfig::default()
            },
            tenant_rules: settings.tenant_rules.clone(),
            producers: settings.producers.clone(),
            metrics: Recorder::new(switchyard_aws::config::stage(), "ingest"),
            ingest_per_second: settings.ingest_per_second,
        }
    }
}

/// A JSON response.
pub fn respond(status: u16, body: &Value) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut resp = ApiGatewayV2httpResponse::default();
    resp.status_code = i64::from(status);
    resp.headers = headers;
    resp.body = Some(Body::Text(body.to_string()));
    resp
}

/// The one error shape: `{"code", "message", "details"?}`.
pub fn error(status: u16, code: &str, message: &str, details: Option<Value>) -> ApiGatewayV2httpResponse {
    let mut body = json!({ "code": code, "message": message });
    if let Some(d) = details {
        body["details"] = d;
    }
    respond(status, &body)
}

fn unavailable(e: &PortError) -> ApiGatewayV2httpResponse {
    if e.retryable {
        let mut r = error(
            503,
            "unavailable",
            "the service is busy; retry with the same event id",
            None,
        );
        r.headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    } else {
        error(500, "internal", "the event could not be stored", None)
    }
}

/// The API key from `Authorization: Bearer <key>` or `x-api-key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = auth.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok())
}

/// The `Idempotency-Key` header: absent, one valid key, or an error (sent
/// twice, not ASCII, empty or too long).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ()> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    let text = value.to_str().map_err(|_| ())?;
    IdempotencyKey::parse(text).map(Some).map_err(|_| ())
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(ct) = ct.to_str() else { return false };
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// What an invalid event is, for logs: its code and field, never the payload
/// (a JSON parser's message can quote it).
fn describe_invalid(e: &EnvelopeError) -> String {
    match e {
        EnvelopeError::Malformed(_) => "the body is not a valid event (invalid_json)".to_string(),
        other => format!("{other} ({})", other.code()),
    }
}

/// Describes an ingest failure without the payload.
fn describe(e: &IngestError) -> String {
    match e {
        IngestError::Invalid(e) => describe_invalid(e),
        other => other.to_string(),
    }
}

/// Which door an invocation came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    HttpApi,
    Sqs,
    EventBridge,
}

impl Door {
    /// Recognises the shape of a Lambda event.
    pub fn of(event: &Value) -> Option<Self> {
        let obj = event.as_object()?;
        let version = obj.get("version").and_then(Value::as_str);
        if obj.get("requestContext").is_some_and(Value::is_object)
            && (version == Some("2.0") || (version.is_none() && obj.get("routeKey").is_some_and(Value::is_string)))
        {
            return Some(Self::HttpApi);
        }
        if let Some(records) = obj.get("Records").and_then(Value::as_array) {
            let all_sqs = records
                .iter()
                .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"));
            return (!records.is_empty() && all_sqs).then_some(Self::Sqs);
        }
        if obj.contains_key("detail-type") && obj.contains_key("source") && obj.contains_key("detail") {
            return Some(Self::EventBridge);
        }
        None
    }
}

/// Why an invocation failed (the HTTP door never fails: it answers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    #[error(
        "unrecognised event: not an HTTP API (payload 2.0) request, an SQS batch or an EventBridge event; nothing was ingested"
    )]
    Unrecognised,
    #[error("the {door:?} event does not have the expected shape: {reason}")]
    Malformed { door: Door, reason: String },
    #[error("AWS service event {id} refused: {reason}")]
    Refused {
        id: String,
        reason: String,
        no_tenant: bool,
    },
    #[error("AWS service event {id} could not be ingested: {error}")]
    Ingest { id: String, error: IngestError },
    #[error("encoding the response failed: {0}")]
    Encode(String),
}

impl DispatchError {
    /// A stable name for the failure (Lambda's `errorType`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unrecognised => "UnrecognisedEvent",
            Self::Malformed { .. } => "MalformedEvent",
            Self::Refused { no_tenant: true, .. } => "NoTenantForEvent",
            Self::Refused { .. } => "InvalidEvent",
            Self::Ingest { .. } => "IngestFailed",
            Self::Encode(_) => "EncodeFailed",
        }
    }

    /// Whether trying the same event again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Ingest { error, .. } => error.retryable(),
            _ => false,
        }
    }
}

fn shape_error(door: Door) -> impl FnOnce(serde_json::Error) -> DispatchError {
    // The position and category only: serde's message can quote the input.
    move |e| DispatchError::Malformed {
        door,
        reason: format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()),
    }
}

fn message_attribute(m: &SqsMessage, name: &str) -> Option<String> {
    let a = m.message_attributes.get(name)?;
    let is_string = a.data_type.as_deref().is_none_or(|t| t.starts_with("String"));
    is_string.then(|| a.string_value.clone()).flatten()
}

/// One SQS ingest message as the record handler needs it.
struct IngestMessage {
    body: String,
    tenant: Option<String>,
    key: Option<String>,
    /// [`DOOR_ATTRIBUTE`]: how the body is to be read, if not as an HTTP body.
    door: Option<String>,
    /// SQS's `SenderId`: the principal that sent the message.
    sender: Option<String>,
}

/// An SQS ingest message whose event is new (and published to the bus, if
/// it goes there): its fan-out task waits to be queued, then its record to
/// be stored.
struct Pending {
    message_id: String,
    tenant: TenantId,
    record: EventRecord,
    seen: bool,
}

/// Whether each tenant named in one batch exists, read once per tenant even
/// when the batch's messages ask at the same moment.
type Tenants = Memo<TenantId, bool>;

impl<R: Registry + RateLimiter, S: EventStore, Q: TaskQueue<FanoutTask>, B: EventBus> Ingest<R, S, Q, B> {
    fn ports(&self) -> Ports<'_, S, Q, B> {
        Ports {
            store: &self.store,
            fanout: &self.queue,
            bus: self.bus.as_ref(),
        }
    }

    /// Handles any invocation: recognises the door by the event's shape.
    ///
    /// Each door's future is boxed: nested in the runtime's own, their types
    /// would otherwise exceed the compiler's layout depth limit.
    pub async fn dispatch(&self, event: Value) -> Result<Value, DispatchError> {
        match Door::of(&event) {
            Some(Door::HttpApi) => {
                let req: ApiGatewayV2httpRequest = serde_json::from_value(event).map_err(shape_error(Door::HttpApi))?;
                let resp = Box::pin(self.handle(req)).await;
                serde_json::to_value(resp).map_err(|e| DispatchError::Encode(e.to_string()))
            }
            Some(Door::Sqs) => {
                let batch: SqsEvent = serde_json::from_value(event).map_err(shape_error(Door::Sqs))?;
                let resp = Box::pin(self.handle_sqs(batch)).await;
                serde_json::to_value(resp).map_err(|e| DispatchError::Encode(e.to_string()))
            }
            Some(Door::EventBridge) => {
                let done = Box::pin(self.handle_eventbridge(&event)).await?;
                Ok(json!({ "id": done.id.as_str(), "duplicate": done.duplicate }))
            }
            None => {
                tracing::error!("unrecognised event shape; nothing was ingested");
                Err(DispatchError::Unrecognised)
            }
        }
    }

    /// Handles one `POST /v1/events`.
    pub async fn handle(&self, req: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let request_id = req.request_context.request_id.clone().unwrap_or_default();
        let response = self.handle_inner(req).await;
        // An accepted event already has its own line ("event accepted");
        // the request line is for the refusals (CloudWatch Logs bills every
        // byte, and this path runs once per event).
        if response.status_code < 300 {
            tracing::debug!(request_id = %request_id, status = response.status_code, "ingest");
        } else {
            tracing::info!(request_id = %request_id, status = response.status_code, "ingest");
        }
        self.metrics.add(|m| match response.status_code {
            202 => m.count(m::EventsIngested, 1),
            200 => m.count(m::EventsDuplicated, 1),
            400..=499 => m.count(m::EventsRejected, 1),
            _ => {}
        });
        self.metrics.flush();
        response
    }

    async fn handle_inner(&self, req: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        if req.request_context.http.method != Method::POST {
            return error(405, "method_not_allowed", "use POST", None);
        }
        let tenant = match authenticate(&self.registry, presented_key(&req.headers)).await {
            Ok(t) => t,
            Err(AuthError::Port(e)) => return unavailable(&e),
            Err(e) => return error(401, "unauthorized", &e.to_string(), None),
        };
        let now_secs = switchyard_core::time_util::now_utc().unix_timestamp();
        match admit_ingest(&self.registry, &tenant, now_secs, self.ingest_per_second).await {
            Ok(Admission::Admitted) => {}
            Ok(Admission::Limited { retry_after_secs }) => {
                let mut r = error(
                    429,
                    "rate_limited",
                    &format!(
                        "the tenant sends more than {} events a second; retry after {retry_after_secs} s",
                        self.ingest_per_second
                    ),
                    Some(json!({ "limit": INGEST_PER_SECOND, "value": self.ingest_per_second })),
                );
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    r.headers.insert(header::RETRY_AFTER, v);
                }
                return r;
            }
            Err(e) => return unavailable(&e),
        }
        if !is_json(&req.headers) {
            return error(
                415,
                "unsupported_media_type",
                "send the event as application/json",
                None,
            );
        }
        let Ok(key) = idempotency_key(&req.headers) else {
            return error(
                400,
                "invalid_header",
                "the Idempotency-Key header must be sent once, as 1 to 255 visible ASCII characters",
                Some(json!({ "header": IDEMPOTENCY_KEY_HEADER })),
            );
        };
        let raw = req.body.unwrap_or_default();
        let body = if req.is_base64_encoded {
            match base64::engine::general_purpose::STANDARD.decode(raw.as_bytes()) {
                Ok(b) => b,
                Err(_) => return error(400, "invalid_body", "the body is not valid base64", None),
            }
        } else {
            raw.into_bytes()
        };
        let now = switchyard_core::time_util::now_utc();
        match ingest(self.ports(), tenant.clone(), &body, key.as_ref(), &self.config, now).await {
            Ok(done) if done.duplicate => {
                tracing::info!(tenant_id = %tenant, event_id = %done.id, "duplicate event");
                respond(200, &json!({ "id": done.id.as_str(), "duplicate": true }))
            }
            Ok(done) => {
                tracing::info!(tenant_id = %tenant, event_id = %done.id, "event accepted");
                respond(202, &json!({ "id": done.id.as_str() }))
            }
            Err(IngestError::Invalid(e)) => {
                let details = e.field().map(|f| json!({ "field": f }));
                error(e.http_status(), e.code(), &e.to_string(), details)
            }
            Err(IngestError::Store(e) | IngestError::Queue(e) | IngestError::Publish(e)) => {
                tracing::error!(tenant_id = %tenant, error = %e, "ingest failed");
                unavailable(&e)
            }
        }
    }

    /// Handles a batch from the SQS ingest queue: each message body is an
    /// event as the HTTP API takes it, for the tenant its `tenant_id`
    /// attribute names.
    pub async fn handle_sqs(&self, event: SqsEvent) -> SqsBatchResponse {
        let messages: HashMap<String, IngestMessage> = event
            .records
            .iter()
            .filter_map(|m| {
                let msg = IngestMessage {
                    body: m.body.clone().unwrap_or_default(),
                    tenant: message_attribute(m, TENANT_ATTRIBUTE),
                    key: message_attribute(m, IDEMPOTENCY_KEY_ATTRIBUTE),
                    door: message_attribute(m, DOOR_ATTRIBUTE),
                    sender: m.attributes.get(SENDER_ID).cloned(),
                };
                Some((m.message_id.clone()?, msg))
            })
            .collect();
        let messages = &messages;
        let config = IngestConfig {
            default_source: Source::parse(SQS_DEFAULT_SOURCE).expect("`sqs` is a valid source"),
            ..self.config.clone()
        };
        let config = &config;
        let tenants = &Tenants::default();
        let pending: Mutex<Vec<Pending>> = Mutex::default();
        let pending_ref = &pending;
        let accepted = BatchLine::new();
        let accepted_ref = &accepted;
        // First every message is checked (a duplicate is done here) and a new
        // event published to the bus, concurrently; the body is parsed once as any JSON here
        // (not JSON: a batch item failure), then as an event.
        let mut response = process_sqs_batch(event, |_: serde::de::IgnoredAny, record| async move {
            let id = record.message_id;
            match self.check_message(messages, config, tenants, &id).await {
                Ok((tenant, Checked::Done(done))) => {
                    self.accepted(accepted_ref, &tenant, &id, &done);
                    Ok(())
                }
                Ok((tenant, Checked::HandOver { record, seen })) => {
                    let p = Pending {
                        message_id: id,
                        tenant,
                        record: *record,
                        seen,
                    };
                    pending_ref.lock().unwrap_or_else(|e| e.into_inner()).push(p);
                    Ok(())
                }
                Err((failure, retryable)) => {
                    if !retryable {
                        self.metrics.add(|m| m.count(m::EventsRejected, 1));
                    }
                    Err(failure)
                }
            }
        })
        .await;
        // Then the fan-out tasks of the whole batch together: SendMessageBatch
        // takes ten, where each message sent its own. If that fails, each
        // message sends its own, so one refused task fails its message only;
        // a message that fails stored nothing: it comes back and hands its
        // event over again.
        let pending = pending.into_inner().unwrap_or_else(|e| e.into_inner());
        let tasks: Vec<Option<FanoutTask>> = pending
            .iter()
            .map(|p| {
                let envelope = &p.record.envelope;
                envelope.routing.external.then(|| FanoutTask::new(envelope.clone()))
            })
            .collect();
        let groups: Vec<&[FanoutTask]> = tasks.iter().map(Option::as_slice).collect();
        let sent = send_grouped(&self.queue, &groups).await;
        let mut queued = Vec::with_capacity(pending.len());
        for (p, sent) in pending.into_iter().zip(sent) {
            match sent {
                Ok(()) => queued.push(p),
                Err(e) => {
                    tracing::warn!(tenant_id = %p.tenant, event_id = %p.record.envelope.id, message_id = %p.message_id, error = %e, "queueing the fan-out task failed; the message will be retried");
                    response.batch_item_failures.push(item_failure(p.message_id));
                }
            }
        }
        // Last, each handed-over event's record is stored; a message whose
        // record was not comes back and hands its event over again.
        let confirmed = futures_util::future::join_all(queued.into_iter().map(|p| async move {
            let done = confirm(self.ports(), &p.record, p.seen).await;
            (p, done)
        }))
        .await;
        // The events accepted share one line (see
        // `switchyard_core::batch_log`); a duplicate keeps its own.
        for (p, done) in confirmed {
            match done {
                Ok(done) => self.accepted(accepted_ref, &p.tenant, &p.message_id, &done),
                Err(e) => {
                    tracing::warn!(tenant_id = %p.tenant, event_id = %p.record.envelope.id, message_id = %p.message_id, error = %describe(&e), "storing the handed-over event failed; the message will be retried");
                    response.batch_item_failures.push(item_failure(p.message_id));
                }
            }
        }
        if let Some(line) = accepted.finish() {
            tracing::info!(count = line.count, event_ids = %line.event_ids, tenant_ids = %line.tenant_ids, "events accepted from the ingest queue");
        }
        self.metrics.flush();
        response
    }

    /// Counts an event accepted through the SQS door and adds it to the
    /// batch's line (a duplicate gets a line of its own).
    fn accepted(&self, line: &BatchLine, tenant: &TenantId, message_id: &str, done: &Ingested) {
        self.metrics.add(|m| {
            if done.duplicate {
                m.count(m::EventsDuplicated, 1)
            } else {
                m.count(m::EventsIngested, 1)
            }
        });
        if done.duplicate {
            tracing::info!(tenant_id = %tenant, event_id = %done.id, message_id = %message_id, "duplicate event from the ingest queue");
        } else {
            tracing::debug!(tenant_id = %tenant, event_id = %done.id, message_id = %message_id, "event accepted from the ingest queue");
            line.add(tenant.as_str(), done.id.as_str(), None);
        }
    }

    /// One SQS ingest message checked (steps 1 and 2 of
    /// `switchyard_core::ingest::accept`) and a new event published to the
    /// bus: what is left to do, or why not (and whether that is worth a
    /// retry).
    async fn check_message(
        &self,
        messages: &HashMap<String, IngestMessage>,
        config: &IngestConfig,
        tenants: &Tenants,
        id: &str,
    ) -> Result<(TenantId, Checked), (RecordFailure, bool)> {
        let refused = |f: RecordFailure| (f, false);
        let msg = messages
            .get(id)
            .ok_or_else(|| refused(RecordFailure::new("the message vanished from its batch")))?;
        let now = switchyard_core::time_util::now_utc();
        // An AWS service event: mapped, and given its tenant, here.
        let service_event = match msg.door.as_deref() {
            None => None,
            Some(EVENTBRIDGE_DOOR) => {
                if msg.tenant.is_some() || msg.key.is_some() {
                    return Err(refused(RecordFailure::new(format_args!(
                        "an AWS service event gets its tenant from the tenant rules and its id from EventBridge: \
                         no `{TENANT_ATTRIBUTE}` or `{IDEMPOTENCY_KEY_ATTRIBUTE}` attribute"
                    ))));
                }
                let envelope = parse_service_event(msg.body.as_bytes(), &self.tenant_rules, config.limits, now)
                    .map_err(|e| {
                        let reason = match &e {
                            ServiceEventError::Invalid(e) => describe_invalid(e),
                            other => other.to_string(),
                        };
                        refused(RecordFailure::new(format_args!("AWS service event refused: {reason}")))
                    })?;
                Some(envelope)
            }
            Some(other) => {
                return Err(refused(RecordFailure::new(format_args!(
                    "the `{DOOR_ATTRIBUTE}` attribute names no door: {other:?}"
                ))));
            }
        };
        let tenant = match &service_event {
            Some(envelope) => envelope.tenant_id.clone(),
            None => {
                let tenant = msg.tenant.as_deref().ok_or_else(|| {
                    refused(RecordFailure::new(format_args!(
                        "no `{TENANT_ATTRIBUTE}` String message attribute"
                    )))
                })?;
                TenantId::parse(tenant).map_err(|e| {
                    refused(RecordFailure::new(format_args!(
                        "the `{TENANT_ATTRIBUTE}` attribute: {e}"
                    )))
                })?
            }
        };
        // The sender must be bound to the tenant (when producers are bound).
        let from = if service_event.is_some() {
            TenantFrom::TenantRules
        } else {
            TenantFrom::Attribute
        };
        if let Err(e) = self.producers.check(msg.sender.as_deref(), &tenant, from) {
            tracing::warn!(tenant_id = %tenant, message_id = %id, sender_id = msg.sender.as_deref().unwrap_or("<none>"), "message refused: its producer is not bound to its tenant");
            return Err(refused(RecordFailure::new(format_args!("{e}"))));
        }
        // The tenant is named, not authenticated (the queue's policy decides
        // who may send): it must at least exist, or the event would be
        // stored for nobody and fanned out to nothing. Read once per batch.
        match tenants.get(&tenant, || self.registry.tenant_exists(&tenant)).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(refused(RecordFailure::new(format_args!(
                    "the `{TENANT_ATTRIBUTE}` attribute names tenant {tenant}, which does not exist"
                ))));
            }
            Err(e) => return Err((RecordFailure::new(format_args!("reading tenant {tenant}: {e}")), true)),
        }
        let key = msg.key.as_deref().map(IdempotencyKey::parse).transpose().map_err(|e| {
            refused(RecordFailure::new(format_args!(
                "the `{IDEMPOTENCY_KEY_ATTRIBUTE}` attribute: {e}"
            )))
        })?;
        let failed = |e: IngestError| {
            (
                RecordFailure::new(format_args!(
                    "tenant {tenant}: {} (retryable: {})",
                    describe(&e),
                    e.retryable()
                )),
                e.retryable(),
            )
        };
        let envelope = match service_event {
            Some(envelope) => envelope,
            None => parse_event(
                msg.body.as_bytes(),
                tenant.clone(),
                &config.default_source,
                now,
                config.limits,
            )
            .map_err(|e| failed(IngestError::Invalid(e)))?,
        };
        let checked = check(self.ports(), envelope, key.as_ref(), config, now)
            .await
            .map_err(failed)?;
        if let Checked::HandOver { record, .. } = &checked {
            publish(self.ports(), &record.envelope).await.map_err(failed)?;
        }
        Ok((tenant, checked))
    }

    /// Handles one AWS service event delivered by the EventBridge rule.
    pub async fn handle_eventbridge(&self, event: &Value) -> Result<Ingested, DispatchError> {
        let result = self.eventbridge_event(event).await;
        self.metrics.add(|m| match &result {
            Ok(done) if done.duplicate => m.count(m::EventsDuplicated, 1),
            Ok(_) => m.count(m::EventsIngested, 1),
            Err(DispatchError::Refused { .. }) => m.count(m::EventsRejected, 1),
            Err(_) => {}
        });
        self.metrics.flush();
        result
    }

    async fn eventbridge_event(&self, event: &Value) -> Result<Ingested, DispatchError> {
        let id = event.get("id").and_then(Value::as_str).unwrap_or("<no id>").to_string();
        let body = serde_json::to_vec(event).map_err(|e| DispatchError::Encode(e.to_string()))?;
        let now = switchyard_core::time_util::now_utc();
        let envelope = match parse_service_event(&body, &self.tenant_rules, self.config.limits, now) {
            Ok(e) => e,
            Err(e) => {
                let (reason, no_tenant) = match &e {
                    ServiceEventError::Invalid(e) => (describe_invalid(e), false),
                    other @ ServiceEventError::NoTenant { .. } => (other.to_string(), true),
                };
                tracing::error!(eventbridge_id = %id, reason = %reason, "AWS service event refused; it goes to the failure destination after Lambda's retries");
                return Err(DispatchError::Refused { id, reason, no_tenant });
            }
        };
        let tenant = envelope.tenant_id.clone();
        match accept(self.ports(), envelope, None, &self.config, now).await {
            Ok(done) => {
                tracing::info!(tenant_id = %tenant, event_id = %done.id, duplicate = done.duplicate, "AWS service event accepted");
                Ok(done)
            }
            Err(error) => {
                tracing::error!(tenant_id = %tenant, eventbridge_id = %id, error = %describe(&error), retryable = error.retryable(), "AWS service event not ingested");
                Err(DispatchError::Ingest { id, error })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doors_are_recognised_by_shape() {
        let http =
            json!({"version": "2.0", "routeKey": "POST /v1/events", "requestContext": {"http": {"method": "POST"}}});
        assert_eq!(Door::of(&http), Some(Door::HttpApi));
        let http_no_version = json!({"routeKey": "POST /v1/events", "requestContext": {}});
        assert_eq!(Door::of(&http_no_version), Some(Door::HttpApi));
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}, {"eventSource": "aws:sqs"}]});
        assert_eq!(Door::of(&sqs), Some(Door::Sqs));
        let eb = json!({"id": "1", "source": "aws.s3", "detail-type": "Object Created", "detail": {}});
        assert_eq!(Door::of(&eb), Some(Door::EventBridge));
        for other in [
            json!({"version": "1.0", "routeKey": "x", "requestContext": {}}),
            json!({"Records": [{"eventSource": "aws:sqs"}, {"eventSource": "aws:sns"}]}),
            json!({"Records": []}),
            json!({"Records": [{"eventSource": "aws:s3"}]}),
            json!({"source": "aws.s3", "detail-type": "Object Created"}),
            json!({}),
            json!([]),
            json!("hello"),
            json!(null),
        ] {
            assert_eq!(Door::of(&other), None, "{other}");
        }
    }

    #[test]
    fn the_idempotency_key_header_is_read_strictly() {
        let mut h = HeaderMap::new();
        assert_eq!(idempotency_key(&h), Ok(None));
        h.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("order-42"));
        assert_eq!(
            idempotency_key(&h),
            Ok(Some(IdempotencyKey::parse("order-42").unwrap()))
        );
        h.append(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("order-43"));
        assert_eq!(idempotency_key(&h), Err(()), "sent twice");
        let mut h = HeaderMap::new();
        h.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static(""));
        assert_eq!(idempotency_key(&h), Err(()));
        let mut h = HeaderMap::new();
        h.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_bytes(b"\xffkey").unwrap());
        assert_eq!(idempotency_key(&h), Err(()));
    }

    #[test]
    fn logged_reasons_never_quote_the_payload() {
        let e = switchyard_core::envelope::parse_event(
            br#"{"type":"a.b","data":{},"routing":{"internal":"hunter2"}}"#,
            TenantId::parse("t").unwrap(),
            &Source::parse("api").unwrap(),
            switchyard_core::time_util::now_utc(),
            IngestLimits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("hunter2"), "serde quotes the input: {e}");
        assert!(!describe_invalid(&e).contains("hunter2"));
        assert!(!describe(&IngestError::Invalid(e)).contains("hunter2"));
    }
}

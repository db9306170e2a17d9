//! The ingest handler: three doors, one envelope.
//!
//! [`Ingest::dispatch`] takes whatever Lambda passed and recognises its shape:
//!
//! | door | recognised by | answer |
//! |---|---|---|
//! | API Gateway HTTP API (payload 2.0) | `requestContext` and `version: "2.0"` (or a `routeKey`) | an HTTP response (see `http`) |
//! | SQS ingest queue | `Records[]`, every one with `eventSource: "aws:sqs"` | a partial batch response |
//! | EventBridge rule (AWS service events) | `detail-type`, `source` and `detail` | `{"id", "duplicate"}`, or an error |
//!
//! Anything else is an error. Every door ends in `switchyard_core::ingest`
//! (dedupe, store, hand over to the bus and the fan-out queue).
//!
//! The rate is counted per tenant and second at the HTTP door only. The
//! SQS and EventBridge doors are not limited per tenant: their producers
//! are principals of the account, a refusal there could only be a retry or
//! a loss, and their cost is bounded by the ingest function's reserved
//! concurrency (messages wait in the queue, events in Lambda's async queue).
//!
//! Each door has its module: `http`, `sqs` and `eventbridge`; this one
//! holds the state, the settings and the dispatch.

mod eventbridge;
mod http;
mod sqs;

pub use http::{Accepted, IDEMPOTENCY_KEY_HEADER, IngestDoc, error, respond};
pub use sqs::{IDEMPOTENCY_KEY_ATTRIBUTE, SENDER_ID, SQS_DEFAULT_SOURCE, TENANT_ATTRIBUTE};

use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{Value, json};
use switchyard_aws::config::{
    ConfigError, audit_retention_days, env_in_range, env_opt, env_var, idempotency_window, retention_days,
};
use switchyard_aws::dynamo::{DynamoEventStore, DynamoRegistry};
use switchyard_aws::eventbridge::EventBridgeBus;
use switchyard_aws::sqs::SqsQueue;
use switchyard_aws::{SdkConfig, aws_sdk_dynamodb, aws_sdk_eventbridge, aws_sdk_sqs};
use switchyard_core::FanoutTask;
use switchyard_core::doors::TenantRules;
use switchyard_core::envelope::{EnvelopeError, IngestLimits};
use switchyard_core::ingest::{IngestConfig, IngestError, Ports};
use switchyard_core::metrics::Recorder;
use switchyard_core::ports::{EventBus, EventStore, RateLimiter, Registry, TaskQueue};
use switchyard_core::producers::ProducerBindings;

/// The ingest function's state, built once per process.
pub struct Ingest<R, S, Q, B> {
    /// The registry: tenants and API keys of the HTTP door.
    pub registry: R,
    /// Where event records are written (deduplication and audit).
    pub store: S,
    /// The fan-out queue accepted events go to.
    pub queue: Q,
    /// The application's bus; events with `routing.internal` are published
    /// to it when it is set.
    pub bus: Option<B>,
    /// Body limits, the idempotency window and retention.
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
    /// The registry table (tenants and API keys).
    pub registry_table: String,
    /// The deliveries table, where event records are written.
    pub deliveries_table: String,
    /// The fan-out queue.
    pub fanout_queue_url: String,
    /// The largest event body accepted, in bytes.
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
    /// How AWS service events (the EventBridge door) find their tenant.
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
    /// Ingest over the tables, queue and bus of `settings`.
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
    /// An HTTP API request (payload 2.0): `POST /v1/events`.
    HttpApi,
    /// A batch of SQS records from internal producers.
    Sqs,
    /// An AWS service event from an EventBridge rule.
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
    /// The event is of none of the three doors' shapes.
    #[error(
        "unrecognised event: not an HTTP API (payload 2.0) request, an SQS batch or an EventBridge event; nothing was ingested"
    )]
    Unrecognised,
    /// The event looks like one door's but lacks what that door needs.
    #[error("the {door:?} event does not have the expected shape: {reason}")]
    Malformed {
        /// The door the event looked like.
        door: Door,
        /// What is missing or of the wrong type.
        reason: String,
    },
    /// An AWS service event that is not accepted (no tenant for it, or invalid).
    #[error("AWS service event {id} refused: {reason}")]
    Refused {
        /// The EventBridge event's id.
        id: String,
        /// Why it was refused.
        reason: String,
        /// Whether it was refused because no tenant rule matched it.
        no_tenant: bool,
    },
    /// An accepted AWS service event whose ingest failed (retryable or not).
    #[error("AWS service event {id} could not be ingested: {error}")]
    Ingest {
        /// The EventBridge event's id.
        id: String,
        /// Why ingesting it failed.
        error: IngestError,
    },
    /// The response could not be serialised.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::TenantId;
    use switchyard_core::envelope::Source;

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

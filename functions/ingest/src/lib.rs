//! The ingest handler: an API Gateway HTTP API (payload 2.0) request in, a
//! JSON response out. It authenticates the caller's API key, hands the body
//! to `switchyard_core::ingest`, and maps the outcome to a status:
//!
//! | outcome | status |
//! |---|---|
//! | accepted | 202 `{"id": …}` |
//! | repeat of an event id | 200 `{"id": …, "duplicate": true}` |
//! | malformed JSON / unknown field | 400 `invalid_json` |
//! | no or unknown API key | 401 `unauthorized` |
//! | not POST | 405 `method_not_allowed` |
//! | body over the limit | 413 `payload_too_large` |
//! | not JSON content | 415 `unsupported_media_type` |
//! | invalid field | 422 `missing_field` / `invalid_field` |
//! | AWS throttled or unavailable | 503 `unavailable` (safe to retry) |
//!
//! Every error body is `{"code": …, "message": …, "details"?: …}`.

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine as _;
use serde_json::{Value, json};
use switchyard_aws::config::{ConfigError, env_in_range, env_var, retention_days};
use switchyard_aws::dynamo::{DynamoEventStore, DynamoRegistry};
use switchyard_aws::sqs::SqsQueue;
use switchyard_aws::{SdkConfig, aws_sdk_dynamodb, aws_sdk_sqs};
use switchyard_core::envelope::IngestLimits;
use switchyard_core::ingest::{AuthError, IngestConfig, IngestError, authenticate, ingest};
use switchyard_core::ports::{EventStore, Registry, TaskQueue};
use switchyard_core::{FanoutTask, PortError};

/// The ingest function's state, built once per process.
pub struct Ingest<R, S, Q> {
    pub registry: R,
    pub store: S,
    pub queue: Q,
    pub config: IngestConfig,
}

/// Ingest over DynamoDB and SQS.
pub type AwsIngest = Ingest<DynamoRegistry, DynamoEventStore, SqsQueue<FanoutTask>>;

/// Where ingest's resources are and its limits; from the environment in Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub registry_table: String,
    pub deliveries_table: String,
    pub fanout_queue_url: String,
    pub max_body_bytes: usize,
    pub retention_days: u16,
}

impl Settings {
    /// Reads `REGISTRY_TABLE`, `DELIVERIES_TABLE`, `FANOUT_QUEUE_URL`, and
    /// optionally `MAX_BODY_BYTES` (default 65536, at most 204800) and
    /// `EVENT_RETENTION_DAYS` (default 30).
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            registry_table: env_var("REGISTRY_TABLE")?,
            deliveries_table: env_var("DELIVERIES_TABLE")?,
            fanout_queue_url: env_var("FANOUT_QUEUE_URL")?,
            max_body_bytes: env_in_range(
                "MAX_BODY_BYTES",
                IngestLimits::DEFAULT_MAX_BODY_BYTES,
                1..=IngestLimits::HARD_MAX_BODY_BYTES,
            )?,
            retention_days: retention_days()?,
        })
    }
}

impl AwsIngest {
    pub fn new(sdk: &SdkConfig, settings: &Settings) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        Self {
            registry: DynamoRegistry::new(dynamodb.clone(), &settings.registry_table),
            store: DynamoEventStore::new(dynamodb, &settings.deliveries_table),
            queue: SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &settings.fanout_queue_url),
            config: IngestConfig {
                limits: IngestLimits {
                    max_body_bytes: settings.max_body_bytes,
                },
                retention: time::Duration::days(i64::from(settings.retention_days)),
                ..IngestConfig::default()
            },
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

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(ct) = ct.to_str() else { return false };
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<R: Registry, S: EventStore, Q: TaskQueue<FanoutTask>> Ingest<R, S, Q> {
    /// Handles one `POST /v1/events`.
    pub async fn handle(&self, req: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let request_id = req.request_context.request_id.clone().unwrap_or_default();
        let response = self.handle_inner(req).await;
        tracing::info!(request_id = %request_id, status = response.status_code, "ingest");
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
        if !is_json(&req.headers) {
            return error(
                415,
                "unsupported_media_type",
                "send the event as application/json",
                None,
            );
        }
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
        match ingest(&self.store, &self.queue, tenant.clone(), &body, &self.config, now).await {
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
            Err(IngestError::Store(e) | IngestError::Queue(e)) => {
                tracing::error!(tenant_id = %tenant, error = %e, "ingest failed");
                unavailable(&e)
            }
        }
    }
}

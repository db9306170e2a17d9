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
//! | a key whose scope is not `ingest` or `manage` | 403 `forbidden` |
//! | a key of a suspended tenant | 403 `tenant_suspended` |
//! | not POST | 405 `method_not_allowed` |
//! | body over the limit | 413 `payload_too_large` |
//! | not JSON content | 415 `unsupported_media_type` |
//! | invalid field | 422 `missing_field` / `invalid_field` |
//! | over the tenant's rate (`INGEST_RATE_PER_SECOND`) | 429 `rate_limited`, `Retry-After` |
//! | AWS throttled or unavailable | 503 `unavailable` (safe to retry) |
//!
//! Every error body is `{"code": …, "message": …, "details"?: …}`.

use crate::Ingest;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};
use switchyard_core::doors::{AuthError, authenticate};
use switchyard_core::envelope::IncomingEvent;
use switchyard_core::error::ErrorBody;
use switchyard_core::ingest::{IdempotencyKey, IngestError, ingest};
use switchyard_core::metrics::m;
use switchyard_core::ports::{EventBus, EventStore, RateLimiter, Registry, TaskQueue};
use switchyard_core::quota::{Admission, INGEST_PER_SECOND, admit_ingest};
use switchyard_core::{FanoutTask, PortError};
use utoipa::{OpenApi, ToSchema};

/// The W3C Trace Context header a producer may send: a valid one becomes
/// the event's trace, carried to its webhooks and handlers.
pub(crate) const TRACEPARENT_HEADER: &str = "traceparent";
/// The HTTP header a producer names its idempotency key with.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

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
    let body = ErrorBody {
        code: code.to_string(),
        message: message.to_string(),
        details,
    };
    respond(status, &serde_json::to_value(body).unwrap_or_default())
}

/// The answer to an event accepted, now or before.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The event's id: the one sent, or `evt_<ULID>`.
    pub id: String,
    /// `true` when the event id or `Idempotency-Key` was seen before: the
    /// event was accepted once, earlier, and nothing is done again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

// `Ingest::handle` serves the route; this only documents it.
/// Sends an event: checked, stored once (a repeat of its id or
/// `Idempotency-Key` is answered 200 and not sent again) and switched onto
/// the tracks its `routing` names.
#[utoipa::path(
    post,
    path = "/v1/events",
    operation_id = "send_an_event",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, max_length = 255, pattern = "^[\\x21-\\x7E]+$",
         description = "A key of the producer's: the same key sent again within the retention period is accepted once"),
    ),
    request_body(content = IncomingEvent, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted", body = Accepted),
        (status = 200, description = "Accepted before: a repeat of the event id or the `Idempotency-Key`", body = Accepted),
        (status = 400, description = "Not JSON, bad base64, or a bad `Idempotency-Key` header", body = ErrorBody),
        (status = 401, description = "No API key, or not a valid one", body = ErrorBody),
        (status = 403, description = "The key's scope does not allow sending events", body = ErrorBody),
        (status = 413, description = "The event is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is missing or not acceptable (`details.field` names it)", body = ErrorBody),
        (status = 429, description = "The tenant sends more events a second than it may; retry after `Retry-After` seconds", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 500, description = "The event could not be stored", body = ErrorBody),
        (status = 503, description = "Busy; retry with the same event id", body = ErrorBody,
         headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
#[allow(dead_code)]
fn send_an_event() {}

/// Ingest's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(send_an_event))]
pub struct IngestDoc;

fn accepted(id: &str, duplicate: bool) -> Value {
    let body = Accepted {
        id: id.to_string(),
        duplicate,
    };
    serde_json::to_value(body).unwrap_or_default()
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

impl<R: Registry + RateLimiter, S: EventStore, Q: TaskQueue<FanoutTask>, B: EventBus> Ingest<R, S, Q, B> {
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
            Err(e @ AuthError::Scope(_)) => return error(403, "forbidden", &e.to_string(), None),
            Err(e @ AuthError::Suspended) => return error(403, "tenant_suspended", &e.to_string(), None),
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
        let trace = req.headers.get(TRACEPARENT_HEADER).and_then(|v| v.to_str().ok());
        match ingest(
            self.ports(),
            tenant.clone(),
            &body,
            key.as_ref(),
            trace,
            &self.config,
            now,
        )
        .await
        {
            Ok(done) if done.duplicate => {
                tracing::info!(tenant_id = %tenant, event_id = %done.id, trace_id = %done.trace_id, "duplicate event");
                respond(200, &accepted(done.id.as_str(), true))
            }
            Ok(done) => {
                tracing::info!(tenant_id = %tenant, event_id = %done.id, trace_id = %done.trace_id, "event accepted");
                respond(202, &accepted(done.id.as_str(), false))
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! One webhook delivery attempt: build the signed request, send it, judge the
//! answer, record the attempt.

use crate::endpoint::{Endpoint, EndpointUrl};
use crate::error::PortError;
use crate::event_type::EventType;
use crate::ids::{DeliveryId, EndpointId, EventId, TenantId};
use crate::ports::{DeliveryLog, Registry, WebhookSender};
use crate::signing::{self, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use crate::task::DeliveryTask;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Instant;
use time::OffsetDateTime;

/// The event type, sent beside the Standard Webhooks headers.
pub const HEADER_EVENT_TYPE: &str = "x-switchyard-event-type";
/// How much of a receiver's response body is kept.
pub const MAX_RECORDED_BODY: usize = 1024;

/// A request ready to send. Its `Debug` leaves the body and signature out.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    pub url: EndpointUrl,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRequest")
            .field("url", &self.url)
            .field("headers", &self.headers.iter().map(|(k, _)| *k).collect::<Vec<_>>())
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

/// Builds the signed request for `task` to `endpoint`, stamped `timestamp`
/// (unix seconds). The `webhook-id` is the event id: the same for every
/// attempt, so receivers can deduplicate on it.
pub fn build_request(task: &DeliveryTask, endpoint: &Endpoint, timestamp: i64) -> WebhookRequest {
    let msg_id = task.event_id.as_str();
    let signature = signing::signature_header([&endpoint.secret], msg_id, timestamp, task.payload.as_bytes());
    WebhookRequest {
        url: endpoint.url.clone(),
        headers: vec![
            (HEADER_ID, msg_id.to_string()),
            (HEADER_TIMESTAMP, timestamp.to_string()),
            (HEADER_SIGNATURE, signature),
            ("content-type", "application/json".to_string()),
            ("user-agent", crate::USER_AGENT.to_string()),
            (HEADER_EVENT_TYPE, task.event_type.to_string()),
        ],
        body: task.payload.clone(),
    }
}

/// What a receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
    /// At most [`MAX_RECORDED_BODY`] bytes of the body, lossily decoded.
    pub body: String,
}

/// Why no answer came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("timed out")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("the exchange failed: {0}")]
    Io(String),
}

impl SendError {
    /// The error kind recorded with the attempt.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect",
            Self::Io(_) => "io",
        }
    }
}

/// Keeps the first `max` bytes of a body, cut at a character boundary.
pub fn truncate_body(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// What started an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Scheduled,
    Manual,
}

/// One attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub delivery_id: DeliveryId,
    pub attempt: u32,
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub at: OffsetDateTime,
    pub succeeded: bool,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub trigger: Trigger,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// A 2xx was received.
    Succeeded,
    /// The last attempt failed; the task stays on the queue to be tried again.
    Retrying,
    /// Not attempted: the endpoint was deleted or disabled.
    Skipped,
}

/// A delivery's current state, stored beside its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub delivery_id: DeliveryId,
    pub tenant_id: TenantId,
    pub endpoint_id: EndpointId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub skip_reason: Option<String>,
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl DeliveryRecord {
    fn from_task(task: &DeliveryTask, state: DeliveryState, attempts: u32, now: OffsetDateTime) -> Self {
        Self {
            delivery_id: task.delivery_id.clone(),
            tenant_id: task.tenant_id.clone(),
            endpoint_id: task.endpoint_id.clone(),
            event_id: task.event_id.clone(),
            event_type: task.event_type.clone(),
            state,
            attempts,
            last_status_code: None,
            skip_reason: None,
            created_at: task.created_at,
            updated_at: now,
        }
    }
}

/// The result of handling one delivery task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered { status: u16 },
    /// The receiver answered otherwise, or not at all: try again later.
    Failed {
        status: Option<u16>,
        error_kind: Option<&'static str>,
    },
    /// Nothing was sent; the task is done.
    Skipped { reason: &'static str },
}

/// A failure to handle a task at all (the registry or the log was
/// unreachable); the task must be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("reading the endpoint failed: {0}")]
    Registry(PortError),
    #[error("recording the attempt failed: {0}")]
    Log(PortError),
}

/// Judges a receiver's answer: only 2xx is success (3xx included: redirects
/// are never followed).
pub fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Handles one delivery task: reads the endpoint, signs and sends, records
/// the attempt as number `attempt`.
pub async fn deliver<R: Registry, H: WebhookSender, L: DeliveryLog>(
    registry: &R,
    sender: &H,
    log: &L,
    task: &DeliveryTask,
    attempt: u32,
    now: impl Fn() -> OffsetDateTime,
) -> Result<DeliveryOutcome, DeliveryError> {
    let endpoint = registry
        .endpoint(&task.tenant_id, &task.endpoint_id)
        .await
        .map_err(DeliveryError::Registry)?;
    let endpoint = match endpoint {
        Some(ep) if ep.enabled => ep,
        other => {
            let reason = if other.is_none() {
                "endpoint_deleted"
            } else {
                "endpoint_disabled"
            };
            let mut record = DeliveryRecord::from_task(task, DeliveryState::Skipped, attempt.saturating_sub(1), now());
            record.skip_reason = Some(reason.to_string());
            log.record_delivery(&record).await.map_err(DeliveryError::Log)?;
            return Ok(DeliveryOutcome::Skipped { reason });
        }
    };

    let started_at = now();
    let request = build_request(task, &endpoint, started_at.unix_timestamp());
    let clock = Instant::now();
    let result = sender.send(&request).await;
    let duration_ms = clock.elapsed().as_millis() as u64;

    let (outcome, status_code, error_kind, error, response_body) = match result {
        Ok(resp) if is_success(resp.status) => (
            DeliveryOutcome::Delivered { status: resp.status },
            Some(resp.status),
            None,
            None,
            Some(resp.body),
        ),
        Ok(resp) => (
            DeliveryOutcome::Failed {
                status: Some(resp.status),
                error_kind: Some("http_status"),
            },
            Some(resp.status),
            Some("http_status"),
            None,
            Some(resp.body),
        ),
        Err(e) => (
            DeliveryOutcome::Failed {
                status: None,
                error_kind: Some(e.kind()),
            },
            None,
            Some(e.kind()),
            Some(e.to_string()),
            None,
        ),
    };
    let succeeded = matches!(outcome, DeliveryOutcome::Delivered { .. });
    let attempt_record = AttemptRecord {
        delivery_id: task.delivery_id.clone(),
        attempt,
        at: started_at,
        succeeded,
        status_code,
        duration_ms,
        error_kind: error_kind.map(str::to_string),
        error,
        response_body,
        trigger: Trigger::Scheduled,
    };
    let state = if succeeded {
        DeliveryState::Succeeded
    } else {
        DeliveryState::Retrying
    };
    let mut record = DeliveryRecord::from_task(task, state, attempt, now());
    record.last_status_code = status_code;
    log.record_attempt(&record, &attempt_record)
        .await
        .map_err(DeliveryError::Log)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoint;
    use crate::envelope::{IngestLimits, Source, parse_event};
    use crate::signing::verify;
    use std::sync::Mutex;

    fn task_and_endpoint() -> (DeliveryTask, Endpoint) {
        let tenant = TenantId::parse("acme").unwrap();
        let now = crate::time_util::parse_rfc3339("2026-11-29T10:00:00Z").unwrap();
        let env = parse_event(
            br#"{"id":"evt_1","type":"user.created","data":{"a":1}}"#,
            tenant.clone(),
            &Source::parse("api").unwrap(),
            now,
            IngestLimits::default(),
        )
        .unwrap();
        let ep = Endpoint::new(tenant, EndpointUrl::parse("https://e.com/h").unwrap(), vec![], now);
        (DeliveryTask::new(&env, &ep.id, env.webhook_body(), now), ep)
    }

    #[test]
    fn requests_are_signed_with_a_stable_id() {
        let (task, ep) = task_and_endpoint();
        let req = build_request(&task, &ep, 1_700_000_000);
        let h = |name: &str| {
            req.headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(h("webhook-id"), "evt_1");
        assert_eq!(h("webhook-timestamp"), "1700000000");
        assert_eq!(h("content-type"), "application/json");
        assert_eq!(h("x-switchyard-event-type"), "user.created");
        assert!(h("user-agent").starts_with("Switchyard/"));
        assert_eq!(
            verify(
                [&ep.secret],
                "evt_1",
                "1700000000",
                &h("webhook-signature"),
                req.body.as_bytes(),
                1_700_000_000,
                300
            ),
            Ok(())
        );
        // A retry signs the same body and id with a new timestamp.
        let retry = build_request(&task, &ep, 1_700_000_100);
        assert_eq!(retry.body, req.body);
        assert!(!format!("{req:?}").contains("user.created\",\"data"));
    }

    #[test]
    fn only_2xx_is_success() {
        assert!(is_success(200) && is_success(204) && is_success(299));
        assert!(!is_success(301) && !is_success(304) && !is_success(199) && !is_success(410) && !is_success(500));
    }

    #[test]
    fn bodies_are_truncated_on_character_boundaries() {
        assert_eq!(truncate_body(b"hello", 10), "hello");
        assert_eq!(truncate_body(b"hello", 3), "hel");
        assert_eq!(truncate_body("héllo".as_bytes(), 2), "h");
        assert_eq!(truncate_body(&[0xff, 0x41], 10), "\u{fffd}A");
        assert!(truncate_body(&vec![b'x'; 5000], MAX_RECORDED_BODY).len() == MAX_RECORDED_BODY);
    }

    // In-memory ports, to test the service's decisions without a network.
    struct OneEndpoint(Option<Endpoint>);
    impl Registry for OneEndpoint {
        async fn tenant_for_key(&self, _: &crate::ApiKeyHash) -> Result<Option<TenantId>, PortError> {
            Ok(None)
        }
        async fn endpoints(&self, _: &TenantId) -> Result<Vec<Endpoint>, PortError> {
            Ok(self.0.clone().into_iter().collect())
        }
        async fn endpoint(&self, _: &TenantId, _: &EndpointId) -> Result<Option<Endpoint>, PortError> {
            Ok(self.0.clone())
        }
    }
    struct Answer(Result<WebhookResponse, SendError>, Mutex<Vec<WebhookRequest>>);
    impl WebhookSender for Answer {
        async fn send(&self, r: &WebhookRequest) -> Result<WebhookResponse, SendError> {
            self.1.lock().unwrap().push(r.clone());
            self.0.clone()
        }
    }
    #[derive(Default)]
    struct Log(Mutex<Vec<(DeliveryRecord, Option<AttemptRecord>)>>);
    impl DeliveryLog for Log {
        async fn record_attempt(&self, d: &DeliveryRecord, a: &AttemptRecord) -> Result<(), PortError> {
            self.0.lock().unwrap().push((d.clone(), Some(a.clone())));
            Ok(())
        }
        async fn record_delivery(&self, d: &DeliveryRecord) -> Result<(), PortError> {
            self.0.lock().unwrap().push((d.clone(), None));
            Ok(())
        }
    }

    fn now() -> OffsetDateTime {
        crate::time_util::parse_rfc3339("2026-11-29T10:00:05Z").unwrap()
    }

    #[tokio::test]
    async fn a_2xx_is_recorded_as_success() {
        let (task, ep) = task_and_endpoint();
        let sender = Answer(
            Ok(WebhookResponse {
                status: 204,
                body: String::new(),
            }),
            Mutex::default(),
        );
        let log = Log::default();
        let out = deliver(&OneEndpoint(Some(ep)), &sender, &log, &task, 1, now)
            .await
            .unwrap();
        assert_eq!(out, DeliveryOutcome::Delivered { status: 204 });
        let rows = log.0.lock().unwrap();
        let (d, a) = &rows[0];
        assert_eq!(
            (d.state, d.attempts, d.last_status_code),
            (DeliveryState::Succeeded, 1, Some(204))
        );
        let a = a.as_ref().unwrap();
        assert!(a.succeeded && a.status_code == Some(204) && a.attempt == 1 && a.trigger == Trigger::Scheduled);
        assert_eq!(sender.1.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn failures_are_recorded_with_their_kind() {
        let (task, ep) = task_and_endpoint();
        for (answer, status, kind) in [
            (
                Ok(WebhookResponse {
                    status: 500,
                    body: "oops".into(),
                }),
                Some(500),
                "http_status",
            ),
            (
                Ok(WebhookResponse {
                    status: 302,
                    body: String::new(),
                }),
                Some(302),
                "http_status",
            ),
            (Err(SendError::Timeout), None, "timeout"),
            (Err(SendError::Connect("refused".into())), None, "connect"),
        ] {
            let log = Log::default();
            let sender = Answer(answer, Mutex::default());
            let out = deliver(&OneEndpoint(Some(ep.clone())), &sender, &log, &task, 3, now)
                .await
                .unwrap();
            assert_eq!(
                out,
                DeliveryOutcome::Failed {
                    status,
                    error_kind: Some(kind)
                }
            );
            let rows = log.0.lock().unwrap();
            let (d, a) = &rows[0];
            assert_eq!((d.state, d.attempts), (DeliveryState::Retrying, 3));
            let a = a.as_ref().unwrap();
            assert_eq!(
                (a.succeeded, a.status_code, a.error_kind.as_deref()),
                (false, status, Some(kind))
            );
        }
    }

    #[tokio::test]
    async fn deleted_or_disabled_endpoints_are_skipped_without_sending() {
        let (task, mut ep) = task_and_endpoint();
        ep.enabled = false;
        for (registry, reason) in [
            (OneEndpoint(None), "endpoint_deleted"),
            (OneEndpoint(Some(ep)), "endpoint_disabled"),
        ] {
            let log = Log::default();
            let sender = Answer(
                Ok(WebhookResponse {
                    status: 200,
                    body: String::new(),
                }),
                Mutex::default(),
            );
            let out = deliver(&registry, &sender, &log, &task, 1, now).await.unwrap();
            assert_eq!(out, DeliveryOutcome::Skipped { reason });
            assert!(sender.1.lock().unwrap().is_empty());
            let rows = log.0.lock().unwrap();
            assert_eq!(rows[0].0.state, DeliveryState::Skipped);
            assert_eq!(rows[0].0.skip_reason.as_deref(), Some(reason));
            assert!(rows[0].1.is_none());
        }
    }
}

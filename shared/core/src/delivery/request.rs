//! The request a delivery sends, and how its answer is read.

use crate::endpoint::Endpoint;
use crate::model::{HeaderText, WebhookRequest};
use crate::signing::{self, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use crate::task::DeliveryTask;
use crate::trace::TraceParent;
use std::borrow::Cow;
use time::OffsetDateTime;

/// The event type, sent beside the Standard Webhooks headers.
pub const HEADER_EVENT_TYPE: &str = "x-switchyard-event-type";
/// The W3C Trace Context header each attempt carries (the event's trace, a
/// span of the attempt's own).
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// How much of a receiver's response body is kept.
pub const MAX_RECORDED_BODY: usize = 1024;

/// Builds the signed request for `task` to `endpoint`, stamped `at`. The
/// `webhook-id` is the task's ([`crate::ids::webhook_id`]; the event id for
/// a task written before it was named): the same for every attempt, so
/// receivers can deduplicate on it. It is signed with every secret valid at `at` (two
/// while a secret rotates). The endpoint's custom headers come first; the
/// ones Switchyard sets can never be overridden (they are refused when an
/// endpoint is registered, and skipped here too).
pub fn build_request(task: &DeliveryTask, endpoint: &Endpoint, at: OffsetDateTime) -> WebhookRequest {
    let msg_id = task.webhook_id.as_deref().unwrap_or(task.event_id.as_str());
    let timestamp = at.unix_timestamp();
    let signature = signing::signature_header(endpoint.signing_secrets(at), msg_id, timestamp, task.payload.as_bytes());
    let ours: [(&'static str, HeaderText); 6] = [
        (HEADER_ID, Cow::Owned(msg_id.to_string())),
        (HEADER_TIMESTAMP, Cow::Owned(timestamp.to_string())),
        (HEADER_SIGNATURE, Cow::Owned(signature)),
        ("content-type", Cow::Borrowed("application/json")),
        ("user-agent", Cow::Borrowed(crate::USER_AGENT)),
        (HEADER_EVENT_TYPE, Cow::Owned(task.event_type.to_string())),
    ];
    // The event's trace goes on, with this attempt as its span.
    let trace: Option<(&'static str, HeaderText)> = task
        .traceparent
        .as_deref()
        .and_then(|t| TraceParent::parse(t).ok())
        .map(|t| (HEADER_TRACEPARENT, Cow::Owned(t.child().to_string())));
    let mut headers: Vec<(HeaderText, HeaderText)> =
        Vec::with_capacity(endpoint.headers.iter().count() + ours.len() + usize::from(trace.is_some()));
    headers.extend(
        endpoint
            .headers
            .iter()
            .filter(|(k, _)| !ours.iter().chain(&trace).any(|(o, _)| o == k))
            .map(|(k, v)| (Cow::Owned(k.to_string()), Cow::Owned(v.to_string()))),
    );
    headers.extend(ours.into_iter().chain(trace).map(|(k, v)| (Cow::Borrowed(k), v)));
    WebhookRequest {
        url: endpoint.url.clone(),
        headers,
        body: task.payload.clone(),
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

/// Judges a receiver's answer: only 2xx is success (3xx included: redirects
/// are never followed).
pub fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

//! How resources look in responses. Secrets never appear here: an
//! endpoint's secret is shown by its own route, a tenant API key only once,
//! when it is created, and custom header values never (they are masked).

use serde_json::{Value, json};
use switchyard_core::Endpoint;
use switchyard_core::model::{AttemptRecord, DeliveryRecord};
use switchyard_core::retry::RawRetryPolicy;
use switchyard_core::time_util::rfc3339;

/// An endpoint as the API shows it (never its secret).
pub fn endpoint(ep: &Endpoint) -> Value {
    // Header values often hold the receiver's credentials: names only,
    // each value masked.
    let headers = switchyard_core::quota::masked(&ep.headers);
    let payload_filter: std::collections::BTreeMap<String, Vec<Value>> = ep.payload_filter.clone().into();
    json!({
        "id": ep.id,
        "url": ep.url.as_str(),
        "description": ep.description,
        "filter_types": ep.filters.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
        "payload_filter": payload_filter,
        "headers": headers,
        "retry_policy": RawRetryPolicy::from(ep.retry_policy.clone()),
        "rate_limit": ep.rate_limit.map(|r| r.per_second()),
        "enabled": ep.enabled,
        "disabled_reason": ep.disabled_reason,
        "created_at": rfc3339(ep.created_at),
        "circuit": {
            "consecutive_failures": ep.circuit.failures,
            "open": ep.circuit.open_until_ms.is_some(),
        },
        "secrets_in_rotation": ep.previous_secrets.len(),
    })
}

/// A delivery as the API shows it.
pub fn delivery(d: &DeliveryRecord) -> Value {
    json!({
        "id": d.delivery_id,
        "event_id": d.event_id,
        "endpoint_id": d.endpoint_id,
        "event_type": d.event_type,
        "state": d.state,
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "reason": d.reason,
        "next_attempt_at": d.next_attempt_at.map(rfc3339),
        "created_at": rfc3339(d.created_at),
        "updated_at": rfc3339(d.updated_at),
    })
}

/// One attempt of a delivery as the API shows it.
pub fn attempt(a: &AttemptRecord) -> Value {
    json!({
        "attempt": a.attempt,
        "at": rfc3339(a.at),
        "succeeded": a.succeeded,
        "status_code": a.status_code,
        "duration_ms": a.duration_ms,
        "error_kind": a.error_kind,
        "error": a.error,
        "response_body": a.response_body,
        "next_attempt_at": a.next_attempt_at.map(rfc3339),
        "trigger": a.trigger,
    })
}

/// A page of items with the cursor of the next one.
pub fn page(items: Vec<Value>, next: Option<String>) -> Value {
    json!({ "items": items, "next_cursor": next })
}

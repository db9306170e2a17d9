//! `GET /v1/events`: a tenant's stored events, newest first.

use crate::Ports;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Params, Tenant};
use crate::views;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::sync::Arc;
use switchyard_core::event_listing::EventListing;
use switchyard_core::model::EventRecord;
use switchyard_core::ports::EventQueries;
use switchyard_core::time_util::{now_utc, rfc3339};

type S<P> = State<Arc<crate::AppState<P>>>;

/// The query parameters `GET /v1/events` takes.
pub const PARAMS: [&str; 6] = ["since", "until", "type", "type_prefix", "limit", "cursor"];

/// `GET /v1/events`: the tenant's stored events received in `[since,
/// until)` (either end optional), newest first, of one type (`type`) or of
/// the types that start with `type_prefix`, a page at a time. A page with
/// a type filter may be short, or empty, and still have a `next`.
pub async fn list<P: Ports>(Tenant(t): Tenant, State(s): S<P>, p: Params) -> ApiResult<Json<Value>> {
    p.only(&PARAMS)?;
    let (limit, cursor) = p.page()?;
    let listing = EventListing::new(p.time("since")?, p.time("until")?, p.get("type"), p.get("type_prefix"))
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    let page = s.events.list_events(&t, &listing, limit, cursor, now_utc()).await?;
    Ok(Json(views::page(page.items.iter().map(listed).collect(), page.next)))
}

/// An event as the listing shows it (what the audit trail shows; the
/// event's deliveries are at `GET /v1/events/{event_id}`).
fn listed(r: &EventRecord) -> Value {
    let e = &r.envelope;
    json!({
        "id": e.id,
        "type": e.event_type,
        "source": e.source,
        "timestamp": rfc3339(e.timestamp),
        "received_at": rfc3339(r.received_at),
        "data": e.data,
        "metadata": e.metadata,
    })
}

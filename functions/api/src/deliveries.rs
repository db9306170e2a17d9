//! A tenant's delivery log, events, health and replay.

use crate::Ports;
use crate::endpoints::owned;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Params, Tenant};
use crate::openapi::{AuditQuery, PageQuery, StatusQuery, WindowQuery, only};
use crate::views::{self, DeliveryView, Page};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use switchyard_core::model::{DeliveryRecord, DeliveryState};
use switchyard_core::ports::{DeliveryQueries, EventQueries, TaskQueue};
use switchyard_core::time_util::{now_utc, parse_rfc3339, rfc3339};
use switchyard_core::{DeliveryId, DeliveryTask, EventId, TenantId};
use utoipa::ToSchema;

type S<P> = State<Arc<crate::AppState<P>>>;

/// `GET /v1/endpoints/{endpoint_id}/deliveries`: an endpoint's deliveries, a page at a time, optionally created in `[since, until)`.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{endpoint_id}/deliveries",
    operation_id = "list_an_endpoints_deliveries",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id"), crate::openapi::WindowQuery),
    responses(
        (status = 200, description = "A page of the endpoint's deliveries", body = crate::views::Page<crate::views::DeliveryView>),
        (status = 400, response = crate::openapi::BadRequest),
        crate::openapi::ReadErrors,
    )
)]
pub async fn by_endpoint<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Json<Page<DeliveryView>>> {
    only::<WindowQuery>(&p)?;
    let (limit, cursor) = p.page()?;
    let ep = owned(&s, &t, &id).await?;
    let window = match (p.time("since")?, p.time("until")?) {
        (None, None) => None,
        (since, until) => Some((
            since.unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            until.unwrap_or_else(|| now_utc() + time::Duration::days(1)),
        )),
    };
    let page = s.log.deliveries_by_endpoint(&t, &ep.id, window, limit, cursor).await?;
    Ok(Json(Page::new(
        page.items.iter().map(views::delivery).collect(),
        page.next,
    )))
}

/// `GET /v1/deliveries?status=`: the tenant's deliveries that are `failed` (the default), `retrying` or `skipped`, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/deliveries",
    operation_id = "list_deliveries_by_status",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(crate::openapi::StatusQuery),
    responses(
        (status = 200, description = "A page of the tenant's deliveries in that state", body = crate::views::Page<crate::views::DeliveryView>),
        crate::openapi::ListErrors,
    )
)]
pub async fn by_status<P: Ports>(Tenant(t): Tenant, State(s): S<P>, p: Params) -> ApiResult<Json<Page<DeliveryView>>> {
    only::<StatusQuery>(&p)?;
    let (limit, cursor) = p.page()?;
    let status = p.get("status").unwrap_or("failed");
    let state: DeliveryState = serde_json::from_value(json!(status))
        .ok()
        .filter(|s| switchyard_aws::dynamo::keys::deliveries::indexed_by_status(*s))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "status must be one of failed, retrying, skipped (succeeded deliveries are listed by endpoint or by event)",
            )
        })?;
    let page = s.log.deliveries_by_status(&t, state, limit, cursor).await?;
    Ok(Json(Page::new(
        page.items.iter().map(views::delivery).collect(),
        page.next,
    )))
}

async fn owned_delivery<P: Ports>(
    s: &crate::AppState<P>,
    t: &TenantId,
    raw: &str,
) -> ApiResult<(DeliveryRecord, Vec<views::AttemptView>)> {
    let id = DeliveryId::parse(raw).map_err(|_| ApiError::not_found("delivery"))?;
    let (d, attempts) = s
        .log
        .get_delivery(t, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok((d, attempts.iter().map(views::attempt).collect()))
}

/// `GET /v1/deliveries/{delivery_id}`: one delivery with its attempts.
#[utoipa::path(
    get,
    path = "/v1/deliveries/{delivery_id}",
    operation_id = "get_a_delivery_with_its_attempts",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("delivery_id" = String, Path, description = "The delivery's id")),
    responses(
        (status = 200, description = "The delivery and its attempts", body = crate::views::DeliveryWithAttempts),
        crate::openapi::ReadErrors,
    )
)]
pub async fn get_one<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
) -> ApiResult<Json<views::DeliveryWithAttempts>> {
    let (d, attempt_log) = owned_delivery(&s, &t, &id).await?;
    Ok(Json(views::DeliveryWithAttempts {
        delivery: views::delivery(&d),
        attempt_log,
    }))
}

/// A task that resends `d` now, its body rebuilt from the stored event.
async fn replay_task<P: Ports>(s: &crate::AppState<P>, d: &DeliveryRecord) -> ApiResult<DeliveryTask> {
    let event = s.events.get_event(&d.tenant_id, &d.event_id).await?.ok_or_else(|| {
        ApiError::conflict(format!(
            "event {} is no longer stored (events without routing.audit are kept only as long as their deliveries)",
            d.event_id
        ))
    })?;
    let envelope = event.envelope;
    let mut task = DeliveryTask::new(&envelope, &d.endpoint_id, envelope.webhook_body(), d.created_at);
    task.manual_request = Some(format!("rpl_{}", switchyard_core::ids::ulid()));
    Ok(task)
}

/// Resends one delivery now: a manual attempt, recorded as such, then the
/// endpoint's retry policy if it fails.
#[utoipa::path(
    post,
    path = "/v1/deliveries/{delivery_id}/resend",
    operation_id = "resend_a_delivery_now",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("delivery_id" = String, Path, description = "The delivery's id")),
    responses(
        (status = 202, description = "Resent: a manual attempt is on its way", body = crate::views::ResendAccepted),
        (status = 409, response = crate::openapi::Conflict),
        crate::openapi::ReadErrors,
    )
)]
pub async fn resend<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<views::ResendAccepted>)> {
    let (d, _) = owned_delivery(&s, &t, &id).await?;
    let task = replay_task(&s, &d).await?;
    s.deliveries.send_all(std::slice::from_ref(&task)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(views::ResendAccepted {
            delivery_id: d.delivery_id.to_string(),
            request_id: task.manual_request.unwrap_or_default(),
        }),
    ))
}

/// The body of `POST /v1/endpoints/{endpoint_id}/recover`: the window `[since, until)` (RFC 3339; `until` defaults to now).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// The window's start (RFC 3339).
    #[schema(format = DateTime)]
    since: String,
    /// The window's end (RFC 3339, after `since`, at most 31 days later);
    /// now when left out.
    #[serde(default)]
    #[schema(format = DateTime)]
    until: Option<String>,
}

/// Resends every failed or skipped delivery (dropped while the endpoint was
/// disabled) of an endpoint created in `[since, until)`: at most 1000
/// deliveries are scanned (`truncated` says when there were more); a
/// delivery is requeued once (a second call finds it retrying or done).
#[utoipa::path(
    post,
    path = "/v1/endpoints/{endpoint_id}/recover",
    operation_id = "recover_failed_deliveries",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    request_body(content = Recover, content_type = "application/json"),
    responses(
        (status = 200, description = "What was requeued", body = crate::views::Recovered),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::BodyErrors,
    )
)]
pub async fn recover<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
    Body(b): Body<Recover>,
) -> ApiResult<Json<views::Recovered>> {
    let ep = owned(&s, &t, &id).await?;
    let since = parse_rfc3339(&b.since).map_err(|_| ApiError::invalid("since", "must be an RFC 3339 time"))?;
    let until = match &b.until {
        None => now_utc(),
        Some(u) => parse_rfc3339(u).map_err(|_| ApiError::invalid("until", "must be an RFC 3339 time"))?,
    };
    if until <= since {
        return Err(ApiError::invalid("until", "must be after since"));
    }
    if until - since > time::Duration::days(31) {
        return Err(ApiError::invalid("since", "the window is at most 31 days"));
    }
    let (mut requeued, mut expired, mut seen) = (0u64, 0u64, 0usize);
    let mut cursor: Option<String> = None;
    'pages: loop {
        let page = s
            .log
            .deliveries_by_endpoint(&t, &ep.id, Some((since, until)), 100, cursor.as_deref())
            .await?;
        for d in page.items {
            seen += 1;
            if seen > crate::MAX_RECOVER {
                break 'pages;
            }
            if !matches!(d.state, DeliveryState::Failed | DeliveryState::Skipped) {
                continue;
            }
            let task = match replay_task(&s, &d).await {
                Ok(task) => task,
                Err(e) if e.status == StatusCode::CONFLICT => {
                    expired += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            // Sent first, then marked: a crash in between resends twice at
            // worst, never loses one.
            s.deliveries.send_all(std::slice::from_ref(&task)).await?;
            if s.log.requeue_failed(&t, &d.delivery_id, now_utc()).await? {
                requeued += 1;
            }
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    Ok(Json(views::Recovered {
        requeued,
        event_expired: expired,
        scanned: seen.min(crate::MAX_RECOVER),
        truncated: seen > crate::MAX_RECOVER,
    }))
}

/// Success rate and latency of an endpoint over the last 24 hours.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{endpoint_id}/health",
    operation_id = "endpoint_health",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The last 24 hours", body = crate::views::EndpointHealth),
        crate::openapi::ReadErrors,
    )
)]
pub async fn endpoint_health<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
) -> ApiResult<Json<views::EndpointHealth>> {
    let ep = owned(&s, &t, &id).await?;
    let now = now_utc();
    let stats = s
        .log
        .endpoint_stats(&t, &ep.id, now - time::Duration::hours(24), now)
        .await?;
    Ok(Json(views::EndpointHealth {
        endpoint_id: ep.id.to_string(),
        window: views::Window {
            since: rfc3339(now - time::Duration::hours(24)),
            until: rfc3339(now),
        },
        deliveries: stats.deliveries,
        succeeded: stats.succeeded,
        failed: stats.failed,
        pending: stats.pending,
        success_rate: stats.success_rate,
        latency_ms: views::Latency {
            p50: stats.latency_p50_ms,
            p95: stats.latency_p95_ms,
        },
        enabled: ep.enabled,
        circuit_open: ep.circuit.open_until_ms.is_some(),
    }))
}

/// The tenant's audit trail: its `routing.audit` events received in
/// `[since, until)`, oldest first (at most 366 days per query).
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "the_audit_trail",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(crate::openapi::AuditQuery),
    responses(
        (status = 200, description = "A page of audited events, oldest first", body = crate::views::Page<crate::views::EventView>),
        crate::openapi::ListErrors,
    )
)]
pub async fn audit_trail<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    p: Params,
) -> ApiResult<Json<Page<views::EventView>>> {
    only::<AuditQuery>(&p)?;
    let (limit, cursor) = p.page()?;
    let since = p
        .time("since")?
        .ok_or_else(|| ApiError::bad_request("invalid_query", "since is required (RFC 3339)"))?;
    let until = p.time("until")?.unwrap_or_else(now_utc);
    if until <= since {
        return Err(ApiError::bad_request("invalid_query", "until must be after since"));
    }
    if until - since > time::Duration::days(366) {
        return Err(ApiError::bad_request("invalid_query", "the window is at most 366 days"));
    }
    if let Some(c) = cursor
        && !audit_cursor_is_sane(c)
    {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            "the cursor is not valid for this listing",
        ));
    }
    let page = s.events.audit_trail(&t, since, until, limit, cursor).await?;
    Ok(Json(Page::new(
        page.events.iter().map(views::event).collect(),
        page.next,
    )))
}

/// An audit cursor is `{received_at}#{event id}` as the index stores it,
/// or `day:YYYY-MM-DD` (go on at the start of that day).
fn audit_cursor_is_sane(c: &str) -> bool {
    if let Some(day) = c.strip_prefix(switchyard_aws::dynamo::AUDIT_DAY_CURSOR) {
        return day.len() == 10 && switchyard_core::time_util::parse_rfc3339(&format!("{day}T00:00:00Z")).is_ok();
    }
    c.rsplit_once('#')
        .is_some_and(|(at, id)| switchyard_core::time_util::parse_rfc3339(at).is_ok() && EventId::parse(id).is_ok())
}

/// An event's deliveries, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/deliveries",
    operation_id = "list_an_events_deliveries",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("event_id" = String, Path, description = "The event's id"), crate::openapi::PageQuery),
    responses(
        (status = 200, description = "A page of the event's deliveries", body = crate::views::Page<crate::views::DeliveryView>),
        (status = 400, response = crate::openapi::BadRequest),
        crate::openapi::ReadErrors,
    )
)]
pub async fn by_event<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Json<Page<DeliveryView>>> {
    only::<PageQuery>(&p)?;
    let (limit, cursor) = p.page()?;
    let id = EventId::parse(id).map_err(|_| ApiError::not_found("event"))?;
    if s.events.get_event(&t, &id).await?.is_none() {
        return Err(ApiError::not_found("event"));
    }
    let page = s.log.deliveries_by_event(&t, &id, limit, cursor).await?;
    Ok(Json(Page::new(
        page.items.iter().map(views::delivery).collect(),
        page.next,
    )))
}

/// An event with its (first hundred) deliveries.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}",
    operation_id = "get_an_event_with_its_deliveries",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("event_id" = String, Path, description = "The event's id")),
    responses(
        (status = 200, description = "The event and its first hundred deliveries", body = crate::views::EventWithDeliveries),
        crate::openapi::ReadErrors,
    )
)]
pub async fn event<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
) -> ApiResult<Json<views::EventWithDeliveries>> {
    let id = EventId::parse(id).map_err(|_| ApiError::not_found("event"))?;
    let record = s
        .events
        .get_event(&t, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let deliveries = s.log.deliveries_by_event(&t, &id, 100, None).await?;
    let e = &record.envelope;
    Ok(Json(views::EventWithDeliveries {
        id: e.id.to_string(),
        event_type: e.event_type.to_string(),
        version: e.version.to_string(),
        timestamp: rfc3339(e.timestamp),
        source: e.source.to_string(),
        data: e.data.clone(),
        metadata: serde_json::to_value(&e.metadata).unwrap_or_default(),
        routing: serde_json::to_value(e.routing).unwrap_or_default(),
        received_at: rfc3339(record.received_at),
        deliveries: deliveries.items.iter().map(views::delivery).collect(),
    }))
}

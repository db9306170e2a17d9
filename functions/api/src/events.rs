//! `GET /v1/events`: a tenant's stored events, newest first.

use crate::Ports;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Params, Tenant};
use crate::openapi::only;
use crate::views::{self, Page};
use axum::Json;
use axum::extract::State;
use std::sync::Arc;
use switchyard_core::event_listing::EventListing;
use switchyard_core::ports::EventQueries;
use switchyard_core::time_util::now_utc;
use utoipa::IntoParams;

type S<P> = State<Arc<crate::AppState<P>>>;

/// The query of `GET /v1/events`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Received at or after (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Received before (RFC 3339; after `since`).
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Only events of this type.
    #[param(
        rename = "type",
        min_length = 3,
        max_length = 128,
        pattern = "^[a-z0-9_]+(\\.[a-z0-9_]+)+$"
    )]
    pub event_type: Option<String>,
    /// Only events whose type starts with this (not with `type`).
    #[param(min_length = 1, max_length = 128, pattern = "^[a-z0-9_.]+$")]
    pub type_prefix: Option<String>,
    /// Items a page (1 to 100; 20 when left out).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// `GET /v1/events`: the tenant's stored events received in `[since,
/// until)` (either end optional), newest first, of one type (`type`) or of
/// the types that start with `type_prefix`, a page at a time. A page with
/// a type filter may be short, or empty, and still have a `next`.
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "list_events",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of the tenant's events, newest first", body = crate::views::Page<crate::views::EventView>),
        crate::openapi::ListErrors,
    )
)]
pub async fn list<P: Ports>(Tenant(t): Tenant, State(s): S<P>, p: Params) -> ApiResult<Json<Page<views::EventView>>> {
    only::<EventsQuery>(&p)?;
    let (limit, cursor) = p.page()?;
    let listing = EventListing::new(p.time("since")?, p.time("until")?, p.get("type"), p.get("type_prefix"))
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    let page = s.events.list_events(&t, &listing, limit, cursor, now_utc()).await?;
    Ok(Json(Page::new(
        page.items.iter().map(views::event).collect(),
        page.next,
    )))
}

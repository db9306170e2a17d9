//! Suspending a tenant and making it active again (admin key).
//!
//! A suspended tenant's API keys are refused at ingest (403
//! `tenant_suspended`) and its deliveries wait, unattempted and uncounted,
//! until it is active again; then they go on as if nothing had happened.
//! Its management API keeps working, writes included: the tenant can read
//! its deliveries and fix its endpoints meanwhile, and a resend it asks for
//! waits like its other deliveries.

use crate::Ports;
use crate::admin::tenant_id;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, Body};
use crate::views;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use std::sync::Arc;
use switchyard_core::model::TenantStatus;
use switchyard_core::ports::Tenants;
use utoipa::ToSchema;

/// The body of `PATCH /v1/admin/tenants/{tenant_id}`: the tenant's new
/// status, `active` or `suspended`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    /// `suspended`: ingest refuses the tenant's keys and its deliveries
    /// wait; `active`: they flow again.
    #[schema(value_type = TenantStatus)]
    status: String,
}

/// `PATCH /v1/admin/tenants/{tenant_id}`: suspends a tenant or makes it
/// active again; answers the tenant, or 404. Setting the status it has
/// already changes nothing.
#[utoipa::path(
    patch,
    path = "/v1/admin/tenants/{tenant_id}",
    operation_id = "update_a_tenant",
    tag = "admin",
    security(("adminKey" = [])),
    params(("tenant_id" = String, Path, description = "The tenant's id")),
    request_body(content = TenantUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "The tenant, with its status", body = crate::views::TenantView),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::BodyErrors,
    )
)]
pub async fn update_tenant<P: Ports>(
    _: Admin,
    State(s): State<Arc<crate::AppState<P>>>,
    Path(id): Path<String>,
    Body(b): Body<TenantUpdate>,
) -> ApiResult<Json<views::TenantView>> {
    let id = tenant_id(&id)?;
    let status =
        TenantStatus::parse(&b.status).ok_or_else(|| ApiError::invalid("status", "one of active, suspended"))?;
    let t = s
        .registry
        .set_tenant_status(&id, status)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    tracing::info!(tenant_id = %id, status = status.as_str(), "tenant status set");
    Ok(Json(views::tenant(&t)))
}

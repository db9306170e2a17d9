//! The operator's routes (admin key): tenants and their API keys. (Queue
//! health and DLQ redrive are served by `switchyard-admin`.)

use crate::Ports;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, Body, Params};
use crate::openapi::{PageQuery, only};
use crate::views::{self, Page};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use switchyard_core::api_key::KeyScope;
use switchyard_core::model::{ApiKeyRecord, TenantRecord};
use switchyard_core::ports::Tenants;
use switchyard_core::time_util::{now_utc, parse_rfc3339};
use switchyard_core::{ApiKey, TenantId};
use utoipa::ToSchema;

type S<P> = State<Arc<crate::AppState<P>>>;

pub(crate) fn tenant_id(raw: &str) -> ApiResult<TenantId> {
    TenantId::parse(raw).map_err(|_| ApiError::not_found("tenant"))
}

/// The body of `POST /v1/admin/tenants`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// The new tenant's id: 1 to 64 characters of `[A-Za-z0-9_-]`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    id: String,
    /// Its display name: 1 to 200 characters, not only white space.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    name: String,
}

/// `POST /v1/admin/tenants`: creates a tenant; 409 if the id is taken.
#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    operation_id = "create_a_tenant",
    tag = "admin",
    security(("adminKey" = [])),
    request_body(content = NewTenant, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = crate::views::TenantView),
        (status = 409, response = crate::openapi::Conflict),
        crate::openapi::BodyErrors,
    )
)]
pub async fn create_tenant<P: Ports>(
    _: Admin,
    State(s): S<P>,
    Body(b): Body<NewTenant>,
) -> ApiResult<(StatusCode, Json<views::TenantView>)> {
    let id = TenantId::parse(&b.id).map_err(|e| ApiError::invalid("id", e))?;
    let name = b.name.trim();
    if name.is_empty() || b.name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    let now = now_utc();
    if !s.registry.create_tenant(&id, name, now).await? {
        return Err(ApiError::conflict(format!("tenant {id} exists")));
    }
    let t = TenantRecord {
        id,
        name: name.to_string(),
        created_at: now,
        status: Default::default(),
    };
    Ok((StatusCode::CREATED, Json(views::tenant(&t))))
}

/// `GET /v1/admin/tenants`: the tenants, a page at a time (`limit`, `cursor`).
#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    operation_id = "list_tenants",
    tag = "admin",
    security(("adminKey" = [])),
    params(crate::openapi::PageQuery),
    responses(
        (status = 200, description = "A page of tenants", body = crate::views::Page<crate::views::TenantView>),
        crate::openapi::ListErrors,
    )
)]
pub async fn list_tenants<P: Ports>(_: Admin, State(s): S<P>, p: Params) -> ApiResult<Json<Page<views::TenantView>>> {
    only::<PageQuery>(&p)?;
    let (limit, cursor) = p.page()?;
    let page = s.registry.list_tenants(limit, cursor).await?;
    Ok(Json(Page::new(
        page.items.iter().map(views::tenant).collect(),
        page.next,
    )))
}

/// `GET /v1/admin/tenants/{tenant_id}`: one tenant, or 404.
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{tenant_id}",
    operation_id = "get_a_tenant",
    tag = "admin",
    security(("adminKey" = [])),
    params(("tenant_id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 200, description = "The tenant", body = crate::views::TenantView),
        crate::openapi::ReadErrors,
    )
)]
pub async fn get_tenant<P: Ports>(
    _: Admin,
    State(s): S<P>,
    Path(id): Path<String>,
) -> ApiResult<Json<views::TenantView>> {
    let id = tenant_id(&id)?;
    let t = s
        .registry
        .tenant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(Json(views::tenant(&t)))
}

/// `DELETE /v1/admin/tenants/{tenant_id}`: deletes a tenant with its API
/// keys and endpoints (204), or 404. Its keys stop working at once, its
/// deliveries in flight are skipped (their endpoints are gone), and its
/// events and delivery records expire by their TTL.
#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{tenant_id}",
    operation_id = "delete_a_tenant",
    tag = "admin",
    security(("adminKey" = [])),
    params(("tenant_id" = String, Path, description = "The tenant's id")),
    responses(
        (status = 204, description = "Deleted, with its keys and endpoints"),
        crate::openapi::ReadErrors,
    )
)]
pub async fn delete_tenant<P: Ports>(_: Admin, State(s): S<P>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = tenant_id(&id)?;
    if s.registry.delete_tenant(&id).await? {
        tracing::info!(tenant_id = %id, "tenant deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("tenant"))
    }
}

/// The body of `POST /v1/admin/tenants/{tenant_id}/api-keys`: every field
/// optional.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// The operator's note (at most 200 characters).
    #[serde(default)]
    #[schema(max_length = 200)]
    label: Option<String>,
    /// What the key may do: `manage` when left out.
    #[serde(default)]
    #[schema(value_type = Option<KeyScope>)]
    scope: Option<String>,
    /// When the key stops working (RFC 3339, in the future); never when
    /// left out.
    #[serde(default)]
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// Creates an API key for a tenant; the key is in this answer and nowhere
/// else, ever (only its SHA-256 is stored).
#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{tenant_id}/api-keys",
    operation_id = "create_a_tenant_api_key",
    tag = "admin",
    security(("adminKey" = [])),
    params(("tenant_id" = String, Path, description = "The tenant's id")),
    request_body(content = Option<NewKey>, content_type = "application/json", description = "Optional: no body is the same as `{}`"),
    responses(
        (status = 201, description = "Created: the key is in this answer only", body = crate::views::NewApiKey),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        crate::openapi::BodyErrors,
    )
)]
pub async fn create_api_key<P: Ports>(
    _: Admin,
    State(s): S<P>,
    Path(id): Path<String>,
    Body(b): Body<NewKey>,
) -> ApiResult<(StatusCode, Json<views::NewApiKey>)> {
    let tenant = tenant_id(&id)?;
    if s.registry.tenant(&tenant).await?.is_none() {
        return Err(ApiError::not_found("tenant"));
    }
    if b.label.as_ref().is_some_and(|l| l.chars().count() > 200) {
        return Err(ApiError::invalid("label", "at most 200 characters"));
    }
    let scope = match b.scope.as_deref() {
        None => KeyScope::Manage,
        Some(raw) => KeyScope::parse(raw).ok_or_else(|| ApiError::invalid("scope", "one of ingest, read, manage"))?,
    };
    let now = now_utc();
    let expires_at = b
        .expires_at
        .as_deref()
        .map(|raw| {
            let t = parse_rfc3339(raw).map_err(|_| ApiError::invalid("expires_at", "an RFC 3339 time"))?;
            if t <= now {
                return Err(ApiError::invalid("expires_at", "must be in the future"));
            }
            Ok(t)
        })
        .transpose()?;
    let key = ApiKey::generate();
    let record = ApiKeyRecord {
        key_id: format!("key_{}", switchyard_core::ids::ulid()),
        tenant_id: tenant,
        label: b.label,
        prefix: key.expose().chars().take(10).collect(),
        created_at: now,
        scope,
        expires_at,
    };
    let limit = s.limits.api_keys_per_tenant;
    if !s.registry.create_api_key_within(&key.hash(), &record, limit).await? {
        return Err(ApiError::limit_exceeded(&switchyard_core::quota::LimitExceeded {
            limit: switchyard_core::quota::API_KEYS_PER_TENANT,
            value: u64::from(limit),
        }));
    }
    Ok((
        StatusCode::CREATED,
        Json(views::NewApiKey {
            key: views::api_key(&record),
            api_key: key.expose().to_string(),
        }),
    ))
}

/// `GET /v1/admin/tenants/{tenant_id}/api-keys`: a tenant's keys (ids, labels, never the keys).
#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{tenant_id}/api-keys",
    operation_id = "list_a_tenants_api_keys",
    tag = "admin",
    security(("adminKey" = [])),
    params(("tenant_id" = String, Path, description = "The tenant's id"), crate::openapi::PageQuery),
    responses(
        (status = 200, description = "A page of the tenant's keys (never the keys themselves)", body = crate::views::Page<crate::views::ApiKeyView>),
        (status = 400, response = crate::openapi::BadRequest),
        crate::openapi::ReadErrors,
    )
)]
pub async fn list_api_keys<P: Ports>(
    _: Admin,
    State(s): S<P>,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Json<Page<views::ApiKeyView>>> {
    only::<PageQuery>(&p)?;
    let (limit, cursor) = p.page()?;
    let tenant = tenant_id(&id)?;
    if s.registry.tenant(&tenant).await?.is_none() {
        return Err(ApiError::not_found("tenant"));
    }
    let page = s.registry.list_api_keys(&tenant, limit, cursor).await?;
    Ok(Json(Page::new(
        page.items.iter().map(views::api_key).collect(),
        page.next,
    )))
}

/// `DELETE /v1/admin/tenants/{tenant_id}/api-keys/{key_id}`: revokes a key (204), or 404.
#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{tenant_id}/api-keys/{key_id}",
    operation_id = "revoke_an_api_key",
    tag = "admin",
    security(("adminKey" = [])),
    params(("tenant_id" = String, Path, description = "The tenant's id"), ("key_id" = String, Path, description = "The key's `key_id`")),
    responses(
        (status = 204, description = "Revoked: the key stops working within 60 s"),
        crate::openapi::ReadErrors,
    )
)]
pub async fn revoke_api_key<P: Ports>(
    _: Admin,
    State(s): S<P>,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant = tenant_id(&id)?;
    if s.registry.revoke_api_key(&tenant, &key_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("API key"))
    }
}

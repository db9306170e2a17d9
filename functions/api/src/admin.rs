//! The operator's routes (admin key): tenants and their API keys. (Queue
//! health and DLQ redrive are served by `switchyard-admin`.)

use crate::Ports;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, Body, Params};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use switchyard_core::api_key::KeyScope;
use switchyard_core::model::{ApiKeyRecord, TenantRecord};
use switchyard_core::ports::Tenants;
use switchyard_core::time_util::{now_utc, parse_rfc3339, rfc3339};
use switchyard_core::{ApiKey, TenantId};

type S<P> = State<Arc<crate::AppState<P>>>;

fn tenant_view(t: &TenantRecord) -> Value {
    json!({ "id": t.id, "name": t.name, "created_at": rfc3339(t.created_at) })
}

fn key_view(k: &ApiKeyRecord) -> Value {
    json!({
        "key_id": k.key_id,
        "tenant_id": k.tenant_id,
        "label": k.label,
        "prefix": k.prefix,
        "scope": k.scope,
        "expires_at": k.expires_at.map(rfc3339),
        "created_at": rfc3339(k.created_at),
    })
}

fn tenant_id(raw: &str) -> ApiResult<TenantId> {
    TenantId::parse(raw).map_err(|_| ApiError::not_found("tenant"))
}

/// The body of `POST /v1/admin/tenants`: the new tenant's id and display name (1 … 200 characters).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    id: String,
    name: String,
}

/// `POST /v1/admin/tenants`: creates a tenant; 409 if the id is taken.
pub async fn create_tenant<P: Ports>(
    _: Admin,
    State(s): S<P>,
    Body(b): Body<NewTenant>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    };
    Ok((StatusCode::CREATED, Json(tenant_view(&t))))
}

/// `GET /v1/admin/tenants`: the tenants, a page at a time (`limit`, `cursor`).
pub async fn list_tenants<P: Ports>(_: Admin, State(s): S<P>, p: Params) -> ApiResult<Json<Value>> {
    p.only(&["limit", "cursor"])?;
    let (limit, cursor) = p.page()?;
    let page = s.registry.list_tenants(limit, cursor).await?;
    Ok(Json(crate::views::page(
        page.items.iter().map(tenant_view).collect(),
        page.next,
    )))
}

/// `GET /v1/admin/tenants/{tenant_id}`: one tenant, or 404.
pub async fn get_tenant<P: Ports>(_: Admin, State(s): S<P>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = tenant_id(&id)?;
    let t = s
        .registry
        .tenant(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(Json(tenant_view(&t)))
}

/// `DELETE /v1/admin/tenants/{tenant_id}`: deletes a tenant with its API
/// keys and endpoints (204), or 404. Its keys stop working at once, its
/// deliveries in flight are skipped (their endpoints are gone), and its
/// events and delivery records expire by their TTL.
pub async fn delete_tenant<P: Ports>(_: Admin, State(s): S<P>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = tenant_id(&id)?;
    if s.registry.delete_tenant(&id).await? {
        tracing::info!(tenant_id = %id, "tenant deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("tenant"))
    }
}

/// The body of `POST /v1/admin/tenants/{tenant_id}/api-keys`: an optional
/// label, scope (`ingest`, `read` or `manage`, the default) and expiry
/// (RFC 3339, in the future).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
}

/// Creates an API key for a tenant; the key is in this answer and nowhere
/// else, ever (only its SHA-256 is stored).
pub async fn create_api_key<P: Ports>(
    _: Admin,
    State(s): S<P>,
    Path(id): Path<String>,
    Body(b): Body<NewKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = tenant_id(&id)?;
    if s.registry.tenant(&tenant).await?.is_none() {
        return Err(ApiError::not_found("tenant"));
    }
    if b.label.as_ref().is_some_and(|l| l.len() > 200) {
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
    let mut v = key_view(&record);
    v["api_key"] = json!(key.expose());
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /v1/admin/tenants/{tenant_id}/api-keys`: a tenant's keys (ids, labels, never the keys).
pub async fn list_api_keys<P: Ports>(
    _: Admin,
    State(s): S<P>,
    Path(id): Path<String>,
    p: Params,
) -> ApiResult<Json<Value>> {
    p.only(&["limit", "cursor"])?;
    let (limit, cursor) = p.page()?;
    let tenant = tenant_id(&id)?;
    if s.registry.tenant(&tenant).await?.is_none() {
        return Err(ApiError::not_found("tenant"));
    }
    let page = s.registry.list_api_keys(&tenant, limit, cursor).await?;
    Ok(Json(crate::views::page(
        page.items.iter().map(key_view).collect(),
        page.next,
    )))
}

/// `DELETE /v1/admin/tenants/{tenant_id}/api-keys/{key_id}`: revokes a key (204), or 404.
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

//! A tenant's endpoints: create (through the SSRF guard), list, get,
//! update, delete, disable/enable, secret and its rotation, a test event.

use crate::Ports;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Params, Tenant};
use crate::openapi::{PageQuery, only};
use crate::views::{self, EndpointView, Page};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use switchyard_core::endpoint::{CustomHeaders, PayloadFilter, RateLimit};
use switchyard_core::endpoint_edit::{EditError, edit_endpoint};
use switchyard_core::envelope::{IngestLimits, Source, parse_event};
use switchyard_core::model::EventRecord;
use switchyard_core::model::RegistrationError;
use switchyard_core::ports::{EndpointAdmin, EventStore, Registry, TaskQueue};
use switchyard_core::quota::{Limits, check_headers, keep_masked_values};
use switchyard_core::retry::{RawRetryPolicy, RetryPolicy};
use switchyard_core::time_util::{now_utc, rfc3339};
use switchyard_core::{DeliveryTask, Endpoint, EndpointId, EndpointUrl, EventTypeFilter, TenantId};
use utoipa::ToSchema;

type S<P> = State<Arc<crate::AppState<P>>>;

const FIELDS: &[&str] = &[
    "url",
    "description",
    "filter_types",
    "payload_filter",
    "headers",
    "retry_policy",
    "rate_limit",
];

// `apply` reads the body field by field (so that `null` clears a field on
// update); a test keeps `FIELDS` and this type's fields the same.
/// A new endpoint: only `url` is required.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    /// Where webhooks go: `https` (plain `http` only where the operator
    /// allows it), not a private address, at most 2048 characters.
    #[schema(format = "uri", max_length = 2048)]
    pub url: String,
    /// The tenant's note (at most 1000 characters).
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// The event types delivered (`order.placed`, `order.*`, `*`); none:
    /// every type.
    #[schema(max_items = 50, value_type = Option<Vec<crate::openapi::TypeFilter>>)]
    pub filter_types: Option<Vec<String>>,
    /// Payload rules: a dotted path into `data` (at most 20) and the values
    /// it may take (at most 50 each).
    #[schema(value_type = Option<Object>)]
    pub payload_filter: Option<BTreeMap<String, Vec<Value>>>,
    /// Custom headers sent with every webhook (at most 20; values at most
    /// 1024 characters; reserved names such as `host` and the signature
    /// headers are refused). A masked value (`********`) sent back keeps
    /// the stored one.
    pub headers: Option<BTreeMap<String, String>>,
    /// When failed attempts are retried; the default schedule when left out.
    pub retry_policy: Option<RawRetryPolicy>,
    /// Most deliveries a second (1 to 10000); no limit when left out.
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit: Option<u32>,
}

/// The fields of an endpoint to change, as on creation; `null` clears an
/// optional one.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    /// Where webhooks go (as on creation).
    #[schema(format = "uri", max_length = 2048, nullable = false)]
    pub url: Option<String>,
    /// The tenant's note (at most 1000 characters).
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// The event types delivered; none: every type.
    #[schema(max_items = 50, value_type = Option<Vec<crate::openapi::TypeFilter>>)]
    pub filter_types: Option<Vec<String>>,
    /// Payload rules.
    #[schema(value_type = Option<Object>)]
    pub payload_filter: Option<BTreeMap<String, Vec<Value>>>,
    /// Custom headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// When failed attempts are retried.
    pub retry_policy: Option<RawRetryPolicy>,
    /// Most deliveries a second (1 to 10000).
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit: Option<u32>,
}

fn field<T: serde::de::DeserializeOwned>(name: &str, v: &Value) -> ApiResult<T> {
    serde_json::from_value(v.clone()).map_err(|e| ApiError::invalid(name, e))
}

/// Applies the fields of a create or update body to `ep`; `null` clears an
/// optional field.
fn apply(ep: &mut Endpoint, body: &Map<String, Value>, limits: &Limits) -> ApiResult<()> {
    if let Some(k) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            k,
            format!("unknown field (known: {})", FIELDS.join(", ")),
        ));
    }
    for (k, v) in body {
        match k.as_str() {
            "url" => {
                let s: String = field(k, v)?;
                ep.url = EndpointUrl::parse(&s).map_err(|e| ApiError::invalid(k, e))?;
            }
            "description" => {
                let s: Option<String> = field(k, v)?;
                let s = s.unwrap_or_default();
                if s.chars().count() > 1000 {
                    return Err(ApiError::invalid(k, "at most 1000 characters"));
                }
                ep.description = s;
            }
            "filter_types" => {
                let list: Option<Vec<String>> = field(k, v)?;
                let list = list.unwrap_or_default();
                if list.len() > 50 {
                    return Err(ApiError::invalid(k, "at most 50 filters"));
                }
                ep.filters = list
                    .iter()
                    .map(|f| {
                        EventTypeFilter::parse(f.as_str()).map_err(|e| ApiError::invalid(k, format!("`{f}`: {e}")))
                    })
                    .collect::<ApiResult<_>>()?;
            }
            "payload_filter" => {
                let rules: Option<BTreeMap<String, Vec<Value>>> = field(k, v)?;
                ep.payload_filter =
                    PayloadFilter::parse(rules.unwrap_or_default()).map_err(|e| ApiError::invalid(k, e))?;
            }
            "headers" => {
                let h: Option<BTreeMap<String, String>> = field(k, v)?;
                // Values come back masked from every read: a masked value
                // sent back keeps the stored one.
                let h = keep_masked_values(h.unwrap_or_default(), &ep.headers).map_err(|e| ApiError::invalid(k, e))?;
                let headers = CustomHeaders::parse(h).map_err(|e| ApiError::invalid(k, e))?;
                check_headers(&headers, limits).map_err(|e| {
                    ApiError::invalid(k, &e).with_details(json!({ "field": k, "limit": e.limit, "value": e.value }))
                })?;
                ep.headers = headers;
            }
            "retry_policy" => {
                let raw: Option<RawRetryPolicy> = field(k, v)?;
                ep.retry_policy = match raw {
                    None => RetryPolicy::default(),
                    Some(r) => RetryPolicy::try_from(r).map_err(|e| ApiError::invalid(k, e))?,
                };
            }
            "rate_limit" => {
                let n: Option<u32> = field(k, v)?;
                ep.rate_limit = n.map(RateLimit::new).transpose().map_err(|e| ApiError::invalid(k, e))?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn registration_error(e: RegistrationError) -> ApiError {
    match e {
        RegistrationError::Refused(why) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "url_refused",
            format!("the endpoint URL is refused: {why}"),
        )
        .with_details(json!({ "field": "url" })),
        RegistrationError::Unresolvable(why) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "url_unresolvable",
            format!("the endpoint's host does not resolve: {why}"),
        )
        .with_details(json!({ "field": "url" })),
        RegistrationError::Store(p) => ApiError::internal(&p),
        RegistrationError::LimitReached(e) => ApiError::limit_exceeded(&e),
    }
}

/// The tenant's endpoint `raw`, or 404 (absent or another tenant's).
pub(crate) async fn owned<P: Ports>(s: &crate::AppState<P>, tenant: &TenantId, raw: &str) -> ApiResult<Endpoint> {
    let id = EndpointId::parse(raw).map_err(|_| ApiError::not_found("endpoint"))?;
    s.registry
        .endpoint(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))
}

/// `POST /v1/endpoints`: registers an endpoint (`url` required); the answer is the only listing that shows its secret.
#[utoipa::path(
    post,
    path = "/v1/endpoints",
    operation_id = "create_an_endpoint",
    tag = "tenant",
    security(("tenantKey" = [])),
    request_body(content = EndpointInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Created, with its signing secret", body = crate::views::EndpointWithSecret),
        (status = 409, response = crate::openapi::Conflict),
        crate::openapi::BodyErrors,
    )
)]
pub async fn create<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Body(body): Body<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<views::EndpointWithSecret>)> {
    let url = body.get("url").ok_or_else(|| ApiError::invalid("url", "is required"))?;
    let url: String = field("url", url)?;
    let url = EndpointUrl::parse(&url).map_err(|e| ApiError::invalid("url", e))?;
    let mut ep = Endpoint::new(t, url, Vec::new(), now_utc());
    apply(&mut ep, &body, &s.limits)?;
    s.registry
        .register_endpoint_within(&ep, &s.ssrf, s.limits.endpoints_per_tenant)
        .await
        .map_err(registration_error)?;
    // The secret is shown on creation and by its own route, never in listings.
    Ok((
        StatusCode::CREATED,
        Json(views::EndpointWithSecret {
            endpoint: views::endpoint(&ep),
            secret: ep.secret.expose().to_string(),
        }),
    ))
}

/// `GET /v1/endpoints`: the tenant's endpoints, a page at a time (`limit`, `cursor`).
#[utoipa::path(
    get,
    path = "/v1/endpoints",
    operation_id = "list_endpoints",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(crate::openapi::PageQuery),
    responses(
        (status = 200, description = "A page of the tenant's endpoints", body = crate::views::Page<crate::views::EndpointView>),
        crate::openapi::ListErrors,
    )
)]
pub async fn list<P: Ports>(Tenant(t): Tenant, State(s): S<P>, p: Params) -> ApiResult<Json<Page<EndpointView>>> {
    only::<PageQuery>(&p)?;
    let (limit, cursor) = p.page()?;
    let page = s.registry.endpoints_page(&t, limit, cursor).await?;
    Ok(Json(Page::new(
        page.items.iter().map(views::endpoint).collect(),
        page.next,
    )))
}

/// `GET /v1/endpoints/{endpoint_id}`: one endpoint, or 404.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{endpoint_id}",
    operation_id = "get_an_endpoint",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = crate::views::EndpointView),
        crate::openapi::ReadErrors,
    )
)]
pub async fn get_one<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    Ok(Json(views::endpoint(&owned(&s, &t, &id).await?)))
}

/// Reads the endpoint `raw`, changes it with `change` and writes only what
/// changed (see [`edit_endpoint`]); 404 if it is absent or another tenant's,
/// 409 if it keeps changing under the edit.
async fn edit<P: Ports, F, Fut>(s: &crate::AppState<P>, tenant: &TenantId, raw: &str, change: F) -> ApiResult<Endpoint>
where
    F: FnMut(Endpoint) -> Fut,
    Fut: std::future::Future<Output = ApiResult<Endpoint>>,
{
    let id = EndpointId::parse(raw).map_err(|_| ApiError::not_found("endpoint"))?;
    edit_endpoint(&s.registry, tenant, &id, change)
        .await
        .map_err(|e| match e {
            EditError::Missing => ApiError::not_found("endpoint"),
            EditError::Conflict => {
                ApiError::conflict("the endpoint kept changing while it was being updated; try again")
            }
            EditError::Rejected(e) => e,
            EditError::Store(p) => ApiError::from(p),
        })
}

/// `PATCH /v1/endpoints/{endpoint_id}`: changes the fields given; `null` clears an optional one.
#[utoipa::path(
    patch,
    path = "/v1/endpoints/{endpoint_id}",
    operation_id = "update_an_endpoint",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    request_body(content = Option<EndpointPatch>, content_type = "application/json", description = "Optional: no body is the same as `{}`"),
    responses(
        (status = 200, description = "The endpoint as changed", body = crate::views::EndpointView),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        crate::openapi::BodyErrors,
    )
)]
pub async fn update<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> ApiResult<Json<EndpointView>> {
    let (body, policy, limits, registry) = (&body, &s.ssrf, &s.limits, &s.registry);
    let ep = edit(&s, &t, &id, |mut ep| async move {
        apply(&mut ep, body, limits)?;
        registry.check_url(&ep, policy).await.map_err(registration_error)?;
        Ok(ep)
    })
    .await?;
    Ok(Json(views::endpoint(&ep)))
}

/// `DELETE /v1/endpoints/{endpoint_id}`: deletes an endpoint (204), or 404.
#[utoipa::path(
    delete,
    path = "/v1/endpoints/{endpoint_id}",
    operation_id = "delete_an_endpoint",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Deleted"),
        crate::openapi::ReadErrors,
    )
)]
pub async fn remove<P: Ports>(Tenant(t): Tenant, State(s): S<P>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let ep = owned(&s, &t, &id).await?;
    if s.registry.delete_endpoint(&t, &ep.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("endpoint"))
    }
}

async fn set_enabled<P: Ports>(
    s: &crate::AppState<P>,
    t: &TenantId,
    id: &str,
    enabled: bool,
) -> ApiResult<Json<EndpointView>> {
    let (policy, registry) = (&s.ssrf, &s.registry);
    let ep = edit(s, t, id, |mut ep| async move {
        ep.enabled = enabled;
        ep.disabled_reason = (!enabled).then(|| "disabled_by_tenant".to_string());
        if enabled {
            // Its circuit starts closed again, and its URL is checked again;
            // disabling never fails on it.
            ep.circuit = Default::default();
            registry.check_url(&ep, policy).await.map_err(registration_error)?;
        }
        Ok(ep)
    })
    .await?;
    Ok(Json(views::endpoint(&ep)))
}

/// `POST /v1/endpoints/{endpoint_id}/disable`: stops deliveries to it; they are recorded as skipped.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{endpoint_id}/disable",
    operation_id = "disable_an_endpoint",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "Disabled: deliveries are recorded as skipped", body = crate::views::EndpointView),
        (status = 409, response = crate::openapi::Conflict),
        crate::openapi::ReadErrors,
    )
)]
pub async fn disable<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    set_enabled(&s, &t, &id, false).await
}

/// `POST /v1/endpoints/{endpoint_id}/enable`: enables it again with a closed circuit, after checking its URL again.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{endpoint_id}/enable",
    operation_id = "enable_an_endpoint",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "Enabled, with a closed circuit", body = crate::views::EndpointView),
        (status = 409, response = crate::openapi::Conflict),
        (status = 422, response = crate::openapi::Invalid),
        crate::openapi::ReadErrors,
    )
)]
pub async fn enable<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    set_enabled(&s, &t, &id, true).await
}

/// `GET /v1/endpoints/{endpoint_id}/secret`: the signing secret and the rotated-out ones still valid.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{endpoint_id}/secret",
    operation_id = "get_an_endpoints_signing_secret",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The signing secrets", body = crate::views::EndpointSecret),
        crate::openapi::ReadErrors,
    )
)]
pub async fn secret<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
) -> ApiResult<Json<views::EndpointSecret>> {
    let ep = owned(&s, &t, &id).await?;
    let now = now_utc();
    let previous = ep
        .previous_secrets
        .iter()
        .filter(|r| r.valid_until > now)
        .map(|r| views::PreviousSecret {
            secret: r.secret.expose().to_string(),
            valid_until: rfc3339(r.valid_until),
        })
        .collect();
    Ok(Json(views::EndpointSecret {
        secret: ep.secret.expose().to_string(),
        previous,
    }))
}

/// The body of `POST /v1/endpoints/{endpoint_id}/rotate-secret`.
#[derive(serde::Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// How long the old secret keeps signing, in hours (0 to 720); the
    /// stack's `ROTATION_OVERLAP_HOURS` when left out.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 720)]
    overlap_hours: Option<u32>,
}

/// `POST /v1/endpoints/{endpoint_id}/rotate-secret`: a new signing secret; the old one keeps signing for the overlap.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{endpoint_id}/rotate-secret",
    operation_id = "rotate_an_endpoints_secret",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    request_body(content = Option<Rotate>, content_type = "application/json", description = "Optional: no body is the same as `{}`"),
    responses(
        (status = 200, description = "Rotated", body = crate::views::RotatedSecret),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Conflict),
        crate::openapi::BodyErrors,
    )
)]
pub async fn rotate_secret<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
    Body(b): Body<Rotate>,
) -> ApiResult<Json<views::RotatedSecret>> {
    let overlap = match b.overlap_hours {
        None => s.rotation_overlap,
        Some(h) if h <= 720 => time::Duration::hours(i64::from(h)),
        Some(_) => return Err(ApiError::invalid("overlap_hours", "must be 0 to 720")),
    };
    // Made again from a fresh read if another rotation lands first: the
    // secret that one handed out stays valid as a previous secret.
    let ep = edit(&s, &t, &id, |mut ep| async move {
        ep.rotate_secret(now_utc(), overlap);
        Ok(ep)
    })
    .await?;
    // The secret retired by this rotation is the last one kept.
    let previous_valid_until = ep.previous_secrets.last().map(|r| rfc3339(r.valid_until));
    Ok(Json(views::RotatedSecret {
        secret: ep.secret.expose().to_string(),
        previous_valid_until,
    }))
}

/// Sends a `webhook.test` event to this endpoint alone (whatever its filters).
#[utoipa::path(
    post,
    path = "/v1/endpoints/{endpoint_id}/test",
    operation_id = "send_a_test_event",
    tag = "tenant",
    security(("tenantKey" = [])),
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 202, description = "A `webhook.test` event is on its way", body = crate::views::TestSent),
        (status = 409, response = crate::openapi::Conflict),
        crate::openapi::ReadErrors,
    )
)]
pub async fn send_test<P: Ports>(
    Tenant(t): Tenant,
    State(s): S<P>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<views::TestSent>)> {
    let ep = owned(&s, &t, &id).await?;
    if !ep.enabled {
        return Err(ApiError::conflict("the endpoint is disabled"));
    }
    let now = now_utc();
    let body = json!({
        "type": "webhook.test",
        "data": { "endpoint_id": ep.id, "message": "A test event from Switchyard." },
        "routing": { "internal": false, "external": true, "audit": true },
    });
    let source = Source::parse("switchyard")
        .map_err(|e| ApiError::internal(&switchyard_core::PortError::permanent(e.to_string())))?;
    let envelope = parse_event(body.to_string().as_bytes(), t, &source, now, IngestLimits::default())
        .map_err(|e| ApiError::internal(&switchyard_core::PortError::permanent(e.to_string())))?;
    let record = EventRecord {
        envelope: envelope.clone(),
        received_at: now,
        expires_at: now + s.retention,
    };
    s.events.insert_event(&record).await?;
    let task = DeliveryTask::new(&envelope, &ep.id, envelope.webhook_body(), now);
    s.deliveries.send_all(std::slice::from_ref(&task)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(views::TestSent {
            event_id: envelope.id.to_string(),
            delivery_id: task.delivery_id.to_string(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties<T: ToSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        schema["properties"].as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn the_documented_endpoint_fields_are_the_ones_read() {
        let mut fields: Vec<String> = FIELDS.iter().map(|f| f.to_string()).collect();
        fields.sort();
        for mut documented in [properties::<EndpointInput>(), properties::<EndpointPatch>()] {
            documented.sort();
            assert_eq!(documented, fields);
        }
    }
}

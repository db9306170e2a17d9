//! Queue administration: the operator's routes over the stack's queues,
//! served by a function of their own whose role is the only one of the
//! HTTP API's that may read, move or send messages between queues. The
//! tenant-facing management API (`switchyard-api`) cannot touch them.
//!
//! Every route needs the admin key (`Authorization: Bearer <key>`: the
//! secret `ADMIN_KEY_SECRET_ID` names, or the key whose SHA-256 is
//! `ADMIN_KEY_SHA256`); any other key answers 401, without looking it up
//! (this function cannot read the registry).
//!
//! The routes share the management API's error shape, extractors and
//! `openapi.json`; they are in [`routes`].

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::routing::{MethodRouter, get, post};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use switchyard_api::error::{ApiError, ApiResult};
use switchyard_api::extract::{Body, Params, check_admin};
use switchyard_api::openapi::only;
use switchyard_aws::config::{ConfigError, env_opt};
use switchyard_aws::redrive::{self, DlqPair};
use switchyard_aws::{SdkConfig, aws_sdk_sqs};
use switchyard_core::admin_key::AdminKeys;
use switchyard_core::time_util::{now_utc, rfc3339};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Where the queues are and who may administer them; from the environment
/// in Lambda.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every DLQ of the template with its source queue.
    pub dlqs: Vec<DlqPair>,
    /// Hex SHA-256 of an admin key the operator chose.
    pub admin_key_sha256: Option<String>,
    /// The Secrets Manager secret that keeps the generated admin key. With
    /// neither, every route answers 403.
    pub admin_key_secret_id: Option<String>,
}

impl Settings {
    /// Reads `DLQS` (JSON: `[{"name","dlq_url","source_url","replay"?}]`),
    /// `ADMIN_KEY_SHA256` and `ADMIN_KEY_SECRET_ID`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let dlqs = redrive::parse_dlqs(&env_opt("DLQS").unwrap_or_else(|| "[]".into()))
            .map_err(|reason| ConfigError::Invalid { name: "DLQS", reason })?;
        let admin = switchyard_aws::config::admin_key_sha256()?;
        Ok(Self {
            dlqs,
            admin_key_sha256: admin,
            admin_key_secret_id: switchyard_aws::config::admin_key_secret_id(),
        })
    }
}

/// The function's state, built once per process.
pub struct AdminState {
    /// The SQS client for queue depths, peeks and redrives.
    pub sqs: aws_sdk_sqs::Client,
    /// The DLQs the routes may read and redrive, each with its source queue.
    pub dlqs: Vec<DlqPair>,
    /// The admin keys every route accepts.
    pub admin_keys: AdminKeys,
}

impl AdminState {
    /// The state over the SQS client of `sdk` and the queues of `s`.
    pub fn new(sdk: &SdkConfig, s: &Settings) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(sdk),
            dlqs: s.dlqs.clone(),
            admin_keys: switchyard_api::admin_keys(
                sdk,
                s.admin_key_sha256.as_deref(),
                s.admin_key_secret_id.as_deref(),
            ),
        }
    }
}

type S = State<Arc<AdminState>>;

/// The operator: the request carries the admin key.
pub struct Operator;

impl FromRequestParts<Arc<AdminState>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AdminState>) -> Result<Self, ApiError> {
        check_admin(&parts.headers, &state.admin_keys).await?;
        Ok(Operator)
    }
}

/// Every route: method, path (axum's and OpenAPI's `{param}` syntax), handler.
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<Arc<AdminState>>)> {
    vec![
        (Method::GET, "/v1/admin/queues", get(queue_health)),
        (Method::GET, "/v1/admin/dlqs", get(list_dlqs)),
        (Method::GET, "/v1/admin/dlqs/{name}/messages", get(peek_dlq)),
        (Method::POST, "/v1/admin/dlqs/{name}/redrive", post(redrive_dlq)),
    ]
}

/// Whether a request path is one of this function's (as the HTTP API
/// routes it: `/v1/admin/queues`, `/v1/admin/dlqs` and below).
pub fn serves(path: &str) -> bool {
    path == "/v1/admin/queues" || path == "/v1/admin/dlqs" || path.starts_with("/v1/admin/dlqs/")
}

/// The router over `state`: exactly [`routes`], plus JSON answers for an
/// unknown path (404) or method (405), as the management API's.
pub fn router(state: Arc<AdminState>) -> Router {
    switchyard_api::serve_routes(routes(), state)
}

/// Depth of every queue and DLQ the template declares.
#[utoipa::path(
    get,
    path = "/v1/admin/queues",
    operation_id = "queue_health",
    tag = "admin",
    security(("adminKey" = [])),
    responses(
        (status = 200, description = "Every queue and DLQ's depth", body = QueueHealth),
        switchyard_api::openapi::AuthErrors,
    )
)]
pub async fn queue_health(_: Operator, State(s): S) -> ApiResult<Json<QueueHealth>> {
    let mut queues = Vec::new();
    for (i, pair) in s.dlqs.iter().enumerate() {
        // A queue that two DLQs feed (the ingest queue) is listed once.
        if !s.dlqs[..i].iter().any(|p| p.source_url == pair.source_url) {
            queues.push(redrive::queue_depth(&s.sqs, &pair.name, &pair.source_url).await?);
        }
        queues.push(redrive::queue_depth(&s.sqs, &format!("{}-dlq", pair.name), &pair.dlq_url).await?);
    }
    Ok(Json(QueueHealth {
        queues,
        at: rfc3339(now_utc()),
    }))
}

fn dlq<'a>(s: &'a AdminState, name: &str) -> ApiResult<&'a DlqPair> {
    s.dlqs
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ApiError::not_found("DLQ"))
}

/// `GET /v1/admin/dlqs`: each DLQ's name and message count.
#[utoipa::path(
    get,
    path = "/v1/admin/dlqs",
    operation_id = "list_dlqs",
    tag = "admin",
    security(("adminKey" = [])),
    responses(
        (status = 200, description = "Each DLQ and how many messages it holds", body = DlqList),
        switchyard_api::openapi::AuthErrors,
    )
)]
pub async fn list_dlqs(_: Operator, State(s): S) -> ApiResult<Json<DlqList>> {
    let mut items = Vec::new();
    for pair in &s.dlqs {
        let d = redrive::queue_depth(&s.sqs, &pair.name, &pair.dlq_url).await?;
        items.push(Dlq {
            name: pair.name.clone(),
            messages: d.visible + d.in_flight + d.delayed,
        });
    }
    Ok(Json(DlqList { items }))
}

/// `GET /v1/admin/dlqs/{name}/messages`: up to `max` (1 … 10, default 10) messages of a DLQ, left on it.
#[utoipa::path(
    get,
    path = "/v1/admin/dlqs/{name}/messages",
    operation_id = "peek_at_a_dlq",
    tag = "admin",
    security(("adminKey" = [])),
    params(("name" = String, Path, description = "The DLQ's name (`GET /v1/admin/dlqs` lists them)"), PeekQuery),
    responses(
        (status = 200, description = "Up to `max` messages, left on the DLQ", body = Peeked),
        (status = 400, response = switchyard_api::openapi::BadRequest),
        switchyard_api::openapi::ReadErrors,
    )
)]
pub async fn peek_dlq(_: Operator, State(s): S, Path(name): Path<String>, p: Params) -> ApiResult<Json<Peeked>> {
    only::<PeekQuery>(&p)?;
    let pair = dlq(&s, &name)?;
    let max = match p.get("max") {
        None => 10,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=10).contains(n))
            .ok_or_else(|| ApiError::bad_request("invalid_query", "max must be 1 to 10"))?,
    };
    let items = redrive::peek(&s.sqs, &pair.dlq_url, max).await?;
    Ok(Json(Peeked { items }))
}

/// The most messages one redrive call with a `max` moves.
pub const MAX_REDRIVE: u64 = 1_000_000;

/// The body of `POST /v1/admin/dlqs/{name}/redrive`.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redrive {
    /// The most messages to move (1 to 1,000,000); all there are when
    /// left out.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000)]
    max: Option<u64>,
}

/// Every queue's and DLQ's depth.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueHealth {
    /// Each queue, then its DLQ.
    pub queues: Vec<redrive::QueueDepth>,
    /// When they were read.
    #[schema(format = DateTime)]
    pub at: String,
}

/// A DLQ and how many messages it holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dlq {
    /// Its name, as the routes take it.
    pub name: String,
    /// Visible, in-flight and delayed messages.
    pub messages: u64,
}

/// The DLQs.
#[derive(Debug, Serialize, ToSchema)]
pub struct DlqList {
    /// Each DLQ.
    pub items: Vec<Dlq>,
}

/// Messages of a DLQ, left on it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Peeked {
    /// The messages.
    pub items: Vec<redrive::PeekedMessage>,
}

/// How many messages a peek shows.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeekQuery {
    /// 1 to 10; 10 when left out.
    #[param(minimum = 1, maximum = 10)]
    pub max: Option<u32>,
}

/// The admin function's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(queue_health, list_dlqs, peek_dlq, redrive_dlq))]
pub struct AdminDoc;

/// Moves a DLQ's messages back to their source queue.
#[utoipa::path(
    post,
    path = "/v1/admin/dlqs/{name}/redrive",
    operation_id = "redrive_a_dlq",
    tag = "admin",
    security(("adminKey" = [])),
    params(("name" = String, Path, description = "The DLQ's name (`GET /v1/admin/dlqs` lists them)")),
    request_body(content = Option<Redrive>, content_type = "application/json", description = "Optional: no body is the same as `{}`"),
    responses(
        (status = 200, description = "How many messages moved back to the source queue", body = redrive::MoveResult),
        (status = 404, response = switchyard_api::openapi::NotFound),
        switchyard_api::openapi::BodyErrors,
    )
)]
pub async fn redrive_dlq(
    _: Operator,
    State(s): S,
    Path(name): Path<String>,
    Body(b): Body<Redrive>,
) -> ApiResult<Json<redrive::MoveResult>> {
    let pair = dlq(&s, &name)?;
    if b.max.is_some_and(|m| !(1..=MAX_REDRIVE).contains(&m)) {
        return Err(ApiError::invalid("max", format!("must be 1 to {MAX_REDRIVE}")));
    }
    let result = redrive::move_messages(&s.sqs, pair, b.max).await?;
    tracing::info!(dlq = %pair.name, moved = result.moved, method = result.method, "DLQ redriven");
    Ok(Json(result))
}

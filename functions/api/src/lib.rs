//! The management API: one axum router, served by Lambda through
//! `lambda_http` (HTTP API, payload 2.0) and locally by any HTTP server.
//!
//! Two kinds of caller, both with `Authorization: Bearer <key>`:
//! - the **operator**, with the admin key (generated at deploy time and
//!   kept in Secrets Manager, `ADMIN_KEY_SECRET_ID`, and/or chosen by the
//!   operator, its SHA-256 in `ADMIN_KEY_SHA256`): tenants and their API keys (queue health and DLQ
//!   redrive are `switchyard-admin`'s, a function with its own role: this
//!   one cannot touch the queues beyond sending replays to the deliveries
//!   queue);
//! - a **tenant**, with one of its API keys: its endpoints, deliveries,
//!   events, replay. The tenant always comes from the key; an id of another
//!   tenant's resource answers 404, exactly as an id that does not exist.
//!
//! Every route is in [`routes`]; the router is built from that table and
//! `openapi.json` documents exactly its entries and `switchyard-admin`'s
//! (a test checks both ways).

pub mod admin;
pub mod deliveries;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod extract;
pub mod openapi;
pub mod tenant_status;
pub mod views;

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post};
use std::sync::Arc;
use switchyard_aws::config::{ConfigError, audit_retention_days, env_in_range, env_var, retention_days};
use switchyard_aws::dynamo::{DynamoDeliveryLog, DynamoEventStore, DynamoRegistry};
use switchyard_aws::kms::KmsDataKeys;
use switchyard_aws::secrets::SecretsManagerAdminKey;
use switchyard_aws::sqs::SqsQueue;
use switchyard_aws::{SdkConfig, aws_sdk_dynamodb, aws_sdk_secretsmanager, aws_sdk_sqs};
use switchyard_core::DeliveryTask;
use switchyard_core::admin_key::{AdminKeySource, AdminKeys};
use switchyard_core::ports::{
    DeliveryQueries, EndpointAdmin, EndpointEdits, EventQueries, EventStore, Registry, TaskQueue, Tenants,
};
use switchyard_core::ssrf::SsrfPolicy;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most failed deliveries one recover call requeues.
pub const MAX_RECOVER: usize = 1000;

/// Where the API's resources are and how it behaves; from the environment in Lambda.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The registry table (tenants, keys, endpoints).
    pub registry_table: String,
    /// The deliveries table (events, deliveries, attempts).
    pub deliveries_table: String,
    /// The deliveries queue, where resends and recoveries go.
    pub deliveries_queue_url: String,
    /// Hex SHA-256 of an admin key the operator chose.
    pub admin_key_sha256: Option<String>,
    /// The Secrets Manager secret that keeps the generated admin key. With
    /// neither this nor `admin_key_sha256`, the admin routes answer 403.
    pub admin_key_secret_id: Option<String>,
    /// Which endpoint URLs are refused (private ranges, plain `http`).
    pub ssrf: SsrfPolicy,
    /// How long a rotated-out secret keeps signing, unless the call says.
    pub rotation_overlap: time::Duration,
    /// How long deliveries and attempts are kept.
    pub retention_days: u16,
    /// How long the event records written here (test events, audited) are kept.
    pub audit_retention_days: u16,
    /// Per-tenant limits: endpoints, API keys, custom headers.
    pub limits: switchyard_core::quota::Limits,
    /// The KMS key that seals endpoint secrets; `None` (tests only) stores
    /// them in plain text.
    pub secrets_key_id: Option<String>,
}

impl Settings {
    /// Reads `REGISTRY_TABLE`, `DELIVERIES_TABLE`, `DELIVERIES_QUEUE_URL`,
    /// `SECRETS_KEY_ID` (the KMS key that seals endpoint secrets),
    /// `ADMIN_KEY_SHA256`, `ADMIN_KEY_SECRET_ID`,
    /// `ROTATION_OVERLAP_HOURS` (0 … 720, default 24), `EVENT_RETENTION_DAYS`,
    /// `AUDIT_RETENTION_DAYS` (default 365), the per-tenant limits (see
    /// [`switchyard_aws::config::limits`]),
    /// and `ALLOW_HTTP` / `SSRF_ALLOW_LIST` (local mode only).
    pub fn from_env() -> Result<Self, ConfigError> {
        let admin = switchyard_aws::config::admin_key_sha256()?;
        let ssrf = switchyard_aws::config::ssrf_policy()?;
        Ok(Self {
            registry_table: env_var("REGISTRY_TABLE")?,
            deliveries_table: env_var("DELIVERIES_TABLE")?,
            deliveries_queue_url: env_var("DELIVERIES_QUEUE_URL")?,
            admin_key_sha256: admin,
            admin_key_secret_id: switchyard_aws::config::admin_key_secret_id(),
            ssrf,
            rotation_overlap: time::Duration::hours(env_in_range("ROTATION_OVERLAP_HOURS", 24, 0..=720)?),
            retention_days: retention_days()?,
            audit_retention_days: audit_retention_days()?,
            limits: switchyard_aws::config::limits()?,
            secrets_key_id: Some(env_var("SECRETS_KEY_ID")?),
        })
    }
}

/// The ports the API works through: storage of tenants, keys and
/// endpoints, the delivery log, the event store, and the deliveries queue
/// that replays go to. [`Aws`] is the deployed set.
pub trait Ports: Send + Sync + 'static {
    /// Tenants, API keys and endpoints.
    type Registry: Registry + Tenants + EndpointAdmin + EndpointEdits + Send + Sync;
    /// Reads of deliveries and attempts.
    type Log: DeliveryQueries + Send + Sync;
    /// Event records: stored (test events) and read back.
    type Events: EventStore + EventQueries + Send + Sync;
    /// The deliveries queue.
    type Deliveries: TaskQueue<DeliveryTask> + Send + Sync;
}

/// The ports over DynamoDB and SQS.
pub struct Aws;

impl Ports for Aws {
    type Registry = DynamoRegistry;
    type Log = DynamoDeliveryLog;
    type Events = DynamoEventStore;
    type Deliveries = SqsQueue<DeliveryTask>;
}

/// The API's state, built once per process.
pub struct AppState<P: Ports = Aws> {
    /// Tenants, API keys and endpoints.
    pub registry: P::Registry,
    /// The delivery log, read by the delivery routes.
    pub log: P::Log,
    /// The event store.
    pub events: P::Events,
    /// The deliveries queue, for resends, recoveries and test events.
    pub deliveries: P::Deliveries,
    /// The admin keys the admin routes accept.
    pub admin_keys: AdminKeys,
    /// Which endpoint URLs are refused.
    pub ssrf: SsrfPolicy,
    /// How long a rotated-out secret keeps signing, unless the call says.
    pub rotation_overlap: time::Duration,
    /// How long event records written here (test events) are kept.
    pub retention: time::Duration,
    /// Per-tenant limits: endpoints, API keys, custom headers.
    pub limits: switchyard_core::quota::Limits,
}

impl AppState<Aws> {
    /// The state over the AWS adapters of `settings`' tables and queue.
    pub fn new(sdk: &SdkConfig, s: &Settings) -> Self {
        let ddb = aws_sdk_dynamodb::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let mut registry = DynamoRegistry::new(ddb.clone(), &s.registry_table);
        if let Some(key_id) = &s.secrets_key_id {
            registry = registry.with_keyring(KmsDataKeys::keyring(sdk, key_id));
        }
        let mut state = Self::with_ports(
            registry,
            DynamoDeliveryLog::new(
                ddb.clone(),
                &s.deliveries_table,
                time::Duration::days(i64::from(s.retention_days)),
            ),
            DynamoEventStore::new(ddb, &s.deliveries_table),
            SqsQueue::new(sqs, &s.deliveries_queue_url),
            s,
        );
        state.admin_keys = admin_keys(sdk, s.admin_key_sha256.as_deref(), s.admin_key_secret_id.as_deref());
        state
    }
}

impl<P: Ports> AppState<P> {
    /// The state over the given ports, behaving as `s` says; its admin key
    /// is `s.admin_key_sha256`'s only (a kept secret needs an SDK client:
    /// see [`AppState::new`]).
    pub fn with_ports(
        registry: P::Registry,
        log: P::Log,
        events: P::Events,
        deliveries: P::Deliveries,
        s: &Settings,
    ) -> Self {
        Self {
            registry,
            log,
            events,
            deliveries,
            admin_keys: AdminKeys::new(s.admin_key_sha256.as_deref(), None),
            ssrf: s.ssrf.clone(),
            rotation_overlap: s.rotation_overlap,
            retention: time::Duration::days(i64::from(s.audit_retention_days)),
            limits: s.limits.clone(),
        }
    }
}

/// The admin keys of a function: the fixed digest, and the secret kept in
/// Secrets Manager read through `sdk` (no call until the first admin
/// request).
pub fn admin_keys(sdk: &SdkConfig, fixed_sha256: Option<&str>, secret_id: Option<&str>) -> AdminKeys {
    let source = secret_id.map(|id| {
        Arc::new(SecretsManagerAdminKey::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            id,
        )) as Arc<dyn AdminKeySource>
    });
    AdminKeys::new(fixed_sha256, source)
}

type State<P> = Arc<AppState<P>>;

/// Every route: method, path (axum's and OpenAPI's `{param}` syntax), handler.
pub fn routes<P: Ports>() -> Vec<(Method, &'static str, MethodRouter<State<P>>)> {
    vec![
        (Method::POST, "/v1/admin/tenants", post(admin::create_tenant::<P>)),
        (Method::GET, "/v1/admin/tenants", get(admin::list_tenants::<P>)),
        (
            Method::GET,
            "/v1/admin/tenants/{tenant_id}",
            get(admin::get_tenant::<P>),
        ),
        (
            Method::PATCH,
            "/v1/admin/tenants/{tenant_id}",
            patch(tenant_status::update_tenant::<P>),
        ),
        (
            Method::DELETE,
            "/v1/admin/tenants/{tenant_id}",
            delete(admin::delete_tenant::<P>),
        ),
        (
            Method::POST,
            "/v1/admin/tenants/{tenant_id}/api-keys",
            post(admin::create_api_key::<P>),
        ),
        (
            Method::GET,
            "/v1/admin/tenants/{tenant_id}/api-keys",
            get(admin::list_api_keys::<P>),
        ),
        (
            Method::DELETE,
            "/v1/admin/tenants/{tenant_id}/api-keys/{key_id}",
            delete(admin::revoke_api_key::<P>),
        ),
        (Method::POST, "/v1/endpoints", post(endpoints::create::<P>)),
        (Method::GET, "/v1/endpoints", get(endpoints::list::<P>)),
        (Method::GET, "/v1/endpoints/{endpoint_id}", get(endpoints::get_one::<P>)),
        (
            Method::PATCH,
            "/v1/endpoints/{endpoint_id}",
            patch(endpoints::update::<P>),
        ),
        (
            Method::DELETE,
            "/v1/endpoints/{endpoint_id}",
            delete(endpoints::remove::<P>),
        ),
        (
            Method::POST,
            "/v1/endpoints/{endpoint_id}/disable",
            post(endpoints::disable::<P>),
        ),
        (
            Method::POST,
            "/v1/endpoints/{endpoint_id}/enable",
            post(endpoints::enable::<P>),
        ),
        (
            Method::GET,
            "/v1/endpoints/{endpoint_id}/secret",
            get(endpoints::secret::<P>),
        ),
        (
            Method::POST,
            "/v1/endpoints/{endpoint_id}/rotate-secret",
            post(endpoints::rotate_secret::<P>),
        ),
        (
            Method::POST,
            "/v1/endpoints/{endpoint_id}/test",
            post(endpoints::send_test::<P>),
        ),
        (
            Method::GET,
            "/v1/endpoints/{endpoint_id}/deliveries",
            get(deliveries::by_endpoint::<P>),
        ),
        (
            Method::GET,
            "/v1/endpoints/{endpoint_id}/health",
            get(deliveries::endpoint_health::<P>),
        ),
        (
            Method::POST,
            "/v1/endpoints/{endpoint_id}/recover",
            post(deliveries::recover::<P>),
        ),
        (Method::GET, "/v1/deliveries", get(deliveries::by_status::<P>)),
        (
            Method::GET,
            "/v1/deliveries/{delivery_id}",
            get(deliveries::get_one::<P>),
        ),
        (
            Method::POST,
            "/v1/deliveries/{delivery_id}/resend",
            post(deliveries::resend::<P>),
        ),
        (Method::GET, "/v1/events", get(events::list::<P>)),
        (Method::GET, "/v1/events/{event_id}", get(deliveries::event::<P>)),
        (
            Method::GET,
            "/v1/events/{event_id}/deliveries",
            get(deliveries::by_event::<P>),
        ),
        (Method::GET, "/v1/audit", get(deliveries::audit_trail::<P>)),
    ]
}

/// The router over `state`: exactly [`routes`], plus JSON answers for an
/// unknown path (404) or method (405).
pub fn router<P: Ports>(state: State<P>) -> Router {
    serve_routes(routes(), state)
}

/// A router of exactly `routes` over `state`, answering an unknown path
/// (404) or method (405) in the API's error shape, with one log line a
/// request: this function's and the admin function's.
pub fn serve_routes<S: Clone + Send + Sync + 'static>(
    routes: Vec<(Method, &'static str, MethodRouter<S>)>,
    state: S,
) -> Router {
    let mut r = Router::new();
    for (_, path, handler) in routes {
        r = r.route(path, handler);
    }
    r.fallback(|| async { error::ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not take that method",
            )
        })
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// One log line per request: method, path (ids, never a query string, a
/// body or a key) and status.
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let response = next.run(req).await;
    tracing::info!(method = %method, path = %path, status = response.status().as_u16(), "request");
    response
}

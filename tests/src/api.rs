//! The management API of the stack, called in-process.

use crate::Stack;

/// The admin key of every test stack's management API (a test value, no
/// credential anywhere).
pub const ADMIN_KEY: &str = "sy_admin_test_key_not_a_credential";

/// The management API over a stack, called in-process through its routers:
/// the queue administration paths go to `switchyard-admin`'s, the others to
/// `switchyard-api`'s, as the HTTP API routes them.
pub struct Api {
    router: axum::Router,
    admin: axum::Router,
}

/// One API answer: status and JSON body (`Value::Null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Api {
    /// A tenant made through the API with the admin key; returns its API key.
    pub async fn tenant(&self, id: &str) -> String {
        let a = self
            .call(
                "POST",
                "/v1/admin/tenants",
                Some(ADMIN_KEY),
                Some(serde_json::json!({"id": id, "name": id})),
            )
            .await;
        assert_eq!(a.status, 201, "{a:?}");
        let k = self
            .call(
                "POST",
                &format!("/v1/admin/tenants/{id}/api-keys"),
                Some(ADMIN_KEY),
                Some(serde_json::json!({"label": "tests"})),
            )
            .await;
        assert_eq!(k.status, 201, "{k:?}");
        k.body["api_key"].as_str().unwrap().to_string()
    }

    /// The router the HTTP API sends `path` to.
    fn route(&self, path: &str) -> axum::Router {
        if switchyard_admin::serves(path) {
            self.admin.clone()
        } else {
            self.router.clone()
        }
    }

    /// Sends `req` to the router that serves its path: the status and the
    /// body's bytes (at most 1 MiB).
    async fn send(&self, req: axum::http::Request<axum::body::Body>) -> (u16, axum::body::Bytes) {
        use tower::ServiceExt;
        let resp = self
            .route(req.uri().path())
            .oneshot(req)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (status, bytes)
    }

    /// Calls `method path` with `key` as the bearer token and `body` as JSON.
    pub async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<serde_json::Value>) -> Answer {
        self.raw(
            method,
            path,
            key,
            body.map(|b| b.to_string().into_bytes()),
            "application/json",
        )
        .await
    }

    /// Runs an API Gateway (HTTP API, payload 2.0) request event through the
    /// router, converted as `lambda_http` converts it in Lambda.
    pub async fn lambda_event(&self, event_json: &str) -> Answer {
        let req = lambda_http::request::from_str(event_json).unwrap_or_else(|e| panic!("not an HTTP API event: {e}"));
        let (parts, body) = req.into_parts();
        let (status, bytes) = self
            .send(axum::http::Request::from_parts(parts, axum::body::Body::new(body)))
            .await;
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        }
    }

    /// Calls with raw body bytes and content type.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Answer {
        let mut req = axum::http::Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        if body.is_some() {
            req = req.header("content-type", content_type);
        }
        let req = req
            .body(axum::body::Body::from(body.unwrap_or_default()))
            .unwrap_or_else(|e| panic!("{e}"));
        let (status, bytes) = self.send(req).await;
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        Answer { status, body }
    }
}

impl Stack {
    /// The queue administrator's settings for this stack: the test admin
    /// key, every DLQ of the stack.
    pub fn admin_settings(&self) -> switchyard_admin::Settings {
        let r = &self.res;
        let mut dlqs = vec![
            ("deliveries", &r.deliveries_dlq_url, &r.deliveries_queue_url),
            ("fanout", &r.fanout_dlq_url, &r.fanout_queue_url),
            ("ingest", &r.ingest_dlq_url, &r.ingest_queue_url),
        ]
        .into_iter()
        .map(|(name, dlq, src)| switchyard_aws::redrive::DlqPair {
            name: name.into(),
            dlq_url: dlq.clone(),
            source_url: src.clone(),
            replay: Default::default(),
        })
        .collect::<Vec<_>>();
        dlqs.push(switchyard_aws::redrive::DlqPair {
            name: "aws-events".into(),
            dlq_url: r.aws_events_dlq_url.clone(),
            source_url: r.ingest_queue_url.clone(),
            replay: switchyard_aws::redrive::Replay::EventbridgeToIngest,
        });
        for q in &r.internal_queues {
            dlqs.push(switchyard_aws::redrive::DlqPair {
                name: switchyard_local::template::kebab_case(q.logical_id.trim_end_matches("Queue")),
                dlq_url: q.dlq_url.clone(),
                source_url: q.url.clone(),
                replay: Default::default(),
            });
        }
        switchyard_admin::Settings {
            dlqs,
            admin_key_sha256: Some(switchyard_api::extract::admin_key_digest(ADMIN_KEY)),
            admin_key_secret_id: None,
        }
    }

    /// The API's settings for this stack: the test admin key, loopback
    /// endpoints allowed.
    pub fn api_settings(&self) -> switchyard_api::Settings {
        let r = &self.res;
        switchyard_api::Settings {
            registry_table: r.registry_table.clone(),
            deliveries_table: r.deliveries_table.clone(),
            deliveries_queue_url: r.deliveries_queue_url.clone(),
            admin_key_sha256: Some(switchyard_api::extract::admin_key_digest(ADMIN_KEY)),
            admin_key_secret_id: None,
            ssrf: switchyard_local::local_ssrf_policy(),
            rotation_overlap: time::Duration::hours(24),
            retention_days: 30,
            audit_retention_days: 365,
            limits: switchyard_core::quota::Limits::default(),
            secrets_key_id: Some(r.secrets_key_id.clone()),
        }
    }

    pub fn api(&self) -> Api {
        self.api_with(&self.api_settings())
    }

    /// The management API over this stack with other settings (say, lower
    /// limits).
    pub fn api_with(&self, settings: &switchyard_api::Settings) -> Api {
        self.api_on(&self.sdk, settings)
    }

    /// The management API with its AWS clients on `sdk` (say, through the
    /// counting proxy).
    pub fn api_on(&self, sdk: &switchyard_aws::SdkConfig, settings: &switchyard_api::Settings) -> Api {
        let state = switchyard_api::AppState::new(sdk, settings);
        let admin = switchyard_admin::AdminState::new(&self.sdk, &self.admin_settings());
        Api {
            router: switchyard_api::router(std::sync::Arc::new(state)),
            admin: switchyard_admin::router(std::sync::Arc::new(admin)),
        }
    }
}

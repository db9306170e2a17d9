//! The integration tests' harness: one moto server per test process, and a
//! fresh, uniquely named set of queues and tables per test, with the three
//! functions' real handlers built over real SDK clients.
//!
//! A missing emulator is a failure, never a skip: if moto cannot start, the
//! test panics with moto's own log.

use aws_lambda_events::event::apigw::ApiGatewayV2httpResponse;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use switchyard_aws::dynamo::{DynamoDeliveryLog, DynamoEventStore, DynamoRegistry};
use switchyard_aws::{SdkConfig, aws_sdk_dynamodb, aws_sdk_sqs};
use switchyard_core::{ApiKey, Endpoint, EndpointUrl, EventTypeFilter, TenantId};
use switchyard_local::esm::{BatchReport, QueueRef, drain};
use switchyard_local::moto::Moto;
use switchyard_local::resources::{QueueOptions, Resources, unique_prefix};
use switchyard_local::venv::{self, Venv};

pub use switchyard_local::receiver::{Received, Receiver, Reply};

pub fn root() -> PathBuf {
    switchyard_local::workspace_root()
}

/// The project's virtualenv, created on first use.
pub fn venv() -> &'static Venv {
    static VENV: OnceLock<Venv> = OnceLock::new();
    VENV.get_or_init(|| venv::ensure(&root()).unwrap_or_else(|e| panic!("the Python virtualenv is not usable: {e}")))
}

/// The endpoint of this process's moto server.
pub fn moto_endpoint() -> &'static str {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    &MOTO
        .get_or_init(|| Moto::start(&root(), venv()).unwrap_or_else(|e| panic!("moto is required for this test: {e}")))
        .endpoint
}

/// One test's private stack.
pub struct Stack {
    pub sdk: SdkConfig,
    pub res: Resources,
    pub sqs: aws_sdk_sqs::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub registry: DynamoRegistry,
}

impl Stack {
    /// New resources; failed messages come back after one second.
    pub async fn new(label: &str) -> Self {
        Self::with_options(
            label,
            QueueOptions {
                visibility_timeout_secs: 1,
                ..QueueOptions::default()
            },
        )
        .await
    }

    pub async fn with_options(label: &str, opts: QueueOptions) -> Self {
        let sdk = switchyard_local::sdk_config(moto_endpoint()).await;
        let res = Resources::create(&sdk, &unique_prefix(label), opts)
            .await
            .unwrap_or_else(|e| panic!("creating resources in moto: {e}"));
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        Self {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            registry: DynamoRegistry::new(ddb.clone(), &res.registry_table),
            ddb,
            sdk,
            res,
        }
    }

    pub fn ingest(&self) -> switchyard_ingest::AwsIngest {
        switchyard_ingest::AwsIngest::new(&self.sdk, &self.ingest_settings())
    }

    pub fn ingest_settings(&self) -> switchyard_ingest::Settings {
        switchyard_ingest::Settings {
            registry_table: self.res.registry_table.clone(),
            deliveries_table: self.res.deliveries_table.clone(),
            fanout_queue_url: self.res.fanout_queue_url.clone(),
            max_body_bytes: switchyard_core::IngestLimits::DEFAULT_MAX_BODY_BYTES,
            retention_days: 30,
        }
    }

    pub fn fanout(&self) -> switchyard_fanout::AwsFanout {
        switchyard_fanout::AwsFanout::new(
            &self.sdk,
            &switchyard_fanout::Settings {
                registry_table: self.res.registry_table.clone(),
                deliveries_queue_url: self.res.deliveries_queue_url.clone(),
            },
        )
    }

    pub fn delivery(&self, timeout: Duration) -> switchyard_delivery::AwsDelivery {
        switchyard_delivery::AwsDelivery::new(
            &self.sdk,
            &switchyard_delivery::Settings {
                registry_table: self.res.registry_table.clone(),
                deliveries_table: self.res.deliveries_table.clone(),
                request_timeout: timeout,
                retention_days: 30,
            },
        )
        .unwrap_or_else(|e| panic!("building the HTTP client: {e}"))
    }

    pub fn event_store(&self) -> DynamoEventStore {
        DynamoEventStore::new(self.ddb.clone(), &self.res.deliveries_table)
    }

    pub fn delivery_log(&self) -> DynamoDeliveryLog {
        DynamoDeliveryLog::new(self.ddb.clone(), &self.res.deliveries_table, time::Duration::days(30))
    }

    /// A tenant and an API key for it, stored in the registry.
    pub async fn tenant(&self, id: &str) -> (TenantId, ApiKey) {
        let tenant = TenantId::parse(id).unwrap_or_else(|e| panic!("{e}"));
        let key = ApiKey::generate();
        self.registry
            .put_tenant(&tenant, id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.registry
            .put_api_key(&key.hash(), &tenant)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (tenant, key)
    }

    /// An endpoint for `tenant` at `url` receiving `filters`, stored.
    pub async fn endpoint(&self, tenant: &TenantId, url: &str, filters: &[&str]) -> Endpoint {
        let filters = filters
            .iter()
            .map(|f| EventTypeFilter::parse(*f).unwrap_or_else(|e| panic!("{f}: {e}")))
            .collect();
        let ep = Endpoint::new(
            tenant.clone(),
            EndpointUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}")),
            filters,
            switchyard_core::time_util::now_utc(),
        );
        self.registry.put_endpoint(&ep).await.unwrap_or_else(|e| panic!("{e}"));
        ep
    }

    pub async fn queue(&self, url: &str) -> QueueRef {
        QueueRef::resolve(&self.sqs, url)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs the fan-out function over everything on the fan-out queue.
    pub async fn drain_fanout(&self) -> BatchReport {
        let fanout = self.fanout();
        let q = self.queue(&self.res.fanout_queue_url).await;
        drain(&self.sqs, &q, 10, |e| fanout.handle(e))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs the delivery function over everything visible on the deliveries queue.
    pub async fn drain_deliveries(&self, timeout: Duration) -> BatchReport {
        let delivery = self.delivery(timeout);
        let q = self.queue(&self.res.deliveries_queue_url).await;
        drain(&self.sqs, &q, 10, |e| delivery.handle(e))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Messages on a queue (visible, in flight and delayed).
    pub async fn depth(&self, url: &str) -> u64 {
        switchyard_local::resources::queue_depth(&self.sqs, url)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every item of a table.
    pub async fn scan(
        &self,
        table: &str,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let mut items = Vec::new();
        let mut pages = self.ddb.scan().table_name(table).into_paginator().send();
        while let Some(page) = pages.next().await {
            items.extend(page.unwrap_or_else(|e| panic!("scan: {e}")).items.unwrap_or_default());
        }
        items
    }
}

/// A handler response's JSON body.
pub fn json_body(resp: &ApiGatewayV2httpResponse) -> serde_json::Value {
    match &resp.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => {
            serde_json::from_str(t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
        }
        other => panic!("expected a JSON text body, got {other:?}"),
    }
}

/// Checks a received webhook with Switchyard's verifier and with the public
/// `standardwebhooks` and `svix` libraries; panics with the reason if any
/// of them rejects it.
pub fn assert_verifies(req: &Received, secret: &switchyard_core::WebhookSecret) {
    let (id, ts, sig) = (
        req.header("webhook-id").unwrap_or_default(),
        req.header("webhook-timestamp").unwrap_or_default(),
        req.header("webhook-signature").unwrap_or_default(),
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    switchyard_core::signing::verify([secret], id, ts, sig, &req.body, now, 300)
        .unwrap_or_else(|e| panic!("our verifier rejected {}: {e}", req.path));
    let answer = venv::webhooks_interop(
        &root(),
        venv(),
        "verify",
        &serde_json::json!({
            "secret": secret.expose(),
            "headers": { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig },
            "body": req.body_text(),
        }),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        answer,
        serde_json::json!({ "standardwebhooks": "ok", "svix": "ok" }),
        "public libraries on {}",
        req.path
    );
}

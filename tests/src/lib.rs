//! The integration tests' harness: one moto server per test process, and a
//! fresh, uniquely named set of queues and tables per test, with the
//! functions' real handlers (ingest, fan-out, delivery, the management API
//! and queue administration) built over real SDK clients.
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
    /// How this stack's queues were made.
    pub opts: QueueOptions,
    /// A moto server of this stack's own, if it has one (stopped on drop).
    _moto: Option<Moto>,
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
        Self::on(moto_endpoint(), None, label, opts).await
    }

    /// A stack on a moto server of its own: for load tests, whose traffic
    /// would otherwise slow the shared server and the timing of other tests.
    pub async fn with_own_moto(label: &str, opts: QueueOptions) -> Self {
        let moto = Moto::spawn(&root(), venv()).unwrap_or_else(|e| panic!("moto is required for this test: {e}"));
        let endpoint = moto.endpoint.clone();
        Self::on(&endpoint, Some(moto), label, opts).await
    }

    async fn on(endpoint: &str, moto: Option<Moto>, label: &str, opts: QueueOptions) -> Self {
        let sdk = switchyard_local::sdk_config(endpoint).await;
        let res = Resources::create(&sdk, &unique_prefix(label), opts)
            .await
            .unwrap_or_else(|e| panic!("creating resources in moto: {e}"));
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        Self {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            registry: DynamoRegistry::new(ddb.clone(), &res.registry_table),
            opts,
            ddb,
            sdk,
            res,
            _moto: moto,
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
            audit_retention_days: 365,
            event_retention_days: 30,
            idempotency_window: Duration::from_secs(24 * 3600),
            // No bus unless a test opts in (`ingest_with`): the internal track
            // is off when EVENT_BUS_NAME is unset.
            event_bus_name: None,
            tenant_rules: switchyard_core::doors::TenantRules::default(),
            producers: Default::default(),
            // No ingest rate limit unless a test sets one (`ingest_with`):
            // load tests must not be throttled by it.
            ingest_per_second: 0,
        }
    }

    pub fn fanout(&self) -> switchyard_fanout::AwsFanout {
        switchyard_fanout::AwsFanout::new(
            &self.sdk,
            &switchyard_fanout::Settings {
                registry_table: self.res.registry_table.clone(),
                deliveries_queue_url: self.res.deliveries_queue_url.clone(),
                deliveries_table: self.res.deliveries_table.clone(),
                audit_retention_days: 365,
            },
        )
    }

    /// Delivery's settings for this stack: loopback receivers allowed,
    /// the production retry and circuit rules (an attempt stalls after half
    /// the timeout), a probe window of the timeout and a second.
    pub fn delivery_settings(&self, timeout: Duration) -> switchyard_delivery::Settings {
        switchyard_delivery::Settings {
            registry_table: self.res.registry_table.clone(),
            deliveries_table: self.res.deliveries_table.clone(),
            deliveries_queue_url: self.res.deliveries_queue_url.clone(),
            deliveries_dlq_url: self.res.deliveries_dlq_url.clone(),
            fanout_queue_url: self.res.fanout_queue_url.clone(),
            queue_limits: self.opts.deliveries_limits(),
            request_timeout: timeout,
            retention_days: 30,
            config: switchyard_core::delivery::DeliveryConfig {
                probe_window: timeout + Duration::from_secs(1),
                ..switchyard_delivery::deployed_config(timeout, switchyard_local::local_ssrf_policy())
            },
        }
    }

    /// The monitor's reconciler settings for this stack, with `after` as
    /// its margin.
    pub fn reconcile_settings(&self, after: Duration) -> switchyard_monitor::ReconcileSettings {
        switchyard_monitor::ReconcileSettings {
            deliveries_table: self.res.deliveries_table.clone(),
            deliveries_queue_url: self.res.deliveries_queue_url.clone(),
            fanout_queue_url: self.res.fanout_queue_url.clone(),
            retention_days: 30,
            after,
        }
    }

    pub fn delivery(&self, timeout: Duration) -> switchyard_delivery::AwsDelivery {
        self.delivery_with(&self.delivery_settings(timeout))
    }

    pub fn delivery_with(&self, settings: &switchyard_delivery::Settings) -> switchyard_delivery::AwsDelivery {
        switchyard_delivery::AwsDelivery::new(&self.sdk, settings)
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
        // Registered as the management API will: through the SSRF check
        // (local mode's policy: loopback and plain http allowed).
        self.registry
            .register_endpoint(&ep, &switchyard_local::local_ssrf_policy())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ep
    }

    /// An endpoint for `tenant` at `url` receiving `order.*`, retried by
    /// `policy` (a retry policy's JSON), stored.
    pub async fn order_endpoint(&self, tenant: &TenantId, url: &str, policy: serde_json::Value) -> Endpoint {
        let mut ep = self.endpoint(tenant, url, &["order.*"]).await;
        ep.retry_policy = serde_json::from_value(policy).unwrap_or_else(|e| panic!("a retry policy: {e}"));
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
        self.drain_deliveries_with(&self.delivery(timeout)).await
    }

    /// Runs this delivery function over everything visible on the deliveries queue.
    pub async fn drain_deliveries_with(&self, delivery: &switchyard_delivery::AwsDelivery) -> BatchReport {
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

    /// A rule named `rule` on `bus` whose target is a new queue; returns the
    /// queue's URL. What the rule matches can then be read from the queue.
    pub async fn rule_to_queue(&self, bus: &str, rule: &str, pattern: &str) -> String {
        use switchyard_aws::aws_sdk_eventbridge::{Client, types::Target};
        let eb = Client::new(&self.sdk);
        let name = format!("{}-{rule}", self.res.prefix);
        let url = switchyard_local::resources::create_queue(&self.sqs, &name, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let arn = switchyard_local::resources::queue_arn(&self.sqs, &url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        eb.put_rule()
            .name(rule)
            .event_bus_name(bus)
            .event_pattern(pattern)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let target = Target::builder()
            .id("q")
            .arn(arn)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        eb.put_targets()
            .rule(rule)
            .event_bus_name(bus)
            .targets(target)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        url
    }

    /// Receives (and deletes) every message on a queue, waiting up to a
    /// second for stragglers.
    pub async fn take_messages(&self, url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap_or_else(|e| panic!("receive: {e}"));
            let msgs = out.messages.unwrap_or_default();
            if msgs.is_empty() {
                return bodies;
            }
            for m in msgs {
                bodies.push(m.body.unwrap_or_default());
                if let Some(handle) = m.receipt_handle {
                    self.sqs
                        .delete_message()
                        .queue_url(url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("delete: {e}"));
                }
            }
        }
    }

    /// Every delivery record and every attempt in the deliveries table, by
    /// delivery id, oldest attempt first, read with one scan. The first
    /// attempt is the one its delivery record carries (`first_attempt`).
    pub async fn delivery_records(
        &self,
    ) -> (
        std::collections::HashMap<switchyard_core::DeliveryId, switchyard_core::model::DeliveryRecord>,
        std::collections::HashMap<switchyard_core::DeliveryId, Vec<switchyard_core::model::AttemptRecord>>,
    ) {
        let (mut records, mut attempts) = (std::collections::HashMap::new(), std::collections::HashMap::new());
        for item in self.scan(&self.res.deliveries_table).await {
            let kind = item
                .get("kind")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            match kind.as_str() {
                "delivery" => {
                    let r: switchyard_core::model::DeliveryRecord =
                        serde_dynamo::from_item(item).unwrap_or_else(|e| panic!("a delivery item: {e}"));
                    records.insert(r.delivery_id.clone(), r);
                }
                "attempt" => {
                    let a: switchyard_core::model::AttemptRecord =
                        serde_dynamo::from_item(item).unwrap_or_else(|e| panic!("an attempt item: {e}"));
                    attempts.entry(a.delivery_id.clone()).or_insert_with(Vec::new).push(a);
                }
                _ => {}
            }
        }
        for r in records.values() {
            let log = r.attempt_log(attempts.remove(&r.delivery_id).unwrap_or_default());
            if !log.is_empty() {
                attempts.insert(r.delivery_id.clone(), log);
            }
        }
        (records, attempts)
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

/// The `webhook-id` a receiver sees for `event` of `tenant`.
pub fn webhook_id(tenant: &str, event: &str) -> String {
    switchyard_core::ids::webhook_id(
        &switchyard_core::TenantId::parse(tenant).expect("a tenant id"),
        &switchyard_core::EventId::parse(event).expect("an event id"),
    )
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

/// The ingest doors: ingest with other settings, the SQS ingest queue as
/// Lambda's event source mapping would run it (message attributes included),
/// and AWS service events as an EventBridge rule on the default bus delivers
/// them.
impl Stack {
    pub fn ingest_with(&self, settings: &switchyard_ingest::Settings) -> switchyard_ingest::AwsIngest {
        switchyard_ingest::AwsIngest::new(&self.sdk, settings)
    }

    /// Sends one message to the SQS ingest queue with the given String
    /// message attributes; returns its message id.
    pub async fn send_ingest_message(&self, body: &str, attributes: &[(&str, &str)]) -> String {
        let mut req = self
            .sqs
            .send_message()
            .queue_url(&self.res.ingest_queue_url)
            .message_body(body);
        for (name, value) in attributes {
            req = req.message_attributes(
                *name,
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(*value)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        let out = req.send().await.unwrap_or_else(|e| panic!("SendMessage: {e}"));
        out.message_id.unwrap_or_else(|| panic!("SendMessage returned no id"))
    }

    /// Receives up to ten messages of the ingest queue (waiting up to
    /// `wait_secs` for the first), runs them through `ingest.dispatch` as the
    /// SQS event Lambda builds, deletes the ones not reported as failures,
    /// and returns the message ids received and the ids reported.
    pub async fn poll_ingest_queue(
        &self,
        ingest: &switchyard_ingest::AwsIngest,
        wait_secs: i32,
    ) -> (Vec<String>, Vec<String>) {
        let queue = self.queue(&self.res.ingest_queue_url).await;
        let out = self
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_secs)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ReceiveMessage: {e}"));
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return (vec![], vec![]);
        }
        // Message attributes included, as Lambda passes them.
        let event = switchyard_local::esm::to_sqs_event(&messages, &queue);
        let answer = ingest
            .dispatch(serde_json::to_value(&event).unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap_or_else(|e| panic!("the SQS door failed the whole batch: {e}"));
        let response: aws_lambda_events::event::sqs::SqsBatchResponse =
            serde_json::from_value(answer).unwrap_or_else(|e| panic!("not a batch response: {e}"));
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        let received: Vec<String> = messages.iter().filter_map(|m| m.message_id.clone()).collect();
        for m in &messages {
            if m.message_id.as_ref().is_some_and(|id| !failed.contains(id)) {
                self.sqs
                    .delete_message()
                    .queue_url(&queue.url)
                    .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("DeleteMessage: {e}"));
            }
        }
        (received, failed)
    }

    /// Puts an event on moto's default bus and returns it as a rule on that
    /// bus delivers it to its target (here an SQS queue): the JSON Lambda
    /// would get from the rule. `resources` must be unique to the test (the
    /// default bus is shared): the rule matches on them.
    pub async fn aws_service_event(
        &self,
        source: &str,
        detail_type: &str,
        resources: &[&str],
        detail: &serde_json::Value,
    ) -> serde_json::Value {
        use switchyard_aws::aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
        let eb = switchyard_aws::aws_sdk_eventbridge::Client::new(&self.sdk);
        let target_url = switchyard_local::resources::create_queue(
            &self.sqs,
            &format!("{}-default-bus-target", self.res.prefix),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let target_arn = switchyard_local::resources::queue_arn(&self.sqs, &target_url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rule = format!("{}-aws-events", self.res.prefix);
        let pattern = serde_json::json!({ "source": [source], "detail-type": [detail_type], "resources": resources });
        eb.put_rule()
            .name(&rule)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutRule: {e}"));
        eb.put_targets()
            .rule(&rule)
            .targets(
                Target::builder()
                    .id("ingest")
                    .arn(&target_arn)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutTargets: {e}"));
        let out = eb
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .source(source)
                    .detail_type(detail_type)
                    .set_resources(Some(resources.iter().map(|r| r.to_string()).collect()))
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutEvents: {e}"));
        assert_eq!(out.failed_entry_count(), 0, "PutEvents: {out:?}");
        let got = self
            .sqs
            .receive_message()
            .queue_url(&target_url)
            .wait_time_seconds(5)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ReceiveMessage: {e}"));
        let body = got
            .messages
            .unwrap_or_default()
            .into_iter()
            .next()
            .and_then(|m| m.body)
            .unwrap_or_else(|| panic!("the default bus rule delivered nothing"));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }
}

/// The internal track: the consumer function over this stack's state table,
/// and its queues as the template's rules fill them.
impl Stack {
    /// Consumer settings for tests: retries come back after `retry_base`
    /// (doubling), claims lapse after five seconds.
    pub fn consumer_settings(&self, retry_base: Duration) -> switchyard_consumer::Settings {
        switchyard_consumer::Settings {
            state_table: self.res.state_table.clone(),
            config: switchyard_flow::consumer::ConsumerConfig {
                retry_base,
                retry_max: Duration::from_secs(60),
                lease: Duration::from_secs(5),
                ..Default::default()
            },
        }
    }

    pub fn consumer(&self, retry_base: Duration) -> switchyard_consumer::AwsConsumer {
        switchyard_consumer::AwsConsumer::new(&self.sdk, &self.consumer_settings(retry_base))
            .unwrap_or_else(|e| panic!("registering the handlers: {e}"))
    }

    pub fn state_store(&self) -> switchyard_aws::dynamo::DynamoStateStore {
        switchyard_aws::dynamo::DynamoStateStore::new(self.ddb.clone(), &self.res.state_table)
    }

    /// The URL and DLQ URL of an internal queue by its template logical id.
    pub fn internal_queue(&self, logical_id: &str) -> (String, String) {
        let q = self
            .res
            .internal_queue(logical_id)
            .unwrap_or_else(|| panic!("template.yaml routes nothing to {logical_id}"));
        (q.url.clone(), q.dlq_url.clone())
    }

    /// Runs the consumer over everything visible on an internal queue, as
    /// Lambda's event source mapping would; returns the totals.
    pub async fn drain_internal(
        &self,
        consumer: &switchyard_consumer::AwsConsumer,
        logical_id: &str,
    ) -> (BatchReport, switchyard_flow::consumer::BatchCounts) {
        let (url, _) = self.internal_queue(logical_id);
        let q = self.queue(&url).await;
        let counts = std::sync::Mutex::new(switchyard_flow::consumer::BatchCounts::default());
        let report = drain(&self.sqs, &q, 10, |e| async {
            let (resp, c) = consumer.handle_counted(e).await;
            let mut total = counts.lock().unwrap_or_else(|p| p.into_inner());
            total.handled += c.handled;
            total.duplicates += c.duplicates;
            total.unknown += c.unknown;
            total.retried += c.retried;
            total.poison += c.poison;
            resp
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        (report, counts.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    /// One poll of an internal queue (up to `batch_size` messages, waiting up
    /// to `wait_secs`) through the consumer; returns the poll's report and
    /// what became of the records.
    pub async fn poll_internal_once(
        &self,
        consumer: &switchyard_consumer::AwsConsumer,
        url: &str,
        batch_size: i32,
        wait_secs: i32,
    ) -> (BatchReport, switchyard_flow::consumer::BatchCounts) {
        let q = self.queue(url).await;
        let counts = std::sync::Mutex::new(switchyard_flow::consumer::BatchCounts::default());
        let report = switchyard_local::esm::poll_once(&self.sqs, &q, batch_size, wait_secs, |e| async {
            let (resp, c) = consumer.handle_counted(e).await;
            *counts.lock().unwrap_or_else(|p| p.into_inner()) = c;
            resp
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        (report, counts.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    /// Sends raw message bodies to a queue.
    pub async fn send_bodies(&self, url: &str, bodies: &[String]) {
        for b in bodies {
            self.sqs
                .send_message()
                .queue_url(url)
                .message_body(b)
                .send()
                .await
                .unwrap_or_else(|e| panic!("SendMessage: {e}"));
        }
    }
}

/// An event on an internal queue, as the bus's rule delivers it: the
/// EventBridge envelope around a Switchyard envelope of tenant `tenant`.
pub fn bus_message(tenant: &str, id: &str, event_type: &str, data: serde_json::Value) -> String {
    let envelope: switchyard_core::Envelope = serde_json::from_value(serde_json::json!({
        "id": id, "type": event_type, "version": "1.0", "timestamp": "2026-11-29T10:00:00Z",
        "source": "api", "tenant_id": tenant, "data": data,
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let entry = switchyard_core::routing::bus_entry(&envelope).unwrap_or_else(|e| panic!("{e}"));
    serde_json::json!({
        "version": "0", "id": format!("eb-{id}"), "detail-type": entry.detail_type, "source": entry.source,
        "time": "2026-11-29T10:00:00Z", "region": switchyard_local::LOCAL_REGION, "resources": [],
        "detail": serde_json::from_str::<serde_json::Value>(&entry.detail).unwrap_or_else(|e| panic!("{e}")),
    })
    .to_string()
}

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
        use tower::ServiceExt;
        let req = lambda_http::request::from_str(event_json).unwrap_or_else(|e| panic!("not an HTTP API event: {e}"));
        let resp = self
            .route(req.uri().path())
            .oneshot(req)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
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
        use tower::ServiceExt;
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
        let resp = self
            .route(req.uri().path())
            .oneshot(req)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
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
            ssrf: switchyard_local::local_ssrf_policy(),
            rotation_overlap: time::Duration::hours(24),
            retention_days: 30,
            audit_retention_days: 365,
            limits: switchyard_core::quota::Limits::default(),
        }
    }

    pub fn api(&self) -> Api {
        self.api_with(&self.api_settings())
    }

    /// The management API over this stack with other settings (say, lower
    /// limits).
    pub fn api_with(&self, settings: &switchyard_api::Settings) -> Api {
        let state = switchyard_api::AppState::new(&self.sdk, settings);
        let admin = switchyard_admin::AdminState::new(&self.sdk, &self.admin_settings());
        Api {
            router: switchyard_api::router(std::sync::Arc::new(state)),
            admin: switchyard_admin::router(std::sync::Arc::new(admin)),
        }
    }
}

/// A client of a local runner's HTTP API (real HTTP on loopback).
pub struct Http {
    pub client: reqwest::Client,
    pub base: String,
}

impl Http {
    /// The first HTTP API the runner serves.
    pub fn of(runner: &switchyard_local::runner::Runner) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: runner.api_url(None).expect("the template serves an HTTP API"),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .header("authorization", format!("Bearer {key}"));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// A tenant and its API key, made over HTTP with the admin key.
    pub async fn tenant(&self, id: &str) -> String {
        let (s, b) = self
            .call(
                "POST",
                "/v1/admin/tenants",
                ADMIN_KEY,
                Some(serde_json::json!({"id": id, "name": id})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = self
            .call(
                "POST",
                &format!("/v1/admin/tenants/{id}/api-keys"),
                ADMIN_KEY,
                Some(serde_json::json!({})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["api_key"].as_str().unwrap().to_string()
    }

    /// An endpoint for `url`; returns (id, secret).
    pub async fn endpoint(&self, key: &str, url: &str, filters: &[&str]) -> (String, switchyard_core::WebhookSecret) {
        let (s, b) = self
            .call(
                "POST",
                "/v1/endpoints",
                key,
                Some(serde_json::json!({"url": url, "filter_types": filters})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let secret = switchyard_core::WebhookSecret::parse(b["secret"].as_str().unwrap()).unwrap();
        (b["id"].as_str().unwrap().to_string(), secret)
    }
}

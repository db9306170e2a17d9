//! `cargo xtask demo`: Switchyard's main job on this machine.
//!
//! Starts moto, creates the queues and tables, registers a tenant and an
//! endpoint on a local receiver, POSTs one event through the ingest handler,
//! runs the fan-out and delivery handlers over their queues as Lambda's event
//! source mapping would, and shows the signed webhook the receiver got,
//! verified with Switchyard's verifier and the public Standard Webhooks
//! libraries. The same event also takes the internal track: the app bus's
//! rule (from template.yaml) puts it on the user domain's queue, and the
//! consumer runs the `user_onboarding` workflow over it. Everything runs in
//! this process except moto, which stops with it.

use std::path::Path;
use std::time::{Duration, Instant};
use switchyard_core::{ApiKey, Endpoint, EndpointUrl, EventTypeFilter, TenantId};
use switchyard_local::esm::{QueueRef, drain};
use switchyard_local::http_api::post_event;
use switchyard_local::moto::Moto;
use switchyard_local::receiver::Receiver;
use switchyard_local::resources::{QueueOptions, Resources, unique_prefix};
use switchyard_local::venv::{self, Venv};

const EVENT: &str = r#"{"type":"user.created","data":{"user_id":"usr_123","email":"ada@example.com","plan":"pro"},"metadata":{"trace_id":"demo-trace-1"}}"#;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub fn run(root: &Path) -> Result<(), String> {
    let venv = crate::setup(root)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(err)?;
    runtime.block_on(demo(root, &venv))
}

async fn demo(root: &Path, venv: &Venv) -> Result<(), String> {
    let started = Instant::now();
    // template.yaml (read by cfn-lint, about a second) is decoded while moto
    // starts; Resources::create waits for it.
    std::thread::spawn(|| switchyard_local::template::workspace_template().is_ok());
    let moto = Moto::start(root, venv).map_err(err)?;
    step(&format!("moto's server is AWS at {}", moto.endpoint));
    let sdk = switchyard_local::sdk_config(&moto.endpoint).await;
    let res = Resources::create(&sdk, &unique_prefix("demo"), QueueOptions::default())
        .await
        .map_err(err)?;
    step(&format!(
        "created tables {} and {}, queues {} and {} with their DLQs",
        res.registry_table,
        res.deliveries_table,
        short(&res.fanout_queue_url),
        short(&res.deliveries_queue_url)
    ));

    let rx = Receiver::ok().await.map_err(err)?;
    let ddb = switchyard_aws::aws_sdk_dynamodb::Client::new(&sdk);
    let registry = switchyard_aws::dynamo::DynamoRegistry::new(ddb, &res.registry_table);
    let tenant = TenantId::parse("demo").map_err(err)?;
    let key = ApiKey::generate();
    registry.put_tenant(&tenant, "Demo Inc.").await.map_err(err)?;
    registry.put_api_key(&key.hash(), &tenant).await.map_err(err)?;
    let url = rx.url("/webhooks/switchyard");
    let endpoint = Endpoint::new(
        tenant.clone(),
        EndpointUrl::parse(&url).map_err(err)?,
        vec![EventTypeFilter::parse("user.*").map_err(err)?],
        switchyard_core::time_util::now_utc(),
    );
    registry
        .register_endpoint(&endpoint, &switchyard_local::local_ssrf_policy())
        .await
        .map_err(err)?;
    step(&format!(
        "tenant `demo` with an API key; endpoint {} → {url} for `user.*`",
        endpoint.id
    ));

    let ingest = switchyard_ingest::AwsIngest::new(
        &sdk,
        &switchyard_ingest::Settings {
            registry_table: res.registry_table.clone(),
            deliveries_table: res.deliveries_table.clone(),
            fanout_queue_url: res.fanout_queue_url.clone(),
            max_body_bytes: switchyard_core::IngestLimits::DEFAULT_MAX_BODY_BYTES,
            retention_days: 30,
            idempotency_window: Duration::from_secs(24 * 3600),
            event_bus_name: Some(res.event_bus_name.clone()),
            tenant_rules: switchyard_core::doors::TenantRules::default(),
        },
    );
    let fanout = switchyard_fanout::AwsFanout::new(
        &sdk,
        &switchyard_fanout::Settings {
            registry_table: res.registry_table.clone(),
            deliveries_queue_url: res.deliveries_queue_url.clone(),
        },
    );
    let delivery = switchyard_delivery::AwsDelivery::new(
        &sdk,
        &switchyard_delivery::Settings {
            registry_table: res.registry_table.clone(),
            deliveries_table: res.deliveries_table.clone(),
            deliveries_queue_url: res.deliveries_queue_url.clone(),
            deliveries_dlq_url: res.deliveries_dlq_url.clone(),
            fanout_queue_url: res.fanout_queue_url.clone(),
            request_timeout: Duration::from_secs(15),
            retention_days: 30,
            config: switchyard_core::delivery::DeliveryConfig {
                ssrf: switchyard_local::local_ssrf_policy(),
                ..Default::default()
            },
        },
    )
    .map_err(err)?;

    let resp = ingest.handle(post_event(key.expose(), EVENT)).await;
    let body = match &resp.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => t.clone(),
        _ => String::new(),
    };
    step(&format!(
        "POST /v1/events {EVENT}\n      → ingest answered {} {body}",
        resp.status_code
    ));
    if resp.status_code != 202 {
        return Err("ingest did not accept the event".into());
    }

    let sqs = switchyard_aws::aws_sdk_sqs::Client::new(&sdk);
    let fq = QueueRef::resolve(&sqs, &res.fanout_queue_url).await.map_err(err)?;
    let r = drain(&sqs, &fq, 10, |e| fanout.handle(e)).await.map_err(err)?;
    step(&format!("fan-out handled {} task(s), {} failed", r.received, r.failed));
    let dq = QueueRef::resolve(&sqs, &res.deliveries_queue_url).await.map_err(err)?;
    let r = drain(&sqs, &dq, 10, |e| delivery.handle(e)).await.map_err(err)?;
    step(&format!("delivery handled {} task(s), {} failed", r.received, r.failed));

    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    let Some(webhook) = got.first() else {
        return Err("the receiver got no webhook".into());
    };
    step(&format!("the receiver at {url} got:"));
    println!("      {} {}", webhook.method, webhook.path);
    for (k, v) in &webhook.headers {
        println!("      {k}: {v}");
    }
    println!("\n      {}\n", webhook.body_text());

    let (id, ts, sig) = (
        webhook.header("webhook-id").unwrap_or_default(),
        webhook.header("webhook-timestamp").unwrap_or_default(),
        webhook.header("webhook-signature").unwrap_or_default(),
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    switchyard_core::signing::verify([&endpoint.secret], id, ts, sig, &webhook.body, now, 300)
        .map_err(|e| format!("Switchyard's verifier rejected the webhook: {e}"))?;
    let public = venv::webhooks_interop(
        root,
        venv,
        "verify",
        &serde_json::json!({
            "secret": endpoint.secret.expose(),
            "headers": { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig },
            "body": webhook.body_text(),
        }),
    )
    .map_err(err)?;
    if public != serde_json::json!({ "standardwebhooks": "ok", "svix": "ok" }) {
        return Err(format!("the public libraries rejected the webhook: {public}"));
    }
    step("signature verified with Switchyard's verifier and with the PyPI `standardwebhooks` and `svix` libraries");

    let log = switchyard_aws::dynamo::DynamoDeliveryLog::new(
        switchyard_aws::aws_sdk_dynamodb::Client::new(&sdk),
        &res.deliveries_table,
        time::Duration::days(30),
    );
    let event_id = switchyard_core::EventId::parse(id).map_err(err)?;
    let delivery_id = switchyard_core::DeliveryId::derive(&tenant, &event_id, &endpoint.id);
    if let Some((d, attempts)) = log.get_delivery(&tenant, &delivery_id).await.map_err(err)? {
        step(&format!(
            "delivery {} is {:?} after {} attempt(s):",
            d.delivery_id, d.state, d.attempts
        ));
        for a in attempts {
            println!(
                "      attempt {} at {}: status {:?} in {} ms ({:?})",
                a.attempt,
                switchyard_core::time_util::rfc3339(a.at),
                a.status_code,
                a.duration_ms,
                a.trigger
            );
        }
    }
    // The internal track: bus rule -> internal-user queue -> consumer.
    let consumer = switchyard_consumer::AwsConsumer::new(
        &sdk,
        &switchyard_consumer::Settings {
            state_table: res.state_table.clone(),
            config: Default::default(),
        },
    )
    .map_err(err)?;
    let user_queue = res
        .internal_queue("InternalUserQueue")
        .ok_or("template.yaml routes nothing to InternalUserQueue")?;
    let uq = QueueRef::resolve(&sqs, &user_queue.url).await.map_err(err)?;
    let r = drain(&sqs, &uq, 10, |e| consumer.handle(e)).await.map_err(err)?;
    step(&format!(
        "internal track: the bus rule put {} event(s) on {}; the consumer handled them, {} failed",
        r.received,
        short(&user_queue.url),
        r.failed
    ));
    let store = switchyard_aws::dynamo::DynamoStateStore::new(
        switchyard_aws::aws_sdk_dynamodb::Client::new(&sdk),
        &res.state_table,
    );
    let run = store
        .run(&switchyard_core::workflow::RunKey {
            tenant: tenant.clone(),
            event: event_id.clone(),
            workflow: "user_onboarding".into(),
        })
        .await
        .map_err(err)?
        .ok_or("the user_onboarding workflow did not run")?;
    println!(
        "      workflow user_onboarding: {} after {} step(s) ({})",
        run.status,
        run.next_step,
        run.outputs.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    step(&format!(
        "done in {:.1} s; moto stops now",
        started.elapsed().as_secs_f64()
    ));
    drop(moto);
    Ok(())
}

fn step(text: &str) {
    println!("==> {text}");
}

fn short(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

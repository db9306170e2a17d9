//! `events/` holds one sample payload per trigger of every function in
//! `template.yaml` (the `sam local invoke -e` payloads), named
//! `<function>-<trigger>.json`: the function's logical id without
//! `Function`, and the trigger's event name, both in kebab case
//! (`ConsumerFunction` / `InternalUserEvents` → `consumer-internal-user-events.json`).
//! One test holds the files against the template's triggers both ways; the
//! other runs every file through its function's real handler, against moto
//! and a real receiver, in the order events flow, and checks each answer.

use aws_lambda_events::event::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::time::Duration;
use switchyard_core::doors::TenantRules;
use switchyard_core::{ApiKey, EndpointId, TenantId};
use switchyard_ingest::Door;
use switchyard_tests::{Receiver, Stack, assert_verifies, json_body, root};

/// The dummy key the ingest sample carries (not a credential anywhere).
const SAMPLE_KEY: &str = "sy_local_dummy_key_for_samples_only";
/// The dummy admin key of the API and admin samples.
const SAMPLE_ADMIN_KEY: &str = "sy_admin_dummy_key_for_samples_only";

/// `InternalUserEvents` → `internal-user-events`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The sample files of `events/`, by name.
fn sample_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(root().join("events"))
        .expect("events/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_trigger_in_the_template_has_its_sample_and_no_sample_is_stray() {
    let template = switchyard_local::template::load(&root(), switchyard_tests::venv()).unwrap();
    let mut expected = std::collections::BTreeMap::new();
    for (id, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let function = kebab(id.strip_suffix("Function").unwrap_or(id));
        for (event, trigger) in resource["Properties"]["Events"].as_object().into_iter().flatten() {
            expected.insert(format!("{function}-{}.json", kebab(event)), trigger.clone());
        }
    }
    assert!(expected.len() >= 20, "the template's triggers: {:?}", expected.keys());
    let present: Vec<String> = sample_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let missing: Vec<_> = expected.keys().filter(|n| !present.contains(n)).collect();
    assert!(missing.is_empty(), "triggers without a sample in events/: {missing:?}");
    let stray: Vec<_> = present.iter().filter(|n| !expected.contains_key(*n)).collect();
    assert!(
        stray.is_empty(),
        "samples named for no trigger of the template: {stray:?}"
    );

    // Each sample has the shape of its trigger.
    for (name, trigger) in &expected {
        let sample: serde_json::Value = read(&root().join("events").join(name));
        let props = &trigger["Properties"];
        match trigger["Type"].as_str().unwrap() {
            "HttpApi" => {
                let route = format!(
                    "{} {}",
                    props["Method"].as_str().unwrap(),
                    props["Path"].as_str().unwrap()
                );
                assert_eq!(sample["routeKey"], route.as_str(), "{name}: the route of its trigger");
                assert_eq!(sample["version"], "2.0", "{name}: payload format 2.0");
                let path = sample["rawPath"].as_str().unwrap();
                let prefix = props["Path"].as_str().unwrap().trim_end_matches("/{proxy+}");
                assert!(path.starts_with(prefix), "{name}: {path} is not under {prefix}");
            }
            "SQS" => {
                let records = sample["Records"].as_array().unwrap();
                assert!(!records.is_empty(), "{name}");
                assert!(records.iter().all(|r| r["eventSource"] == "aws:sqs"), "{name}");
                // The queue's logical id names the queue: `InternalUserQueue` → `internal-user`.
                let queue = props["Queue"].to_string();
                let logical = queue
                    .split('"')
                    .find(|s| s.ends_with(".Arn") || s.ends_with("Queue"))
                    .unwrap_or_default();
                let short = kebab(logical.trim_end_matches(".Arn").trim_end_matches("Queue"));
                assert!(
                    records
                        .iter()
                        .all(|r| r["eventSourceARN"].as_str().unwrap_or_default().contains(&short)),
                    "{name}: not from the {short} queue"
                );
            }
            "Schedule" => assert_eq!(sample["detail-type"], "Scheduled Event", "{name}"),
            "EventBridgeRule" => assert!(
                sample["source"].as_str().is_some_and(|s| s.starts_with("aws.")),
                "{name}: an AWS service event"
            ),
            other => panic!("{name}: a trigger of type {other} has no shape check here"),
        }
    }
}

/// The order events flow in: what one function produces, the next reads.
fn flow_rank(function: &str) -> usize {
    ["ingest", "fanout", "delivery", "consumer", "api", "admin", "monitor"]
        .iter()
        .position(|f| *f == function)
        .unwrap_or(usize::MAX)
}

fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not a valid event: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_event_runs_through_its_handler() {
    let mut files = sample_files();
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        (flow_rank(name.split('-').next().unwrap_or_default()), name)
    });

    let stack = Stack::new("samples").await;
    let rx = Receiver::ok().await.unwrap();
    let demo = TenantId::parse("demo").unwrap();
    stack.registry.put_tenant(&demo, "demo").await.unwrap();
    stack
        .registry
        .put_api_key(&ApiKey::parse(SAMPLE_KEY).unwrap().hash(), &demo)
        .await
        .unwrap();
    let mut sample_ep = stack.endpoint(&demo, &rx.url("/sample"), &["user.*"]).await;
    sample_ep.id = EndpointId::parse("ep_sample_01").unwrap();
    stack.registry.put_endpoint(&sample_ep).await.unwrap();

    // The EventBridge sample's bucket belongs to the demo tenant.
    let mut settings = stack.ingest_settings();
    settings.tenant_rules = TenantRules::parse(
        Some(r#"[{"source":"aws.s3","resource_prefix":"arn:aws:s3:::switchyard-demo-*","tenant":"demo"}]"#),
        None,
    )
    .unwrap();
    let ingest = stack.ingest_with(&settings);
    let mut ingest_doors = Vec::new();
    // What the consumer samples' workflows read: the order's stock and rate.
    let consumer = stack.consumer(Duration::from_secs(1));
    let state = stack.state_store();
    let record = |kind: &str, id: &str| switchyard_flow::workflow::RecordRef::new(kind, id);
    let fields = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
    state
        .put_record(
            &demo,
            &record("STOCK", "sku-red-mug"),
            &fields(serde_json::json!({"available": 5})),
        )
        .await
        .unwrap();
    state
        .put_record(
            &demo,
            &record("SHIPPING_RATE", "NZ"),
            &fields(serde_json::json!({"base_cents": 700})),
        )
        .await
        .unwrap();
    let mut consumer_samples = 0;
    let mut api_settings = stack.api_settings();
    api_settings.admin_key_sha256 = Some(switchyard_api::extract::admin_key_digest(SAMPLE_ADMIN_KEY));
    let api = stack.api_with(&api_settings);

    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let function = name.split('-').next().unwrap_or_default();
        match function {
            "ingest" => {
                let event: serde_json::Value = read(path);
                let before = stack.depth(&stack.res.fanout_queue_url).await;
                let door = Door::of(&event).unwrap_or_else(|| panic!("{name}: the ingest function recognises no door"));
                let answer = ingest
                    .dispatch(event.clone())
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let queued = match door {
                    Door::HttpApi => {
                        let resp: ApiGatewayV2httpResponse = serde_json::from_value(answer).unwrap();
                        assert_eq!(resp.status_code, 202, "{name}: {:?}", resp.body);
                        assert!(json_body(&resp)["id"].as_str().unwrap().starts_with("evt_"));
                        1
                    }
                    Door::Sqs => {
                        let resp: SqsBatchResponse = serde_json::from_value(answer).unwrap();
                        assert!(resp.batch_item_failures.is_empty(), "{name}: {resp:?}");
                        read::<SqsEvent>(path).records.len() as u64
                    }
                    Door::EventBridge => {
                        assert_eq!(answer["duplicate"], false, "{name}: {answer}");
                        assert_eq!(answer["id"], event["id"], "{name}");
                        1
                    }
                };
                assert_eq!(
                    stack.depth(&stack.res.fanout_queue_url).await,
                    before + queued,
                    "{name}"
                );
                ingest_doors.push(door);
            }
            "fanout" => {
                let event: SqsEvent = read(path);
                let before = stack.depth(&stack.res.deliveries_queue_url).await;
                let resp = stack.fanout().handle(event).await;
                assert!(resp.batch_item_failures.is_empty(), "{name}: {resp:?}");
                // Two user.* endpoints of the demo tenant exist (both ids) : one task each.
                assert_eq!(stack.depth(&stack.res.deliveries_queue_url).await, before + 2, "{name}");
            }
            "delivery" => {
                let event: SqsEvent = read(path);
                let before = rx.received().len();
                let resp = stack.delivery(Duration::from_secs(5)).handle(event).await;
                assert!(resp.batch_item_failures.is_empty(), "{name}: {resp:?}");
                let got = rx.wait_for(before + 1, Duration::from_secs(5)).await;
                assert_eq!(got.len(), before + 1, "{name}: one webhook");
                let req = got.last().unwrap();
                assert_eq!(
                    req.header("webhook-id"),
                    Some(switchyard_tests::webhook_id("demo", "evt_01JDSAMPLE0000000000000001").as_str())
                );
                assert_verifies(req, &sample_ep.secret);
            }
            "api" => {
                let text = std::fs::read_to_string(path).unwrap();
                let a = api.lambda_event(&text).await;
                assert_eq!(a.status, 200, "{name}: {a:?}");
                let ids = |field: &str| -> Vec<String> {
                    a.body["items"]
                        .as_array()
                        .unwrap_or_else(|| panic!("{name}: no items: {}", a.body))
                        .iter()
                        .filter_map(|e| e[field].as_str().map(str::to_string))
                        .collect()
                };
                match name.as_str() {
                    "api-endpoints.json" => assert!(ids("id").contains(&"ep_sample_01".into()), "{name}"),
                    "api-endpoints-any.json" => assert_eq!(a.body["id"], "ep_sample_01", "{name}"),
                    "api-admin-tenants.json" => assert!(ids("id").contains(&"demo".into()), "{name}"),
                    "api-admin-tenants-any.json" => assert_eq!(a.body["id"], "demo", "{name}"),
                    // The delivery sample's delivery, made a moment ago.
                    "api-deliveries-any.json" => {
                        assert_eq!(a.body["state"], "succeeded", "{name}: {}", a.body);
                        assert_eq!(a.body["attempt_log"].as_array().map(Vec::len), Some(1), "{name}");
                    }
                    "api-deliveries.json" | "api-audit.json" => {
                        ids("id");
                    }
                    // The SQS door's sample event, taken a moment ago.
                    "api-events.json" => {
                        ids("id");
                    }
                    // The tenant's events whose type starts with `order.`.
                    "api-events-list.json" => {
                        let types = ids("type");
                        assert!(types.iter().all(|t| t.starts_with("order.")), "{name}: {types:?}");
                    }
                    other => panic!("{other}: no check for this API sample"),
                }
            }
            "admin" => {
                // The queue administrator, with the sample's admin key.
                use tower::ServiceExt;
                let mut settings = stack.admin_settings();
                settings.admin_key_sha256 = Some(switchyard_api::extract::admin_key_digest(
                    "sy_admin_dummy_key_for_samples_only",
                ));
                let state = switchyard_admin::AdminState::new(&stack.sdk, &settings);
                let router = switchyard_admin::router(std::sync::Arc::new(state));
                let text = std::fs::read_to_string(path).unwrap();
                let req = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                let resp = router.oneshot(req).await.unwrap();
                assert_eq!(resp.status(), 200, "{name}");
                let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
                let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                // Queue health lists `queues`; the DLQ routes list `items`.
                let names: Vec<&str> = body
                    .get("items")
                    .or_else(|| body.get("queues"))
                    .and_then(|v| v.as_array())
                    .unwrap_or_else(|| panic!("{name}: {body}"))
                    .iter()
                    .filter_map(|d| d["name"].as_str())
                    .collect();
                match name.as_str() {
                    "admin-dlqs.json" => assert!(
                        names.contains(&"ingest") && names.contains(&"aws-events"),
                        "{name}: {body}"
                    ),
                    // Every queue and DLQ once: the fan-out queue holds what
                    // the ingest samples queued.
                    "admin-queues.json" => {
                        assert!(
                            names.contains(&"ingest") && names.contains(&"aws-events-dlq"),
                            "{name}: {body}"
                        );
                        let fanout = body["queues"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|q| q["name"] == "fanout");
                        assert!(
                            fanout.is_some_and(|q| q["visible"].as_u64() >= Some(1)),
                            "{name}: {body}"
                        );
                    }
                    // A peek at the ingest DLQ: empty here, and nothing moved.
                    "admin-dlqs-any.json" => assert!(names.is_empty(), "{name}: {body}"),
                    other => panic!("{other}: no check for this admin sample"),
                }
            }
            "consumer" => {
                let event: SqsEvent = read(path);
                let (resp, counts) = consumer.handle_counted(event).await;
                assert!(resp.batch_item_failures.is_empty(), "{name}: {resp:?} {counts:?}");
                // The priority and default queues carry domains no example
                // handles: acknowledged and counted, never retried.
                let handled = !name.contains("priority") && !name.contains("default");
                let expected = if handled { (1, 0) } else { (0, 1) };
                assert_eq!((counts.handled, counts.unknown), expected, "{name}");
                consumer_samples += 1;
            }
            "monitor" => {
                // A scheduled event: the depths of this stack's queues.
                let watched: Vec<switchyard_monitor::WatchedQueue> = [
                    ("FanoutQueue", &stack.res.fanout_queue_url),
                    ("DeliveriesQueue", &stack.res.deliveries_queue_url),
                    ("DeliveriesDLQ", &stack.res.deliveries_dlq_url),
                ]
                .into_iter()
                .map(|(name, url)| switchyard_monitor::WatchedQueue {
                    name: name.into(),
                    url: url.clone(),
                })
                .collect();
                let _: serde_json::Value = read(path);
                let monitor = switchyard_monitor::AwsMonitor::new(
                    &stack.sdk,
                    &switchyard_monitor::Settings {
                        registry_table: stack.res.registry_table.clone(),
                        queues: watched,
                        reconcile: stack.reconcile_settings(std::time::Duration::from_secs(3600)),
                    },
                );
                let report = monitor.handle().await.unwrap_or_else(|e| panic!("{name}: {e}"));
                let names: Vec<&str> = report["queues"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|q| q["name"].as_str())
                    .collect();
                assert_eq!(
                    names,
                    ["FanoutQueue", "DeliveriesQueue", "DeliveriesDLQ"],
                    "{name}: {report}"
                );
                assert_eq!(report["open_circuits"], 0, "{name}");
            }
            other => panic!("events/{name}: no function named {other:?}; name samples <function>-<trigger>.json"),
        }
    }
    // The samples' effects: the user workflow's role, the order's charge.
    use switchyard_flow::workflow::StateReader;
    let role = state.get(&demo, &record("ROLE", "usr_123")).await.unwrap();
    assert_eq!(role.unwrap()["role"], "member");
    let charge = state.get(&demo, &record("CHARGE", "ord_1001")).await.unwrap();
    assert_eq!(charge.unwrap()["amount_cents"], 2 * 1250 + 700);
    assert_eq!(consumer_samples, 6, "a sample per internal queue");
    let ledger = state.get(&demo, &record("LEDGER", "NZD")).await.unwrap();
    assert_eq!(ledger.unwrap()["total_cents"], 3200);
    let restock = state.get(&demo, &record("RESTOCK", "sku-red-mug")).await.unwrap();
    assert_eq!(restock.unwrap()["available"], 2);
    ingest_doors.sort_by_key(|d| format!("{d:?}"));
    assert_eq!(
        ingest_doors,
        [Door::EventBridge, Door::HttpApi, Door::Sqs],
        "a sample for each of ingest's doors"
    );
}

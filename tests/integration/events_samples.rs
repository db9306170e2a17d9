//! Every file in `events/` runs through its function's real handler (the
//! `sam local invoke -e` payloads), against moto and a real receiver.
//! A file whose name starts with no known function fails the test, so a new
//! sample cannot go unchecked; an `ingest-*` file goes through the ingest
//! function's dispatch, which must recognise its door by its shape.

use aws_lambda_events::event::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::time::Duration;
use switchyard_core::doors::TenantRules;
use switchyard_core::{ApiKey, EndpointId, TenantId};
use switchyard_ingest::Door;
use switchyard_tests::{Receiver, Stack, assert_verifies, json_body, root};

/// The dummy key the ingest sample carries (not a credential anywhere).
const SAMPLE_KEY: &str = "sy_local_dummy_key_for_samples_only";

fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not a valid event: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_event_runs_through_its_handler() {
    let mut files: Vec<_> = std::fs::read_dir(root().join("events"))
        .expect("events/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "a sample per function and door: {files:?}");

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
    let api = stack.api();

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
                let ids: Vec<&str> = a.body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|e| e["id"].as_str())
                    .collect();
                assert!(
                    ids.contains(&"ep_sample_01"),
                    "{name}: the demo tenant's endpoints: {ids:?}"
                );
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
                let names: Vec<&str> = body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|d| d["name"].as_str())
                    .collect();
                assert!(
                    names.contains(&"ingest") && names.contains(&"aws-events"),
                    "{name}: {body}"
                );
            }
            "consumer" => {
                let event: SqsEvent = read(path);
                let (resp, counts) = consumer.handle_counted(event).await;
                assert!(resp.batch_item_failures.is_empty(), "{name}: {resp:?} {counts:?}");
                assert_eq!((counts.handled, counts.unknown), (1, 0), "{name}: a handler ran");
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
    assert_eq!(consumer_samples, 2, "a sample per consumer workflow");
    ingest_doors.sort_by_key(|d| format!("{d:?}"));
    assert_eq!(
        ingest_doors,
        [Door::EventBridge, Door::HttpApi, Door::Sqs],
        "a sample for each of ingest's doors"
    );
}

//! The TTL (`expires_at`) that DynamoDB expires delivery and attempt items
//! by, read from the items themselves in moto: each is kept for the
//! retention period after its last change, and a retrying delivery is
//! never expired before its next attempt plus the retention.

use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use switchyard_aws::aws_sdk_dynamodb::types::AttributeValue;
use switchyard_aws::dynamo::keys;
use switchyard_core::EventId;
use switchyard_core::time_util::parse_rfc3339;
use switchyard_local::http_api::post_event;
use switchyard_tests::{Receiver, Reply, Stack, json_body};

type Item = HashMap<String, AttributeValue>;

fn text<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name).and_then(|v| v.as_s().ok()).map_or("", String::as_str)
}

fn expires_at(item: &Item) -> i64 {
    item.get(keys::TTL)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {} on {item:?}", keys::TTL))
}

fn time_of(item: &Item, name: &str) -> time::OffsetDateTime {
    parse_rfc3339(text(item, name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// One event for an endpoint that always answers 500, with `policy`;
/// delivery's retention is one day.
async fn failing(stack: &Stack, policy: serde_json::Value) -> switchyard_delivery::AwsDelivery {
    let rx = Receiver::start(|_| Reply::status(500)).await.unwrap();
    let (tenant, key) = stack.tenant("acme").await;
    stack.order_endpoint(&tenant, &rx.url("/hook"), policy).await;
    let resp = stack
        .ingest()
        .handle(post_event(key.expose(), r#"{"type":"order.placed","data":{}}"#))
        .await;
    assert_eq!(resp.status_code, 202);
    EventId::parse(json_body(&resp)["id"].as_str().unwrap()).unwrap();
    stack.drain_fanout().await;
    std::mem::forget(rx);
    let mut settings = stack.delivery_settings(Duration::from_secs(5));
    settings.retention_days = 1;
    stack.delivery_with(&settings)
}

const DAY: i64 = 86_400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrying_delivery_expires_no_sooner_than_a_retention_after_its_next_attempt() {
    let stack = Stack::new("ttl-retrying").await;
    // The next attempt is due in about a day (24 h ± 20 %): as far as a
    // one-day retention reaches.
    let delivery = failing(
        &stack,
        json!({"kind": "fixed", "delay_secs": 86_400, "max_attempts": 3}),
    )
    .await;
    stack.drain_deliveries_with(&delivery).await;
    let items = stack.scan(&stack.res.deliveries_table).await;
    let d = items
        .iter()
        .find(|i| text(i, "sk").starts_with(keys::deliveries::DELIVERY_SK_PREFIX))
        .expect("a delivery item");
    assert_eq!(text(d, "state"), "retrying");
    let next = time_of(d, "next_attempt_at");
    assert!(next > time_of(d, "updated_at") + time::Duration::hours(19), "{next}");
    assert_eq!(expires_at(d), next.unix_timestamp() + DAY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_and_attempt_items_expire_a_retention_after_their_last_change() {
    let stack = Stack::new("ttl-done").await;
    let delivery = failing(&stack, json!({"kind": "fixed", "delay_secs": 1, "max_attempts": 3})).await;
    let until = std::time::Instant::now() + Duration::from_secs(30);
    let (d, attempts) = loop {
        stack.drain_deliveries_with(&delivery).await;
        let items = stack.scan(&stack.res.deliveries_table).await;
        let d = items
            .iter()
            .find(|i| text(i, "sk").starts_with(keys::deliveries::DELIVERY_SK_PREFIX))
            .cloned();
        if let Some(d) = d
            && text(&d, "state") == "failed"
        {
            let attempts: Vec<Item> = items
                .into_iter()
                .filter(|i| text(i, "sk").starts_with(keys::deliveries::ATTEMPT_SK_PREFIX))
                .collect();
            break (d, attempts);
        }
        assert!(std::time::Instant::now() < until, "the delivery never failed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(!d.contains_key("next_attempt_at"));
    assert_eq!(expires_at(&d), time_of(&d, "updated_at").unix_timestamp() + DAY);
    // The first attempt lives in the delivery item; the second and third
    // are items of their own, each kept a day from when it was made.
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    for a in &attempts {
        assert_eq!(expires_at(a), time_of(a, "at").unix_timestamp() + DAY, "{a:?}");
    }
}

//! The internal track as `template.yaml` declares it, provisioned in moto
//! straight from the template: events published on the app bus in the bus
//! contract (source `switchyard.<domain>`, detail-type = the event type,
//! detail = the envelope) land in exactly one internal queue, the right one;
//! events of other teams land in none; and an internal queue redrives to its
//! DLQ.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use switchyard_aws::aws_sdk_eventbridge::{Client, types::PutEventsRequestEntry};
use switchyard_tests::Stack;

/// The template's internal queues, by their logical ids.
const QUEUES: [&str; 6] = [
    "InternalUserQueue",
    "InternalPaymentQueue",
    "InternalOrderQueue",
    "InternalInventoryQueue",
    "InternalPriorityQueue",
    "InternalDefaultQueue",
];

/// A Switchyard envelope as ingest publishes it.
fn envelope(id: &str, event_type: &str, priority: u8) -> Value {
    json!({
        "id": id,
        "type": event_type,
        "version": "1.0",
        "timestamp": "2026-11-29T00:00:00Z",
        "source": "api",
        "tenant_id": "t1",
        "data": {},
        "routing": { "internal": true, "external": true, "audit": true, "priority": priority }
    })
}

/// A PutEvents entry in the bus contract: source `switchyard.<domain>`.
fn contract_entry(bus: &str, id: &str, event_type: &str, priority: u8) -> PutEventsRequestEntry {
    let domain = event_type.split('.').next().unwrap_or(event_type);
    PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(format!("switchyard.{domain}"))
        .detail_type(event_type)
        .detail(envelope(id, event_type, priority).to_string())
        .build()
}

/// Everything on each internal queue: queue logical id -> the `detail.id`s
/// (the envelope ids) of the EventBridge events it received.
async fn drain_internal_queues(stack: &Stack) -> BTreeMap<&'static str, Vec<String>> {
    let mut got = BTreeMap::new();
    for logical_id in QUEUES {
        let q = stack
            .res
            .internal_queue(logical_id)
            .unwrap_or_else(|| panic!("no {logical_id} in {:#?}", stack.res.internal_queues));
        let mut ids = Vec::new();
        for body in stack.take_messages(&q.url).await {
            let event: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
            let id = event["detail"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("no detail.id in the event on {logical_id}: {event}"));
            ids.push(id.to_string());
        }
        got.insert(logical_id, ids);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_lands_in_exactly_one_internal_queue_the_right_one() {
    let stack = Stack::new("introute").await;
    let logical_ids: Vec<&str> = stack
        .res
        .internal_queues
        .iter()
        .map(|q| q.logical_id.as_str())
        .collect();
    assert_eq!(logical_ids, QUEUES, "the template's internal queues");
    for q in &stack.res.internal_queues {
        assert_eq!(
            q.max_receive_count, 10,
            "{}: the template's maxReceiveCount",
            q.logical_id
        );
    }

    let bus = &stack.res.event_bus_name;
    let events = [
        ("evt_user", "user.created", 8, "InternalUserQueue"),
        ("evt_payment", "payment.completed", 10, "InternalPaymentQueue"),
        ("evt_order", "order.created", 5, "InternalOrderQueue"),
        ("evt_inventory", "inventory.low", 9, "InternalInventoryQueue"),
        ("evt_security", "security.breach_detected", 9, "InternalPriorityQueue"),
        ("evt_analytics", "analytics.track", 1, "InternalDefaultQueue"),
        ("evt_audit", "audit.log", 3, "InternalDefaultQueue"),
    ];
    let mut entries: Vec<PutEventsRequestEntry> = events
        .iter()
        .map(|(id, t, p, _)| contract_entry(bus, id, t, *p))
        .collect();
    // Another team's event on the same bus: not a Switchyard envelope.
    entries.push(
        PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source("other.team")
            .detail_type("thing.happened")
            .detail(json!({ "id": "evt_foreign", "routing": { "priority": 9 } }).to_string())
            .build(),
    );
    let out = Client::new(&stack.sdk)
        .put_events()
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutEvents: {e}"));
    assert_eq!(out.failed_entry_count(), 0, "PutEvents: {out:?}");

    let got = drain_internal_queues(&stack).await;
    let mut expected: BTreeMap<&str, Vec<String>> = QUEUES.iter().map(|q| (*q, Vec::new())).collect();
    for (id, _, _, queue) in events {
        expected.entry(queue).or_default().push(id.to_string());
    }
    let sorted = |m: BTreeMap<&'static str, Vec<String>>| -> BTreeMap<&'static str, Vec<String>> {
        m.into_iter()
            .map(|(k, mut v)| {
                v.sort();
                (k, v)
            })
            .collect()
    };
    assert_eq!(sorted(got), sorted(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_deliver_the_eventbridge_envelope_with_the_switchyard_envelope_as_detail() {
    let stack = Stack::new("introute-env").await;
    let out = Client::new(&stack.sdk)
        .put_events()
        .entries(contract_entry(
            &stack.res.event_bus_name,
            "evt_pay",
            "payment.failed",
            10,
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutEvents: {e}"));
    assert_eq!(out.failed_entry_count(), 0, "PutEvents: {out:?}");
    let q = stack
        .res
        .internal_queue("InternalPaymentQueue")
        .unwrap_or_else(|| panic!("no InternalPaymentQueue"));
    let bodies = stack.take_messages(&q.url).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let event: Value = serde_json::from_str(&bodies[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {}", bodies[0]));
    assert_eq!(event["source"], "switchyard.payment");
    assert_eq!(event["detail-type"], "payment.failed");
    assert_eq!(event["detail"], envelope("evt_pay", "payment.failed", 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_queue_redrives_to_its_dlq_after_max_receive_count() {
    let opts = switchyard_local::resources::QueueOptions {
        visibility_timeout_secs: 1,
        internal_max_receive_count: Some(2),
        ..Default::default()
    };
    let stack = Stack::with_options("introute-dlq", opts).await;
    let q = stack
        .res
        .internal_queue("InternalOrderQueue")
        .unwrap_or_else(|| panic!("no InternalOrderQueue"))
        .clone();
    assert_eq!(q.max_receive_count, 2);
    let out = Client::new(&stack.sdk)
        .put_events()
        .entries(contract_entry(
            &stack.res.event_bus_name,
            "evt_poison",
            "order.created",
            5,
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutEvents: {e}"));
    assert_eq!(out.failed_entry_count(), 0, "PutEvents: {out:?}");
    // Received and never deleted, as by a consumer that keeps failing.
    let mut receives = 0;
    for _ in 0..10 {
        let got = stack
            .sqs
            .receive_message()
            .queue_url(&q.url)
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap_or_else(|e| panic!("receive: {e}"));
        if got.messages.unwrap_or_default().is_empty() {
            if receives >= 2 {
                break;
            }
        } else {
            receives += 1;
        }
    }
    assert_eq!(receives, 2, "received as often as maxReceiveCount allows");
    let dead = stack.take_messages(&q.dlq_url).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let event: Value = serde_json::from_str(&dead[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {}", dead[0]));
    assert_eq!(event["detail"]["id"], "evt_poison");
}

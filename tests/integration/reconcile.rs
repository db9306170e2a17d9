//! The reconciler against moto: a retrying delivery whose task was deleted
//! by hand is found through the due index by the monitor's sweep and sent
//! again, or, when its event is gone too, failed as `task_lost` with the
//! tenant told.

use serde_json::json;
use std::time::Duration;
use switchyard_core::model::{DeliveryRecord, DeliveryState};
use switchyard_core::ports::DeliveryQueries;
use switchyard_core::reconcile::{OverdueDeliveries, TASK_LOST};
use switchyard_core::{DeliveryId, EventId, FanoutTask, TenantId};
use switchyard_local::http_api::post_event;
use switchyard_tests::{Receiver, Stack, json_body};

/// A tenant whose one endpoint fails its first call and then answers 200,
/// retried every 2 s; one event sent, fanned out and attempted once.
async fn failed_once(stack: &Stack) -> (TenantId, EventId, DeliveryId, Receiver) {
    let rx = Receiver::failing_first(1).await.unwrap();
    let (tenant, key) = stack.tenant("acme").await;
    let ep = stack
        .order_endpoint(
            &tenant,
            &rx.url("/hook"),
            json!({"kind": "fixed", "delay_secs": 2, "max_attempts": 5}),
        )
        .await;
    let resp = stack
        .ingest()
        .handle(post_event(key.expose(), r#"{"type":"order.placed","data":{"n":1}}"#))
        .await;
    assert_eq!(resp.status_code, 202, "{:?}", resp.body);
    let evt = EventId::parse(json_body(&resp)["id"].as_str().unwrap()).unwrap();
    assert_eq!(stack.drain_fanout().await.received, 1);
    stack.drain_deliveries(Duration::from_secs(5)).await;
    let id = DeliveryId::derive(&tenant, &evt, &ep.id);
    assert_eq!(record(stack, &tenant, &id).await.state, DeliveryState::Retrying);
    (tenant, evt, id, rx)
}

async fn record(stack: &Stack, tenant: &TenantId, id: &DeliveryId) -> DeliveryRecord {
    let (r, _) = stack
        .delivery_log()
        .get_delivery(tenant, id)
        .await
        .unwrap()
        .expect("a record");
    r
}

/// Deletes every message of the deliveries queue, as an operator might.
async fn purge_deliveries(stack: &Stack) {
    stack
        .sqs
        .purge_queue()
        .queue_url(&stack.res.deliveries_queue_url)
        .send()
        .await
        .unwrap();
    assert_eq!(stack.depth(&stack.res.deliveries_queue_url).await, 0);
}

fn monitor(stack: &Stack) -> switchyard_monitor::AwsMonitor {
    switchyard_monitor::AwsMonitor::new(
        &stack.sdk,
        &switchyard_monitor::Settings {
            registry_table: stack.res.registry_table.clone(),
            queues: Vec::new(),
            reconcile: stack.reconcile_settings(Duration::from_secs(1)),
        },
    )
}

/// Waits until the delivery's next attempt is overdue by the 1 s margin.
async fn until_overdue(stack: &Stack, tenant: &TenantId, id: &DeliveryId) {
    let next = record(stack, tenant, id).await.next_attempt_at.expect("due");
    let wait = next + time::Duration::milliseconds(1500) - switchyard_core::time_util::now_utc();
    tokio::time::sleep(wait.try_into().unwrap_or_default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrying_delivery_whose_task_was_deleted_is_sent_again_and_delivered() {
    let stack = Stack::new("reconcile").await;
    let (tenant, _evt, id, rx) = failed_once(&stack).await;
    purge_deliveries(&stack).await;
    until_overdue(&stack, &tenant, &id).await;

    let monitor = monitor(&stack);
    let report = monitor.handle().await.unwrap();
    assert_eq!(
        report["reconciled"],
        json!({"overdue": 1, "requeued": 1, "lost": 0}),
        "{report}"
    );
    // Claimed: the next run, at once, leaves it alone.
    let again = monitor.handle().await.unwrap();
    assert_eq!(again["reconciled"]["overdue"], 0, "{again}");

    let delivered = stack.drain_deliveries(Duration::from_secs(5)).await;
    assert_eq!(delivered.failed, 0);
    let r = record(&stack, &tenant, &id).await;
    assert_eq!(r.state, DeliveryState::Succeeded, "{r:?}");
    assert_eq!((r.attempts, r.task_generation), (2, 1));
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, got[1].body, "the rebuilt task sends the same bytes");
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    // Delivered: out of the due index.
    let far = switchyard_core::time_util::now_utc() + time::Duration::days(30);
    assert!(stack.delivery_log().overdue(far, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrying_delivery_whose_task_and_event_are_gone_fails_as_task_lost() {
    let stack = Stack::new("reconcile-lost").await;
    let (tenant, evt, id, rx) = failed_once(&stack).await;
    purge_deliveries(&stack).await;
    let key = switchyard_aws::dynamo::keys::deliveries::event(&tenant, &evt);
    stack
        .ddb
        .delete_item()
        .table_name(&stack.res.deliveries_table)
        .key("pk", switchyard_aws::aws_sdk_dynamodb::types::AttributeValue::S(key.pk))
        .key("sk", switchyard_aws::aws_sdk_dynamodb::types::AttributeValue::S(key.sk))
        .send()
        .await
        .unwrap();
    until_overdue(&stack, &tenant, &id).await;

    let report = monitor(&stack).handle().await.unwrap();
    assert_eq!(
        report["reconciled"],
        json!({"overdue": 1, "requeued": 0, "lost": 1}),
        "{report}"
    );
    let r = record(&stack, &tenant, &id).await;
    assert_eq!(r.state, DeliveryState::Failed);
    assert_eq!(r.reason.as_deref(), Some(TASK_LOST));
    assert_eq!(r.next_attempt_at, None);
    let notices: Vec<FanoutTask> = stack
        .take_messages(&stack.res.fanout_queue_url)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(notices.len(), 1);
    let n = &notices[0].envelope;
    assert_eq!(n.event_type.as_str(), "delivery.exhausted");
    assert_eq!(
        (n.data["reason"].as_str(), n.data["delivery_id"].as_str()),
        (Some(TASK_LOST), Some(id.as_str()))
    );
    assert_eq!(rx.received().len(), 1, "no call without a task");
}

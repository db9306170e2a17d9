//! Messages written by the previous version of Switchyard (the fixtures in
//! `shared/core/fixtures/wire/v0`, which carry no `kind` or `v`), still in
//! flight or waiting in a DLQ when the new version is deployed, and one
//! written by a newer version (a function not yet updated mid-deploy reads
//! it): the functions read them and deliver, against moto.

use serde_json::{Value, json};
use std::time::Duration;
use switchyard_aws::redrive::{self, DlqPair};
use switchyard_core::model::DeliveryState;
use switchyard_core::ports::DeliveryQueries;
use switchyard_core::{DeliveryId, EventId};
use switchyard_tests::{Receiver, Stack, assert_verifies};

const V0_FANOUT: &str = include_str!("../../shared/core/fixtures/wire/v0/fanout_task.json");
const V0_DEAD_LETTER: &str = include_str!("../../shared/core/fixtures/wire/v0/delivery_task_dead_letter.json");

/// A fixture with its ids pointed at this stack's tenant and endpoint,
/// every other field as the old version wrote it.
fn aimed(fixture: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(fixture).unwrap();
    assert!(v.get("kind").is_none() && v.get("v").is_none(), "a version 0 fixture");
    edit(&mut v);
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_0_messages_in_flight_and_in_the_dlq_are_delivered_after_a_deploy() {
    let stack = Stack::new("wire-v0").await;
    let rx = Receiver::ok().await.unwrap();
    let (tenant, _key) = stack.tenant("acme").await;
    let ep = stack.endpoint(&tenant, &rx.url("/hook"), &["order.*"]).await;

    // In flight on the fan-out queue: an accepted event, written by v0.
    let fanout = aimed(V0_FANOUT, |v| v["envelope"]["tenant_id"] = json!(tenant.as_str()));
    // And one from a newer version, with fields this one does not know.
    let newer_event = EventId::parse("evt_01JFIXTURE0000000000000002").unwrap();
    let newer = aimed(V0_FANOUT, |v| {
        v["kind"] = json!("fanout_task");
        v["v"] = json!(9);
        v["partition"] = json!(4);
        v["envelope"]["id"] = json!(newer_event.as_str());
        v["envelope"]["tenant_id"] = json!(tenant.as_str());
        v["envelope"]["metadata"]["span_id"] = json!("span-1");
        v["envelope"]["routing"]["ordered"] = json!(true);
    });
    stack.send_bodies(&stack.res.fanout_queue_url, &[fanout, newer]).await;
    // In the deliveries DLQ: a task v0 gave up on, for another event.
    let other = EventId::parse("evt_01JFIXTURE0000000000000001").unwrap();
    let dead_id = DeliveryId::derive(&tenant, &other, &ep.id);
    let dead = aimed(V0_DEAD_LETTER, |v| {
        v["tenant_id"] = json!(tenant.as_str());
        v["endpoint_id"] = json!(ep.id.as_str());
        v["event_id"] = json!(other.as_str());
        v["delivery_id"] = json!(dead_id.as_str());
    });
    stack
        .send_bodies(&stack.res.deliveries_dlq_url, std::slice::from_ref(&dead))
        .await;

    assert_eq!(stack.drain_fanout().await.failed, 0);
    let pair = DlqPair {
        name: "deliveries".into(),
        dlq_url: stack.res.deliveries_dlq_url.clone(),
        source_url: stack.res.deliveries_queue_url.clone(),
        replay: Default::default(),
    };
    assert_eq!(redrive::move_messages(&stack.sqs, &pair, None).await.unwrap().moved, 1);
    let report = stack.drain_deliveries(Duration::from_secs(5)).await;
    assert_eq!((report.received, report.failed), (3, 0), "{report:?}");

    let got = rx.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 3);
    let secret = &ep.secret;
    for r in &got {
        assert_verifies(r, secret);
        assert!(
            r.body_text().contains("ord_1"),
            "the old message's payload: {}",
            r.body_text()
        );
    }
    let fixture_event = EventId::parse("evt_01JFIXTURE0000000000000000").unwrap();
    let log = stack.delivery_log();
    for id in [
        DeliveryId::derive(&tenant, &fixture_event, &ep.id),
        DeliveryId::derive(&tenant, &newer_event, &ep.id),
        dead_id,
    ] {
        let (record, _) = log.get_delivery(&tenant, &id).await.unwrap().expect("a record");
        assert_eq!(record.state, DeliveryState::Succeeded, "{record:?}");
    }
    assert_eq!(stack.depth(&stack.res.deliveries_dlq_url).await, 0);
}

//! Deliveries at the edges of SQS's limits on a message, against moto:
//! its receive budget (`maxReceiveCount`) and its retention. The test
//! stacks shrink both so that the edge is reached in seconds.

use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use switchyard_core::endpoint::RateLimit;
use switchyard_core::model::DeliveryState;
use switchyard_core::ports::DeliveryQueries;
use switchyard_core::{DeliveryId, EventId, TenantId};
use switchyard_local::http_api::post_event;
use switchyard_local::resources::QueueOptions;
use switchyard_tests::{Receiver, Stack, json_body};

/// Ingests `n` `order.placed` events and fans them out; their delivery ids.
async fn ingest(stack: &Stack, key: &str, endpoint: &switchyard_core::Endpoint, n: usize) -> Vec<DeliveryId> {
    let ingest = stack.ingest();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let resp = ingest
            .handle(post_event(
                key,
                &json!({"type": "order.placed", "data": {"n": i}}).to_string(),
            ))
            .await;
        assert_eq!(resp.status_code, 202, "{:?}", resp.body);
        let evt = EventId::parse(json_body(&resp)["id"].as_str().unwrap()).unwrap();
        ids.push(DeliveryId::derive(&endpoint.tenant_id, &evt, &endpoint.id));
    }
    assert_eq!(stack.drain_fanout().await.received as usize, n);
    ids
}

/// Runs delivery over the queue until every one of `ids` has succeeded or
/// `limit` has passed; the states it last saw.
async fn deliver_until_done(
    stack: &Stack,
    delivery: &switchyard_delivery::AwsDelivery,
    tenant: &TenantId,
    ids: &[DeliveryId],
    limit: Duration,
) -> Vec<Option<DeliveryState>> {
    let log = stack.delivery_log();
    let until = Instant::now() + limit;
    loop {
        stack.drain_deliveries_with(delivery).await;
        let mut states = Vec::with_capacity(ids.len());
        for id in ids {
            states.push(log.get_delivery(tenant, id).await.unwrap().map(|(r, _)| r.state));
        }
        if states.iter().all(|s| *s == Some(DeliveryState::Succeeded)) || Instant::now() > until {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A backlog twenty times the endpoint's rate, on a queue that moves a
/// message to its DLQ at its third receive: waiting for a rate slot is not
/// a failure, so it must not use the budget. Every task is delivered, at
/// the rate, and nothing reaches the DLQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_backlog_drains_within_a_small_receive_budget() {
    const RATE: u32 = 2;
    const BACKLOG: usize = 20 * RATE as usize;
    let stack = Stack::with_options(
        "rate-budget",
        QueueOptions {
            visibility_timeout_secs: 1,
            deliveries_max_receive_count: 3,
            ..QueueOptions::default()
        },
    )
    .await;
    let rx = Receiver::ok().await.unwrap();
    let (tenant, key) = stack.tenant("acme").await;
    let mut ep = stack.endpoint(&tenant, &rx.url("/hook"), &["order.*"]).await;
    ep.rate_limit = Some(RateLimit::new(RATE).unwrap());
    stack.registry.put_endpoint(&ep).await.unwrap();
    let ids = ingest(&stack, key.expose(), &ep, BACKLOG).await;

    let delivery = stack.delivery(Duration::from_secs(5));
    let started = Instant::now();
    let states = deliver_until_done(&stack, &delivery, &tenant, &ids, Duration::from_secs(120)).await;
    let took = started.elapsed();

    let succeeded = states.iter().filter(|s| **s == Some(DeliveryState::Succeeded)).count();
    let dead = stack.depth(&stack.res.deliveries_dlq_url).await;
    let got = rx.received();
    let distinct: BTreeSet<String> = got
        .iter()
        .filter_map(|r| r.header("webhook-id").map(str::to_string))
        .collect();
    let span = match (got.first(), got.last()) {
        (Some(a), Some(b)) => b.at.duration_since(a.at),
        _ => Duration::ZERO,
    };
    println!(
        "backlog {BACKLOG} at {RATE}/s, maxReceiveCount 3: {succeeded} delivered in {:.1} s \
         ({} requests over {:.1} s: {:.2}/s), {dead} in the DLQ",
        took.as_secs_f64(),
        got.len(),
        span.as_secs_f64(),
        got.len() as f64 / span.as_secs_f64().max(0.001)
    );
    assert_eq!(dead, 0, "tasks that only waited for a rate slot reached the DLQ");
    assert_eq!(succeeded, BACKLOG, "{states:?}");
    assert_eq!(distinct.len(), BACKLOG);
    // At the rate: the slots are whole seconds, so n requests span at
    // least n / rate - 1 seconds.
    let floor = Duration::from_secs((BACKLOG as u64 / u64::from(RATE)).saturating_sub(1));
    assert!(
        span >= floor,
        "{} requests in {span:?}: faster than the rate",
        got.len()
    );
    assert_eq!(stack.depth(&stack.res.deliveries_queue_url).await, 0);
}

/// A retry schedule that outlives the queue's retention (60 s, the least
/// SQS allows; three failures 30 s apart take the fourth attempt past it):
/// delivery sends the task again as a new message before its message would
/// be dropped, and the fourth attempt lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_longer_than_the_queue_retention_is_delivered() {
    let stack = Stack::with_options(
        "retention",
        QueueOptions {
            visibility_timeout_secs: 1,
            deliveries_retention_secs: 60,
            ..QueueOptions::default()
        },
    )
    .await;
    let rx = Receiver::failing_first(3).await.unwrap();
    let (tenant, key) = stack.tenant("acme").await;
    let ep = stack
        .order_endpoint(
            &tenant,
            &rx.url("/hook"),
            json!({"kind": "fixed", "delay_secs": 30, "max_attempts": 5}),
        )
        .await;
    let ids = ingest(&stack, key.expose(), &ep, 1).await;

    let delivery = stack.delivery(Duration::from_secs(5));
    let started = Instant::now();
    let states = deliver_until_done(&stack, &delivery, &tenant, &ids, Duration::from_secs(150)).await;
    let (record, _) = stack
        .delivery_log()
        .get_delivery(&tenant, &ids[0])
        .await
        .unwrap()
        .expect("a delivery record");
    println!(
        "retention 60 s, attempts 30 s ± 20 % apart: {:?} after {} attempts in {:.0} s",
        states[0],
        record.attempts,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(states[0], Some(DeliveryState::Succeeded), "{record:?}");
    assert_eq!(record.attempts, 4);
    assert!(
        started.elapsed() > Duration::from_secs(60),
        "the schedule must outlive the retention for this test to mean anything"
    );
    assert_eq!(stack.depth(&stack.res.deliveries_dlq_url).await, 0);
}

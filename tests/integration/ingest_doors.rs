//! The three ingest doors (HTTP API, SQS ingest queue, EventBridge rule),
//! idempotent ingest, and the routing flags, through the real handler against
//! moto.
//!
//! Kept whole past 600 lines: one topic (ingest's handler through its doors),
//! the tests sharing the door-building helpers.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use switchyard_core::doors::TenantRules;
use switchyard_core::ports::{DeliveryQueries, EventQueries};
use switchyard_core::{Envelope, EventId, TenantId};
use switchyard_local::http_api::{post_event, request};
use switchyard_tests::{Receiver, Stack, assert_verifies, json_body};

const T: Duration = Duration::from_secs(5);

fn rules(json: &str, default: Option<&str>) -> TenantRules {
    TenantRules::parse(Some(json), default).unwrap_or_else(|e| panic!("{e}"))
}

/// `POST /v1/events` with an `Idempotency-Key`.
fn post_with_key(
    api_key: &str,
    idempotency_key: &str,
    body: &str,
) -> aws_lambda_events::event::apigw::ApiGatewayV2httpRequest {
    let auth = format!("Bearer {api_key}");
    request(
        aws_lambda_events::http::Method::POST,
        "/v1/events",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("idempotency-key", idempotency_key),
        ],
        Some(body),
    )
}

fn s3_detail(bucket: &str, key: &str) -> Value {
    json!({
        "version": "0",
        "bucket": { "name": bucket },
        "object": { "key": key, "size": 1024, "etag": "d41d8cd98f00b204e9800998ecf8427e" },
        "request-id": "C3D13FE58DE4C810",
        "requester": "123456789012",
        "reason": "PutObject"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_object_created_event_reaches_the_configured_tenants_endpoint_signed() {
    let stack = Stack::new("door-eb").await;
    let rx = Receiver::ok().await.unwrap();
    let (acme, _) = stack.tenant("acme").await;
    let (globex, _) = stack.tenant("globex").await;
    let ep = stack.endpoint(&acme, &rx.url("/s3"), &["aws.s3.*"]).await;
    stack.endpoint(&globex, &rx.url("/globex"), &[]).await;
    let bucket = format!("{}-acme-uploads", stack.res.prefix);
    let mut settings = stack.ingest_settings();
    settings.tenant_rules = rules(
        &format!(r#"[{{"source":"aws.s3","resource_prefix":"arn:aws:s3:::{bucket}","tenant":"acme"}}]"#),
        Some("globex"),
    );
    let ingest = stack.ingest_with(&settings);

    // As the default bus's rule delivers it (moto plays EventBridge).
    let resource = format!("arn:aws:s3:::{bucket}");
    let event = stack
        .aws_service_event(
            "aws.s3",
            "Object Created",
            &[&resource],
            &s3_detail(&bucket, "invoices/42.pdf"),
        )
        .await;
    let eb_id = event["id"].as_str().unwrap().to_string();
    let answer = ingest.dispatch(event.clone()).await.unwrap();
    assert_eq!(answer, json!({ "id": eb_id, "duplicate": false }));

    let fanned = stack.drain_fanout().await;
    assert_eq!((fanned.received, fanned.failed), (1, 0));
    let delivered = stack.drain_deliveries(T).await;
    assert_eq!((delivered.received, delivered.failed), (1, 0), "only acme's endpoint");
    let got = rx.wait_for(1, T).await;
    assert_eq!(got.len(), 1);
    let req = &got[0];
    assert_eq!(req.path, "/s3");
    assert_eq!(
        req.header("webhook-id"),
        Some(switchyard_tests::webhook_id("acme", &eb_id).as_str())
    );
    assert_eq!(req.header("x-switchyard-event-type"), Some("aws.s3.object_created"));
    assert_verifies(req, &ep.secret);
    let sent: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(sent["type"], "aws.s3.object_created");
    assert_eq!(sent["source"], "aws.s3");
    assert_eq!(sent["data"], s3_detail(&bucket, "invoices/42.pdf"));
    assert_eq!(sent["timestamp"].as_str().map(|t| t.len() >= 20), Some(true));

    // EventBridge delivers at least once: the same event again is a duplicate,
    // nothing is queued and nothing is sent twice.
    let again = ingest.dispatch(event).await.unwrap();
    assert_eq!(again, json!({ "id": eb_id, "duplicate": true }));
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 0);
    let fanned = stack.drain_fanout().await;
    assert_eq!(fanned.received, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1, "delivered once");

    // The record belongs to acme and is an audit record.
    let rec = stack
        .event_store()
        .get_event(&acme, &EventId::parse(&eb_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.envelope.tenant_id, acme);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_event_no_tenant_rule_matches_fails_loudly_and_stores_nothing() {
    let stack = Stack::new("door-eb-none").await;
    let mut settings = stack.ingest_settings();
    settings.tenant_rules = rules(
        r#"[{"source":"aws.s3","resource_prefix":"arn:aws:s3:::acme-*","tenant":"acme"}]"#,
        None,
    );
    let ingest = stack.ingest_with(&settings);
    let bucket = format!("{}-initech", stack.res.prefix);
    let resource = format!("arn:aws:s3:::{bucket}");
    let event = stack
        .aws_service_event("aws.s3", "Object Created", &[&resource], &s3_detail(&bucket, "k"))
        .await;
    let err = ingest.dispatch(event.clone()).await.unwrap_err();
    assert_eq!(err.kind(), "NoTenantForEvent", "{err}");
    assert!(!err.retryable());
    assert!(err.to_string().contains(&resource), "{err}");

    // A detail that is not an object is refused too.
    let mut bad = event;
    bad["detail"] = json!(["not", "an", "object"]);
    let err = ingest.dispatch(bad).await.unwrap_err();
    assert_eq!(err.kind(), "InvalidEvent", "{err}");

    // An unrecognised shape is an error, not a silent success.
    let err = ingest.dispatch(json!({ "hello": "world" })).await.unwrap_err();
    assert_eq!(err.kind(), "UnrecognisedEvent");

    assert!(stack.scan(&stack.res.deliveries_table).await.is_empty());
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_ingest_messages_are_accepted_and_an_invalid_one_is_a_batch_item_failure() {
    let stack = Stack::new("door-sqs").await;
    let rx = Receiver::ok().await.unwrap();
    let (acme, _) = stack.tenant("acme").await;
    let ep = stack.endpoint(&acme, &rx.url("/billing"), &["invoice.*"]).await;
    let ingest = stack.ingest();

    let ok1 = stack
        .send_ingest_message(
            r#"{"id":"inv_1","type":"invoice.paid","source":"billing","data":{"n":1}}"#,
            &[("tenant_id", "acme")],
        )
        .await;
    let ok2 = stack
        .send_ingest_message(r#"{"type":"invoice.created","data":{"n":2}}"#, &[("tenant_id", "acme")])
        .await;
    let invalid = stack
        .send_ingest_message(r#"{"type":"Invoice Paid!","data":{}}"#, &[("tenant_id", "acme")])
        .await;
    let no_tenant = stack
        .send_ingest_message(r#"{"type":"invoice.voided","data":{}}"#, &[])
        .await;
    let not_json = stack.send_ingest_message("{ not json", &[("tenant_id", "acme")]).await;

    // Poll until all five were seen (a failed one may come back meanwhile).
    let mut received = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for _ in 0..5 {
        let (r, f) = stack.poll_ingest_queue(&ingest, 1).await;
        received.extend(r);
        failed.extend(f);
        if received.len() >= 5 {
            break;
        }
    }
    let all = BTreeSet::from([
        ok1.clone(),
        ok2.clone(),
        invalid.clone(),
        no_tenant.clone(),
        not_json.clone(),
    ]);
    assert_eq!(received, all, "every message was received");
    assert_eq!(
        failed,
        BTreeSet::from([invalid, no_tenant, not_json]),
        "exactly the bad messages are batch item failures"
    );

    // The valid ones are stored for acme and fanned out.
    let stored: Vec<_> = stack.scan(&stack.res.deliveries_table).await;
    assert_eq!(stored.len(), 2, "two event records, nothing for the bad messages");
    let rec = stack
        .event_store()
        .get_event(&acme, &EventId::parse("inv_1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.envelope.source.as_str(), "billing");
    let fanned = stack.drain_fanout().await;
    assert_eq!((fanned.received, fanned.failed), (2, 0));
    let delivered = stack.drain_deliveries(T).await;
    assert_eq!((delivered.received, delivered.failed), (2, 0));
    for req in rx.wait_for(2, T).await {
        assert_verifies(&req, &ep.secret);
    }

    // The bad messages come back until maxReceiveCount, then SQS moves them
    // to the ingest DLQ.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stack.depth(&stack.res.ingest_dlq_url).await < 3 && std::time::Instant::now() < deadline {
        stack.poll_ingest_queue(&ingest, 1).await;
    }
    assert_eq!(stack.depth(&stack.res.ingest_dlq_url).await, 3);
    assert_eq!(stack.depth(&stack.res.ingest_queue_url).await, 0);
    let events = stack
        .scan(&stack.res.deliveries_table)
        .await
        .into_iter()
        .filter(|item| item.get("kind").and_then(|k| k.as_s().ok()).map(String::as_str) == Some("event"))
        .count();
    assert_eq!(events, 2, "still only the two valid events");
}

/// An event id used again after the dedupe window, while the first
/// event's delivery records still exist: it must not be a 202 whose
/// webhooks never go out (their delivery ids would name the old records).
/// It stays the first event's id: a duplicate, and the receiver got the
/// event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_used_again_after_the_dedupe_window_is_still_a_duplicate() {
    let stack = Stack::new("reused-id").await;
    let rx = Receiver::ok().await.unwrap();
    let (acme, key) = stack.tenant("acme").await;
    let ep = stack.endpoint(&acme, &rx.url("/hook"), &[]).await;
    let mut settings = stack.ingest_settings();
    settings.idempotency_window = Duration::from_secs(1);
    let ingest = stack.ingest_with(&settings);
    let body = r#"{"id":"evt_reused","type":"order.placed","data":{},"routing":{"audit":false}}"#;

    let first = ingest.handle(post_event(key.expose(), body)).await;
    assert_eq!(first.status_code, 202, "{:?}", first.body);
    stack.drain_fanout().await;
    stack.drain_deliveries(T).await;
    assert_eq!(rx.wait_for(1, T).await.len(), 1);

    // Past the window (moto never runs TTL; the expiry is compared).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let again = ingest.handle(post_event(key.expose(), body)).await;
    assert_eq!(again.status_code, 200, "{:?}", again.body);
    assert_eq!(json_body(&again), json!({ "id": "evt_reused", "duplicate": true }));
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 0, "nothing queued");
    let id = switchyard_core::DeliveryId::derive(&acme, &EventId::parse("evt_reused").unwrap(), &ep.id);
    let (record, _) = stack.delivery_log().get_delivery(&acme, &id).await.unwrap().unwrap();
    assert_eq!(record.attempts, 1, "the one delivery, attempted once");
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_deduplicated_per_tenant_within_its_window() {
    let stack = Stack::new("idem").await;
    let (_, acme_key) = stack.tenant("acme").await;
    let (_, globex_key) = stack.tenant("globex").await;
    let mut settings = stack.ingest_settings();
    settings.idempotency_window = Duration::from_secs(2);
    let ingest = stack.ingest_with(&settings);
    let body = r#"{"type":"order.placed","data":{"order_id":"o_1"}}"#;

    let first = ingest.handle(post_with_key(acme_key.expose(), "order-o_1", body)).await;
    assert_eq!(first.status_code, 202, "{:?}", first.body);
    let id = json_body(&first)["id"].as_str().unwrap().to_string();
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 1);

    let again = ingest.handle(post_with_key(acme_key.expose(), "order-o_1", body)).await;
    assert_eq!(again.status_code, 200);
    assert_eq!(json_body(&again), json!({ "id": id, "duplicate": true }));
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 1, "nothing new queued");

    // The same key from another tenant is that tenant's own.
    let other = ingest
        .handle(post_with_key(globex_key.expose(), "order-o_1", body))
        .await;
    assert_eq!(other.status_code, 202);
    assert_ne!(json_body(&other)["id"], json!(id));
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 2);

    // After the window (moto never runs TTL: the expiry is compared
    // explicitly) the key names a new event.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let later = ingest.handle(post_with_key(acme_key.expose(), "order-o_1", body)).await;
    assert_eq!(later.status_code, 202, "{:?}", later.body);
    assert_ne!(json_body(&later)["id"], json!(id));
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 3);

    // A bad header is refused and changes nothing.
    let items = stack.scan(&stack.res.deliveries_table).await.len();
    let long = "k".repeat(256);
    for bad in ["", "has space", long.as_str()] {
        let resp = ingest.handle(post_with_key(acme_key.expose(), bad, body)).await;
        assert_eq!(resp.status_code, 400, "{bad:?}: {:?}", resp.body);
        assert_eq!(json_body(&resp)["code"], "invalid_header");
    }
    assert_eq!(stack.scan(&stack.res.deliveries_table).await.len(), items);
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_without_audit_is_kept_only_for_the_window() {
    let stack = Stack::new("audit").await;
    let (acme, key) = stack.tenant("acme").await;
    let mut settings = stack.ingest_settings();
    settings.idempotency_window = Duration::from_secs(1);
    let ingest = stack.ingest_with(&settings);
    let store = stack.event_store();

    let audited = r#"{"id":"evt_audit","type":"a.b","data":{}}"#;
    // Without webhooks too: the record of an event with webhooks lives as
    // long as its deliveries can (an_event_id_used_again_…).
    let short = r#"{"id":"evt_short","type":"a.b","data":{},"routing":{"audit":false,"external":false}}"#;
    let before = time::OffsetDateTime::now_utc();
    for body in [audited, short] {
        assert_eq!(ingest.handle(post_event(key.expose(), body)).await.status_code, 202);
    }
    let expiry = |id: &'static str| {
        let store = store.clone();
        let acme = acme.clone();
        async move {
            store
                .get_event(&acme, &EventId::parse(id).unwrap())
                .await
                .unwrap()
                .unwrap()
                .expires_at
        }
    };
    let audit_left = expiry("evt_audit").await - before;
    let short_left = expiry("evt_short").await - before;
    assert!(
        audit_left > time::Duration::days(364) && audit_left <= time::Duration::days(365) + time::Duration::seconds(2),
        "an audit record is kept for the audit retention: {audit_left}"
    );
    assert!(
        short_left >= time::Duration::seconds(1) && short_left <= time::Duration::seconds(3),
        "a non-audit record only for the window: {short_left}"
    );

    // After the window the non-audit id is free again; the audit one is not.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(ingest.handle(post_event(key.expose(), audited)).await.status_code, 200);
    assert_eq!(ingest.handle(post_event(key.expose(), short)).await.status_code, 202);
    // Only the audited event has webhooks: one fan-out task.
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_flags_choose_the_bus_and_the_fan_out() {
    let stack = Stack::new("routing").await;
    let (acme, key) = stack.tenant("acme").await;
    // A rule on the application's bus sends every Switchyard event to a queue.
    let bus = stack.res.event_bus_name.clone();
    let target_url = stack
        .rule_to_queue(&bus, "all-events", r#"{"source":[{"prefix":"switchyard."}]}"#)
        .await;
    let mut settings = stack.ingest_settings();
    settings.event_bus_name = Some(bus);
    let ingest = stack.ingest_with(&settings);

    let cases = [
        ("evt_both", r#"{}"#),
        ("evt_internal", r#"{"external":false}"#),
        ("evt_external", r#"{"internal":false}"#),
        ("evt_nowhere", r#"{"internal":false,"external":false}"#),
    ];
    for (id, routing) in cases {
        let body = format!(r#"{{"id":"{id}","type":"user.created","data":{{"id":"{id}"}},"routing":{routing}}}"#);
        let resp = ingest.handle(post_event(key.expose(), &body)).await;
        assert_eq!(resp.status_code, 202, "{id}: {:?}", resp.body);
        let rec = stack
            .event_store()
            .get_event(&acme, &EventId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.envelope.id.as_str(), id);
    }

    // On the bus: exactly the internal ones, as the envelope.
    let mut on_bus = Vec::new();
    for _ in 0..5 {
        let out = stack
            .sqs
            .receive_message()
            .queue_url(&target_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let msgs = out.messages.unwrap_or_default();
        for m in &msgs {
            let v: Value = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
            assert_eq!(v["source"], "switchyard.user");
            assert_eq!(v["detail-type"], "user.created");
            let env: Envelope = serde_json::from_value(v["detail"].clone()).unwrap();
            assert_eq!(env.tenant_id, TenantId::parse("acme").unwrap());
            on_bus.push(env.id.to_string());
            stack
                .sqs
                .delete_message()
                .queue_url(&target_url)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .send()
                .await
                .unwrap();
        }
        if on_bus.len() >= 2 && msgs.is_empty() {
            break;
        }
    }
    on_bus.sort();
    assert_eq!(on_bus, ["evt_both", "evt_internal"]);

    // On the fan-out queue: exactly the external ones.
    let fanout = stack.queue(&stack.res.fanout_queue_url).await;
    let mut queued = Vec::new();
    for _ in 0..3 {
        let out = stack
            .sqs
            .receive_message()
            .queue_url(&fanout.url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            let task: switchyard_core::FanoutTask = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
            queued.push(task.envelope.id.to_string());
        }
        if queued.len() >= 2 {
            break;
        }
    }
    queued.sort();
    assert_eq!(queued, ["evt_both", "evt_external"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_that_fails_fails_the_request_and_the_retry_hands_the_event_over() {
    let stack = Stack::new("busfail").await;
    let (acme, key) = stack.tenant("acme").await;
    let mut settings = stack.ingest_settings();
    settings.event_bus_name = Some(format!("{}-no-such-bus", stack.res.prefix));
    let broken = stack.ingest_with(&settings);
    let body = r#"{"id":"evt_bus","type":"user.created","data":{}}"#;
    let resp = broken.handle(post_event(key.expose(), body)).await;
    assert!(resp.status_code >= 500, "{:?}", resp.body);
    let evt = EventId::parse("evt_bus").unwrap();
    let rec = stack.event_store().get_event(&acme, &evt).await.unwrap();
    assert_eq!(rec, None, "nothing stored unless handed over");
    assert_eq!(
        stack.depth(&stack.res.fanout_queue_url).await,
        0,
        "no fan-out before the bus"
    );

    // With the bus there, the retry publishes, queues and stores the event;
    // a repeat of it is a duplicate and hands nothing over.
    settings.event_bus_name = Some(stack.res.event_bus_name.clone());
    let fixed = stack.ingest_with(&settings);
    let retry = fixed.handle(post_event(key.expose(), body)).await;
    assert_eq!(retry.status_code, 202, "{:?}", retry.body);
    assert_eq!(json_body(&retry), json!({ "id": "evt_bus" }));
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 1);
    let rec = stack.event_store().get_event(&acme, &evt).await.unwrap().unwrap();
    assert_eq!(rec.envelope.id, evt);
    let again = fixed.handle(post_event(key.expose(), body)).await;
    assert_eq!(json_body(&again), json!({ "id": "evt_bus", "duplicate": true }));
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_from_the_ingest_queue_queues_its_fan_out_tasks_together_and_reads_its_tenant_once() {
    use switchyard_local::aws_proxy::AwsProxy;
    let stack = Stack::new("door-sqs-batch").await;
    let (acme, _) = stack.tenant("acme").await;
    let proxy = AwsProxy::start(switchyard_tests::moto_endpoint()).await.unwrap();
    let sdk = switchyard_local::sdk_config_as(&proxy.endpoint(), "IngestFunction").await;
    let ingest = switchyard_ingest::AwsIngest::new(&sdk, &stack.ingest_settings());
    let body = |i: usize| format!(r#"{{"id":"evt_b{i}","type":"invoice.paid","data":{{"n":{i}}}}}"#);
    let ingest_calls = |op: &str| proxy.tally().calls_by("IngestFunction", op);
    // Polls until `n` messages were received; returns the failures and how
    // many polls got messages.
    let poll = |n: usize| {
        let (stack, ingest) = (&stack, &ingest);
        async move {
            let (mut received, mut failed, mut batches) = (BTreeSet::new(), BTreeSet::new(), 0);
            for _ in 0..10 {
                let (r, f) = stack.poll_ingest_queue(ingest, 1).await;
                batches += usize::from(!r.is_empty());
                received.extend(r);
                failed.extend(f);
                if received.len() >= n {
                    break;
                }
            }
            assert_eq!(received.len(), n, "every message received");
            (failed, batches)
        }
    };

    for i in 0..6 {
        stack.send_ingest_message(&body(i), &[("tenant_id", "acme")]).await;
    }
    let (failed, batches) = poll(6).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(batches < 6, "the six messages came in {batches} batches");
    // One SendMessageBatch and one tenant read per batch, not per message;
    // per message one read (is the event new?) and one write (its record),
    // and no update.
    assert_eq!(ingest_calls("sqs:SendMessageBatch"), batches as u64);
    assert_eq!(ingest_calls("dynamodb:GetItem"), batches as u64 + 6);
    assert_eq!(ingest_calls("dynamodb:PutItem"), 6);
    assert_eq!(ingest_calls("dynamodb:UpdateItem"), 0);

    // A task SQS refuses (here over the fan-out queue's maximum message
    // size, lowered to 1 KB) fails its own message only: the others are
    // queued one by one after the batch send fails.
    proxy.reset();
    stack
        .sqs
        .set_queue_attributes()
        .queue_url(&stack.res.fanout_queue_url)
        .attributes(
            switchyard_aws::aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize,
            "1024",
        )
        .send()
        .await
        .unwrap();
    let huge = format!(
        r#"{{"id":"evt_huge","type":"invoice.paid","data":{{"lines":"{}"}}}}"#,
        "line ".repeat(300)
    );
    let huge_id = stack.send_ingest_message(&huge, &[("tenant_id", "acme")]).await;
    for i in 6..8 {
        stack.send_ingest_message(&body(i), &[("tenant_id", "acme")]).await;
    }
    let (failed, _) = poll(3).await;
    assert_eq!(failed, BTreeSet::from([huge_id]));
    let store = stack.event_store();
    let stored = |id: &str| {
        let (store, acme) = (&store, &acme);
        let id = EventId::parse(id).unwrap();
        async move { store.get_event(acme, &id).await.unwrap().is_some() }
    };
    assert!(!stored("evt_huge").await, "not handed over, not stored");
    for i in 0..8 {
        assert!(stored(&format!("evt_b{i}")).await, "evt_b{i}");
    }
    let queued: BTreeSet<String> = stack
        .take_messages(&stack.res.fanout_queue_url)
        .await
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["envelope"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(queued, (0..8).map(|i| format!("evt_b{i}")).collect::<BTreeSet<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_event_whose_record_cannot_be_stored_fails_its_message_and_its_redelivery_stores_it() {
    use switchyard_local::aws_proxy::{AwsProxy, Fault, Faults};
    let stack = Stack::new("door-sqs-nostore").await;
    let (acme, _) = stack.tenant("acme").await;
    let proxy = AwsProxy::start(switchyard_tests::moto_endpoint()).await.unwrap();
    let sdk = switchyard_local::sdk_config_as(&proxy.endpoint(), "IngestFunction").await;
    let ingest = switchyard_ingest::AwsIngest::new(&sdk, &stack.ingest_settings());
    let body = r#"{"id":"evt_nostore","type":"invoice.paid","data":{"n":1}}"#;
    let evt = EventId::parse("evt_nostore").unwrap();
    // Polls until messages come: what came, and what failed.
    let poll = || async {
        for _ in 0..30 {
            let (received, failed) = stack.poll_ingest_queue(&ingest, 1).await;
            if !received.is_empty() {
                return (received, failed);
            }
        }
        panic!("no message came");
    };

    // DynamoDB refuses every PutItem (through the SDK's own retries): the
    // fan-out task was queued, the record was not stored, so the message
    // fails and comes back.
    proxy.set_faults(Faults {
        rate: 1.0,
        kinds: vec![Fault::ServerError],
        only: vec!["dynamodb:PutItem".into()],
        limit: None,
    });
    let first = stack.send_ingest_message(body, &[("tenant_id", "acme")]).await;
    assert_eq!(poll().await, (vec![first.clone()], vec![first.clone()]));
    assert!(proxy.tally().faults.get("ServerError").is_some_and(|&n| n >= 1));
    assert_eq!(stack.event_store().get_event(&acme, &evt).await.unwrap(), None);
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 1, "handed over");

    // Its redelivery (the same message, once its visibility timeout ends)
    // hands it over again and stores it: at least once, and from then on a
    // repeat is a duplicate.
    proxy.set_faults(Faults::default());
    assert_eq!(
        poll().await,
        (vec![first], vec![]),
        "the failed message came back and was accepted"
    );
    let rec = stack.event_store().get_event(&acme, &evt).await.unwrap().unwrap();
    assert_eq!(rec.envelope.data["n"], 1);
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 2, "handed over twice");
    let repeat = stack.send_ingest_message(body, &[("tenant_id", "acme")]).await;
    assert_eq!(poll().await, (vec![repeat], vec![]));
    assert_eq!(
        stack.depth(&stack.res.fanout_queue_url).await,
        2,
        "a duplicate hands nothing over"
    );
}

/// An AWS service event replayed into the ingest queue (marked with the
/// `switchyard_door` attribute) is read as the EventBridge door reads it:
/// its tenant from the tenant rules only, never from an attribute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_aws_service_event_goes_through_the_eventbridge_mapping_and_rules() {
    let stack = Stack::new("door-replay").await;
    let (acme, _) = stack.tenant("acme").await;
    stack.tenant("globex").await;
    let bucket = format!("arn:aws:s3:::{}-acme", stack.res.prefix);
    let mut settings = stack.ingest_settings();
    settings.tenant_rules = rules(
        &format!(r#"[{{"source":"aws.s3","resource_prefix":"{bucket}","tenant":"acme"}}]"#),
        None,
    );
    let ingest = stack.ingest_with(&settings);
    let event = |id: &str, resource: &str| {
        json!({"id": id, "source": "aws.s3", "detail-type": "Object Created", "time": "2026-11-29T10:00:00Z",
            "resources": [resource], "detail": s3_detail("b", id)})
        .to_string()
    };
    let door = ("switchyard_door", "eventbridge");
    let ok = stack.send_ingest_message(&event("eb-ok", &bucket), &[door]).await;
    let orphan = stack
        .send_ingest_message(&event("eb-orphan", "arn:aws:s3:::elsewhere"), &[door])
        .await;
    // A tenant attribute does not choose the tenant of a service event.
    let named = stack
        .send_ingest_message(
            &event("eb-named", "arn:aws:s3:::elsewhere"),
            &[door, ("tenant_id", "globex")],
        )
        .await;
    let unknown = stack
        .send_ingest_message(&event("eb-unknown", &bucket), &[("switchyard_door", "carrier-pigeon")])
        .await;
    let (mut received, mut failed) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        let (r, f) = stack.poll_ingest_queue(&ingest, 1).await;
        received.extend(r);
        failed.extend(f);
        if received.len() == 4 {
            break;
        }
    }
    assert_eq!(received.len(), 4, "{received:?}");
    let failed: BTreeSet<String> = failed.into_iter().collect();
    assert_eq!(failed, BTreeSet::from([orphan, named, unknown]));
    assert!(!failed.contains(&ok));
    let stored = stack
        .event_store()
        .get_event(&acme, &EventId::parse("eb-ok").unwrap())
        .await
        .unwrap()
        .expect("the event with a tenant rule is stored for that tenant");
    assert_eq!(stored.envelope.event_type.as_str(), "aws.s3.object_created");
    assert_eq!(stored.envelope.source.as_str(), "aws.s3");
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 1);
}

//! The walking skeleton end to end: HTTP ingest → fan-out → signed webhooks,
//! through real SDK calls against moto and a real receiver on loopback.

use std::time::Duration;
use switchyard_core::model::DeliveryState;
use switchyard_core::ports::{DeliveryQueries, EventQueries};
use switchyard_core::{DeliveryId, EventId};
use switchyard_local::http_api::post_event;
use switchyard_tests::{Receiver, Reply, Stack, assert_verifies, json_body};

const T: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_reaches_exactly_the_matching_endpoints_signed() {
    let stack = Stack::new("e2e").await;
    let rx = Receiver::ok().await.unwrap();
    let (acme, key) = stack.tenant("acme").await;
    let (other, _) = stack.tenant("other").await;

    let exact = stack.endpoint(&acme, &rx.url("/exact"), &["user.created"]).await;
    let wild = stack.endpoint(&acme, &rx.url("/wild"), &["user.*"]).await;
    let all = stack.endpoint(&acme, &rx.url("/all"), &[]).await;
    stack.endpoint(&acme, &rx.url("/orders"), &["order.*"]).await;
    let mut off = stack.endpoint(&acme, &rx.url("/disabled"), &["user.*"]).await;
    off.enabled = false;
    stack.registry.put_endpoint(&off).await.unwrap();
    stack.endpoint(&other, &rx.url("/other-tenant"), &["user.*"]).await;

    let body = r#"{"id":"evt_e2e_1","type":"user.created","data":{"user_id":"u_1","email":"a@example.com"}}"#;
    let resp = stack.ingest().handle(post_event(key.expose(), body)).await;
    assert_eq!(resp.status_code, 202, "{:?}", resp.body);
    assert_eq!(json_body(&resp), serde_json::json!({ "id": "evt_e2e_1" }));

    let fanned = stack.drain_fanout().await;
    assert_eq!((fanned.received, fanned.failed), (1, 0));
    let delivered = stack.drain_deliveries(T).await;
    assert_eq!((delivered.received, delivered.failed), (3, 0));

    let got = rx.wait_for(3, T).await;
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/all", "/exact", "/wild"],
        "exactly the three matching endpoints"
    );
    for req in &got {
        let ep = [&exact, &wild, &all]
            .into_iter()
            .find(|e| e.url.url().path() == req.path)
            .unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(
            req.header("webhook-id"),
            Some(switchyard_tests::webhook_id("acme", "evt_e2e_1").as_str())
        );
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("x-switchyard-event-type"), Some("user.created"));
        assert!(req.header("user-agent").unwrap().starts_with("Switchyard/"));
        assert_verifies(req, &ep.secret);
        let sent: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(sent["type"], "user.created");
        assert_eq!(sent["data"]["email"], "a@example.com");
        assert!(sent.get("tenant_id").is_none());
    }

    // Nothing more arrives, and the queues are empty.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 3);
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 0);
    assert_eq!(stack.depth(&stack.res.deliveries_queue_url).await, 0);

    // The event and every delivery are on record.
    let evt = EventId::parse("evt_e2e_1").unwrap();
    let record = stack.event_store().get_event(&acme, &evt).await.unwrap().unwrap();
    assert_eq!(record.envelope.id, evt);
    for ep in [&exact, &wild, &all] {
        let id = DeliveryId::derive(&acme, &evt, &ep.id);
        let (d, attempts) = stack.delivery_log().get_delivery(&acme, &id).await.unwrap().unwrap();
        assert_eq!(
            (d.state, d.attempts, d.last_status_code),
            (DeliveryState::Succeeded, 1, Some(200))
        );
        assert_eq!(attempts.len(), 1);
        assert!(attempts[0].succeeded && attempts[0].status_code == Some(200));
    }

    // The same event again is a duplicate: 200, no new fan-out.
    let again = stack.ingest().handle(post_event(key.expose(), body)).await;
    assert_eq!(again.status_code, 200);
    assert_eq!(
        json_body(&again),
        serde_json::json!({ "id": "evt_e2e_1", "duplicate": true })
    );
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_recorded_and_the_task_comes_back() {
    let stack = Stack::new("retry").await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = calls.clone();
    let rx = Receiver::start(move |_| {
        let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n == 0 {
            Reply::status(503).body("busy")
        } else {
            Reply::status(204)
        }
    })
    .await
    .unwrap();
    let (acme, key) = stack.tenant("acme").await;
    let mut ep = stack.endpoint(&acme, &rx.url("/hook"), &["order.*"]).await;
    ep.retry_policy =
        serde_json::from_value(serde_json::json!({"kind": "fixed", "delay_secs": 1, "max_attempts": 5})).unwrap();
    stack.registry.put_endpoint(&ep).await.unwrap();

    let resp = stack
        .ingest()
        .handle(post_event(key.expose(), r#"{"type":"order.placed","data":{"n":1}}"#))
        .await;
    assert_eq!(resp.status_code, 202);
    let evt = EventId::parse(json_body(&resp)["id"].as_str().unwrap()).unwrap();
    stack.drain_fanout().await;

    let first = stack.drain_deliveries(T).await;
    assert_eq!((first.received, first.failed), (1, 1), "a 503 is a batch item failure");
    let id = DeliveryId::derive(&acme, &evt, &ep.id);
    let (d, attempts) = stack.delivery_log().get_delivery(&acme, &id).await.unwrap().unwrap();
    assert_eq!((d.state, d.last_status_code), (DeliveryState::Retrying, Some(503)));
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].response_body.as_deref(), Some("busy"));
    assert_eq!(attempts[0].error_kind.as_deref(), Some("http_status"));
    assert_eq!(
        stack.depth(&stack.res.deliveries_queue_url).await,
        1,
        "the task stays on the queue"
    );

    assert!(attempts[0].next_attempt_at.is_some());
    // The retry waits for its delay (1 s ± 20 %, as whole seconds of visibility)…
    assert_eq!(
        stack.drain_deliveries(T).await.received,
        0,
        "not visible before the delay"
    );
    // …then the same message is delivered again.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let second = stack.drain_deliveries(T).await;
    assert_eq!((second.received, second.failed), (1, 0));
    let (d, attempts) = stack.delivery_log().get_delivery(&acme, &id).await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.attempts, d.last_status_code),
        (DeliveryState::Succeeded, 2, Some(204))
    );
    assert_eq!(
        attempts.iter().map(|a| (a.attempt, a.status_code)).collect::<Vec<_>>(),
        [(1, Some(503)), (2, Some(204))]
    );
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].header("webhook-id"),
        got[1].header("webhook-id"),
        "one webhook-id across attempts"
    );
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(stack.depth(&stack.res.deliveries_queue_url).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswering_endpoint_times_out_without_holding_up_the_others() {
    let stack = Stack::new("slow").await;
    let rx = Receiver::start(|r| {
        let delay = if r.path == "/slow" {
            Duration::from_secs(10)
        } else {
            Duration::ZERO
        };
        Reply::status(200).after(delay)
    })
    .await
    .unwrap();
    let (acme, key) = stack.tenant("acme").await;
    stack.endpoint(&acme, &rx.url("/slow"), &[]).await;
    stack.endpoint(&acme, &rx.url("/fast"), &[]).await;
    let resp = stack
        .ingest()
        .handle(post_event(key.expose(), r#"{"type":"a.b","data":{}}"#))
        .await;
    assert_eq!(resp.status_code, 202);
    stack.drain_fanout().await;

    let started = std::time::Instant::now();
    let report = stack.drain_deliveries(Duration::from_millis(800)).await;
    assert_eq!(
        (report.received, report.failed),
        (2, 1),
        "the slow one fails, the fast one succeeds"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the request timeout"
    );
    // Both requests were in flight together: had they been sent one after
    // the other, the second would have left only after the first's timeout.
    let got = rx.received();
    let at = |p: &str| {
        got.iter()
            .find(|r| r.path == p)
            .map(|r| r.at)
            .unwrap_or_else(|| panic!("{p} was not called"))
    };
    let (fast, slow) = (at("/fast"), at("/slow"));
    let gap = if fast > slow { fast - slow } else { slow - fast };
    assert!(
        gap < Duration::from_millis(400),
        "sent {gap:?} apart: deliveries of a batch must run concurrently"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_goes_to_the_dlq_and_never_fails_its_batch() {
    let opts = switchyard_local::resources::QueueOptions {
        visibility_timeout_secs: 1,
        fanout_max_receive_count: 2,
        deliveries_max_receive_count: 2,
        ..Default::default()
    };
    let stack = Stack::with_options("poison", opts).await;
    let rx = Receiver::ok().await.unwrap();
    let (acme, key) = stack.tenant("acme").await;
    stack.endpoint(&acme, &rx.url("/hook"), &[]).await;
    stack
        .sqs
        .send_message()
        .queue_url(&stack.res.deliveries_queue_url)
        .message_body("{ not a delivery task")
        .send()
        .await
        .unwrap();
    let resp = stack
        .ingest()
        .handle(post_event(key.expose(), r#"{"type":"a.b","data":{}}"#))
        .await;
    assert_eq!(resp.status_code, 202);
    stack.drain_fanout().await;

    let first = stack.drain_deliveries(T).await;
    assert_eq!(
        (first.received, first.failed),
        (2, 1),
        "the good task is delivered beside the bad one"
    );
    assert_eq!(rx.received().len(), 1);
    // Received twice (maxReceiveCount = 2), then moved to the DLQ by SQS's redrive.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        stack.drain_deliveries(T).await;
        if stack.depth(&stack.res.deliveries_dlq_url).await == 1 {
            break;
        }
    }
    assert_eq!(stack.depth(&stack.res.deliveries_dlq_url).await, 1);
    assert_eq!(stack.depth(&stack.res.deliveries_queue_url).await, 0);
    assert_eq!(rx.received().len(), 1, "no second delivery of the good task");
}

/// Fan-out reads a tenant's endpoints once per batch, however many of the
/// batch's events are that tenant's, and still plans each event on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_batch_reads_each_tenants_endpoints_once() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use switchyard_core::envelope::{IngestLimits, Source, parse_event};
    use switchyard_core::ports::TaskQueue;
    use switchyard_core::{FanoutTask, TenantId};
    use switchyard_local::aws_proxy::AwsProxy;
    let stack = Stack::new("fanout-memo").await;
    let (acme, _) = stack.tenant("acme").await;
    let (globex, _) = stack.tenant("globex").await;
    for path in ["a", "b"] {
        stack
            .endpoint(&acme, &format!("https://93.184.216.34/{path}"), &["order.*"])
            .await;
    }
    stack.endpoint(&globex, "https://93.184.216.35/", &[]).await;
    let task = |tenant: &TenantId, i: usize| {
        let body = format!(r#"{{"id":"evt_{i}","type":"order.placed","data":{{"n":{i}}}}}"#);
        let env = parse_event(
            body.as_bytes(),
            tenant.clone(),
            &Source::parse("api").unwrap(),
            switchyard_core::time_util::now_utc(),
            IngestLimits::default(),
        )
        .unwrap();
        FanoutTask::new(env)
    };
    let tasks: Vec<FanoutTask> = (0..12)
        .map(|i| task(if i % 3 == 2 { &globex } else { &acme }, i))
        .collect();
    let queue = switchyard_aws::sqs::SqsQueue::<FanoutTask>::new(stack.sqs.clone(), &stack.res.fanout_queue_url);
    queue.send_all(&tasks).await.unwrap();

    let proxy = AwsProxy::start(switchyard_tests::moto_endpoint()).await.unwrap();
    let sdk = switchyard_local::sdk_config_as(&proxy.endpoint(), "FanoutFunction").await;
    let fanout = switchyard_fanout::AwsFanout::new(
        &sdk,
        &switchyard_fanout::Settings {
            registry_table: stack.res.registry_table.clone(),
            deliveries_queue_url: stack.res.deliveries_queue_url.clone(),
            deliveries_table: stack.res.deliveries_table.clone(),
            audit_retention_days: 365,
        },
    );
    // What a read per tenant and batch comes to, from the batches drained.
    let expected = Mutex::new(0u64);
    let q = stack.queue(&stack.res.fanout_queue_url).await;
    let report = switchyard_local::esm::drain(&stack.sqs, &q, 10, |e| {
        let tenants: HashSet<String> = e
            .records
            .iter()
            .filter_map(|r| serde_json::from_str::<FanoutTask>(r.body.as_deref()?).ok())
            .map(|t| t.envelope.tenant_id.to_string())
            .collect();
        *expected.lock().unwrap() += tenants.len() as u64;
        fanout.handle(e)
    })
    .await
    .unwrap();
    assert_eq!((report.received, report.failed), (12, 0));
    let queries = proxy.tally().calls_by("FanoutFunction", "dynamodb:Query");
    let expected = expected.into_inner().unwrap();
    assert_eq!(queries, expected, "one endpoints read per tenant and batch");
    assert!(
        expected < 12,
        "batches held several events of a tenant ({expected} reads for 12 events)"
    );
    // Each event still got its own deliveries: acme's 8 to two endpoints,
    // globex's 4 to one.
    assert_eq!(stack.depth(&stack.res.deliveries_queue_url).await, 8 * 2 + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_batch_reads_each_endpoint_once() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use switchyard_local::aws_proxy::AwsProxy;
    let stack = Stack::new("delivery-memo").await;
    let (acme, key) = stack.tenant("acme").await;
    let rx = Receiver::start(|_| Reply::status(204)).await.unwrap();
    for path in ["/a", "/b"] {
        stack.endpoint(&acme, &rx.url(path), &[]).await;
    }
    let ingest = stack.ingest();
    for i in 0..6 {
        let body = format!(r#"{{"id":"evt_m{i}","type":"order.placed","data":{{"n":{i}}}}}"#);
        assert_eq!(ingest.handle(post_event(key.expose(), &body)).await.status_code, 202);
    }
    assert_eq!(stack.drain_fanout().await.failed, 0);

    let proxy = AwsProxy::start(switchyard_tests::moto_endpoint()).await.unwrap();
    let sdk = switchyard_local::sdk_config_as(&proxy.endpoint(), "DeliveryFunction").await;
    let delivery = switchyard_delivery::AwsDelivery::new(&sdk, &stack.delivery_settings(T)).unwrap();
    // Per batch: each record reads its delivery, and each endpoint and each
    // tenant (whether it is suspended) is read once, whatever the number of
    // its records in the batch.
    let expected = Mutex::new(0u64);
    let q = stack.queue(&stack.res.deliveries_queue_url).await;
    let report = switchyard_local::esm::drain(&stack.sqs, &q, 10, |e| {
        let tasks: Vec<switchyard_core::DeliveryTask> = e
            .records
            .iter()
            .filter_map(|r| serde_json::from_str(r.body.as_deref()?).ok())
            .collect();
        let endpoints: HashSet<String> = tasks.iter().map(|t| t.endpoint_id.to_string()).collect();
        let tenants: HashSet<String> = tasks.iter().map(|t| t.tenant_id.to_string()).collect();
        *expected.lock().unwrap() += (e.records.len() + endpoints.len() + tenants.len()) as u64;
        delivery.handle(e)
    })
    .await
    .unwrap();
    assert_eq!((report.received, report.failed), (12, 0));
    assert_eq!(rx.received().len(), 12, "every delivery made");
    let reads = proxy.tally().calls_by("DeliveryFunction", "dynamodb:GetItem");
    let expected = expected.into_inner().unwrap();
    assert_eq!(
        reads, expected,
        "one read per delivery, one per endpoint and batch, one per tenant and batch"
    );
    assert!(
        expected < 26,
        "batches held several deliveries to an endpoint ({expected} reads)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_sent_to_ingest_arrives_on_the_webhook() {
    const SENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let stack = Stack::new("e2e-trace").await;
    let rx = Receiver::ok().await.unwrap();
    let (acme, key) = stack.tenant("acme").await;
    stack.endpoint(&acme, &rx.url("/traced"), &[]).await;

    let auth = format!("Bearer {}", key.expose());
    let req = switchyard_local::http_api::request(
        aws_lambda_events::http::Method::POST,
        "/v1/events",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("traceparent", SENT),
        ],
        Some(r#"{"id":"evt_traced","type":"user.created","data":{}}"#),
    );
    assert_eq!(stack.ingest().handle(req).await.status_code, 202);
    stack.drain_fanout().await;
    stack.drain_deliveries(T).await;

    let got = rx.wait_for(1, T).await;
    let header = got[0].header("traceparent").expect("the webhook carries a traceparent");
    let (trace, span) = (&header[3..35], &header[36..52]);
    assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736", "{header}");
    assert_ne!(span, "00f067aa0ba902b7", "the attempt is a span of its own: {header}");
    // The event keeps the producer's trace: what the bus, the consumer's
    // handlers and a later resend read.
    let evt = EventId::parse("evt_traced").unwrap();
    let record = stack.event_store().get_event(&acme, &evt).await.unwrap().unwrap();
    assert_eq!(record.envelope.metadata.traceparent.as_deref(), Some(SENT));
}

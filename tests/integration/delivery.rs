//! Delivery you can trust, against moto and real receivers on loopback:
//! retries through the message's visibility, status handling, exhaustion to
//! the DLQ with an operational event, the circuit breaker, disabling,
//! secret rotation, custom headers and the SSRF guard.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use switchyard_core::endpoint::CustomHeaders;
use switchyard_core::model::{DeliveryRecord, DeliveryState};
use switchyard_core::ports::DeliveryQueries;
use switchyard_core::retry::RetryPolicy;
use switchyard_core::{ApiKey, DeliveryId, DeliveryTask, Endpoint, EventId, FanoutTask, TenantId};
use switchyard_local::http_api::post_event;
use switchyard_tests::{Receiver, Reply, Stack, assert_verifies, json_body};

const T: Duration = Duration::from_secs(5);

fn policy(v: serde_json::Value) -> RetryPolicy {
    serde_json::from_value(v).unwrap()
}

/// A tenant with one endpoint at `url` using `retry`, stored.
async fn setup(stack: &Stack, url: &str, retry: RetryPolicy) -> (TenantId, ApiKey, Endpoint) {
    let (tenant, key) = stack.tenant("acme").await;
    let mut ep = stack.endpoint(&tenant, url, &["order.*"]).await;
    ep.retry_policy = retry;
    stack.registry.put_endpoint(&ep).await.unwrap();
    (tenant, key, ep)
}

/// Sends one `order.placed` and fans it out; returns its delivery id.
async fn send_one(stack: &Stack, tenant: &TenantId, key: &ApiKey, ep: &Endpoint) -> DeliveryId {
    let resp = stack
        .ingest()
        .handle(post_event(key.expose(), r#"{"type":"order.placed","data":{"n":1}}"#))
        .await;
    assert_eq!(resp.status_code, 202, "{:?}", resp.body);
    let evt = EventId::parse(json_body(&resp)["id"].as_str().unwrap()).unwrap();
    assert_eq!(stack.drain_fanout().await.received, 1);
    DeliveryId::derive(tenant, &evt, &ep.id)
}

/// An endpoint as the registry has it now.
async fn endpoint_now(stack: &Stack, tenant: &TenantId, ep: &Endpoint) -> Endpoint {
    use switchyard_core::ports::Registry;
    stack
        .registry
        .endpoint(tenant, &ep.id)
        .await
        .unwrap()
        .expect("the endpoint exists")
}

async fn record(stack: &Stack, tenant: &TenantId, id: &DeliveryId) -> DeliveryRecord {
    stack
        .delivery_log()
        .get_delivery(tenant, id)
        .await
        .unwrap()
        .expect("a delivery record")
        .0
}

/// Drains the deliveries queue repeatedly for `for_at_least`, so retries
/// scheduled through the message's visibility come back and run.
async fn run_deliveries(stack: &Stack, delivery: &switchyard_delivery::AwsDelivery, for_at_least: Duration) {
    let until = std::time::Instant::now() + for_at_least;
    while std::time::Instant::now() < until {
        stack.drain_deliveries_with(delivery).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ops_events(bodies: &[String]) -> Vec<FanoutTask> {
    bodies
        .iter()
        .map(|b| serde_json::from_str::<FanoutTask>(b).expect("an operational fan-out task"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_schedule_fails_into_the_dlq_and_tells_the_tenant() {
    let stack = Stack::new("exhaust").await;
    let rx = Receiver::start(|_| Reply::status(500).body("down")).await.unwrap();
    let (tenant, key, ep) = setup(
        &stack,
        &rx.url("/hook"),
        policy(json!({"kind": "fixed", "delay_secs": 1, "max_attempts": 3})),
    )
    .await;
    let id = send_one(&stack, &tenant, &key, &ep).await;
    let delivery = stack.delivery(T);

    let first = stack.drain_deliveries_with(&delivery).await;
    assert_eq!((first.received, first.failed), (1, 1));
    let r = record(&stack, &tenant, &id).await;
    assert_eq!((r.state, r.attempts), (DeliveryState::Retrying, 1));
    run_deliveries(&stack, &delivery, Duration::from_secs(6)).await;

    assert_eq!(rx.received().len(), 3, "exactly the policy's three attempts");
    let (r, attempts) = stack.delivery_log().get_delivery(&tenant, &id).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.attempts, r.reason.as_deref()),
        (DeliveryState::Failed, 3, Some("exhausted"))
    );
    assert_eq!(attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(
        attempts[..2]
            .iter()
            .all(|a| a.next_attempt_at.is_some() && a.status_code == Some(500))
    );
    assert!(attempts[2].next_attempt_at.is_none());
    // One webhook-id across every attempt.
    let ids: std::collections::HashSet<_> = rx
        .received()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1);

    // The task is in the DLQ with its reason; the source queue is empty.
    let dead = stack.take_messages(&stack.res.deliveries_dlq_url).await;
    assert_eq!(dead.len(), 1);
    let dead: DeliveryTask = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(
        (dead.delivery_id, dead.dlq_reason.as_deref()),
        (id.clone(), Some("exhausted"))
    );
    assert_eq!(stack.depth(&stack.res.deliveries_queue_url).await, 0);

    // The tenant hears of it through a `delivery.exhausted` event, never sent to the failing endpoint.
    let ops = ops_events(&stack.take_messages(&stack.res.fanout_queue_url).await);
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].envelope.event_type.as_str(), "delivery.exhausted");
    assert_eq!(ops[0].envelope.tenant_id, tenant);
    assert_eq!(ops[0].envelope.data["delivery_id"], json!(id));
    assert_eq!(ops[0].envelope.data["last_status_code"], 500);
    assert_eq!(ops[0].skip_endpoint.as_ref(), Some(&ep.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_failures_and_never_followed() {
    let stack = Stack::new("redirect").await;
    let rx = Receiver::start(|r| {
        if r.path == "/moved" {
            Reply::status(302).header("location", "/target")
        } else {
            Reply::status(200)
        }
    })
    .await
    .unwrap();
    let (tenant, key, ep) = setup(
        &stack,
        &rx.url("/moved"),
        policy(json!({"kind": "fixed", "delay_secs": 60, "max_attempts": 3})),
    )
    .await;
    let id = send_one(&stack, &tenant, &key, &ep).await;
    let r = stack.drain_deliveries(T).await;
    assert_eq!((r.received, r.failed), (1, 1));
    assert_eq!(
        rx.received().iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/moved"],
        "/target never called"
    );
    let rec = record(&stack, &tenant, &id).await;
    assert_eq!((rec.state, rec.last_status_code), (DeliveryState::Retrying, Some(302)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_endpoint_and_tells_the_tenant() {
    let stack = Stack::new("gone").await;
    let rx = Receiver::start(|_| Reply::status(410)).await.unwrap();
    let (tenant, key, ep) = setup(&stack, &rx.url("/hook"), RetryPolicy::default()).await;
    let id = send_one(&stack, &tenant, &key, &ep).await;
    let r = stack.drain_deliveries(T).await;
    assert_eq!((r.received, r.failed), (1, 0), "a final outcome: acknowledged");
    let now = endpoint_now(&stack, &tenant, &ep).await;
    assert!(!now.enabled);
    assert!(now.disabled_reason.as_deref().unwrap().contains("410"));
    assert_eq!(
        record(&stack, &tenant, &id).await.reason.as_deref(),
        Some("endpoint_gone")
    );
    let ops = ops_events(&stack.take_messages(&stack.res.fanout_queue_url).await);
    assert_eq!(
        ops.iter().map(|o| o.envelope.event_type.as_str()).collect::<Vec<_>>(),
        ["endpoint.disabled"]
    );
    assert_eq!(stack.take_messages(&stack.res.deliveries_dlq_url).await.len(), 1);
    // Later events skip the disabled endpoint.
    send_one(&stack, &tenant, &key, &ep).await;
    assert_eq!(
        stack.depth(&stack.res.deliveries_queue_url).await,
        0,
        "fan-out skips disabled endpoints"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_for_429() {
    let stack = Stack::new("retryafter").await;
    let rx = Receiver::start(|_| Reply::status(429).header("retry-after", "6"))
        .await
        .unwrap();
    let (tenant, key, ep) = setup(
        &stack,
        &rx.url("/hook"),
        policy(json!({"kind": "fixed", "delay_secs": 1, "max_attempts": 5})),
    )
    .await;
    let id = send_one(&stack, &tenant, &key, &ep).await;
    stack.drain_deliveries(T).await;
    let (_, attempts) = stack.delivery_log().get_delivery(&tenant, &id).await.unwrap().unwrap();
    let wait = attempts[0].next_attempt_at.unwrap() - attempts[0].at;
    assert_eq!(
        wait,
        time::Duration::seconds(6),
        "the receiver's Retry-After, not our 1 s"
    );
    // And the message really stays invisible that long.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        stack.drain_deliveries(T).await.received,
        0,
        "still invisible well after our own 1 s"
    );
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(stack.drain_deliveries(T).await.received, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_opens_defers_without_calling_then_probes_and_closes() {
    let stack = Stack::new("circuit").await;
    let healthy = Arc::new(AtomicU32::new(0));
    let h = healthy.clone();
    let rx = Receiver::start(move |_| {
        if h.load(Ordering::SeqCst) == 1 {
            Reply::status(200)
        } else {
            Reply::status(500)
        }
    })
    .await
    .unwrap();
    let (tenant, key, ep) = setup(
        &stack,
        &rx.url("/hook"),
        policy(json!({"kind": "fixed", "delay_secs": 1, "max_attempts": 20})),
    )
    .await;
    let mut settings = stack.delivery_settings(T);
    settings.config.circuit.failure_threshold = 2;
    settings.config.circuit.open_for = Duration::from_secs(10);
    let delivery = stack.delivery_with(&settings);

    // Two events fail: the circuit opens.
    let a = send_one(&stack, &tenant, &key, &ep).await;
    let b = send_one(&stack, &tenant, &key, &ep).await;
    let opened = std::time::Instant::now() + T;
    let c = loop {
        stack.drain_deliveries_with(&delivery).await;
        let c = endpoint_now(&stack, &tenant, &ep).await.circuit;
        if c.open_until_ms.is_some() || std::time::Instant::now() > opened {
            break c;
        }
    };
    // At least the threshold: on real DynamoDB the two failures count 2 exactly, but moto
    // applies concurrent updates of one item without isolation, so two failures in one batch
    // can count as 1 and the retries then bring it to 3.
    assert!(c.failures >= 2, "counted {} failures", c.failures);
    assert!(c.open_until_ms.is_some(), "open after the threshold");

    // While open, retries are deferred without calling the endpoint.
    let calls = rx.received().len();
    // The retries come back after 1 s ± 20 % (whole seconds of visibility):
    // well within the 10 s open period.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    stack.drain_deliveries_with(&delivery).await;
    assert_eq!(rx.received().len(), calls, "not called while open");
    let (_, attempts) = stack.delivery_log().get_delivery(&tenant, &a).await.unwrap().unwrap();
    assert_eq!(attempts.last().unwrap().error_kind.as_deref(), Some("circuit_open"));

    // The endpoint recovers; after the open period one delivery probes it and closes the circuit.
    healthy.store(1, Ordering::SeqCst);
    run_deliveries(&stack, &delivery, Duration::from_secs(16)).await;
    for id in [&a, &b] {
        assert_eq!(record(&stack, &tenant, id).await.state, DeliveryState::Succeeded);
    }
    assert_eq!(
        endpoint_now(&stack, &tenant, &ep).await.circuit,
        Default::default(),
        "closed and forgotten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_too_long_is_disabled() {
    let stack = Stack::new("disable").await;
    let rx = Receiver::start(|_| Reply::status(503)).await.unwrap();
    let (tenant, key, ep) = setup(
        &stack,
        &rx.url("/hook"),
        policy(json!({"kind": "fixed", "delay_secs": 1, "max_attempts": 10})),
    )
    .await;
    let mut settings = stack.delivery_settings(T);
    settings.config.circuit.disable_after = Duration::from_secs(2);
    settings.config.circuit.failure_threshold = 100;
    let delivery = stack.delivery_with(&settings);
    let id = send_one(&stack, &tenant, &key, &ep).await;
    run_deliveries(&stack, &delivery, Duration::from_secs(5)).await;
    let now = endpoint_now(&stack, &tenant, &ep).await;
    assert!(!now.enabled, "disabled after failing for the configured period");
    let ops = ops_events(&stack.take_messages(&stack.res.fanout_queue_url).await);
    assert_eq!(
        ops.iter().map(|o| o.envelope.event_type.as_str()).collect::<Vec<_>>(),
        ["endpoint.disabled"]
    );
    // Its pending task comes back once more and is skipped.
    run_deliveries(&stack, &delivery, Duration::from_secs(3)).await;
    assert_eq!(record(&stack, &tenant, &id).await.state, DeliveryState::Skipped);
    assert_eq!(stack.depth(&stack.res.deliveries_queue_url).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_sends_two_signatures_that_verify_with_the_public_library() {
    let stack = Stack::new("rotate").await;
    let rx = Receiver::ok().await.unwrap();
    let (tenant, key, mut ep) = setup(&stack, &rx.url("/hook"), RetryPolicy::default()).await;
    let old = ep.secret.clone();
    let new = ep
        .rotate_secret(switchyard_core::time_util::now_utc(), time::Duration::hours(24))
        .clone();
    ep.headers = CustomHeaders::parse([("x-team".to_string(), "billing".to_string())].into()).unwrap();
    stack.registry.put_endpoint(&ep).await.unwrap();
    send_one(&stack, &tenant, &key, &ep).await;
    stack.drain_deliveries(T).await;
    let got = rx.wait_for(1, T).await;
    let req = &got[0];
    assert_eq!(req.header("webhook-signature").unwrap().split(' ').count(), 2);
    assert_verifies(req, &old);
    assert_verifies(req, &new);
    assert_eq!(req.header("x-team"), Some("billing"));
    assert!(req.header("user-agent").unwrap().starts_with("Switchyard/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_urls_are_never_called() {
    let stack = Stack::new("ssrf").await;
    let rx = Receiver::ok().await.unwrap();
    // A loopback address is refused when loopback is not allow-listed.
    let (tenant, key, ep) = setup(&stack, &rx.url("/hook"), RetryPolicy::default()).await;
    let mut settings = stack.delivery_settings(T);
    settings.config.ssrf = switchyard_core::ssrf::SsrfPolicy {
        allow_http: true,
        allow: vec![],
    };
    let delivery = stack.delivery_with(&settings);
    let id = send_one(&stack, &tenant, &key, &ep).await;
    stack.drain_deliveries_with(&delivery).await;
    assert!(rx.received().is_empty());
    let (r, attempts) = stack.delivery_log().get_delivery(&tenant, &id).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.reason.as_deref()),
        (DeliveryState::Failed, Some("url_refused"))
    );
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(error.contains("loopback"), "{error}");
    assert_eq!(stack.take_messages(&stack.res.deliveries_dlq_url).await.len(), 1);
}

/// Receivers that misbehave: a 50 MB body, a body dripped a byte every
/// 100 ms, no answer at all, and a 429 asking for a day. Each attempt ends
/// within the request timeout, keeps at most the first KB of a body, and
/// is recorded with what happened; the long `Retry-After` is capped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_receivers_are_cut_off_and_recorded() {
    let stack = Stack::new("misbehave").await;
    let timeout = Duration::from_secs(2);
    let delivery = stack.delivery(timeout);
    let big = "b".repeat(50 * 1024 * 1024);
    let rx = Receiver::start(move |r| match r.path.as_str() {
        "/big" => Reply::status(200).body(big.clone()),
        "/drip" => Reply::status(200).body("d").drip(600, Duration::from_millis(100)),
        "/never" => Reply::status(200).after(Duration::from_secs(120)),
        _ => Reply::status(429).header("retry-after", "86400"),
    })
    .await
    .unwrap();
    let fixed = || policy(json!({"kind": "fixed", "delay_secs": 1, "max_attempts": 5}));
    for path in ["/big", "/drip", "/never", "/day"] {
        let (tenant, key, ep) = setup(&stack, &rx.url(path), fixed()).await;
        let id = send_one(&stack, &tenant, &key, &ep).await;
        stack.drain_deliveries_with(&delivery).await;
        let (d, attempts) = stack.delivery_log().get_delivery(&tenant, &id).await.unwrap().unwrap();
        // The first attempt (an earlier scenario's retry may run meanwhile:
        // the queue is shared).
        let a = &attempts[0];
        assert!(
            a.duration_ms <= timeout.as_millis() as u64 + 500,
            "{path}: the attempt took {} ms, past the {timeout:?} timeout",
            a.duration_ms
        );
        let kept = a.response_body.as_deref().unwrap_or("").len();
        assert!(
            kept <= switchyard_core::delivery::MAX_RECORDED_BODY,
            "{path}: kept {kept} bytes"
        );
        match path {
            // The status came first: delivered, whatever the body did.
            "/big" | "/drip" => {
                assert_eq!(
                    (d.state, a.status_code),
                    (DeliveryState::Succeeded, Some(200)),
                    "{path}: {a:?}"
                );
                assert!(kept > 0, "{path}: the start of the body is kept");
            }
            "/never" => {
                assert_eq!(d.state, DeliveryState::Retrying, "{a:?}");
                assert_eq!(a.error_kind.as_deref(), Some("timeout"), "{a:?}");
            }
            _ => {
                assert_eq!((d.state, a.status_code), (DeliveryState::Retrying, Some(429)), "{a:?}");
                let wait = a.next_attempt_at.unwrap() - a.at;
                assert_eq!(
                    wait,
                    time::Duration::try_from(switchyard_core::retry::MAX_RETRY_AFTER).unwrap(),
                    "a day asked, the cap granted"
                );
            }
        }
    }
}

/// A receiver that stops answering: its attempt stalls after half the
/// request timeout and holds the endpoint's circuit open in the registry, so
/// the next delivery to it (as another invocation would) is deferred without
/// calling it, where five failures, each a whole timeout, were needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_receiver_holds_its_circuit_and_its_next_delivery_waits_without_a_call() {
    let stack = Stack::new("stall").await;
    let timeout = Duration::from_secs(2);
    let mut settings = stack.delivery_settings(timeout);
    settings.config.probe_window = Duration::from_secs(120);
    let delivery = stack.delivery_with(&settings);
    let rx = Receiver::start(|_| Reply::status(200).after(Duration::from_secs(120)))
        .await
        .unwrap();
    let later = policy(json!({"kind": "fixed", "delay_secs": 600, "max_attempts": 5}));
    let (tenant, key, ep) = setup(&stack, &rx.url("/never"), later).await;
    let first = send_one(&stack, &tenant, &key, &ep).await;
    stack.drain_deliveries_with(&delivery).await;
    let held = endpoint_now(&stack, &tenant, &ep).await.circuit;
    assert_eq!(held.failures, 1, "{held:?}");
    assert!(
        held.open_until_ms.is_some(),
        "held open after one stalled attempt: {held:?}"
    );
    let (_, attempts) = stack
        .delivery_log()
        .get_delivery(&tenant, &first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attempts[0].error_kind.as_deref(), Some("timeout"), "{attempts:?}");

    let second = send_one(&stack, &tenant, &key, &ep).await;
    stack.drain_deliveries_with(&delivery).await;
    let (d, attempts) = stack
        .delivery_log()
        .get_delivery(&tenant, &second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.state, DeliveryState::Retrying);
    assert_eq!(attempts[0].error_kind.as_deref(), Some("circuit_open"), "{attempts:?}");
    assert!(attempts[0].next_attempt_at.is_some());
    assert_eq!(rx.received().len(), 1, "the endpoint was called once");
}

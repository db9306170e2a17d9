//! The AWS adapters against moto: batching limits, conditional writes, the
//! event bus.
//!
//! Kept whole past 600 lines: one topic (shared/aws's adapters against moto),
//! each test a short, independent check of one adapter.

use std::collections::HashSet;
use switchyard_aws::aws_sdk_eventbridge;
use switchyard_aws::eventbridge::EventBridgeBus;
use switchyard_aws::sqs::SqsQueue;
use switchyard_core::envelope::{IngestLimits, Source, parse_event};
use switchyard_core::model::{EventRecord, InsertOutcome};
use switchyard_core::ports::DeliveryQueries;
use switchyard_core::ports::{EventBus, EventStore, Registry, TaskQueue};
use switchyard_core::{Envelope, FanoutTask, TenantId};
use switchyard_tests::Stack;

fn envelope(tenant: &TenantId, id: &str, event_type: &str) -> Envelope {
    let body = format!(r#"{{"id":"{id}","type":"{event_type}","data":{{"n":"{id}"}}}}"#);
    parse_event(
        body.as_bytes(),
        tenant.clone(),
        &Source::parse("api").unwrap(),
        time::OffsetDateTime::now_utc(),
        IngestLimits::default(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_queue_sends_every_task_in_batches_of_ten() {
    let stack = Stack::new("sqsq").await;
    let tenant = TenantId::parse("t1").unwrap();
    let tasks: Vec<FanoutTask> = (0..23)
        .map(|i| FanoutTask::new(envelope(&tenant, &format!("evt_{i}"), "a.b")))
        .collect();
    let queue = SqsQueue::<FanoutTask>::new(stack.sqs.clone(), &stack.res.fanout_queue_url);
    queue.send_all(&tasks).await.unwrap();
    let bodies = stack.take_messages(&stack.res.fanout_queue_url).await;
    let got: HashSet<String> = bodies
        .iter()
        .map(|b| serde_json::from_str::<FanoutTask>(b).unwrap().envelope.id.to_string())
        .collect();
    assert_eq!(got, (0..23).map(|i| format!("evt_{i}")).collect::<HashSet<_>>());

    let missing = SqsQueue::<FanoutTask>::new(stack.sqs.clone(), format!("{}-nope", stack.res.fanout_queue_url));
    let err = missing.send_all(&tasks[..1]).await.unwrap_err();
    assert!(!err.retryable, "a missing queue is not worth retrying: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_store_inserts_once_per_tenant_and_id() {
    let stack = Stack::new("evstore").await;
    let store = stack.event_store();
    let t1 = TenantId::parse("t1").unwrap();
    let now = switchyard_core::time_util::now_utc();
    let record = EventRecord {
        envelope: envelope(&t1, "evt_x", "a.b"),
        received_at: now,
        expires_at: switchyard_core::time_util::whole_seconds(now + time::Duration::days(1)),
    };
    assert_eq!(store.insert_event(&record).await.unwrap(), InsertOutcome::Inserted);
    // A repeat (a later request with the same id) finds the first.
    let repeat = EventRecord {
        received_at: now + time::Duration::milliseconds(3),
        ..record.clone()
    };
    match store.insert_event(&repeat).await.unwrap() {
        InsertOutcome::Exists(existing) => assert_eq!(*existing, record),
        other => panic!("expected Exists, got {other:?}"),
    }
    // The very same write again is that write (its answer was lost), not a
    // repeat.
    assert_eq!(store.insert_event(&record).await.unwrap(), InsertOutcome::Inserted);
    // The read before a hand-over finds it while it lives, and not after.
    let id = &record.envelope.id;
    assert_eq!(store.find_event(&t1, id, now).await.unwrap(), Some(record.clone()));
    assert_eq!(store.find_event(&t1, id, record.expires_at).await.unwrap(), None);
    let unknown = switchyard_core::EventId::parse("evt_none").unwrap();
    assert_eq!(store.find_event(&t1, &unknown, now).await.unwrap(), None);
    // Another tenant's event with the same id is its own.
    let t2 = TenantId::parse("t2").unwrap();
    let other = EventRecord {
        envelope: envelope(&t2, "evt_x", "a.b"),
        ..record.clone()
    };
    assert_eq!(store.insert_event(&other).await.unwrap(), InsertOutcome::Inserted);
    assert_eq!(store.find_event(&t2, id, now).await.unwrap(), Some(other));

    // Writes whose answer is lost on the way back: the SDK sends them again
    // and finds its own write in the way. The event is inserted (not a
    // duplicate, which would answer `"duplicate": true` to its first
    // request) and the key claimed.
    use switchyard_core::model::{ClaimOutcome, KeyClaim};
    use switchyard_local::aws_proxy::{AwsProxy, Fault, Faults};
    let proxy = AwsProxy::start(switchyard_tests::moto_endpoint()).await.unwrap();
    let via_proxy = switchyard_aws::dynamo::DynamoEventStore::new(
        switchyard_aws::aws_sdk_dynamodb::Client::new(&switchyard_local::sdk_config(&proxy.endpoint()).await),
        &stack.res.deliveries_table,
    );
    let lose_one_answer = || {
        proxy.set_faults(Faults {
            rate: 1.0,
            kinds: vec![Fault::LoseResponse],
            only: vec!["dynamodb:PutItem".into()],
            limit: Some(1),
        })
    };
    lose_one_answer();
    let lost = EventRecord {
        envelope: envelope(&t1, "evt_lost_answer", "a.b"),
        ..record.clone()
    };
    assert_eq!(via_proxy.insert_event(&lost).await.unwrap(), InsertOutcome::Inserted);
    assert_eq!(
        proxy.tally().faults.get("LoseResponse"),
        Some(&1),
        "the answer was lost"
    );
    proxy.reset();
    lose_one_answer();
    let claim = KeyClaim {
        tenant: t1.clone(),
        key_digest: "lost-answer".into(),
        event_id: lost.envelope.id.clone(),
        now,
        expires_at: record.expires_at,
    };
    assert_eq!(via_proxy.claim_key(&claim).await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(
        proxy.tally().faults.get("LoseResponse"),
        Some(&1),
        "the answer was lost"
    );
    // A later claim of the key by another event finds it held.
    let later = KeyClaim {
        event_id: switchyard_core::EventId::parse("evt_other").unwrap(),
        now: now + time::Duration::seconds(1),
        ..claim
    };
    assert_eq!(
        store.claim_key(&later).await.unwrap(),
        ClaimOutcome::Held(lost.envelope.id.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_reads_only_the_tenants_own_endpoints() {
    let stack = Stack::new("registry").await;
    let (a, _) = stack.tenant("a").await;
    let (ab, _) = stack.tenant("ab").await;
    let mut mine = Vec::new();
    for i in 0..30 {
        mine.push(
            stack
                .endpoint(&a, &format!("https://93.184.216.34/{i}"), &["user.*"])
                .await
                .id,
        );
    }
    let foreign = stack.endpoint(&ab, "https://93.184.216.35/", &[]).await;
    let got = stack.registry.routes(&a).await.unwrap();
    assert_eq!(got.len(), 30);
    assert!(got.iter().all(|e| e.tenant_id == a));
    assert_eq!(
        got.iter().map(|e| e.id.clone()).collect::<HashSet<_>>(),
        mine.into_iter().collect()
    );
    assert!(
        stack.registry.endpoint(&a, &foreign.id).await.unwrap().is_none(),
        "another tenant's endpoint is invisible"
    );
    assert_eq!(
        stack.registry.endpoint(&ab, &foreign.id).await.unwrap().unwrap(),
        foreign
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_bus_publishes_every_envelope_to_its_rule_targets() {
    let stack = Stack::new("bus").await;
    let eb = aws_sdk_eventbridge::Client::new(&stack.sdk);
    let bus = format!("{}-publish-test-bus", stack.res.prefix);
    eb.create_event_bus().name(&bus).send().await.unwrap();
    let target_url = stack
        .rule_to_queue(
            &bus,
            "user-events",
            r#"{"source":["switchyard.user"],"detail-type":["user.created","user.deleted"]}"#,
        )
        .await;

    let tenant = TenantId::parse("t1").unwrap();
    let mut events: Vec<Envelope> = (0..23)
        .map(|i| envelope(&tenant, &format!("evt_u{i}"), "user.created"))
        .collect();
    events.extend((0..4).map(|i| envelope(&tenant, &format!("evt_o{i}"), "order.placed")));
    EventBridgeBus::new(eb.clone(), &bus).publish(&events).await.unwrap();

    let bodies = stack.take_messages(&target_url).await;
    let ids: HashSet<String> = bodies
        .iter()
        .map(|b| {
            let v: serde_json::Value = serde_json::from_str(b).unwrap();
            assert_eq!(v["source"], "switchyard.user");
            assert_eq!(v["detail-type"], "user.created");
            // The priority is always filled in (user.created's default is 8).
            assert_eq!(v["detail"]["routing"]["priority"], 8);
            serde_json::from_value::<Envelope>(v["detail"].clone())
                .unwrap()
                .id
                .to_string()
        })
        .collect();
    assert_eq!(
        ids,
        (0..23).map(|i| format!("evt_u{i}")).collect::<HashSet<_>>(),
        "every user event, no order event"
    );

    let err = EventBridgeBus::new(eb, format!("{bus}-missing"))
        .publish(&events[..1])
        .await;
    assert!(err.is_err(), "a missing bus is an error, not a silent drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_refuses_urls_the_ssrf_policy_forbids() {
    use switchyard_aws::dynamo::RegistrationError;
    use switchyard_core::{Endpoint, EndpointUrl, ssrf::SsrfPolicy};
    let stack = Stack::new("register").await;
    let (tenant, _) = stack.tenant("acme").await;
    let strict = SsrfPolicy::strict();
    let now = switchyard_core::time_util::now_utc();
    let refused = [
        "http://93.184.216.34/hook",       // plain http
        "https://10.0.0.1/hook",           // private
        "https://169.254.169.254/latest/", // cloud metadata
        "https://2130706433/hook",         // 127.0.0.1 in decimal
        "https://0x7f.0.0.1/hook",         // hex
        "https://0177.0.0.1/hook",         // octal
        "https://[::ffff:127.0.0.1]/hook", // IPv4-mapped IPv6
        "https://[fd00::1]/hook",          // unique local
        "https://100.64.0.1/hook",         // CGNAT
        "https://localhost/hook",          // a local name
        "https://ip6-localhost/hook",      // ::1 where /etc/hosts names it, else unresolvable
    ];
    for u in refused {
        let ep = Endpoint::new(tenant.clone(), EndpointUrl::parse(u).unwrap(), vec![], now);
        match stack.registry.register_endpoint(&ep, &strict).await {
            Err(RegistrationError::Refused(_) | RegistrationError::Unresolvable(_)) => {}
            other => panic!("{u} was not refused: {other:?}"),
        }
        assert!(
            stack.registry.endpoint(&tenant, &ep.id).await.unwrap().is_none(),
            "{u} was stored"
        );
    }
    // A public address literal is accepted; so is loopback when allow-listed (local mode).
    let ok = Endpoint::new(
        tenant.clone(),
        EndpointUrl::parse("https://93.184.216.34/hook").unwrap(),
        vec![],
        now,
    );
    stack.registry.register_endpoint(&ok, &strict).await.unwrap();
    assert!(stack.registry.endpoint(&tenant, &ok.id).await.unwrap().is_some());
    let local = Endpoint::new(
        tenant.clone(),
        EndpointUrl::parse("http://localhost:9/hook").unwrap(),
        vec![],
        now,
    );
    stack
        .registry
        .register_endpoint(&local, &switchyard_local::local_ssrf_policy())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_log_never_lets_a_stale_write_undo_a_newer_one() {
    use switchyard_core::model::{AttemptRecord, DeliveryRecord, DeliveryState, Trigger};
    use switchyard_core::ports::DeliveryLog;
    use switchyard_core::{DeliveryId, EndpointId, EventId, EventType};
    let stack = Stack::new("log-order").await;
    let log = stack.delivery_log();
    let now = switchyard_core::time_util::now_utc();
    let tenant = TenantId::parse("t1").unwrap();
    let (ep, evt) = (EndpointId::parse("ep_1").unwrap(), EventId::parse("evt_1").unwrap());
    let id = DeliveryId::derive(&tenant, &evt, &ep);
    let record = |attempts: u32, state: DeliveryState| DeliveryRecord {
        delivery_id: id.clone(),
        tenant_id: tenant.clone(),
        endpoint_id: ep.clone(),
        event_id: evt.clone(),
        event_type: EventType::parse("a.b").unwrap(),
        state,
        attempts,
        round_attempts: attempts,
        last_status_code: None,
        last_duration_ms: None,
        manual_request: None,
        reason: None,
        next_attempt_at: None,
        created_at: now,
        updated_at: now,
        first_attempt: None,
        task_generation: 0,
        operational: false,
    };
    let attempt = |n: u32, ok: bool| AttemptRecord {
        delivery_id: id.clone(),
        attempt: n,
        at: now,
        succeeded: ok,
        status_code: Some(if ok { 200 } else { 500 }),
        duration_ms: 1,
        error_kind: None,
        error: None,
        response_body: None,
        next_attempt_at: None,
        trigger: Trigger::Scheduled,
    };
    log.record_attempt(&record(1, DeliveryState::Retrying), &attempt(1, false))
        .await
        .unwrap();
    log.record_attempt(&record(2, DeliveryState::Succeeded), &attempt(2, true))
        .await
        .unwrap();
    // A stale duplicate of the task made attempt 2 as well and failed: it
    // must not turn the succeeded delivery back into a retrying one.
    let stale = log
        .record_attempt(&record(2, DeliveryState::Retrying), &attempt(2, false))
        .await
        .unwrap_err();
    assert!(stale.retryable, "{stale}");
    assert!(log.record_delivery(&record(1, DeliveryState::Skipped)).await.is_err());
    let (d, attempts) = log.get_delivery(&tenant, &id).await.unwrap().unwrap();
    assert_eq!((d.state, d.attempts), (DeliveryState::Succeeded, 2));
    assert_eq!(attempts.len(), 2);
    assert!(attempts[1].succeeded, "the recorded attempt 2 is the real one");
    // A state change without a new attempt (same count) is allowed.
    log.record_delivery(&record(2, DeliveryState::Failed)).await.unwrap();

    // A write whose answer is lost on the way back: the SDK sends it again,
    // finds its own write in the way, and that is a success, not a stale
    // write (which would leave the task to come back after the queue's
    // visibility timeout, minutes later).
    use switchyard_local::aws_proxy::{AwsProxy, Fault, Faults};
    let proxy = AwsProxy::start(switchyard_tests::moto_endpoint()).await.unwrap();
    let via_proxy = switchyard_aws::dynamo::DynamoDeliveryLog::new(
        switchyard_aws::aws_sdk_dynamodb::Client::new(&switchyard_local::sdk_config(&proxy.endpoint()).await),
        &stack.res.deliveries_table,
        time::Duration::days(30),
    );
    proxy.set_faults(Faults {
        rate: 1.0,
        kinds: vec![Fault::LoseResponse],
        only: vec!["dynamodb:PutItem".into()],
        limit: Some(1),
    });
    via_proxy
        .record_attempt(&record(3, DeliveryState::Succeeded), &attempt(3, true))
        .await
        .unwrap();
    assert_eq!(
        proxy.tally().faults.get("LoseResponse"),
        Some(&1),
        "the answer was lost once"
    );
    let (d, attempts) = log.get_delivery(&tenant, &id).await.unwrap().unwrap();
    assert_eq!((d.state, d.attempts, attempts.len()), (DeliveryState::Succeeded, 3, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_attempt_is_kept_in_the_delivery_item_and_later_ones_beside_it() {
    use switchyard_core::model::{AttemptRecord, DeliveryRecord, DeliveryState, Trigger};
    use switchyard_core::ports::DeliveryLog;
    use switchyard_core::{DeliveryId, EndpointId, EventId, EventType};
    let stack = Stack::new("log-first").await;
    let log = stack.delivery_log();
    let now = switchyard_core::time_util::now_utc();
    let tenant = TenantId::parse("t1").unwrap();
    let (ep, evt) = (EndpointId::parse("ep_1").unwrap(), EventId::parse("evt_1").unwrap());
    let id = DeliveryId::derive(&tenant, &evt, &ep);
    let attempt = |n: u32, ok: bool| AttemptRecord {
        delivery_id: id.clone(),
        attempt: n,
        at: now + time::Duration::seconds(n.into()),
        succeeded: ok,
        status_code: Some(if ok { 200 } else { 503 }),
        duration_ms: 10 + u64::from(n),
        error_kind: (!ok).then(|| "http_status".to_string()),
        error: None,
        response_body: Some(format!("answer {n}")),
        next_attempt_at: None,
        trigger: Trigger::Scheduled,
    };
    let mut record = DeliveryRecord {
        delivery_id: id.clone(),
        tenant_id: tenant.clone(),
        endpoint_id: ep.clone(),
        event_id: evt.clone(),
        event_type: EventType::parse("a.b").unwrap(),
        state: DeliveryState::Succeeded,
        attempts: 1,
        round_attempts: 1,
        last_status_code: Some(200),
        last_duration_ms: Some(11),
        manual_request: None,
        reason: None,
        next_attempt_at: None,
        created_at: now,
        updated_at: now,
        first_attempt: Some(attempt(1, true)),
        task_generation: 0,
        operational: false,
    };
    // The items under the delivery's partition key, by sort key.
    let items = || async {
        let pk = switchyard_aws::dynamo::keys::deliveries::delivery(&tenant, &id)
            .unwrap()
            .pk;
        let mut sks: Vec<String> = stack
            .scan(&stack.res.deliveries_table)
            .await
            .into_iter()
            .filter(|i| i.get("pk").and_then(|v| v.as_s().ok()) == Some(&pk))
            .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned())
            .collect();
        sks.sort();
        sks
    };
    log.record_attempt(&record, &attempt(1, true)).await.unwrap();
    let delivery_sk = format!("DELIVERY#{id}");
    assert_eq!(
        items().await,
        std::slice::from_ref(&delivery_sk),
        "a first attempt is one item"
    );
    let (d, attempts) = log.get_delivery(&tenant, &id).await.unwrap().unwrap();
    assert_eq!((d.attempts, attempts), (1, vec![attempt(1, true)]));

    // Replayed: attempt 2 fails, attempt 3 succeeds. The first stays in the
    // record, carried forward; the later ones are their own items.
    for (n, ok) in [(2, false), (3, true)] {
        record.attempts = n;
        record.state = if ok {
            DeliveryState::Succeeded
        } else {
            DeliveryState::Retrying
        };
        log.record_attempt(&record, &attempt(n, ok)).await.unwrap();
    }
    assert_eq!(
        items().await,
        [
            format!("ATTEMPT#{id}#000002"),
            format!("ATTEMPT#{id}#000003"),
            delivery_sk
        ]
    );
    let (d, attempts) = log.get_delivery(&tenant, &id).await.unwrap().unwrap();
    assert_eq!(d.first_attempt, Some(attempt(1, true)));
    assert_eq!(attempts, vec![attempt(1, true), attempt(2, false), attempt(3, true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_slots_are_counted_per_endpoint_and_second() {
    use switchyard_core::EndpointId;
    use switchyard_core::ports::RateLimiter;
    let stack = Stack::new("rate").await;
    let t = TenantId::parse("t1").unwrap();
    let (a, b) = (EndpointId::parse("ep_a").unwrap(), EndpointId::parse("ep_b").unwrap());
    let r = &stack.registry;
    let mut taken = Vec::new();
    for _ in 0..3 {
        taken.push(r.take_slot(&t, &a, 1_800_000_000, 2).await.unwrap());
    }
    assert_eq!(taken, [true, true, false], "two a second");
    assert!(
        r.take_slot(&t, &b, 1_800_000_000, 2).await.unwrap(),
        "another endpoint has its own"
    );
    assert!(
        r.take_slot(&t, &a, 1_800_000_001, 2).await.unwrap(),
        "the next second starts again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_holds_the_circuit_open_but_never_shortens_an_open_period() {
    use switchyard_core::ports::EndpointHealth;
    let stack = Stack::new("hold").await;
    let (t, _) = stack.tenant("t1").await;
    let ep = stack.endpoint(&t, "https://93.184.216.34/", &[]).await;
    let r = &stack.registry;
    let now_ms = switchyard_core::time_util::now_utc().unix_timestamp() * 1000;
    let open_until = async || r.endpoint(&t, &ep.id).await.unwrap().unwrap().circuit.open_until_ms;
    assert!(
        r.hold_circuit(&t, &ep.id, now_ms + 20_000).await.unwrap(),
        "a closed circuit is held"
    );
    assert_eq!(open_until().await, Some(now_ms + 20_000));
    assert_eq!(
        r.open_circuits(now_ms).await.unwrap(),
        1,
        "counted as open by the monitor"
    );
    assert!(
        r.hold_circuit(&t, &ep.id, now_ms + 25_000).await.unwrap(),
        "a later stall extends it"
    );
    assert!(
        !r.hold_circuit(&t, &ep.id, now_ms + 10_000).await.unwrap(),
        "an earlier one does not shorten it"
    );
    assert_eq!(open_until().await, Some(now_ms + 25_000));
    r.reset_circuit(&t, &ep.id).await.unwrap();
    assert_eq!(open_until().await, None);
    assert_eq!(r.open_circuits(now_ms).await.unwrap(), 0);
    let gone = switchyard_core::EndpointId::parse("ep_gone").unwrap();
    assert!(
        !r.hold_circuit(&t, &gone, now_ms + 20_000).await.unwrap(),
        "no endpoint, nothing held"
    );
}

/// Keeps the body of every DynamoDB request the client sends, and of every
/// response it receives.
#[derive(Debug, Clone, Default)]
struct Recorded {
    requests: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    responses: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Recorded {
    /// A registry on `stack`'s table whose client records through `self`.
    fn registry(&self, stack: &Stack) -> switchyard_aws::dynamo::DynamoRegistry {
        let config = switchyard_aws::aws_sdk_dynamodb::config::Builder::from(&stack.sdk)
            .interceptor(self.clone())
            .build();
        switchyard_aws::dynamo::DynamoRegistry::new(
            switchyard_aws::aws_sdk_dynamodb::Client::from_conf(config),
            &stack.res.registry_table,
        )
    }
}

impl switchyard_aws::aws_sdk_dynamodb::config::Intercept for Recorded {
    fn name(&self) -> &'static str {
        "Recorded"
    }
    fn read_before_transmit(
        &self,
        context: &switchyard_aws::aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &switchyard_aws::aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut switchyard_aws::aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), switchyard_aws::aws_sdk_dynamodb::error::BoxError> {
        let body = context.request().body().bytes().unwrap_or_default();
        self.requests
            .lock()
            .unwrap()
            .push(serde_json::from_slice(body).unwrap_or_default());
        Ok(())
    }
    fn read_after_deserialization(
        &self,
        context: &switchyard_aws::aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef<'_>,
        _: &switchyard_aws::aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut switchyard_aws::aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), switchyard_aws::aws_sdk_dynamodb::error::BoxError> {
        let body = context.response().body().bytes().unwrap_or_default();
        self.responses
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(body).into_owned());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_reads_no_secret_url_or_header_of_an_endpoint() {
    let stack = Stack::new("routes").await;
    let (a, _) = stack.tenant("a").await;
    let mut ep = stack
        .endpoint(&a, "https://93.184.216.34/very-private-path", &["user.*"])
        .await;
    ep.headers = serde_json::from_value(serde_json::json!({"x-receiver-token": "hdr-value-sekrit"})).unwrap();
    ep.rotate_secret(switchyard_core::time_util::now_utc(), time::Duration::hours(1));
    stack.registry.put_endpoint(&ep).await.unwrap();

    let seen = Recorded::default();
    let registry = seen.registry(&stack);
    let routes = registry.routes(&a).await.unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0], switchyard_core::endpoint::EndpointRoute::from(&ep));

    let bodies = seen.responses.lock().unwrap().join("\n");
    assert!(bodies.contains(ep.id.as_str()), "the read came through the interceptor");
    let (current, retired) = (ep.secret.expose(), ep.previous_secrets[0].secret.expose());
    for private in [
        current.as_str(),
        retired.as_str(),
        "hdr-value-sekrit",
        "very-private-path",
    ] {
        assert!(!bodies.contains(private), "fan-out's read returned {private}");
    }
}

/// The delivery role may update only tenants' items, and only the
/// attributes template.yaml lists (`dynamodb:LeadingKeys`,
/// `dynamodb:Attributes`). Every update delivery's ports make (the circuit,
/// disabling, rate slots, notice windows) must keep to both, or it would be
/// refused in AWS; and the template must list exactly what the code says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_updates_only_the_attributes_its_role_allows() {
    use switchyard_core::ports::{EndpointHealth, RateLimiter};
    let template = switchyard_local::template::workspace_template().unwrap();
    let statement = template["Resources"]["DeliveryFunction"]["Properties"]["Policies"][0]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "EndpointHealth")
        .expect("the EndpointHealth statement")
        .clone();
    let allowed: HashSet<String> = statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]
        .as_array()
        .expect("an attribute list")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let code: HashSet<String> = switchyard_aws::dynamo::DELIVERY_UPDATES
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(allowed, code, "template.yaml and DELIVERY_UPDATES differ");
    assert_eq!(
        statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
        serde_json::json!([switchyard_aws::dynamo::DELIVERY_UPDATES_LEADING_KEYS])
    );

    let stack = Stack::new("delivery-iam").await;
    let (a, _) = stack.tenant("a").await;
    let ep = stack.endpoint(&a, "https://93.184.216.34/", &[]).await;
    let seen = Recorded::default();
    let registry = seen.registry(&stack);
    // Every update delivery makes, in the order a failing endpoint sees them.
    let now = 1_000_000;
    registry.record_failure(&a, &ep.id, now).await.unwrap();
    assert!(registry.open_circuit(&a, &ep.id, 1, now, now + 1000).await.unwrap());
    registry.hold_circuit(&a, &ep.id, now + 2000).await.unwrap();
    assert!(registry.claim_probe(&a, &ep.id, now + 2000, now + 3000).await.unwrap());
    registry.reset_circuit(&a, &ep.id).await.unwrap();
    assert!(registry.take_slot(&a, &ep.id, now / 1000, 5).await.unwrap());
    assert!(registry.take_notice(&a, Some(&ep.id), now, 300, 5).await.unwrap());
    assert!(registry.take_notice(&a, None, now, 3600, 5).await.unwrap());
    assert!(registry.disable(&a, &ep.id, "gone").await.unwrap());

    let requests = seen.requests.lock().unwrap().clone();
    let updates: Vec<&serde_json::Value> = requests
        .iter()
        .filter(|r| r.get("UpdateExpression").is_some())
        .collect();
    assert_eq!(updates.len(), 9, "{requests:?}");
    for update in updates {
        let names = update["ExpressionAttributeNames"].as_object().unwrap().values();
        let keys = update["Key"].as_object().unwrap().keys();
        for name in names.map(|v| v.as_str().unwrap()).chain(keys.map(String::as_str)) {
            assert!(
                allowed.contains(name),
                "delivery updates `{name}`, which its role may not: {update}"
            );
        }
        let pk = update["Key"]["pk"]["S"].as_str().unwrap();
        assert!(pk.starts_with("TENANT#"), "delivery updates item {pk}");
    }
}

//! The internal track against moto: ingest publishes to the bus, the
//! template's rules fill the domain queues, and the consumer function runs
//! the typed handlers and workflows over them with Lambda's partial-batch
//! semantics.

use serde_json::{Value, json};
use std::time::Duration;
use switchyard_core::TenantId;
use switchyard_core::ports::EventQueries;
use switchyard_flow::workflow::{RecordRef, RunKey, StateReader};
use switchyard_local::http_api::post_event;
use switchyard_local::resources::QueueOptions;
use switchyard_tests::{Stack, bus_message, json_body};

async fn record(stack: &Stack, tenant: &str, kind: &str, id: &str) -> Option<serde_json::Map<String, Value>> {
    let t = TenantId::parse(tenant).unwrap();
    stack.state_store().get(&t, &RecordRef::new(kind, id)).await.unwrap()
}

async fn put(stack: &Stack, tenant: &str, kind: &str, id: &str, fields: Value) {
    let t = TenantId::parse(tenant).unwrap();
    let Value::Object(fields) = fields else { panic!() };
    stack
        .state_store()
        .put_record(&t, &RecordRef::new(kind, id), &fields)
        .await
        .unwrap();
}

fn int(r: &Option<serde_json::Map<String, Value>>, field: &str) -> i64 {
    r.as_ref()
        .and_then(|m| m.get(field))
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no integer {field} in {r:?}"))
}

fn order(order_id: &str, country: &str) -> Value {
    json!({
        "order_id": order_id,
        "items": [
            {"sku": "sku-mug", "quantity": 2, "unit_price_cents": 1250},
            {"sku": "sku-tee", "quantity": 1, "unit_price_cents": 2000},
            {"sku": "sku-mug", "quantity": 1, "unit_price_cents": 1250}
        ],
        "ship_to": {"country": country},
        "customer_email": "ada@example.com"
    })
}

async fn seed_stock(stack: &Stack, tenant: &str) {
    put(stack, tenant, "STOCK", "sku-mug", json!({"available": 10})).await;
    put(
        stack,
        tenant,
        "STOCK",
        "sku-tee",
        json!({"available": 5, "reserved": 1}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingested_events_reach_their_domain_queue_and_its_handlers() {
    let stack = Stack::new("internal-e2e").await;
    let (_, key) = stack.tenant("acme").await;
    seed_stock(&stack, "acme").await;
    put(
        &stack,
        "acme",
        "SHIPPING_RATE",
        "NZ",
        json!({"base_cents": 500, "per_item_cents": 100}),
    )
    .await;
    let mut settings = stack.ingest_settings();
    settings.event_bus_name = Some(stack.res.event_bus_name.clone());
    let ingest = stack.ingest_with(&settings);
    let events = [
        ("evt_order", "order.created", order("ord_1", "nz")),
        (
            "evt_user",
            "user.created",
            json!({"user_id": "usr_1", "email": "ada@example.com"}),
        ),
        (
            "evt_pay",
            "payment.completed",
            json!({"payment_id": "pay_1", "amount_cents": 4200, "currency": "eur"}),
        ),
        ("evt_low", "inventory.low", json!({"sku": "sku-tee", "available": 4})),
        (
            "evt_breach",
            "security.breach_detected",
            json!({"severity": "critical"}),
        ),
        ("evt_click", "analytics.track", json!({"page": "/"})),
    ];
    for (id, t, data) in &events {
        let body = json!({"id": id, "type": t, "data": data, "routing": {"external": false}}).to_string();
        let resp = ingest.handle(post_event(key.expose(), &body)).await;
        assert_eq!(resp.status_code, 202, "{id}: {}", json_body(&resp));
    }

    let consumer = stack.consumer(Duration::from_secs(1));
    // Each domain queue holds its own events only, and its handlers run.
    let expect = [
        ("InternalOrderQueue", 1, 0),
        ("InternalUserQueue", 1, 0),
        ("InternalPaymentQueue", 1, 0),
        ("InternalInventoryQueue", 1, 0),
        // Outside the domains, by priority: the breach has no default (5),
        // analytics.track is 1; both take the default queue, where no
        // handler is registered for them.
        ("InternalPriorityQueue", 0, 0),
        ("InternalDefaultQueue", 0, 2),
    ];
    for (queue, handled, unknown) in expect {
        let (report, counts) = stack.drain_internal(&consumer, queue).await;
        assert_eq!(report.failed, 0, "{queue}: {counts:?}");
        assert_eq!(
            (counts.handled, counts.unknown),
            (handled, unknown),
            "{queue}: {counts:?}"
        );
    }

    // The order workflow ran every step: 3 mugs + 1 tee reserved, shipping
    // 500 + 4 × 100, charged 3 × 1250 + 2000 + 900.
    assert_eq!(int(&record(&stack, "acme", "STOCK", "sku-mug").await, "reserved"), 3);
    assert_eq!(int(&record(&stack, "acme", "STOCK", "sku-tee").await, "reserved"), 2);
    assert_eq!(
        int(&record(&stack, "acme", "SHIPMENT", "ord_1").await, "shipping_cents"),
        900
    );
    assert_eq!(
        int(&record(&stack, "acme", "CHARGE", "ord_1").await, "amount_cents"),
        6650
    );
    let outbox = record(&stack, "acme", "OUTBOX", "ord_1-confirmation").await.unwrap();
    assert_eq!(outbox["to"], "ada@example.com");
    // The user workflow, the ledger and the restock request.
    assert_eq!(record(&stack, "acme", "ROLE", "usr_1").await.unwrap()["role"], "member");
    assert!(record(&stack, "acme", "OUTBOX", "usr_1-welcome").await.is_some());
    assert_eq!(
        int(
            &record(
                &stack,
                "acme",
                "ANALYTICS",
                &format!("registrations-{}", time::OffsetDateTime::now_utc().date())
            )
            .await,
            "count"
        ),
        1
    );
    assert_eq!(int(&record(&stack, "acme", "LEDGER", "EUR").await, "total_cents"), 4200);
    assert_eq!(int(&record(&stack, "acme", "RESTOCK", "sku-tee").await, "available"), 4);
    // Nothing is written under another tenant.
    assert!(record(&stack, "other", "CHARGE", "ord_1").await.is_none());

    // A producer's own priority moves a type outside the domains to the
    // priority queue.
    let body = json!({"id": "evt_breach2", "type": "security.breach_detected", "data": {}, "routing": {"priority": 9}});
    assert_eq!(
        ingest
            .handle(post_event(key.expose(), &body.to_string()))
            .await
            .status_code,
        202
    );
    let (_, counts) = stack.drain_internal(&consumer, "InternalPriorityQueue").await;
    assert_eq!(counts.unknown, 1, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_record_fails_alone_and_the_rest_are_acknowledged() {
    let stack = Stack::new("internal-poison").await;
    let (url, _) = stack.internal_queue("InternalPaymentQueue");
    // One ledger per payment: moto applies concurrent ADDs to one item
    // without a lock (DynamoDB does not lose them; moto can).
    let pay = |id: &str, cents: i64, currency: &str| {
        bus_message(
            "acme",
            id,
            "payment.completed",
            json!({"payment_id": id, "amount_cents": cents, "currency": currency}),
        )
    };
    stack
        .send_bodies(
            &url,
            &[
                pay("evt_p1", 100, "usd"),
                "{not json".to_string(),
                pay("evt_p2", 20, "eur"),
                // Valid event, data that can never fit the handler.
                bus_message("acme", "evt_bad", "payment.completed", json!({"amount_cents": "lots"})),
                pay("evt_p3", 3, "gbp"),
            ],
        )
        .await;
    let consumer = stack.consumer(Duration::from_secs(30));
    let (r, c) = stack.poll_internal_once(&consumer, &url, 10, 2).await;
    assert_eq!((r.received, r.failed), (5, 2), "one batch, two failures: {r:?}");
    assert_eq!((c.handled, c.poison), (3, 2), "{c:?}");
    for (currency, cents) in [("USD", 100), ("EUR", 20), ("GBP", 3)] {
        assert_eq!(
            int(&record(&stack, "acme", "LEDGER", currency).await, "total_cents"),
            cents
        );
    }
    // The two poisoned messages are visible again at once (no backoff, and
    // not the queue's 1 s visibility timeout either: the consumer set it to
    // 0 through the queue URL it derived from the record's ARN), on their
    // way to the DLQ; the three good ones are gone.
    let again = stack
        .sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .wait_time_seconds(0)
        .send()
        .await
        .unwrap();
    assert_eq!(again.messages.unwrap_or_default().len(), 2);
    assert_eq!(stack.depth(&url).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_failing_at_step_3_resumes_there_and_each_effect_happens_once() {
    let stack = Stack::new("internal-resume").await;
    seed_stock(&stack, "acme").await;
    let (url, _) = stack.internal_queue("InternalOrderQueue");
    let message = bus_message("acme", "evt_o1", "order.created", order("ord_7", "JP"));
    stack.send_bodies(&url, std::slice::from_ref(&message)).await;
    // The first retry comes 1 s ± 20 % later (whole seconds: at most 2 s).
    let consumer = stack.consumer(Duration::from_secs(1));

    // No shipping rate for JP yet: steps 1 and 2 commit, step 3 fails and
    // the message is made invisible for the backoff.
    let (report, counts) = stack.drain_internal(&consumer, "InternalOrderQueue").await;
    assert_eq!(
        (report.received, report.failed, counts.retried),
        (1, 1, 1),
        "{counts:?}"
    );
    let key = RunKey {
        tenant: TenantId::parse("acme").unwrap(),
        event: switchyard_core::EventId::parse("evt_o1").unwrap(),
        workflow: "order_fulfilment".into(),
    };
    let run = stack.state_store().run(&key).await.unwrap().unwrap();
    assert_eq!(run.next_step, 2, "{run:?}");
    assert_eq!(run.failed_step.as_deref(), Some("calculate_shipping"));
    assert!(run.last_error.unwrap().contains("no shipping rate for JP"));
    assert_eq!(run.status, "retrying");
    assert_eq!(int(&record(&stack, "acme", "STOCK", "sku-mug").await, "reserved"), 3);

    // Operations add the rate; the retry resumes at step 3.
    put(
        &stack,
        "acme",
        "SHIPPING_RATE",
        "JP",
        json!({"base_cents": 1000, "per_item_cents": 0}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (report, counts) = stack.drain_internal(&consumer, "InternalOrderQueue").await;
    assert_eq!(
        (report.received, report.failed, counts.handled),
        (1, 0, 1),
        "{counts:?}"
    );
    let run = stack.state_store().run(&key).await.unwrap().unwrap();
    assert_eq!((run.next_step, run.status.as_str(), run.failures), (5, "completed", 1));
    assert_eq!(run.failed_step, None);
    // Every effect exactly once: reservations were not made twice.
    assert_eq!(int(&record(&stack, "acme", "STOCK", "sku-mug").await, "reserved"), 3);
    assert_eq!(int(&record(&stack, "acme", "STOCK", "sku-tee").await, "reserved"), 2);
    assert_eq!(
        int(&record(&stack, "acme", "CHARGE", "ord_7").await, "amount_cents"),
        6750
    );

    // The same event again (a duplicate from the bus): nothing runs.
    stack.send_bodies(&url, &[message]).await;
    let (_, counts) = stack.drain_internal(&consumer, "InternalOrderQueue").await;
    assert_eq!((counts.handled, counts.duplicates), (1, 1), "{counts:?}");
    assert_eq!(int(&record(&stack, "acme", "STOCK", "sku-mug").await, "reserved"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_sqs_delivery_is_processed_once() {
    let stack = Stack::new("internal-dup").await;
    let (url, _) = stack.internal_queue("InternalPaymentQueue");
    let m = bus_message(
        "acme",
        "evt_dup",
        "payment.completed",
        json!({"payment_id": "p", "amount_cents": 500, "currency": "gbp"}),
    );
    // Two copies of one message, as SQS's at-least-once delivery may hand out.
    stack.send_bodies(&url, &[m.clone(), m]).await;
    let consumer = stack.consumer(Duration::from_secs(1));
    // One record per batch, one batch after the other: moto (unlike
    // DynamoDB) does not make two concurrent conditional writes to one item
    // exclusive, so the copies are handled in turn here. Two copies in one
    // batch meet the claim's condition in DynamoDB (the unit tests cover the
    // busy claim).
    let (mut handled, mut duplicates) = (0, 0);
    for _ in 0..2 {
        let (r, c) = stack.poll_internal_once(&consumer, &url, 1, 2).await;
        assert_eq!((r.received, r.failed), (1, 0), "{r:?}");
        handled += c.handled;
        duplicates += c.duplicates;
    }
    assert_eq!((handled, duplicates), (2, 1));
    assert_eq!(stack.depth(&url).await, 0);
    // The ledger's addition is not idempotent by itself: the marker made it once.
    assert_eq!(int(&record(&stack, "acme", "LEDGER", "GBP").await, "total_cents"), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_always_fails_reaches_the_dlq_after_max_receive_count() {
    let stack = Stack::with_options(
        "internal-dlq",
        QueueOptions {
            visibility_timeout_secs: 1,
            internal_max_receive_count: Some(3),
            ..QueueOptions::default()
        },
    )
    .await;
    let (url, dlq) = stack.internal_queue("InternalInventoryQueue");
    // Data that can never fit the handler: it fails every time.
    let poison = bus_message(
        "acme",
        "evt_never",
        "inventory.low",
        json!({"sku": "s", "available": "none"}),
    );
    stack.send_bodies(&url, &[poison]).await;
    let consumer = stack.consumer(Duration::from_secs(1));
    let mut receives = 0;
    for _ in 0..20 {
        let (report, _) = stack.drain_internal(&consumer, "InternalInventoryQueue").await;
        receives += report.received;
        if stack.depth(&dlq).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(stack.depth(&dlq).await, 1, "the DLQ took it");
    assert_eq!(receives, 3, "received exactly maxReceiveCount times");
    assert_eq!(stack.depth(&url).await, 0);
    let body = stack.take_messages(&dlq).await;
    assert!(body[0].contains("evt_never"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_lists_a_tenants_audited_events_by_time() {
    let stack = Stack::new("audit").await;
    let (acme, key) = stack.tenant("acme").await;
    let (_, other_key) = stack.tenant("other").await;
    let ingest = stack.ingest();
    let start = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    for i in 0..5 {
        let body = json!({"id": format!("evt_a{i}"), "type": "audit.log", "data": {"i": i}});
        assert_eq!(
            ingest
                .handle(post_event(key.expose(), &body.to_string()))
                .await
                .status_code,
            202
        );
    }
    let quiet = json!({"id": "evt_quiet", "type": "audit.log", "data": {}, "routing": {"audit": false}});
    assert_eq!(
        ingest
            .handle(post_event(key.expose(), &quiet.to_string()))
            .await
            .status_code,
        202
    );
    let foreign = json!({"id": "evt_foreign", "type": "audit.log", "data": {}});
    assert_eq!(
        ingest
            .handle(post_event(other_key.expose(), &foreign.to_string()))
            .await
            .status_code,
        202
    );
    let end = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);

    let store = stack.event_store();
    let page = store.audit_trail(&acme, start, end, 100, None).await.unwrap();
    let ids: Vec<String> = page.events.iter().map(|r| r.envelope.id.to_string()).collect();
    assert_eq!(
        ids,
        ["evt_a0", "evt_a1", "evt_a2", "evt_a3", "evt_a4"],
        "audited, in order, this tenant's"
    );
    assert!(page.next.is_none());
    // Pages of two walk the same list.
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let p = store.audit_trail(&acme, start, end, 2, after.as_deref()).await.unwrap();
        walked.extend(p.events.iter().map(|r| r.envelope.id.to_string()));
        match p.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(walked, ids);
    // A window before the events holds none of them.
    let before = store
        .audit_trail(&acme, start - time::Duration::hours(1), start, 100, None)
        .await
        .unwrap();
    assert!(before.events.is_empty());
    assert!(
        store
            .audit_trail(&acme, start - time::Duration::days(400), end, 1, None)
            .await
            .is_err()
    );
}

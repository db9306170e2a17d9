use super::*;
use std::collections::HashMap;
use std::sync::Mutex;

/// An event store with the port's semantics: expired items count as absent.
#[derive(Default)]
struct Store {
    events: Mutex<HashMap<String, EventRecord>>,
    keys: Mutex<HashMap<String, (EventId, OffsetDateTime)>>,
    fail_insert: Mutex<bool>,
}
impl Store {
    fn record(&self, t: &str, id: &str) -> EventRecord {
        self.events.lock().unwrap()[&format!("{t}/{id}")].clone()
    }
    fn stored(&self, t: &str, id: &str) -> bool {
        self.events.lock().unwrap().contains_key(&format!("{t}/{id}"))
    }
}
impl EventStore for Store {
    async fn find_event(
        &self,
        t: &TenantId,
        id: &EventId,
        now: OffsetDateTime,
    ) -> Result<Option<EventRecord>, PortError> {
        let m = self.events.lock().unwrap();
        Ok(m.get(&format!("{t}/{id}"))
            .filter(|r| is_live(r.expires_at, now))
            .cloned())
    }
    async fn insert_event(&self, r: &EventRecord) -> Result<InsertOutcome, PortError> {
        if *self.fail_insert.lock().unwrap() {
            return Err(PortError::transient("table down"));
        }
        let mut m = self.events.lock().unwrap();
        let k = format!("{}/{}", r.envelope.tenant_id, r.envelope.id);
        if let Some(e) = m.get(&k)
            && is_live(e.expires_at, r.received_at)
        {
            return Ok(InsertOutcome::Exists(Box::new(e.clone())));
        }
        m.insert(k, r.clone());
        Ok(InsertOutcome::Inserted)
    }
    async fn claim_key(&self, c: &KeyClaim) -> Result<ClaimOutcome, PortError> {
        let mut m = self.keys.lock().unwrap();
        let k = format!("{}/{}", c.tenant, c.key_digest);
        if let Some((id, exp)) = m.get(&k)
            && is_live(*exp, c.now)
        {
            return Ok(ClaimOutcome::Held(id.clone()));
        }
        m.insert(k, (c.event_id.clone(), c.expires_at));
        Ok(ClaimOutcome::Claimed)
    }
}
#[derive(Default)]
struct Queue {
    sent: Mutex<Vec<FanoutTask>>,
    fail: Mutex<bool>,
}
impl TaskQueue<FanoutTask> for Queue {
    async fn send_all(&self, t: &[FanoutTask]) -> Result<(), PortError> {
        if *self.fail.lock().unwrap() {
            return Err(PortError::transient("queue down"));
        }
        self.sent.lock().unwrap().extend_from_slice(t);
        Ok(())
    }
}
#[derive(Default)]
struct Bus {
    published: Mutex<Vec<Envelope>>,
    fail: Mutex<bool>,
}
impl EventBus for Bus {
    async fn publish(&self, events: &[Envelope]) -> Result<(), PortError> {
        if *self.fail.lock().unwrap() {
            return Err(PortError::transient("bus down"));
        }
        self.published.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn now() -> OffsetDateTime {
    crate::time_util::parse_rfc3339("2026-11-29T10:00:00Z").unwrap()
}

fn ports<'a>(store: &'a Store, queue: &'a Queue) -> Ports<'a, Store, Queue, NoBus> {
    Ports::without_bus(store, queue)
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(k).unwrap()
}

#[tokio::test]
async fn accepted_events_are_stored_and_queued_once() {
    let (store, queue, cfg) = (Store::default(), Queue::default(), IngestConfig::default());
    let p = ports(&store, &queue);
    let body = br#"{"id":"evt_a","type":"user.created","data":{}}"#;
    let first = ingest(p, tenant("t1"), body, None, None, &cfg, now()).await.unwrap();
    assert_eq!((&first.id, first.duplicate), (&EventId::parse("evt_a").unwrap(), false));
    assert_eq!(first.trace_id.len(), 32, "a new trace: {first:?}");
    let again = ingest(p, tenant("t1"), body, None, None, &cfg, now()).await.unwrap();
    assert_eq!(
        (&again.id, again.duplicate, &again.trace_id),
        (&EventId::parse("evt_a").unwrap(), true, &first.trace_id),
        "a duplicate carries the stored event's trace"
    );
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
    // The same id from another tenant is another event.
    let other = ingest(p, tenant("t2"), body, None, None, &cfg, now()).await.unwrap();
    assert!(!other.duplicate);
    assert_eq!(queue.sent.lock().unwrap().len(), 2);
    // Audited (the default): kept for the audit retention, 365 days.
    let rec = store.record("t1", "evt_a");
    assert_eq!(
        rec.expires_at,
        crate::time_util::parse_rfc3339("2027-11-29T10:00:00Z").unwrap()
    );
}

#[tokio::test]
async fn a_queue_failure_is_an_error_and_a_repeat_queues_the_event() {
    let (store, queue, cfg) = (Store::default(), Queue::default(), IngestConfig::default());
    let p = ports(&store, &queue);
    let body = br#"{"id":"evt_b","type":"user.created","data":{"v":1}}"#;
    *queue.fail.lock().unwrap() = true;
    let err = ingest(p, tenant("t1"), body, None, None, &cfg, now())
        .await
        .unwrap_err();
    assert!(matches!(err, IngestError::Queue(ref e) if e.retryable));
    assert!(err.retryable());
    assert!(!store.stored("t1", "evt_b"), "nothing is stored unless handed over");
    *queue.fail.lock().unwrap() = false;
    // The client retries (here with a changed body): it was never
    // accepted, so the retry is the event.
    let retry = br#"{"id":"evt_b","type":"user.created","data":{"v":2}}"#;
    let ok = ingest(p, tenant("t1"), retry, None, None, &cfg, now()).await.unwrap();
    assert!(!ok.duplicate);
    let sent = queue.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].envelope.data["v"], 2);
    assert_eq!(store.record("t1", "evt_b").envelope.data["v"], 2);
}

#[tokio::test]
async fn a_store_failure_after_the_hand_over_fails_the_request_and_the_repeat_hands_over_again() {
    let (store, queue, cfg) = (Store::default(), Queue::default(), IngestConfig::default());
    let p = ports(&store, &queue);
    let body = br#"{"id":"evt_s","type":"user.created","data":{}}"#;
    *store.fail_insert.lock().unwrap() = true;
    let err = ingest(p, tenant("t1"), body, None, None, &cfg, now())
        .await
        .unwrap_err();
    assert!(matches!(err, IngestError::Store(ref e) if e.retryable), "{err}");
    assert_eq!(queue.sent.lock().unwrap().len(), 1, "handed over before the write");
    assert!(!store.stored("t1", "evt_s"));
    // At least once: the repeat hands it over again and stores it; a
    // third copy is a duplicate and hands nothing over.
    *store.fail_insert.lock().unwrap() = false;
    assert!(
        !ingest(p, tenant("t1"), body, None, None, &cfg, now())
            .await
            .unwrap()
            .duplicate
    );
    assert!(
        ingest(p, tenant("t1"), body, None, None, &cfg, now())
            .await
            .unwrap()
            .duplicate
    );
    assert_eq!(queue.sent.lock().unwrap().len(), 2);
    assert!(store.stored("t1", "evt_s"));
}

#[tokio::test]
async fn a_copy_that_stored_first_makes_the_other_its_duplicate() {
    let (store, queue, cfg) = (Store::default(), Queue::default(), IngestConfig::default());
    let p = ports(&store, &queue);
    let body = br#"{"id":"evt_race","type":"user.created","data":{"copy":1}}"#;
    let envelope = |body: &[u8]| parse_event(body, tenant("t1"), &cfg.default_source, now(), cfg.limits).unwrap();
    // Both copies are checked before either is stored: both hand over.
    let Checked::HandOver { record: first, seen } = check(p, envelope(body), None, &cfg, now()).await.unwrap() else {
        panic!("the first copy is new");
    };
    assert!(!seen);
    let second = br#"{"id":"evt_race","type":"user.created","data":{"copy":2}}"#;
    let Checked::HandOver { record: other, .. } = check(p, envelope(second), None, &cfg, now()).await.unwrap() else {
        panic!("nothing is stored yet");
    };
    let stored = confirm(p, &first, false).await.unwrap();
    assert!(!stored.duplicate);
    let late = confirm(p, &other, false).await.unwrap();
    assert!(late.duplicate, "the copy that stored second is the duplicate");
    assert_eq!(
        store.record("t1", "evt_race").envelope.data["copy"],
        1,
        "the first record stays"
    );
}

#[tokio::test]
async fn invalid_events_change_nothing() {
    let (store, queue, cfg) = (Store::default(), Queue::default(), IngestConfig::default());
    let err = ingest(
        ports(&store, &queue),
        tenant("t1"),
        b"{\"type\":\"bad\"}",
        Some(&key("k1")),
        None,
        &cfg,
        now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, IngestError::Invalid(_)));
    assert!(!err.retryable());
    assert!(store.events.lock().unwrap().is_empty());
    assert!(store.keys.lock().unwrap().is_empty(), "the key is not claimed");
    assert!(queue.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_idempotency_key_dedupes_per_tenant_within_the_window() {
    let (store, queue) = (Store::default(), Queue::default());
    let cfg = IngestConfig {
        dedupe_window: Duration::seconds(2),
        ..IngestConfig::default()
    };
    let p = ports(&store, &queue);
    // No id in the body: each request would get a fresh one.
    let body = br#"{"type":"order.placed","data":{"n":1}}"#;
    let first = ingest(p, tenant("t1"), body, Some(&key("k-1")), None, &cfg, now())
        .await
        .unwrap();
    assert!(!first.duplicate);
    let later = now() + Duration::milliseconds(1999);
    let again = ingest(p, tenant("t1"), body, Some(&key("k-1")), None, &cfg, later)
        .await
        .unwrap();
    assert_eq!((&again.id, again.duplicate), (&first.id, true));
    assert_eq!(queue.sent.lock().unwrap().len(), 1, "no second fan-out");
    // Another key, and the same key from another tenant, are new events.
    let other_key = ingest(p, tenant("t1"), body, Some(&key("k-2")), None, &cfg, later)
        .await
        .unwrap();
    assert!(!other_key.duplicate);
    assert_ne!(other_key.id, first.id);
    let other_tenant = ingest(p, tenant("t2"), body, Some(&key("k-1")), None, &cfg, later)
        .await
        .unwrap();
    assert!(!other_tenant.duplicate);
    assert_ne!(other_tenant.id, first.id);
    assert_eq!(queue.sent.lock().unwrap().len(), 3);
    // After the window the key is free again: a new event.
    let after = now() + Duration::seconds(2);
    let fresh = ingest(p, tenant("t1"), body, Some(&key("k-1")), None, &cfg, after)
        .await
        .unwrap();
    assert!(!fresh.duplicate);
    assert_ne!(fresh.id, first.id);
    assert_eq!(queue.sent.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn a_claimed_key_whose_event_was_never_stored_stores_it_under_the_original_id() {
    let (store, queue, cfg) = (Store::default(), Queue::default(), IngestConfig::default());
    // A first try claimed the key, then crashed before storing the event.
    let original = EventId::parse("evt_original").unwrap();
    let claim = KeyClaim {
        tenant: tenant("t1"),
        key_digest: key("k").digest(),
        event_id: original.clone(),
        now: now(),
        expires_at: now() + Duration::hours(1),
    };
    assert_eq!(store.claim_key(&claim).await.unwrap(), ClaimOutcome::Claimed);
    let body = br#"{"type":"order.placed","data":{}}"#;
    let done = ingest(
        ports(&store, &queue),
        tenant("t1"),
        body,
        Some(&key("k")),
        None,
        &cfg,
        now(),
    )
    .await
    .unwrap();
    assert_eq!(done.id, original);
    assert_eq!(queue.sent.lock().unwrap()[0].envelope.id, original);
    assert!(store.stored("t1", "evt_original"));
}

#[tokio::test]
async fn an_event_id_with_webhooks_stays_taken_while_its_deliveries_can_exist() {
    let (store, queue) = (Store::default(), Queue::default());
    let cfg = IngestConfig {
        dedupe_window: Duration::hours(1),
        retention: Duration::days(2),
        delivery_horizon: IngestConfig::delivery_horizon(30),
        ..IngestConfig::default()
    };
    let p = ports(&store, &queue);
    // Not audited, but with webhooks: its deliveries are named by
    // (tenant, event id, endpoint) and kept for the event retention.
    let body = br#"{"id":"evt_hook","type":"a.b","data":{},"routing":{"audit":false}}"#;
    let first = ingest(p, tenant("t1"), body, None, None, &cfg, now()).await.unwrap();
    assert!(!first.duplicate);
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
    // Past the dedupe window, and past the audit retention, the id still
    // names the event whose deliveries exist: a duplicate, nothing queued
    // (a new acceptance would be a 202 whose webhooks never go out).
    for later in [Duration::hours(2), Duration::days(3), Duration::days(88)] {
        let again = ingest(p, tenant("t1"), body, None, None, &cfg, now() + later)
            .await
            .unwrap();
        assert!(again.duplicate, "{later} later");
    }
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
    // Once every delivery record has expired, the id is free again.
    let free = now() + cfg.delivery_horizon + Duration::seconds(1);
    assert!(
        !ingest(p, tenant("t1"), body, None, None, &cfg, free)
            .await
            .unwrap()
            .duplicate
    );
    assert_eq!(queue.sent.lock().unwrap().len(), 2);
    assert!(cfg.delivery_horizon > Duration::days(30 + 58));
}

#[tokio::test]
async fn event_ids_dedupe_while_their_record_lives() {
    let (store, queue) = (Store::default(), Queue::default());
    let cfg = IngestConfig {
        dedupe_window: Duration::hours(1),
        retention: Duration::days(2),
        ..IngestConfig::default()
    };
    let p = ports(&store, &queue);
    let audit = br#"{"id":"evt_kept","type":"a.b","data":{}}"#;
    let no_audit = br#"{"id":"evt_short","type":"a.b","data":{},"routing":{"audit":false,"external":false}}"#;
    for body in [&audit[..], &no_audit[..]] {
        assert!(
            !ingest(p, tenant("t1"), body, None, None, &cfg, now())
                .await
                .unwrap()
                .duplicate
        );
    }
    // Within the window both are duplicates.
    let in_window = now() + Duration::minutes(59);
    for body in [&audit[..], &no_audit[..]] {
        assert!(
            ingest(p, tenant("t1"), body, None, None, &cfg, in_window)
                .await
                .unwrap()
                .duplicate
        );
    }
    // After the window the audit record still holds its id; the other is gone
    // (even if DynamoDB's TTL has not deleted it yet) and the id is new again.
    let after = now() + Duration::hours(1);
    assert!(
        ingest(p, tenant("t1"), audit, None, None, &cfg, after)
            .await
            .unwrap()
            .duplicate
    );
    assert!(
        !ingest(p, tenant("t1"), no_audit, None, None, &cfg, after)
            .await
            .unwrap()
            .duplicate
    );
    // Only the audited one has webhooks: queued once.
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
    assert_eq!(store.record("t1", "evt_short").received_at, after);
}

#[test]
fn records_expire_after_retention_if_audited_else_after_the_window() {
    let cfg = IngestConfig {
        dedupe_window: Duration::hours(24),
        retention: Duration::days(30),
        ..IngestConfig::default()
    };
    let audit = Routing {
        external: false,
        ..Routing::default()
    };
    let no_audit = Routing {
        audit: false,
        external: false,
        ..Routing::default()
    };
    assert_eq!(record_expiry(&audit, now(), &cfg), now() + Duration::days(30));
    assert_eq!(record_expiry(&no_audit, now(), &cfg), now() + Duration::hours(24));
    // With webhooks, at least as long as its deliveries can exist.
    let hooks = Routing {
        audit: false,
        ..Routing::default()
    };
    assert_eq!(record_expiry(&hooks, now(), &cfg), now() + cfg.delivery_horizon);
    assert_eq!(
        record_expiry(&Routing::default(), now(), &cfg),
        now() + cfg.delivery_horizon
    );
    // An audit record never lives shorter than the window.
    let long_window = IngestConfig {
        dedupe_window: Duration::days(40),
        ..cfg.clone()
    };
    assert_eq!(record_expiry(&audit, now(), &long_window), now() + Duration::days(40));
    // Fractions round up, so a window never ends early.
    let odd = now() + Duration::milliseconds(300);
    assert_eq!(
        record_expiry(&no_audit, odd, &cfg),
        now() + Duration::hours(24) + Duration::SECOND
    );
}

#[test]
fn liveness_is_decided_by_whole_seconds() {
    let exp = now() + Duration::seconds(2);
    assert!(is_live(exp, now()));
    assert!(is_live(exp, now() + Duration::milliseconds(1999)));
    assert!(!is_live(exp, now() + Duration::seconds(2)));
    assert!(!is_live(exp, now() + Duration::days(3)));
    assert_eq!(ceil_seconds(now()), now());
    assert_eq!(ceil_seconds(now() + Duration::nanoseconds(1)), now() + Duration::SECOND);
}

#[tokio::test]
async fn external_false_queues_no_fan_out() {
    let (store, queue, cfg) = (Store::default(), Queue::default(), IngestConfig::default());
    let body = br#"{"id":"evt_in","type":"a.b","data":{},"routing":{"external":false}}"#;
    let done = ingest(ports(&store, &queue), tenant("t1"), body, None, None, &cfg, now())
        .await
        .unwrap();
    assert!(!done.duplicate);
    assert!(queue.sent.lock().unwrap().is_empty());
    // Nothing to hand over: stored straight away.
    assert!(store.stored("t1", "evt_in"));
}

#[tokio::test]
async fn internal_events_are_published_before_they_are_stored() {
    let (store, queue, bus, cfg) = (
        Store::default(),
        Queue::default(),
        Bus::default(),
        IngestConfig::default(),
    );
    let p = Ports {
        store: &store,
        fanout: &queue,
        bus: Some(&bus),
    };
    let both = br#"{"id":"evt_both","type":"a.b","data":{}}"#;
    let internal_only = br#"{"id":"evt_int","type":"a.b","data":{},"routing":{"external":false}}"#;
    let external_only = br#"{"id":"evt_ext","type":"a.b","data":{},"routing":{"internal":false}}"#;
    for body in [&both[..], &internal_only[..], &external_only[..]] {
        ingest(p, tenant("t1"), body, None, None, &cfg, now()).await.unwrap();
    }
    let published: Vec<String> = bus.published.lock().unwrap().iter().map(|e| e.id.to_string()).collect();
    assert_eq!(published, ["evt_both", "evt_int"]);
    let queued: Vec<String> = queue
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.envelope.id.to_string())
        .collect();
    assert_eq!(queued, ["evt_both", "evt_ext"]);

    // A bus failure fails the request and stores nothing...
    *bus.fail.lock().unwrap() = true;
    let body = br#"{"id":"evt_retry","type":"a.b","data":{}}"#;
    let err = ingest(p, tenant("t1"), body, None, None, &cfg, now())
        .await
        .unwrap_err();
    assert!(matches!(err, IngestError::Publish(ref e) if e.retryable), "{err}");
    assert!(!store.stored("t1", "evt_retry"));
    assert_eq!(queue.sent.lock().unwrap().len(), 2, "no fan-out before the bus took it");
    // ...and the repeat publishes, queues and stores it.
    *bus.fail.lock().unwrap() = false;
    assert!(
        !ingest(p, tenant("t1"), body, None, None, &cfg, now())
            .await
            .unwrap()
            .duplicate
    );
    assert_eq!(bus.published.lock().unwrap().last().unwrap().id.as_str(), "evt_retry");
    assert_eq!(
        queue.sent.lock().unwrap().last().unwrap().envelope.id.as_str(),
        "evt_retry"
    );
    assert!(store.stored("t1", "evt_retry"));
}

#[tokio::test]
async fn without_a_bus_internal_routing_publishes_nothing() {
    let (store, queue, cfg) = (Store::default(), Queue::default(), IngestConfig::default());
    let body = br#"{"id":"evt_x","type":"a.b","data":{},"routing":{"external":false,"internal":true}}"#;
    ingest(ports(&store, &queue), tenant("t1"), body, None, None, &cfg, now())
        .await
        .unwrap();
    assert!(queue.sent.lock().unwrap().is_empty());
    assert!(store.stored("t1", "evt_x"));
}

#[test]
fn idempotency_keys_are_validated() {
    assert_eq!(key("abc-123").digest(), key("\"abc-123\"").digest(), "quoted or not");
    assert_ne!(key("abc-123").digest(), key("abc-124").digest());
    assert_eq!(key("x").digest().len(), 64);
    assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
    for bad in ["", "  ", "\"\"", "a b", "tab\there", "ünï", &"k".repeat(256)] {
        assert_eq!(IdempotencyKey::parse(bad), Err(InvalidIdempotencyKey), "{bad:?}");
    }
    assert_eq!(format!("{:?}", key("secret-ish")), "IdempotencyKey(<10 chars>)");
}

#[tokio::test]
async fn every_accepted_event_carries_a_trace_the_producers_header_first() {
    let (store, queue, cfg) = (Store::default(), Queue::default(), IngestConfig::default());
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let body = br#"{"id":"evt_t1","type":"user.created","data":{},"metadata":{"trace_id":"0af7651916cd43dd8448eb211c80319c"}}"#;
    ingest(
        ports(&store, &queue),
        tenant("t1"),
        body,
        None,
        Some(header),
        &cfg,
        now(),
    )
    .await
    .unwrap();
    let traced = store.record("t1", "evt_t1").envelope.metadata.traceparent;
    assert_eq!(
        traced.as_deref(),
        Some(header),
        "the producer's header is the event's trace"
    );

    // No header: a W3C trace id in metadata names the trace.
    let body = br#"{"id":"evt_t2","type":"user.created","data":{},"metadata":{"trace_id":"0af7651916cd43dd8448eb211c80319c"}}"#;
    ingest(
        ports(&store, &queue),
        tenant("t1"),
        body,
        None,
        Some("not-a-traceparent"),
        &cfg,
        now(),
    )
    .await
    .unwrap();
    let t = store.record("t1", "evt_t2").envelope.metadata.traceparent.unwrap();
    assert_eq!(
        crate::trace::TraceParent::parse(&t).unwrap().trace_id(),
        "0af7651916cd43dd8448eb211c80319c"
    );

    // Nothing at all: a new trace, still a valid traceparent.
    let body = br#"{"id":"evt_t3","type":"user.created","data":{}}"#;
    ingest(ports(&store, &queue), tenant("t1"), body, None, None, &cfg, now())
        .await
        .unwrap();
    let t = store.record("t1", "evt_t3").envelope.metadata.traceparent.unwrap();
    assert!(crate::trace::TraceParent::parse(&t).is_ok(), "{t}");
}
